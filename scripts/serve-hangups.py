#!/usr/bin/env python3
"""How long a 4-token request takes on `atr serve` when idle, and right after 1, 2 and 6 streaming
clients hung up in the middle of their answers. One JSON object on stdout (medians; an idle request
is measured before each hang-up, so that both see the same load).

    scripts/serve-hangups.py [--project PROJECT] [--tokens 300] [--after 3] [--repeat 3]

Without --project it serves a tiny random Llama given 4,096 positions (tests/tinymodel.py), built in a
temporary folder, whose greedy answer to the prompt runs to max_tokens; with one, that project's base
model (`atr serve PROJECT --base`). Each abandoned client asks for --tokens, reads for --after seconds
(the others wait for the model), then all hang up with a reset. The figures are medians of --repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "### 질문: 안녕"


def tiny_project(folder: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from tinymodel import build_tiny_model

    model = build_tiny_model(folder / "model")
    for name, key in [("config.json", "max_position_embeddings"), ("tokenizer_config.json", "model_max_length")]:
        settings = json.loads((model / name).read_text())
        (model / name).write_text(json.dumps({**settings, key: 4096}))
    project = folder / "project"
    project.mkdir()
    (project / "project.env").write_text(f"MODEL={model}\nPROMPT_TEMPLATE=instruct-ko\n")
    return project


def post(payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def four_tokens(port: int) -> float:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/completions",
        data=json.dumps({"prompt": PROMPT, "max_tokens": 4}).encode(),
        headers={"Content-Type": "application/json"},
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=3600) as response:
        response.read()
    return time.monotonic() - started


def after_hang_ups(port: int, clients: int, tokens: int, after: float) -> float:
    socks = [socket.create_connection(("127.0.0.1", port), timeout=3600) for _ in range(clients)]
    for sock in socks:
        sock.sendall(post({"prompt": PROMPT, "max_tokens": tokens, "stream": True}))
    received = b""
    while b"data: " not in received:  # the first client's answer is under way
        chunk = socks[0].recv(65536)
        if not chunk:
            raise SystemExit(f"the stream ended before its first event: {received!r}")
        received += chunk
    time.sleep(after)
    for sock in socks:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset, as a client that dies
        sock.close()
    return four_tokens(port)


def cpu() -> str:
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        found = re.search(r"^model name\s*:\s*(.+)$", info.read(), re.MULTILINE)
    return f"{found[1] if found else platform.processor()}, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="serve this project's base model (default: a tiny one)")
    parser.add_argument("--tokens", type=int, default=300, help="max_tokens of each abandoned stream")
    parser.add_argument("--after", type=float, default=3.0, help="seconds the first abandoned client reads")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        project = args.project or tiny_project(Path(folder))
        log = Path(folder) / "serve.log"
        with log.open("w") as out:
            child = subprocess.Popen(
                [sys.executable, "-m", "autotrain_runner", "serve", str(project), "--base", "--port", "0"],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            match = None
            while match is None and child.poll() is None:
                match = re.search(r"on http://127\.0\.0\.1:(\d+)/v1", log.read_text())
                time.sleep(0.2)
            if match is None:
                raise SystemExit(log.read_text()[-2000:])
            port = int(match[1])
            four_tokens(port)  # warm up
            # idle and after hang-ups measured in turn, so that both see the same load on the machine
            idle_s: list[float] = []
            after_s: dict[str, list[float]] = {"1": [], "2": [], "6": []}
            for _ in range(args.repeat):
                for clients in after_s:
                    idle_s.append(four_tokens(port))
                    after_s[clients].append(after_hang_ups(port, int(clients), args.tokens, args.after))
            idle = statistics.median(idle_s)
            after = {clients: statistics.median(times) for clients, times in after_s.items()}
        finally:
            os.killpg(child.pid, signal.SIGTERM)
            child.wait(timeout=60)
    figures = {
        "cpu": cpu(),
        "model": str(args.project or "tiny random Llama, 4096 positions"),
        "abandoned_stream": {"max_tokens": args.tokens, "read_for_s": args.after},
        "four_token_request_s": {
            "idle": round(idle, 3),
            **{f"after_{k}_hang_ups": round(v, 3) for k, v in after.items()},
        },
        "worst_over_idle": round(max(after.values()) / idle, 2),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

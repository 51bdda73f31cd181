"""`atr serve` on 127.0.0.1 and `atr eval --backend openai` against it, a dead server and a garbage one."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from conftest import atr


def request(url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers=headers or {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def server(style_project):
    assert atr("data", str(style_project)).code == 0
    child = subprocess.Popen(
        [sys.executable, "-m", "autotrain_runner", "serve", str(style_project), "--base", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    line = ""
    deadline = time.monotonic() + 120
    while "serving" not in line and time.monotonic() < deadline:
        line = child.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
    assert match, f"no serving line: {line!r}"
    yield f"http://127.0.0.1:{match.group(1)}/v1", style_project
    os.killpg(child.pid, signal.SIGTERM)
    child.wait(timeout=30)


def test_openai_compatible_endpoints_and_4xx(server):
    url, _ = server
    status, models = request(f"{url}/models")
    assert status == 200 and models["data"][0]["object"] == "model"
    name = models["data"][0]["id"]
    body = json.dumps({"model": name, "messages": [{"role": "user", "content": "안녕"}], "max_tokens": 4}).encode()
    status, completion = request(f"{url}/chat/completions", body)
    assert status == 200
    assert completion["object"] == "chat.completion" and completion["usage"]["completion_tokens"] <= 4
    assert completion["choices"][0]["message"]["role"] == "assistant"
    assert request(f"{url}/chat/completions", b"not json")[0] == 400
    bad = json.dumps({"messages": [{"role": "robot", "content": "x"}]}).encode()
    status, error = request(f"{url}/chat/completions", bad)
    assert status == 400 and "messages must be" in error["error"]["message"]
    assert (
        request(
            f"{url}/chat/completions",
            json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}).encode(),
        )[0]
        == 400
    )
    assert request(f"{url}/nowhere")[0] == 404
    with socket.create_connection(("127.0.0.1", int(url.split(":")[2].split("/")[0])), timeout=30) as raw:
        raw.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{}")
        assert b" 413 " in raw.recv(4096).split(b"\r\n")[0] + b" "


def test_eval_with_the_openai_backend(server, tmp_path):
    url, project = server
    name = request(f"{url}/models")[1]["data"][0]["id"]
    result = atr(
        "eval",
        str(project),
        "--base",
        "--backend",
        "openai",
        "--limit",
        "3",
        "--out",
        str(tmp_path / "o"),
        "--set",
        f"OPENAI_BASE_URL={url}",
        "--set",
        f"OPENAI_MODEL={name}",
        "--set",
        "MAX_NEW_TOKENS=4",
    )
    assert result.code == 0, result.text[-2000:]
    figures = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert figures["n"] == 3 and figures["signature"]["backend"] == "openai" and "chrf" in figures
    assert "valid_loss" not in figures, "a server gives no token losses"


def test_chat_with_a_server(server):
    """`atr chat --backend openai`: the way to talk to a model too big to load here (vLLM)."""
    url, project = server
    name = request(f"{url}/models")[1]["data"][0]["id"]
    command = [sys.executable, "-m", "autotrain_runner", "chat", str(project), "--backend", "openai"]
    settings = ["--set", f"OPENAI_BASE_URL={url}", "--set", f"OPENAI_MODEL={name}", "--set", "MAX_NEW_TOKENS=4"]
    done = subprocess.run(
        [*command, *settings], input="안녕하세요\n/reset\n종료\n", capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"chatting with {name} at {url}/chat/completions" in done.stdout
    assert done.stdout.count("bot> ") == 1 and "(conversation reset)" in done.stdout
    assert "warning: no end of answer within MAX_NEW_TOKENS=4" in done.stdout  # the server said "length"


def test_eval_against_a_dead_server_is_a_clear_failure(style_project):
    assert atr("data", str(style_project)).code == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there
    result = atr(
        "eval",
        str(style_project),
        "--base",
        "--backend",
        "openai",
        "--limit",
        "1",
        "--set",
        f"OPENAI_BASE_URL=http://127.0.0.1:{port}/v1",
    )
    assert result.code == 1
    assert f"cannot reach http://127.0.0.1:{port}/v1/chat/completions" in result.err
    assert "Traceback" not in result.err


def test_eval_against_a_server_answering_garbage(style_project):
    assert atr("data", str(style_project)).code == 0

    class Garbage(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *args):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        result = atr(
            "eval",
            str(style_project),
            "--base",
            "--backend",
            "openai",
            "--limit",
            "1",
            "--set",
            f"OPENAI_BASE_URL=http://127.0.0.1:{httpd.server_address[1]}/v1",
        )
    finally:
        httpd.shutdown()
    assert result.code == 1
    assert "answered something that is not an OpenAI chat completion: 'hello'" in result.err
    assert "Traceback" not in result.err

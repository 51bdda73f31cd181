"""`atr serve` on 127.0.0.1 and `atr eval --backend openai` against it, a dead server and a garbage one.

Also a burst of concurrent clients, a prompt far beyond the context, bodies that stop short,
protocol errors and clients that hang up: every client gets a well-formed JSON answer, the server
prints no traceback and keeps serving."""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import STYLE_ENV, atr, offline_env, read_events, sigint_default, style_project_in

CONCURRENT = 30


JSON = {"Content-Type": "application/json"}


def request(url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers=headers or JSON)
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def exchange(port: int, data: bytes, timeout: float = 60) -> tuple[int, dict[str, str], dict]:
    """Send raw bytes; the response's status, headers (lower-case names) and JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], dict]:
    buffer = b""
    while b"\r\n\r\n" not in buffer and len(buffer) < 1_000_000:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed without an answer: {buffer!r}"
        buffer += chunk
    head, _, body = buffer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed in the middle of its answer"
        body += chunk
    assert headers["content-type"].startswith("application/json"), headers
    return int(status_line.split()[1]), headers, json.loads(body[:length])


def lower(headers) -> dict[str, str]:
    """Header names in lower case (HTTP's are case-insensitive)."""
    return {k.lower(): v for k, v in headers.items()}


def completion_body(content: str = "안녕", **fields) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": content}], **fields}).encode()


def post_bytes(body: bytes, extra: bytes = b"", route: str = "/v1/chat/completions") -> bytes:
    """A raw POST of JSON `body` (its Content-Length) to `route`, followed by `extra`."""
    head = f"POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body + extra


def hang_up(sock: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0), as a client that dies does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@dataclass
class Live:
    url: str
    port: int
    project: Path
    out: Path
    err: Path

    def log(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")


def start(project: Path, folder: Path, *flags: str) -> tuple[subprocess.Popen, Live]:
    """`atr serve PROJECT --base --port 0` in a child process (SIGINT at its default, as in a
    terminal), its stdout and stderr in files under `folder`; back when it prints its serving line."""
    out, err = folder / "serve.out", folder / "serve.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-m", "autotrain_runner", "serve", str(project), "--base", "--port", "0", *flags],
            stdout=stdout,
            stderr=stderr,
            text=True,
            start_new_session=True,
            preexec_fn=sigint_default,
        )
    match = None
    deadline = time.monotonic() + 120
    while match is None and child.poll() is None and time.monotonic() < deadline:
        match = re.search(r"serving .* on http://127\.0\.0\.1:(\d+)/v1", out.read_text())
        time.sleep(0.2)
    if match is None:
        os.killpg(child.pid, signal.SIGTERM)
        pytest.fail(f"no serving line: {out.read_text()!r} {err.read_text()[-2000:]!r}")
    port = int(match.group(1))
    return child, Live(f"http://127.0.0.1:{port}/v1", port, project, out, err)


@contextlib.contextmanager
def serving(project: Path, folder: Path, *flags: str) -> Iterator[Live]:
    child, live = start(project, folder, *flags)
    try:
        yield live
    finally:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(timeout=30)
    assert "Traceback" not in live.err.read_text(), live.err.read_text()[-3000:]


@pytest.fixture
def live(style_project, tmp_path):
    """`atr serve --base --port 0` on the tiny model, for one test: one that loads it, hangs up on
    it or reads its log."""
    assert atr("data", str(style_project)).code == 0
    with serving(style_project, tmp_path) as server:
        yield server


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model) -> Iterator[Live]:
    """One `atr serve --base --port 0` for the tests that only ask it things (each gets its answer
    and nothing else changes), started once for the module."""
    root = tmp_path_factory.mktemp("served")
    project = style_project_in(root, STYLE_ENV.format(model=tiny_model))
    with pytest.MonkeyPatch.context() as patch:  # the autouse `_offline` is per test: not set up yet
        offline_env(patch, tmp_path_factory.getbasetemp())
        assert atr("data", str(project)).code == 0
        with serving(project, root) as server:
            yield server


@pytest.fixture
def server(served):
    return served.url, served.project


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


def test_thirty_concurrent_requests_each_get_a_well_formed_answer(live):
    """30 clients at once: before, the tokenizer was shared across threads ("Already borrowed") and the
    listen backlog of 5 reset connections. Each gets 200, or 429 with Retry-After; none a reset."""
    barrier = threading.Barrier(CONCURRENT, timeout=60)
    answers: list[tuple[int, dict, dict] | str] = [""] * CONCURRENT

    def client(i: int) -> None:
        body = completion_body(f"질문 {i} 오늘 어때? " * (1 + i % 5), max_tokens=8, temperature=0.7 * (i % 2))
        req = urllib.request.Request(f"{live.url}/chat/completions", data=body, headers=JSON)
        try:
            barrier.wait()
            with urllib.request.urlopen(req, timeout=120) as response:
                answers[i] = (response.status, lower(response.headers), json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            answers[i] = (exc.code, lower(exc.headers), json.loads(exc.read()))
        except Exception as exc:  # a reset, a timeout, a dropped connection: recorded, then failed below
            answers[i] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    failures = [a for a in answers if not isinstance(a, tuple)]
    assert not failures, failures
    statuses = [a[0] for a in answers if isinstance(a, tuple)]
    assert set(statuses) <= {200, 429, 503}, statuses
    assert 200 in statuses
    for status, headers, payload in (a for a in answers if isinstance(a, tuple)):
        if status == 200:
            assert payload["object"] == "chat.completion" and payload["usage"]["completion_tokens"] <= 8
        else:
            assert int(headers["retry-after"]) >= 1 and payload["error"]["message"]
    assert request(f"{live.url}/models")[0] == 200, "the server still serves"
    assert "Already borrowed" not in live.log() and "Traceback" not in live.log()


def test_a_prompt_beyond_the_context_is_refused_at_once(served):
    """500,000 characters on a 256-position model: 400 context_length_exceeded, as OpenAI answers,
    instead of minutes of generation that starve every other client."""
    status, error = request(f"{served.url}/chat/completions", completion_body("hello " * 83_334, max_tokens=16))
    assert status == 400
    assert error["error"]["code"] == "context_length_exceeded" and error["error"]["param"] == "messages"
    assert "maximum context length is 256 tokens" in error["error"]["message"]
    assert "16 in the completion" in error["error"]["message"]
    # the context is the prompt and max_tokens together
    status, error = request(f"{served.url}/chat/completions", completion_body("안녕", max_tokens=256))
    assert status == 400 and error["error"]["code"] == "context_length_exceeded"
    # without max_tokens, the answer gets what room the context leaves
    status, completion = request(f"{served.url}/chat/completions", completion_body("안녕 " * 60))
    assert status == 200 and completion["usage"]["total_tokens"] <= 256
    # the server is free for the next client
    assert request(f"{served.url}/chat/completions", completion_body(max_tokens=4))[0] == 200
    # a body over 1 MB is refused from its Content-Length, unread, and the client gets the answer
    status, error = request(f"{served.url}/chat/completions", completion_body("가" * 400_000))
    assert status == 413 and "over 1000000 bytes" in error["error"]["message"]
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n"
    status, headers, error = exchange(served.port, head + b"Expect: 100-continue\r\n\r\n")
    assert status == 413 and headers["connection"] == "close", "no 100 Continue for a body to be refused"


def test_a_body_shorter_than_its_content_length_does_not_hold_the_connection(served):
    with socket.create_connection(("127.0.0.1", served.port), timeout=60) as sock:
        sock.sendall(post_bytes(b'{"messages"' + b" " * 89)[:-89])  # Content-Length: 100, 11 bytes sent
        status, headers, error = read_response(sock)
        assert status == 400 and "stopped after 11 of the 100 bytes" in error["error"]["message"]
        assert headers["connection"] == "close" and sock.recv(1) == b"", "the connection is closed"
    assert request(f"{served.url}/chat/completions", completion_body(max_tokens=4))[0] == 200


def test_protocol_errors_are_json_and_hang_ups_print_nothing(live):
    port = live.port
    assert request(f"{live.url}/models?x=1")[0] == 200, "a query string routes as without"
    assert request(f"{live.url}/chat/completions?api-version=1", completion_body(max_tokens=4))[0] == 200
    status, _, error = exchange(port, b"PUT /v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert status == 501 and error["error"]["code"] == 501 and "PUT" in error["error"]["message"]
    # exactly one byte over the request line's limit, so that nothing is left unread (no reset)
    status, _, error = exchange(port, b"GET /" + b"a" * (65537 - 5))
    assert status == 414 and error["error"]["type"] == "invalid_request_error"
    status, _, error = exchange(port, b"GET /v1/models HTTP/1.1\r\nX: " + b"a" * (65537 - 3))
    assert status == 431
    many = b"".join(f"X-{i}: y\r\n".encode() for i in range(100))
    status, _, error = exchange(port, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status == 431
    status, _, error = exchange(port, b"GET / two words HTTP/1.1\r\n\r\n")
    assert status == 400 and "Bad request syntax" in error["error"]["message"]
    chunked = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert exchange(port, chunked)[0] == 411
    for body, expected in [
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),  # nesting deeper than the JSON parser recurses
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": ' + b"9" * 5000 + b"}", "not JSON"),
        (b'{"messages": [{"role": "user", "content": "\\ud800"}]}', "lone surrogate"),
    ]:
        status, _, error = exchange(port, post_bytes(body))
        assert status == 400 and expected in error["error"]["message"], error
    # clients that hang up: before the answer, in the middle of the body, and after a GET
    for data in [
        post_bytes(completion_body(max_tokens=4)),
        post_bytes(completion_body(max_tokens=4))[:-5],
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n",
    ] * 3:
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        sock.sendall(data)
        hang_up(sock)
    assert request(f"{live.url}/chat/completions", completion_body(max_tokens=4))[0] == 200
    assert request(f"{live.url}/models")[0] == 200
    assert "Traceback" not in live.err.read_text() and "BrokenPipe" not in live.log(), live.log()[-3000:]
    assert all(len(line) < 500 for line in live.out.read_text().splitlines()), "one short line per request"


def test_a_bad_port_or_host_fails_before_the_model_loads(style_project, tiny_model, tmp_path):
    """The address is checked and bound first: a model that cannot load is never reached."""
    assert atr("data", str(style_project)).code == 0
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model, broken)
    for weights in broken.glob("*.safetensors"):
        weights.write_bytes(b"not weights")
    serve = ["serve", str(style_project), "--base", "--set", f"MODEL={broken}"]
    for flags, name in [(["--port", "99999"], "--port"), (["--port", "-1"], "--port")]:
        result = atr(*serve, *flags)
        assert result.code == 2, result.text[-2000:]
        assert result.err.count("\n") == 1 and name in result.err and "Traceback" not in result.err, result.err
    result = atr(*serve, "--host", "192.0.2.1", "--port", "0")  # TEST-NET: no address of this machine
    assert result.code == 2 and "--host" in result.err and result.err.count("\n") == 1, result.err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = atr(*serve, "--port", str(busy.getsockname()[1]))
    assert result.code == 1 and "cannot listen" in result.err and "--port" in result.err, result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    # the same command on a free port does reach the model, and fails there
    result = atr(*serve, "--port", "0")
    assert result.code != 0 and "--port" not in result.err and "Traceback" not in result.err, result.err


def sse(url: str, payload: dict) -> tuple[str, list[dict]]:
    """POST with stream=true: the Content-Type and the events up to `data: [DONE]`."""
    req = urllib.request.Request(url, data=json.dumps({**payload, "stream": True}).encode(), headers=JSON)
    with urllib.request.urlopen(req, timeout=120) as response:
        return response.headers["Content-Type"], read_events(response)


def test_hf_streams_server_sent_events_and_serves_completions(served):
    """stream=true (refused before) answers as server-sent events, the same answer as without it;
    /v1/completions answers a raw prompt, streamed or not; errors are the same 4xx as before."""
    body = {"messages": [{"role": "user", "content": "오늘 어때?"}], "max_tokens": 10}
    kind, events = sse(f"{served.url}/chat/completions", body)
    assert kind.startswith("text/event-stream")
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(e["object"] == "chat.completion.chunk" and e["model"] for e in events)
    streamed = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    last = events[-1]
    assert last["choices"][0]["finish_reason"] in ("stop", "length") and last["usage"]["completion_tokens"] <= 10
    assert set(last["x_atr"]) == {"leaked", "repeats"}
    status, whole = request(f"{served.url}/chat/completions", json.dumps(body).encode())
    assert status == 200 and whole["choices"][0]["message"]["content"] == streamed.strip()
    assert len(events) > 3, "the answer arrives in pieces"

    status, plain = request(
        f"{served.url}/completions", json.dumps({"prompt": "### 질문: 안녕", "max_tokens": 5}).encode()
    )
    assert status == 200 and plain["object"] == "text_completion" and isinstance(plain["choices"][0]["text"], str)
    _, pieces = sse(f"{served.url}/completions", {"prompt": "### 질문: 안녕", "max_tokens": 5})
    assert "".join(e["choices"][0]["text"] for e in pieces).strip() == plain["choices"][0]["text"]
    assert request(f"{served.url}/completions", json.dumps({"prompt": ""}).encode())[0] == 400
    assert request(f"{served.url}/chat/completions", completion_body(stream="yes"))[0] == 400
    status, error = request(f"{served.url}/chat/completions", completion_body("hello " * 2000, stream=True))
    assert status == 400 and error["error"]["code"] == "context_length_exceeded"  # before any event


def test_the_chat_page_streams_keeps_the_conversation_and_starts_again(live, chromium):
    """A real browser (headless Chromium) at /: type, see the answer arrive, a second turn carries
    the first; /reset and a reload start again. The page fetches nothing but the server's API."""
    from playwright.sync_api import sync_playwright

    base = live.url.removesuffix("/v1")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            requests_made: list[str] = []
            page.on("request", lambda r: requests_made.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/")
            assert "Chat with" in page.title()

            def send(text: str) -> str:
                before = page.locator(".assistant").count()
                page.fill("#input", text)
                page.keyboard.press("Enter")
                answer = page.locator(".assistant").nth(before)
                answer.wait_for(timeout=60_000)
                page.locator(".assistant[data-state=done]").nth(before).wait_for(timeout=120_000)
                return answer.inner_text()

            first = send("오늘 기분 어때?")
            assert page.locator(".user").all_inner_texts() == ["오늘 기분 어때?"]
            assert first.strip(), "an answer was streamed into the page"
            # the warnings `atr chat` prints, for this answer's flags (greedy: the API gives the same answer)
            same = {"messages": [{"role": "user", "content": "오늘 기분 어때?"}]}
            _, whole = request(f"{live.url}/chat/completions", json.dumps(same).encode())
            assert whole["choices"][0]["message"]["content"] == first
            expected = [
                bool(whole["x_atr"]["leaked"]),
                whole["x_atr"]["repeats"],
                whole["choices"][0]["finish_reason"] == "length",
            ]
            shown = page.locator(".warning").all_inner_texts()
            assert len(shown) == sum(expected), (shown, whole)
            assert any("no end of answer" in w for w in shown) == expected[2]
            assert any("repeats itself" in w for w in shown) == expected[1]
            send("또 말해 줘")
            assert page.locator(".user").count() == 2 and page.locator(".assistant").count() == 2
            page.fill("#input", "/reset")
            page.keyboard.press("Enter")
            assert page.locator(".turn").count() == 0 and "(conversation reset)" in page.inner_text("#log")
            send("다시 시작")
            page.reload()
            assert page.locator(".turn").count() == 0  # a reload starts again
            send("안녕")
            assert page.locator(".user").all_inner_texts() == ["안녕"]
        finally:
            browser.close()
    assert errors == []
    assert all(url.startswith(base) for url in requests_made), requests_made  # offline: nothing from elsewhere
    log = live.log()
    assert log.count("POST /v1/chat/completions") >= 4


def test_a_client_that_hangs_up_mid_stream_leaves_the_server_serving(live):
    """The generation of a stream nobody reads any more ends before the next request gets the model."""
    body = json.dumps({"messages": [{"role": "user", "content": "길게 말해 줘"}], "stream": True, "max_tokens": 48})
    sock = socket.create_connection(("127.0.0.1", live.port), timeout=60)
    sock.sendall(post_bytes(body.encode()))
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    hang_up(sock)
    status, answer = request(f"{live.url}/chat/completions", completion_body("안녕", max_tokens=4))
    assert status == 200 and answer["usage"]["completion_tokens"] <= 4
    _, events = sse(f"{live.url}/chat/completions", {"messages": [{"role": "user", "content": "또"}], "max_tokens": 4})
    assert events[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert "Traceback" not in live.log()


PROMPT = "### 질문: 안녕"  # on /v1/completions the tiny model's greedy answer runs to max_tokens: no EOS comes
LONG = 300  # tokens: an answer long enough that holding the model for it shows


@pytest.fixture(scope="module")
def long_project(tmp_path_factory, tiny_model) -> Path:
    """A project on the tiny model with 4,096 positions (RoPE has no fixed length): answers as long as asked."""
    from helpers import STYLE_ENV

    root = tmp_path_factory.mktemp("long")
    model = root / "long-model"
    shutil.copytree(tiny_model, model)
    for name, key in [("config.json", "max_position_embeddings"), ("tokenizer_config.json", "model_max_length")]:
        settings = json.loads((model / name).read_text())
        (model / name).write_text(json.dumps({**settings, key: 4096}))
    project = root / "projects" / "long"
    project.mkdir(parents=True)
    (project / "project.env").write_text(STYLE_ENV.format(model=model))
    return project


def open_stream(port: int, payload: dict) -> socket.socket:
    """A streamed /v1/completions whose answer has begun (its 200 has come); the caller hangs up."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(post_bytes(json.dumps({**payload, "stream": True}).encode(), route="/v1/completions"))
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    return sock


@pytest.mark.slow
def test_clients_that_hang_up_mid_stream_end_their_generation_at_once(long_project, tmp_path):
    """Before, a stream's clean-up read its generation to the end while holding the model: a client
    that hung up after 3 s made the next 4-token request wait for the whole abandoned answer. Now the
    hang-up ends the generation within a step: the next request does not wait for it, after one
    client or six (five of them waiting for the model when they leave)."""
    with serving(long_project, tmp_path) as live:
        started = time.monotonic()
        _, events = sse(f"{live.url}/completions", {"prompt": PROMPT, "max_tokens": LONG})
        whole = time.monotonic() - started  # what one abandoned answer held the model for, before
        assert events[-1]["usage"]["completion_tokens"] == LONG, "the answer runs to max_tokens"
        for clients in (1, 6):
            streams = [open_stream(live.port, {"prompt": PROMPT, "max_tokens": LONG}) for _ in range(clients)]
            time.sleep(0.2)  # the first is generating
            for sock in streams:
                hang_up(sock)
            started = time.monotonic()
            status, answer = request(
                f"{live.url}/completions", json.dumps({"prompt": PROMPT, "max_tokens": 4}).encode()
            )
            took = time.monotonic() - started
            assert status == 200 and answer["usage"]["completion_tokens"] == 4
            assert took < whole / 2, f"after {clients} hang-ups 4 tokens took {took:.1f} s, {LONG} tokens {whole:.1f} s"
        _, events = sse(
            f"{live.url}/chat/completions", {"messages": [{"role": "user", "content": "또"}], "max_tokens": 4}
        )
        assert events[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert "socket.send" not in live.log() and "error" not in live.err.read_text(), "hang-ups print nothing"


@pytest.mark.slow
def test_ctrl_c_during_a_generation_exits_130(long_project, tmp_path):
    """Ctrl-C while a stream generates: before, the interpreter exited under the generating thread
    (`terminate called without an active exception`, SIGABRT); now the generation ends first, then
    the server, with `interrupted` and exit 130 as every command."""
    child, live = start(long_project, tmp_path)
    try:
        with open_stream(live.port, {"prompt": PROMPT, "max_tokens": 3000}) as sock:
            received = b""
            while b"data: " not in received:  # an event: the generation is under way
                chunk = sock.recv(65536)
                assert chunk, f"the stream ended before its first event: {received!r}"
                received += chunk
            os.killpg(child.pid, signal.SIGINT)  # as the terminal sends Ctrl-C: to the process group
            code = child.wait(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    err = live.err.read_text()
    assert code == 130, (code, err[-2000:])
    assert err.rstrip().endswith("interrupted") and "terminate called" not in err and "Traceback" not in err, err


REFUSED = [  # what the server does not implement, or what is out of OpenAI's range: 400 naming the parameter
    ({"n": 2}, "n"),
    ({"best_of": 2}, "best_of"),
    ({"logprobs": 1}, "logprobs"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"seed": 1}, "seed"),
    ({"top_p": 5}, "top_p"),
    ({"top_p": 0}, "top_p"),
    ({"temperature": 2.5}, "temperature"),
    ({"max_tokens": 4097}, "max_tokens"),
    ({"max_tokens": None, "max_completion_tokens": 4097}, "max_completion_tokens"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"stop": ""}, "stop"),
    ({"frobnicate": True}, "frobnicate"),
]
ASKED = {"prompt": PROMPT, "max_tokens": 16}


@pytest.mark.parametrize(("extra", "param"), REFUSED, ids=[f"{param}={extra[param]}" for extra, param in REFUSED])
def test_what_the_server_does_not_implement_is_refused_naming_the_parameter(served, extra, param):
    """`n=2` answered one choice, `stop` was ignored, `top_p=5` was accepted: now each is a 400 that
    names the parameter."""
    status, error = request(f"{served.url}/completions", json.dumps({**ASKED, **extra}).encode())
    assert status == 400 and error["error"]["param"] == param, (extra, error)
    assert error["error"]["type"] == "invalid_request_error" and error["error"]["message"]


@pytest.mark.parametrize("route", ["chat/completions", "completions"])
def test_the_ceiling_on_max_tokens_holds_on_every_route(served, route):
    payload = {"messages": [{"role": "user", "content": "x"}]} if route.startswith("chat") else {"prompt": "x"}
    status, error = request(f"{served.url}/{route}", json.dumps({**payload, "max_tokens": 5000}).encode())
    assert status == 400 and error["error"]["param"] == "max_tokens" and "1..4096" in error["error"]["message"]


def test_what_asks_for_nothing_beyond_the_server_is_accepted(served):
    defaults = {"n": 1, "logprobs": None, "presence_penalty": 0, "user": "u", "stream_options": {"include_usage": True}}
    assert request(f"{served.url}/completions", json.dumps({**ASKED, **defaults}).encode())[0] == 200


def test_stop_cuts_the_answer_before_the_first_stop_string_streamed_or_not(served):
    """finish_reason "stop", and the same text streamed."""
    url = f"{served.url}/completions"
    status, whole = request(url, json.dumps(ASKED).encode())
    text = whole["choices"][0]["text"]
    stop = next(c for c in text[len(text) // 2 :] if c.strip() and c != "\ufffd" and text.index(c) > 0)
    expected = text.split(stop, 1)[0].strip()
    for form in (stop, ["never-in-the-answer", stop]):
        status, cut = request(url, json.dumps({**ASKED, "stop": form}).encode())
        assert status == 200 and cut["choices"][0]["text"] == expected, (text, stop, cut)
        assert cut["choices"][0]["finish_reason"] == "stop"
    _, events = sse(url, {**ASKED, "stop": [stop]})
    assert "".join(e["choices"][0]["text"] for e in events).strip() == expected
    assert events[-1]["choices"][0]["finish_reason"] == "stop"


def tls_client_hello() -> bytes:
    """The first bytes an https:// client sends."""
    import ssl

    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def slow_head(port: int, found: list) -> None:
    """A client that sends its request's head one header line every 2 s, for 40 s at most: how long
    the server kept it, and what it answered."""
    import select

    started = time.monotonic()
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n")
        try:
            while time.monotonic() - started < 40:
                if not select.select([sock], [], [], 2)[0]:
                    sock.sendall(b"X-Slow: 1\r\n")
                    continue
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except OSError as exc:
            received += f" ({type(exc).__name__})".encode()
    found.append((time.monotonic() - started, received))


@pytest.mark.slow
def test_hostile_clients_get_an_answer_or_are_dropped(live):
    """What a hostile round found: a text/plain POST was served (any web page could drive a local
    server with a CORS "simple request"); two different Content-Lengths were accepted; a TLS
    ClientHello got bare JSON with no status line; a client sending one header line every few
    seconds was never dropped."""
    found: list = []
    slow = threading.Thread(target=slow_head, args=(live.port, found), daemon=True)
    slow.start()
    url = f"{live.url}/chat/completions"
    body = completion_body(max_tokens=4)
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        status, error = request(url, body, {"Content-Type": kind})
        assert status == 415 and "application/json" in error["error"]["message"], kind
    status, _, error = exchange(live.port, post_bytes(body).replace(b"Content-Type: application/json\r\n", b""))
    assert status == 415
    assert request(url, body, {"Content-Type": "application/json; charset=utf-8"})[0] == 200
    # no CORS: a page elsewhere gets no permission, not even from a preflight
    preflight = b"OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: x\r\nOrigin: http://evil.example\r\n"
    status, headers, _ = exchange(live.port, preflight + b"Access-Control-Request-Method: POST\r\n\r\n")
    assert status >= 400 and not any(h.startswith("access-control-") for h in headers)
    for path in ("/", "/v1/models"):
        with urllib.request.urlopen(live.url.removesuffix("/v1") + path, timeout=30) as response:
            assert not any(h.lower().startswith("access-control-") for h in response.headers), path

    # two Content-Lengths that differ: 400, whichever the body matches
    two = post_bytes(body).replace(b"Content-Length:", f"Content-Length: {len(body) + 10}\r\nContent-Length:".encode())
    status, _, error = exchange(live.port, two)
    assert status == 400 and "Content-Length" in error["error"]["message"], error
    # https:// to this http:// server: a 400 with its status line, at once, and the connection closes
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(tls_client_hello())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ") and b"http://, not https://" in answer, answer

    slow.join(timeout=60)
    took, answer = found[0]
    assert answer.startswith(b"HTTP/1.1 408 ") and took < 30, (took, answer)
    assert request(f"{live.url}/models")[0] == 200, "the server still serves"


def test_a_hostile_model_name_cannot_break_the_chat_page(style_project, tiny_model, tmp_path, chromium):
    """The served name (here the model's path) is written into the page's script: a name holding
    `</script><!--<script>` ended the script early, or kept it open past its end."""
    from playwright.sync_api import sync_playwright

    hostile = tmp_path / "a</script><!--<script>&'\"" / "model"  # a folder named "a<", one "script>...": one path
    shutil.copytree(tiny_model, hostile)
    with serving(style_project, tmp_path, "--set", f"MODEL={hostile}") as live:
        name = request(f"{live.url}/models")[1]["data"][0]["id"]
        assert "</script><!--<script>" in name
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            try:
                page = browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(live.url.removesuffix("/v1") + "/")
                assert page.title() == f"Chat with {name}" and page.evaluate("MODEL") == name
                page.fill("#input", "안녕")
                page.keyboard.press("Enter")
                page.locator(".assistant[data-state=done]").first.wait_for(timeout=120_000)
                assert page.locator(".warning", has_text="error:").count() == 0
            finally:
                browser.close()
        assert errors == []


_JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=False),
        st.text(max_size=20),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
_MESSAGES = st.one_of(
    _JSON_VALUES,
    st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant", "system", "tool", "robot", 5]), "content": _JSON_VALUES}
        ),
        max_size=3,
    ),
    st.just([{"role": "user", "content": "안녕"}]),
)
_FIELDS = ["model", "max_tokens", "temperature", "top_p", "stop", "stream", "n", "logprobs", "seed", "tools", "x"]
_BODIES = st.fixed_dictionaries(
    {"messages": _MESSAGES},
    optional={
        **{name: _JSON_VALUES for name in _FIELDS},
        "max_tokens": st.one_of(st.integers(min_value=1, max_value=8), _JSON_VALUES),
        "stream": st.booleans(),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=_BODIES, route=st.sampled_from(["chat/completions", "completions"]))
def test_random_request_bodies_get_an_answer_or_a_json_error(served, body, route):
    """Generated bodies, valid and not, on both routes: an answer (200, as JSON or as events ending
    with [DONE]) or an OpenAI-style JSON error of 4xx; never a 5xx, a traceback or a hang."""
    if route == "completions":
        body = {("prompt" if key == "messages" else key): value for key, value in body.items()}
    req = urllib.request.Request(f"{served.url}/{route}", data=json.dumps(body).encode(), headers=JSON)
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            status, kind, raw = response.status, response.headers.get("content-type", ""), response.read()
    except urllib.error.HTTPError as exc:
        status, kind, raw = exc.code, exc.headers.get("content-type", ""), exc.read()
    assert status == 200 or (400 <= status < 500 and status != 404), (status, raw[:500])
    if kind.startswith("text/event-stream"):
        assert status == 200 and raw.rstrip().endswith(b"data: [DONE]"), raw[-300:]
    else:
        payload = json.loads(raw)
        assert ("choices" in payload) if status == 200 else isinstance(payload["error"]["message"], str), payload
    assert b"Traceback" not in raw

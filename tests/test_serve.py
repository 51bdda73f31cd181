"""`atr serve` on 127.0.0.1 and `atr eval --backend openai` against it, a dead server and a garbage one.

Also a burst of concurrent clients, a prompt far beyond the context, bodies that stop short,
protocol errors and clients that hang up: every client gets a well-formed JSON answer, the server
prints no traceback and keeps serving."""

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
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from conftest import atr, read_events

CONCURRENT = 30


def request(url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers=headers or {"Content-Type": "application/json"})
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


def completion_body(content: str = "안녕", **fields) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": content}], **fields}).encode()


def post_bytes(body: bytes, extra: bytes = b"") -> bytes:
    """A raw POST /v1/chat/completions with `body` (its Content-Length) followed by `extra`."""
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    return head + body + extra


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


@pytest.fixture
def live(style_project, tmp_path):
    """`atr serve --base --port 0` in a child process, its stdout and stderr in files."""
    assert atr("data", str(style_project)).code == 0
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-m", "autotrain_runner", "serve", str(style_project), "--base", "--port", "0"],
            stdout=stdout,
            stderr=stderr,
            text=True,
            start_new_session=True,
        )
    try:
        match = None
        deadline = time.monotonic() + 120
        while match is None and child.poll() is None and time.monotonic() < deadline:
            match = re.search(r"serving .* on http://127\.0\.0\.1:(\d+)/v1", out.read_text())
            time.sleep(0.2)
        assert match, f"no serving line: {out.read_text()!r} {err.read_text()[-2000:]!r}"
        port = int(match.group(1))
        yield Live(f"http://127.0.0.1:{port}/v1", port, style_project, out, err)
    finally:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(timeout=30)
    assert "Traceback" not in err.read_text(), err.read_text()[-3000:]


@pytest.fixture
def server(live):
    return live.url, live.project


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
        req = urllib.request.Request(f"{live.url}/chat/completions", data=body)
        try:
            barrier.wait()
            with urllib.request.urlopen(req, timeout=120) as response:
                answers[i] = (response.status, dict(response.headers), json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            answers[i] = (exc.code, dict(exc.headers), json.loads(exc.read()))
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
            assert int(headers["Retry-After"]) >= 1 and payload["error"]["message"]
    assert request(f"{live.url}/models")[0] == 200, "the server still serves"
    assert "Already borrowed" not in live.log() and "Traceback" not in live.log()


def test_a_prompt_beyond_the_context_is_refused_at_once(live):
    """500,000 characters on a 256-position model: 400 context_length_exceeded, as OpenAI answers,
    instead of minutes of generation that starve every other client."""
    status, error = request(f"{live.url}/chat/completions", completion_body("hello " * 83_334, max_tokens=16))
    assert status == 400
    assert error["error"]["code"] == "context_length_exceeded" and error["error"]["param"] == "messages"
    assert "maximum context length is 256 tokens" in error["error"]["message"]
    assert "16 in the completion" in error["error"]["message"]
    # the context is the prompt and max_tokens together
    status, error = request(f"{live.url}/chat/completions", completion_body("안녕", max_tokens=256))
    assert status == 400 and error["error"]["code"] == "context_length_exceeded"
    # without max_tokens, the answer gets what room the context leaves
    status, completion = request(f"{live.url}/chat/completions", completion_body("안녕 " * 60))
    assert status == 200 and completion["usage"]["total_tokens"] <= 256
    # the server is free for the next client
    assert request(f"{live.url}/chat/completions", completion_body(max_tokens=4))[0] == 200
    # a body over 1 MB is refused from its Content-Length, unread, and the client gets the answer
    status, error = request(f"{live.url}/chat/completions", completion_body("가" * 400_000))
    assert status == 413 and "over 1000000 bytes" in error["error"]["message"]
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n"
    status, headers, error = exchange(live.port, head + b"Expect: 100-continue\r\n\r\n")
    assert status == 413 and headers["connection"] == "close", "no 100 Continue for a body to be refused"


def test_a_body_shorter_than_its_content_length_does_not_hold_the_connection(live):
    with socket.create_connection(("127.0.0.1", live.port), timeout=60) as sock:
        sock.sendall(b'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"messages"')
        status, headers, error = read_response(sock)
        assert status == 400 and "stopped after 11 of the 100 bytes" in error["error"]["message"]
        assert headers["connection"] == "close" and sock.recv(1) == b"", "the connection is closed"
    assert request(f"{live.url}/chat/completions", completion_body(max_tokens=4))[0] == 200


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
    many = b"".join(f"X-{i}: y\r\n".encode() for i in range(101))
    status, _, error = exchange(port, b"GET /v1/models HTTP/1.1\r\n" + many + b"\r\n")
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
    deadline = time.monotonic() + 60
    while live.out.read_text().count('"POST /v1/chat/completions HTTP/1.1" 200') < 3 and time.monotonic() < deadline:
        time.sleep(0.2)  # the three abandoned completions are answered, to no one
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
    req = urllib.request.Request(url, data=json.dumps({**payload, "stream": True}).encode())
    with urllib.request.urlopen(req, timeout=120) as response:
        return response.headers["Content-Type"], read_events(response)


def test_hf_streams_server_sent_events_and_serves_completions(live):
    """stream=true (refused before) answers as server-sent events, the same answer as without it;
    /v1/completions answers a raw prompt, streamed or not; errors are the same 4xx as before."""
    body = {"messages": [{"role": "user", "content": "오늘 어때?"}], "max_tokens": 10}
    kind, events = sse(f"{live.url}/chat/completions", body)
    assert kind.startswith("text/event-stream")
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(e["object"] == "chat.completion.chunk" and e["model"] for e in events)
    streamed = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    last = events[-1]
    assert last["choices"][0]["finish_reason"] in ("stop", "length") and last["usage"]["completion_tokens"] <= 10
    assert set(last["x_atr"]) == {"leaked", "repeats"}
    status, whole = request(f"{live.url}/chat/completions", json.dumps(body).encode())
    assert status == 200 and whole["choices"][0]["message"]["content"] == streamed.strip()
    assert len(events) > 3, "the answer arrives in pieces"

    status, plain = request(
        f"{live.url}/completions", json.dumps({"prompt": "### 질문: 안녕", "max_tokens": 5}).encode()
    )
    assert status == 200 and plain["object"] == "text_completion" and isinstance(plain["choices"][0]["text"], str)
    _, pieces = sse(f"{live.url}/completions", {"prompt": "### 질문: 안녕", "max_tokens": 5})
    assert "".join(e["choices"][0]["text"] for e in pieces).strip() == plain["choices"][0]["text"]
    assert request(f"{live.url}/completions", json.dumps({"prompt": ""}).encode())[0] == 400
    assert request(f"{live.url}/chat/completions", completion_body(stream="yes"))[0] == 400
    status, error = request(f"{live.url}/chat/completions", completion_body("hello " * 2000, stream=True))
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

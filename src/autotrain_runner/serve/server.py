"""`atr serve`: an OpenAI-compatible server for a run, and a chat page for people.

`/v1/chat/completions` and `/v1/completions` (streamed as server-sent events with `stream=true`),
`/v1/models` (the run, and the base model it was trained on), and `/`, the chat page
(`chat_page`); what answers is `model.ServedModel`. The standard library's threading HTTP
server: requests are bounded in size and in time, at most `max_waiting` wait for the model (more
get 429 with Retry-After). A prompt that does not fit the model's context with its `max_tokens`
gets 400 (`context_length_exceeded`), as OpenAI answers, before any event of a stream. Every
error, the server's own 414/431/501 included, is an OpenAI-style JSON body, never a traceback; a
client that hangs up is not an error.
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import json
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from autotrain_runner.config.load import load_config
from autotrain_runner.data.base import ROLES
from autotrain_runner.errors import ConfigError, WorkError
from autotrain_runner.evaluation.engines import Engine
from autotrain_runner.evaluation.targets import base_target, generation_settings, run_target
from autotrain_runner.serve.chat_page import chat_page
from autotrain_runner.serve.model import BadRequest, Request, ServedModel

CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"
MAX_BODY = 1_000_000  # bytes
MAX_TOKENS = 4096
IDLE_SECONDS = 15  # a kept-alive connection with no next request is closed after this
BODY_SECONDS = 5  # the most a body may pause; a body shorter than its Content-Length gets 400 then
BODY_DEADLINE = 30  # the most a whole body may take
DRAIN_SECONDS = 5  # after refusing a body unread, how long what still comes is read and dropped
DRAIN_BYTES = 64_000_000  # and how much
LISTEN_BACKLOG = 128  # connections the kernel holds before accept: a burst is answered (429), never reset
RETRY_AFTER = "1"  # seconds, on 429
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _parse(body: bytes, model: ServedModel, route: str) -> Request:
    """The body of a POST to `route`, checked as OpenAI checks it."""
    try:
        request = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep, an integer of 5,000 digits
        raise BadRequest(HTTPStatus.BAD_REQUEST, "the body is not JSON") from None
    if not isinstance(request, dict):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
    stream = request.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "stream must be true or false", None, "stream")
    messages, prompt = None, None
    if route == CHAT:
        messages = request.get("messages")
        if (
            not isinstance(messages, list)
            or not messages
            or not all(
                isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in messages
            )
        ):
            raise BadRequest(
                HTTPStatus.BAD_REQUEST,
                "messages must be a non-empty list of {role: system|user|assistant, content: string}",
                None,
                "messages",
            )
        texts = [(f"messages[{i}].content", m["content"]) for i, m in enumerate(messages)]
        messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    else:
        prompt = request.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "prompt must be a non-empty string", None, "prompt")
        texts = [("prompt", prompt)]
    for where, text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"{where} holds a lone surrogate (\\ud800-\\udfff)") from None
    max_tokens = request.get("max_tokens", request.get("max_completion_tokens"))
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= MAX_TOKENS
    ):
        raise BadRequest(
            HTTPStatus.BAD_REQUEST, f"max_tokens must be an integer in 1..{MAX_TOKENS}", None, "max_tokens"
        )
    temperature = request.get("temperature", model.settings.temperature)
    if not isinstance(temperature, int | float) or isinstance(temperature, bool) or not 0 <= temperature <= 2:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "temperature must be a number in 0..2", None, "temperature")
    name = request.get("model")
    return Request(messages, prompt, max_tokens, float(temperature), stream, name if isinstance(name, str) else None)


def _handler(model: ServedModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = IDLE_SECONDS

        def log_message(self, format: str, *args: Any) -> None:  # one plain line per request
            text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", format % args)
            print(f"{self.address_string()} {text}", flush=True)

        def handle_one_request(self) -> None:
            self.connection.settimeout(IDLE_SECONDS)  # a body read shortens it; the next request restores it
            super().handle_one_request()

        def _send(self, status: int, payload: dict[str, Any], headers: Sequence[tuple[str, str]] = ()) -> None:
            body = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers:
                self.send_header(key, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(
            self,
            status: int,
            message: str,
            code: str | int | None = None,
            param: str | None = None,
            headers: Sequence[tuple[str, str]] = (),
        ) -> None:
            kind = "server_error" if status >= 500 else "invalid_request_error"
            error = {"message": message, "type": kind, "param": param, "code": status if code is None else code}
            self._send(status, {"error": error}, headers)

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """The server's own errors (400 bad request line, 414, 431, 501, 505) as OpenAI JSON."""
            try:
                phrase = HTTPStatus(code).phrase
            except ValueError:
                phrase = "error"
            self.log_error("code %d, message %s", code, message or phrase)
            self.close_connection = True
            self._error(code, message or phrase)

        def _route(self) -> str:
            return urlsplit(self.path).path.rstrip("/")

        def do_GET(self) -> None:
            if self.headers.get("Content-Length", "0").strip() not in ("", "0"):
                self.close_connection = True  # a body we do not read: the connection cannot carry on
            if self._route() == "/v1/models":
                self._send(HTTPStatus.OK, {"object": "list", "data": model.listed()})
            elif self._route() == "":
                self._send_page()
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no route {self._route()}; use /, /v1/models or {CHAT}")

        def _send_page(self) -> None:
            """The chat page: one self-contained HTML file (no script, style or font from elsewhere)."""
            body = chat_page(model.name, model.settings.max_new_tokens).encode()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header(
                "Content-Security-Policy",
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            )
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _send_events(self, chunks: Iterator[dict[str, Any]]) -> None:
            """Server-sent events: `data: {chunk}` for each, then `data: [DONE]`; the connection closes after."""
            first = next(chunks)  # a refusal (400 for the context) comes before any event is sent
            self.close_connection = True
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for chunk in itertools.chain([first], chunks):
                self.wfile.write(b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n")
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

        def _read_body(self, length: int) -> tuple[bytes | None, int]:
            """The body, or None when it stops short: EOF, a pause over BODY_SECONDS, or BODY_DEADLINE in all."""
            self.connection.settimeout(BODY_SECONDS)
            deadline = time.monotonic() + BODY_DEADLINE
            parts: list[bytes] = []
            got = 0
            try:
                while got < length and time.monotonic() < deadline:
                    chunk = self.rfile.read1(min(65536, length - got))
                    if not chunk:
                        break
                    parts.append(chunk)
                    got += len(chunk)
            except TimeoutError:
                pass
            return (b"".join(parts) if got == length else None), got

        def _declared_length(self) -> int | None:
            length = (self.headers.get("Content-Length") or "").strip()
            if not length.isascii() or not length.isdigit():
                return None
            return MAX_BODY + 1 if len(length) > 12 else int(length)

        def handle_expect_100(self) -> bool:
            """`Expect: 100-continue` (curl, for big bodies): no go-ahead for a body that would be refused."""
            length = self._declared_length()
            if length is not None and length <= MAX_BODY and self._route() in (CHAT, COMPLETIONS):
                return super().handle_expect_100()
            return True  # do_POST answers at once, and the client need not send the body

        def _refuse(self, status: HTTPStatus, message: str) -> None:
            """An answer that leaves the body unread, then a bounded drain of what the client still sends:
            closing on unread data would reset the connection before the client reads the answer."""
            self.close_connection = True
            self._error(status, message)
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(1)
                deadline, dropped = time.monotonic() + DRAIN_SECONDS, 0
                while dropped < DRAIN_BYTES and time.monotonic() < deadline:
                    chunk = self.connection.recv(65536)
                    if not chunk:
                        break
                    dropped += len(chunk)
            except OSError:  # the client is gone or stalls: nothing more to do
                pass

        def do_POST(self) -> None:
            route = self._route()
            if route not in (CHAT, COMPLETIONS):
                self._refuse(HTTPStatus.NOT_FOUND, f"no route {route}; use {CHAT} or {COMPLETIONS}")
                return
            if "Transfer-Encoding" in self.headers:
                self._refuse(HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not supported; send a Content-Length")
                return
            length = self._declared_length()
            if length is None:
                self._refuse(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
                return
            if length > MAX_BODY:
                self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_BODY} bytes")
                return
            body, got = self._read_body(length)
            if body is None:
                self.close_connection = True
                self._error(
                    HTTPStatus.BAD_REQUEST,
                    f"the body stopped after {got} of the {length} bytes its Content-Length announced",
                )
                return
            try:
                request = _parse(body, model, route)
            except BadRequest as exc:
                self._error(exc.status, str(exc), exc.code, exc.param)
                return
            if not model.slots.acquire(blocking=False):
                self._error(
                    HTTPStatus.TOO_MANY_REQUESTS,
                    "the server is busy; retry shortly",
                    "rate_limit_exceeded",
                    headers=[("Retry-After", RETRY_AFTER)],
                )
                return
            try:
                if request.stream:
                    self._send_events(model.stream(request))
                    return
                completion = model.complete(request)
            except BadRequest as exc:
                self._error(exc.status, str(exc), exc.code, exc.param)
                return
            except (ConnectionError, TimeoutError):  # the client hung up mid-stream
                return
            except Exception as exc:  # a failure of the model: one line here, a JSON 500 there
                print(f"{self.address_string()} error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                if not request.stream or not self.close_connection:
                    self._error(
                        HTTPStatus.INTERNAL_SERVER_ERROR, "the model failed on this request; see the server's log"
                    )
                return
            finally:
                model.slots.release()
            self._send(HTTPStatus.OK, completion)

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (or stalled) is no error; anything else is one line, not a traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        print(f"{client_address[0]} error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def _check_port(port: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"--port: {port} is not a port number (0-65535; 0 picks a free port)")


def _listen(host: str, port: int) -> _Server:
    """Bind before the model loads: a bad --host/--port is exit 2 at once, a busy port exit 1."""
    _check_port(port)
    family, address = socket.AF_INET, (host, port)
    if host:  # "" is every IPv4 interface, as http.server has it
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except (OSError, UnicodeError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise ConfigError(f"--host: {host!r} is not an address of this machine ({reason})") from None
        family, address = found[0][0], found[0][4]
    server_class = type("_Server", (_Server,), {"address_family": family})
    try:
        return server_class(address, BaseHTTPRequestHandler)
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"--host: {host!r} is not an address of this machine ({exc.strerror})") from None
        hint = "; --port 0 picks a free port" if exc.errno == errno.EADDRINUSE else ""
        raise WorkError(f"cannot listen on {host}:{port} (--host/--port): {exc.strerror or exc}{hint}") from None


def serve(
    project: Path | str,
    overrides: Sequence[str] = (),
    run_id: str | None = None,
    base: bool = False,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_waiting: int = 8,
    echo: Callable[[str], None] = print,
) -> None:
    _check_port(port)  # before anything is read or loaded
    config = load_config(project, overrides, needs_data=False)
    target = base_target(config, None) if base else run_target(config, run_id, None)
    # a run's adapter is served beside the base model it was trained on (`model` picks one)
    base_model = None
    if not base and target.adapter is not None:
        project_base = base_target(config, None)
        if project_base.model == target.model:  # the project still names the model the run trained on
            base_model = dataclasses.replace(target, label=project_base.label, adapter=None)
    settings = generation_settings(config, batch_size=1)
    name = config.project_name if not base else config.model.spec
    server = _listen(host, port)
    try:
        with Engine(config, [target], echo=echo) as engine:
            try:
                model = ServedModel(engine, target, base_model, settings, name, max_waiting)
            except OSError as exc:  # transformers' "can't load": not a listening problem
                raise WorkError(f"cannot load the model {target.model}: {exc}".splitlines()[0]) from None
            server.RequestHandlerClass = _handler(model)
            bound_host, bound_port = server.server_address[:2]
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            also = f" (and the base model as {model.base_name!r})" if base_model is not None else ""
            echo(
                f"serving {target.label} as model {name!r}{also} on http://{shown}:{bound_port}/v1 "
                f"with {engine.kind}; chat page http://{shown}:{bound_port}/ (Ctrl-C stops)"
            )
            server.serve_forever()
    finally:
        server.server_close()

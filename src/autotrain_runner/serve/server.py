"""`atr serve`: an OpenAI-compatible server for a run, and a chat page for people.

`/v1/chat/completions` and `/v1/completions` (streamed as server-sent events with `stream=true`),
`/v1/models` (the run, and the base model it was trained on), and `/`, the chat page
(`chat_page`). The standard library's threading HTTP server: requests are bounded in size and in
time, at most `max_waiting` wait for the model (more get 429 with Retry-After). With the hf
engine generation runs one request at a time on the one model; with vllm, vLLM batches the
requests in flight. A prompt that does not fit the model's context with its `max_tokens` gets 400
(`context_length_exceeded`), as OpenAI answers, before any event of a stream. Every error, the
server's own 414/431/501 included, is an OpenAI-style JSON body, never a traceback; a client that
hangs up is not an error.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import errno
import itertools
import json
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from autotrain_runner.config.project import load_config
from autotrain_runner.data.base import ROLES
from autotrain_runner.errors import ConfigError, WorkError
from autotrain_runner.evaluation import metrics
from autotrain_runner.evaluation.evaluate import (
    Engine,
    Target,
    base_target,
    generation_settings,
    leak_markers,
    run_target,
)
from autotrain_runner.generation.generate import Generated, HFBackend, Settings
from autotrain_runner.serve.chat_page import chat_page

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


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param


class _Model:
    """The models a server answers for (the run's adapter, and the base model it was trained on)
    on one engine. HF generates one request at a time on its one model; vLLM batches concurrent
    requests itself."""

    def __init__(
        self, engine: Engine, target: Target, base: Target | None, settings: Settings, name: str, max_waiting: int
    ):
        self.backend = engine.backend(target)
        self.names: dict[str, Any] = {name: self.backend}  # served name -> the backend that answers it
        if base is not None:
            self.base_name = base.label.removeprefix("base ")
            if isinstance(self.backend, HFBackend):
                self.names[self.base_name] = "disable-adapter"  # the same model, its adapter switched off
            else:
                self.names[self.base_name] = engine.backend(base)
        self.stops = self.backend.stop_strings(target.template)
        self.markers = leak_markers(self.backend, target.template)
        self.template = target.template
        self.settings = settings
        self.name = name
        self.window = self.backend.context_window
        self.serial = isinstance(self.backend, HFBackend)
        self.lock = threading.Lock()  # the HF model and its tokenizer: generation, one request at a time
        self.slots = threading.BoundedSemaphore(max_waiting)
        # Rendering and counting a prompt use a copy of the tokenizer, under a lock of its own: a fast
        # tokenizer is not thread-safe ("Already borrowed"), and an over-long prompt is refused at once,
        # without waiting for the generation in progress.
        try:
            self.prep_tokenizer = copy.deepcopy(self.backend.tokenizer)
            self.prep_lock = threading.Lock()
        except Exception:  # a tokenizer that cannot be copied shares the model's lock
            self.prep_tokenizer, self.prep_lock = self.backend.tokenizer, self.lock

    def listed(self) -> list[dict[str, Any]]:
        return [{"id": n, "object": "model", "created": 0, "owned_by": "autotrain-runner"} for n in self.names]

    def prepare(self, messages: list[dict[str, str]] | None, text: str | None = None) -> tuple[str, int, bool]:
        """The prompt (the messages in the run's template, or a raw completion prompt), its length
        in tokens, and whether special tokens are added when it is tokenized."""
        special = self.template.kind == "text" if messages is not None else True
        with self.prep_lock:
            if messages is None:
                prompt = text or ""
            elif self.template.kind == "chat":
                from jinja2 import TemplateError

                try:
                    prompt = self.prep_tokenizer.apply_chat_template(
                        messages, tokenize=False, add_generation_prompt=True
                    )
                except TemplateError as exc:
                    raise _BadRequest(
                        HTTPStatus.BAD_REQUEST,
                        f"the model's chat template refuses these messages: {exc}",
                        None,
                        "messages",
                    ) from None
            else:
                prompt = self.template.render(messages, add_generation_prompt=True)
            tokens = len(self.prep_tokenizer(prompt, add_special_tokens=special, verbose=False)["input_ids"])
        return prompt, tokens, special

    def _settings(self, request: _Request, prompt_tokens: int) -> Settings:
        max_tokens = request.max_tokens
        if max_tokens is None:  # not asked for: the project's MAX_NEW_TOKENS, or what room the context leaves
            max_tokens = max(1, min(self.settings.max_new_tokens, self.window - prompt_tokens))
        if prompt_tokens + max_tokens > self.window:
            raise _BadRequest(
                HTTPStatus.BAD_REQUEST,
                f"This model's maximum context length is {self.window} tokens. However, you requested "
                f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the "
                "completion). Please reduce the length of the messages or completion.",
                "context_length_exceeded",
                "messages" if request.messages is not None else "prompt",
            )
        return Settings(
            max_new_tokens=max_tokens,
            temperature=request.temperature,
            top_p=self.settings.top_p,
            repetition_penalty=self.settings.repetition_penalty,
            batch_size=1,
        )

    @contextlib.contextmanager
    def _generating(self, model_name: str | None) -> Iterator[Any]:
        """The backend for the requested model (the run's, unless the base model is named), held
        for the generation: under the lock for HF, with the adapter off for its base model."""
        chosen = self.names.get(model_name or self.name, self.backend)  # an unknown name: the run, as before
        if not self.serial:
            yield chosen
            return
        with self.lock:
            if chosen == "disable-adapter":
                with self.backend.model.disable_adapter():
                    yield self.backend
            else:
                yield self.backend

    def complete(self, request: _Request) -> dict[str, Any]:
        prompt, prompt_tokens, special = self.prepare(request.messages, request.prompt)
        settings = self._settings(request, prompt_tokens)
        stops = self.stops if request.messages is not None else ()
        with self._generating(request.model) as backend:
            generated = backend.generate([prompt], settings, stops, special)[0]
        return self._body(request, generated, prompt_tokens)

    def stream(self, request: _Request) -> Iterator[dict[str, Any]]:
        """The chunks of a streamed answer, the last one with the finish reason and the flags."""
        prompt, prompt_tokens, special = self.prepare(request.messages, request.prompt)
        settings = self._settings(request, prompt_tokens)
        stops = self.stops if request.messages is not None else ()
        ident, created, name = _ident(request), int(time.time()), request.model or self.name
        with self._generating(request.model) as backend:
            streamed = backend.stream(prompt, settings, stops, special)
            if request.messages is not None:
                yield _chunk(request, name, ident, created, {"role": "assistant", "content": ""}, None)
            for piece in streamed:
                yield _chunk(
                    request, name, ident, created, {"content": piece} if request.messages is not None else piece, None
                )
        generated = streamed.generated
        assert generated is not None
        last = _chunk(
            request,
            request.model or self.name,
            ident,
            created,
            {} if request.messages is not None else "",
            _finish(generated),
        )
        last["usage"] = _usage(prompt_tokens, generated)
        last["x_atr"] = self.flags(generated.text)
        yield last

    def flags(self, text: str) -> dict[str, Any]:
        """What `atr chat` warns about: the template's markers in the answer, and loops."""
        return {"leaked": metrics.leaks(text, self.markers), "repeats": metrics.repeats(text)}

    def _body(self, request: _Request, generated: Generated, prompt_tokens: int) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "finish_reason": _finish(generated)}
        if request.messages is not None:
            choice["message"] = {"role": "assistant", "content": generated.text}
        else:
            choice["text"] = generated.text
        return {
            "id": _ident(request),
            "object": "chat.completion" if request.messages is not None else "text_completion",
            "created": int(time.time()),
            "model": request.model or self.name,
            "choices": [choice],
            "usage": _usage(prompt_tokens, generated),
            "x_atr": self.flags(generated.text),
        }


def _ident(request: _Request) -> str:
    return f"{'chatcmpl' if request.messages is not None else 'cmpl'}-{uuid.uuid4().hex[:24]}"


def _finish(generated: Generated) -> str:
    return "stop" if generated.finished else "length"


def _usage(prompt_tokens: int, generated: Generated) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": generated.new_tokens,
        "total_tokens": prompt_tokens + generated.new_tokens,
    }


def _chunk(request: _Request, model: str, ident: str, created: int, delta: Any, finish: str | None) -> dict[str, Any]:
    if request.messages is not None:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        kind = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": delta, "finish_reason": finish}
        kind = "text_completion"
    return {"id": ident, "object": kind, "created": created, "model": model, "choices": [choice]}


@dataclass
class _Request:
    messages: list[dict[str, str]] | None  # /v1/chat/completions
    prompt: str | None  # /v1/completions
    max_tokens: int | None
    temperature: float
    stream: bool
    model: str | None


def _parse(body: bytes, model: _Model, route: str) -> _Request:
    try:
        request = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep, an integer of 5,000 digits
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "the body is not JSON") from None
    if not isinstance(request, dict):
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
    stream = request.get("stream", False)
    if not isinstance(stream, bool):
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "stream must be true or false", None, "stream")
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
            raise _BadRequest(
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
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "prompt must be a non-empty string", None, "prompt")
        texts = [("prompt", prompt)]
    for where, text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"{where} holds a lone surrogate (\\ud800-\\udfff)") from None
    max_tokens = request.get("max_tokens", request.get("max_completion_tokens"))
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= MAX_TOKENS
    ):
        raise _BadRequest(
            HTTPStatus.BAD_REQUEST, f"max_tokens must be an integer in 1..{MAX_TOKENS}", None, "max_tokens"
        )
    temperature = request.get("temperature", model.settings.temperature)
    if not isinstance(temperature, int | float) or isinstance(temperature, bool) or not 0 <= temperature <= 2:
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "temperature must be a number in 0..2", None, "temperature")
    name = request.get("model")
    return _Request(messages, prompt, max_tokens, float(temperature), stream, name if isinstance(name, str) else None)


def _handler(model: _Model) -> type[BaseHTTPRequestHandler]:
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
            except _BadRequest as exc:
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
            except _BadRequest as exc:
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
                model = _Model(engine, target, base_model, settings, name, max_waiting)
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

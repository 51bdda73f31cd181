"""`atr serve`: an OpenAI-compatible server for a run, and a chat page for people.

`/v1/chat/completions` and `/v1/completions` (streamed as server-sent events with `stream=true`),
`/v1/models` (the run, and the base model it was trained on), and `/`, the chat page
(`chat_page`); what answers is `model.ServedModel`, what a request may ask is `api`. A Starlette
application on uvicorn, given the socket bound before the model loads, with the HTTP connection's
limits and deadlines of `protocol`: bodies up to `MAX_BODY`, sent as `application/json` (415
otherwise, so that no web page can post to a local server without the browser asking it first;
no CORS header is sent), a body that pauses over `BODY_SECONDS` given up. At most `max_waiting`
wait for the model (more get 429 with Retry-After). A prompt that does not fit the model's context
with its `max_tokens` gets 400 (`context_length_exceeded`), as OpenAI answers, before any event of
a stream. A client that hangs up ends its generation within one step, and prints nothing; Ctrl-C
ends every generation the same way, then the server. Every error is an OpenAI-style JSON body,
never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import json
import logging
import re
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request as HTTPRequest
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from autotrain_runner.config.load import load_config
from autotrain_runner.errors import ConfigError, WorkError
from autotrain_runner.evaluation.targets import base_target, generation_settings, run_target
from autotrain_runner.generation.engine import Engine
from autotrain_runner.serve import api
from autotrain_runner.serve.chat_page import chat_page
from autotrain_runner.serve.model import MAX_TOKENS, BadRequest, Cancelled, Plan, ServedModel
from autotrain_runner.serve.protocol import HEAD_SECONDS, MAX_HEAD, RETRY_AFTER, Protocol, error_response

CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"
MAX_BODY = 1_000_000  # bytes
MAX_HEADERS = 100  # header fields in a request
BODY_SECONDS = 5  # the most a body may pause; a body shorter than its Content-Length gets 400 then
BODY_DEADLINE = 30  # the most a whole body may take
LISTEN_BACKLOG = 128  # connections the kernel holds before accept: a burst is answered (429), never reset
MAX_CONNECTIONS = 256  # open connections, or requests in progress; more get 503
STOP_SECONDS = 5  # on Ctrl-C, how long answers in progress may take to finish (their generation ends at once)
PAGE_POLICY = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_END = object()  # the end of a stream's chunks


class _Cut(BadRequest):
    """A body that stopped short: answered, then the connection closes (the client still owes bytes)."""


class _Unread(BadRequest):
    """Refused from the headers, the body unread."""


async def _body(request: HTTPRequest) -> bytes:
    """The body of a POST, within its limits: a Content-Length (no chunks), JSON, sent without long pauses."""
    headers = request.headers
    if "transfer-encoding" in headers:
        raise _Unread(411, "chunked bodies are not supported; send a Content-Length")
    if "content-length" not in headers:
        raise _Unread(411, "Content-Length is required")
    length = int(headers["content-length"])  # h11 has checked that it is digits, and one value
    if length > MAX_BODY:
        raise _Unread(413, f"the body is over {MAX_BODY} bytes")
    if headers.get("content-type", "").partition(";")[0].strip().lower() != "application/json":
        raise _Unread(415, "the body must be JSON, sent as Content-Type: application/json")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BODY_DEADLINE
    parts: list[bytes] = []
    got, more = 0, True
    while more:
        try:
            message = await asyncio.wait_for(request.receive(), max(0.0, min(BODY_SECONDS, deadline - loop.time())))
        except TimeoutError:
            raise _Cut(
                400, f"the body stopped after {got} of the {length} bytes its Content-Length announced"
            ) from None
        if message["type"] == "http.disconnect":
            raise _Cut(400, "the client hung up")  # answered to no one
        parts.append(message.get("body", b""))
        got += len(parts[-1])
        more = message.get("more_body", False)
    return b"".join(parts)


def _refused(exc: BadRequest, request: HTTPRequest) -> Response:
    """The error; the connection closes after a body cut short, or refused unread from a client waiting
    for `100 Continue` (it sends none). Another body refused unread is read and dropped (`protocol`)."""
    close = isinstance(exc, _Cut) or (isinstance(exc, _Unread) and "expect" in request.headers)
    return error_response(exc.status, str(exc), exc.code, exc.param, {"Connection": "close"} if close else None)


def _json(payload: dict[str, Any]) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), 200, media_type="application/json; charset=utf-8")


def _failed(request: HTTPRequest, exc: BaseException) -> Response:
    """A failure of the model: one line here, a JSON 500 there."""
    where = f"{request.client.host}:{request.client.port}" if request.client else "-"
    print(f"{where} error: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr, flush=True)
    return error_response(500, "the model failed on this request; see the server's log")


async def _answer(request: HTTPRequest, model: ServedModel, chat: bool) -> Response:
    try:
        parsed = api.parse(await _body(request), chat)
    except BadRequest as exc:
        return _refused(exc, request)
    if not model.slots.acquire(blocking=False):
        return error_response(
            429, "the server is busy; retry shortly", "rate_limit_exceeded", None, {"Retry-After": RETRY_AFTER}
        )
    cancel = model.cancel_event()
    try:
        plan = await anyio.to_thread.run_sync(model.plan, parsed)
    except BadRequest as exc:
        model.slots.release()
        return _refused(exc, request)
    except Exception as exc:
        model.slots.release()
        return _failed(request, exc)
    if parsed.stream:
        return _Events(request, model, plan, cancel)
    return await _completed(request, model, plan, cancel)


async def _completed(request: HTTPRequest, model: ServedModel, plan: Plan, cancel: threading.Event) -> Response:
    """The whole answer, generated in a thread while the client is watched: if it hangs up, the
    generation ends at its next step."""

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        cancel.set()

    def run() -> dict[str, Any]:
        try:
            return model.complete(plan, cancel)
        finally:
            model.slots.release()

    watcher = asyncio.ensure_future(watch())
    try:
        completion = await anyio.to_thread.run_sync(run)
    except Cancelled:
        completion = None
    except Exception as exc:
        return _failed(request, exc)
    finally:
        watcher.cancel()
    if model.stopping or completion is None:  # answered to no one, unless the server stops
        return error_response(503, "the request was cancelled: the server is stopping")
    return _json(completion)


class _Events(StreamingResponse):
    """Server-sent events: `data: {chunk}` for each, then `data: [DONE]`. The chunks come from a thread
    of their own (started at once, so that it always ends and frees its place), which holds the model
    until the generation ends. However the response ends (done, the client hung up, the server
    stopping), `cancel` is set, and the generation ends within one step."""

    def __init__(self, request: HTTPRequest, model: ServedModel, plan: Plan, cancel: threading.Event):
        self.cancel = cancel
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[Any] = asyncio.Queue()

        def put(item: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody reads any more
                loop.call_soon_threadsafe(chunks.put_nowait, item)

        def produce() -> None:
            try:
                for chunk in model.stream(plan, cancel):
                    put(chunk)
                put(_END)
            except Cancelled:
                put(_END)
            except Exception as exc:
                put(exc)
            finally:
                model.slots.release()

        async def events() -> AsyncIterator[str]:
            while (chunk := await chunks.get()) is not _END:
                if isinstance(chunk, Exception):
                    _failed(request, chunk)
                    return  # no [DONE]: the client sees the answer cut
                if model.stopping:
                    return
                yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
                # the loop's turn: a hang-up is seen before the next chunk is written to no one
                await asyncio.sleep(0)
            yield "data: [DONE]\n\n"

        # not a daemon: the interpreter does not exit in the middle of a generation (Ctrl-C ends it first)
        threading.Thread(target=produce, name="atr-serve-stream").start()
        super().__init__(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.cancel.set()


def _app(model: ServedModel) -> ASGIApp:
    async def page(request: HTTPRequest) -> Response:
        """The chat page: one self-contained HTML file (no script, style or font from elsewhere)."""
        html = chat_page(model.name, min(model.settings.max_new_tokens, MAX_TOKENS))
        return HTMLResponse(html, headers={"Content-Security-Policy": PAGE_POLICY})

    async def models(request: HTTPRequest) -> Response:
        return _json({"object": "list", "data": model.listed()})

    async def chat(request: HTTPRequest) -> Response:
        return await _answer(request, model, chat=True)

    async def completions(request: HTTPRequest) -> Response:
        return await _answer(request, model, chat=False)

    async def http_error(request: HTTPRequest, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            message = f"no route {request.url.path}; use /, /v1/models, {CHAT} or {COMPLETIONS}"
        else:
            message = f"{request.method} is not allowed on {request.url.path}; use {(exc.headers or {}).get('Allow')}"
        return error_response(exc.status_code, message, headers=exc.headers)

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route(CHAT, chat, methods=["POST"]),
        Route(COMPLETIONS, completions, methods=["POST"]),
    ]

    async def bug(request: HTTPRequest, exc: Exception) -> Response:  # uvicorn logs it, as one line
        return error_response(500, "the server failed on this request; see its log")

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: bug})

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        """What no route should see: a method the server has no use for, too many headers, a stopping server."""
        refusal = None
        if scope["type"] != "http":
            refusal = error_response(400, "this server answers HTTP requests only")
        elif scope["method"] not in ("GET", "HEAD", "POST"):
            refusal = error_response(501, f"the method {scope['method']} is not supported; use GET or POST")
        elif len(scope["headers"]) > MAX_HEADERS:
            refusal = error_response(431, f"over {MAX_HEADERS} header fields")
        elif model.stopping:
            refusal = error_response(503, "the server is stopping")
        await (refusal or app)(scope, receive, send)

    return guarded


class _Line(logging.Formatter):
    """uvicorn's log as one short line a record: control characters escaped, an exception as its type and message."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage().strip()
        if record.exc_info and record.exc_info[1] is not None:
            text += f": {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
        return text if len(text) <= 300 else text[:300] + "..."


def _log_to_terminal() -> None:
    """One line per request on stdout (uvicorn's access log); errors only on stderr."""
    for name, stream, level in [
        ("uvicorn.access", sys.stdout, logging.INFO),
        ("uvicorn.error", sys.stderr, logging.ERROR),
    ]:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(_Line())
        logger = logging.getLogger(name)
        logger.handlers, logger.propagate = [handler], False
        logger.setLevel(level)


def _loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """What escapes to the event loop: one line, not asyncio's traceback."""
    error = context.get("exception")
    what = f"{type(error).__name__}: {error}" if error else context.get("message", "")
    print(f"error: {what}".splitlines()[0], file=sys.stderr, flush=True)


class _Server(uvicorn.Server):
    """uvicorn's server, which ends every generation first when it stops (Ctrl-C, SIGTERM), so
    that the answers in progress finish at once and nothing generates while the process exits."""

    def __init__(self, config: uvicorn.Config, model: ServedModel):
        super().__init__(config)
        self.model = model

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(_loop_error)
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.model.stop()
        await super().shutdown(sockets)


def _uvicorn(app: ASGIApp) -> uvicorn.Config:
    """The HTTP server's limits: the head's size (h11), connections, the kept-alive wait, the stop."""
    return uvicorn.Config(
        app,
        http=Protocol,
        loop="asyncio",
        ws="none",
        lifespan="off",
        interface="asgi3",
        log_config=None,
        proxy_headers=False,
        server_header=False,
        h11_max_incomplete_event_size=MAX_HEAD,
        limit_concurrency=MAX_CONNECTIONS,
        backlog=LISTEN_BACKLOG,
        timeout_keep_alive=HEAD_SECONDS,
        timeout_graceful_shutdown=STOP_SECONDS,
    )


def _check_port(port: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"--port: {port} is not a port number (0-65535; 0 picks a free port)")


def _listen(host: str, port: int) -> socket.socket:
    """Bind and listen before the model loads: a bad --host/--port is exit 2 at once, a busy port exit 1."""
    _check_port(port)
    family, address = socket.AF_INET, (host, port)
    if host:  # "" is every IPv4 interface
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except (OSError, UnicodeError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise ConfigError(f"--host: {host!r} is not an address of this machine ({reason})") from None
        family, address = found[0][0], found[0][4]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"--host: {host!r} is not an address of this machine ({exc.strerror})") from None
        hint = "; --port 0 picks a free port" if exc.errno == errno.EADDRINUSE else ""
        raise WorkError(f"cannot listen on {host}:{port} (--host/--port): {exc.strerror or exc}{hint}") from None
    return sock


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
    target.refuse_generating()
    # a run's adapter is served beside the base model it was trained on (`model` picks one)
    base_model = None
    if not base and target.adapter is not None:
        project_base = base_target(config, None)
        if project_base.model == target.model:  # the project still names the model the run trained on
            base_model = dataclasses.replace(target, label=project_base.label, adapter=None)
    settings = generation_settings(config, batch_size=1)
    name = config.project_name if not base else config.model.spec
    sock = _listen(host, port)
    try:
        with Engine(config, [target], echo=echo) as engine:
            try:
                model = ServedModel(engine, target, base_model, settings, name, max_waiting)
            except OSError as exc:  # transformers' "can't load": not a listening problem
                raise WorkError(f"cannot load the model {target.model}: {exc}".splitlines()[0]) from None
            bound_host, bound_port = sock.getsockname()[:2]
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            also = f" (and the base model as {model.base_name!r})" if base_model is not None else ""
            echo(
                f"serving {target.label} as model {name!r}{also} on http://{shown}:{bound_port}/v1 "
                f"with {engine.kind}; chat page http://{shown}:{bound_port}/ (Ctrl-C stops)"
            )
            _log_to_terminal()
            # Ctrl-C: uvicorn stops (every generation ended first), then raises KeyboardInterrupt: exit 130
            _Server(_uvicorn(_app(model)), model).run(sockets=[sock])
    finally:
        sock.close()

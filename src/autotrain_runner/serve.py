"""`atr serve`: an OpenAI-compatible `/v1/chat/completions` and `/v1/models` for a run.

The standard library's threading HTTP server: requests are bounded in size, at most
`max_waiting` wait for the model (more get 429), and generation runs one request at a time on
the one model. Bad requests get a 4xx with an OpenAI-style error body, never a traceback.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .config import load_config
from .data.base import ROLES
from .evaluate import Target, base_target, generation_settings, render_prompt, run_target
from .generate import HFBackend, Settings

MAX_BODY = 1_000_000  # bytes
MAX_TOKENS = 4096


class _Model:
    def __init__(self, target: Target, settings: Settings, name: str, max_waiting: int):
        self.backend = HFBackend(target.model, target.adapter, target.load_in_4bit)
        self.template = target.template
        self.settings = settings
        self.name = name
        self.lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(max_waiting)

    def complete(self, messages: list[dict[str, str]], max_tokens: int, temperature: float) -> dict[str, Any]:
        prompt = render_prompt(self.backend, self.template, messages)
        settings = Settings(
            max_new_tokens=max_tokens,
            temperature=temperature,
            top_p=self.settings.top_p,
            repetition_penalty=self.settings.repetition_penalty,
            batch_size=1,
        )
        special = self.template.kind == "text"
        with self.lock:
            generated = self.backend.generate([prompt], settings, self.template.stop, special)[0]
        prompt_tokens = self.backend.count_tokens(prompt, special)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": generated.text},
                    "finish_reason": "stop" if generated.finished else "length",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": generated.new_tokens,
                "total_tokens": prompt_tokens + generated.new_tokens,
            },
        }


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def _parse(body: bytes, model: _Model) -> tuple[list[dict[str, str]], int, float]:
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "the body is not JSON") from None
    if not isinstance(request, dict):
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
    if request.get("stream"):
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "stream=true is not supported; omit it")
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
        )
    max_tokens = request.get("max_tokens", request.get("max_completion_tokens", model.settings.max_new_tokens))
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= MAX_TOKENS:
        raise _BadRequest(HTTPStatus.BAD_REQUEST, f"max_tokens must be an integer in 1..{MAX_TOKENS}")
    temperature = request.get("temperature", model.settings.temperature)
    if not isinstance(temperature, int | float) or isinstance(temperature, bool) or not 0 <= temperature <= 2:
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "temperature must be a number in 0..2")
    return messages, max_tokens, float(temperature)


def _handler(model: _Model):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # one plain line per request
            print(f"{self.address_string()} {format % args}", flush=True)

        def _send(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
            body = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: HTTPStatus, message: str) -> None:
            self._send(status, {"error": {"message": message, "type": "invalid_request_error", "code": status.value}})

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(
                    HTTPStatus.OK,
                    {
                        "object": "list",
                        "data": [{"id": model.name, "object": "model", "created": 0, "owned_by": "autotrain-runner"}],
                    },
                )
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no route {self.path}; use /v1/models or /v1/chat/completions")

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._error(HTTPStatus.NOT_FOUND, f"no route {self.path}; use /v1/chat/completions")
                return
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self._error(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
                return
            if int(length) > MAX_BODY:
                self.close_connection = True
                self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_BODY} bytes")
                return
            body = self.rfile.read(int(length))
            try:
                messages, max_tokens, temperature = _parse(body, model)
            except _BadRequest as exc:
                self._error(exc.status, str(exc))
                return
            if not model.slots.acquire(blocking=False):
                self._error(HTTPStatus.TOO_MANY_REQUESTS, "the server is busy; retry shortly")
                return
            try:
                self._send(HTTPStatus.OK, model.complete(messages, max_tokens, temperature))
            finally:
                model.slots.release()

    return Handler


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
    config = load_config(project, overrides)
    target = base_target(config, None) if base else run_target(config, run_id, None)
    settings = generation_settings(config, batch_size=1)
    name = config.project_name if not base else config.model.spec
    model = _Model(target, settings, name, max_waiting)
    server = ThreadingHTTPServer((host, port), _handler(model))
    server.daemon_threads = True
    bound_host, bound_port = server.server_address[:2]
    echo(f"serving {target.label} as model {name!r} on http://{bound_host}:{bound_port}/v1 (Ctrl-C stops)")
    try:
        server.serve_forever()
    finally:
        server.server_close()

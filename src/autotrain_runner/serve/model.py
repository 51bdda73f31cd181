"""The model `atr serve` answers with: a run's adapter (and the base model it was trained on, by
its own name) on one engine, each request's prompt rendered in the run's template, counted
against the context window, generated and shaped as OpenAI's bodies and chunks.

With the hf engine generation runs one request at a time on the one model (the base model is the
same model with its adapter switched off); with vllm, vLLM batches the requests in flight. A
prompt that does not fit the model's context with its `max_tokens` is refused
(`context_length_exceeded`) before anything is generated. Every generation checks a `cancel` event
at each step: a client that hangs up, or the server stopping, ends it within one step.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from autotrain_runner.evaluation import metrics
from autotrain_runner.evaluation.targets import context_overflow, leak_markers
from autotrain_runner.generation.engine import Engine
from autotrain_runner.generation.generate import Generated, HFBackend, Settings
from autotrain_runner.generation.target import Target
from autotrain_runner.rendering import Renderer


class BadRequest(Exception):
    """A request refused with an OpenAI-style error: its status, code and the parameter at fault."""

    def __init__(self, status: HTTPStatus, message: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param


MAX_TOKENS = 4096  # the most a request may ask for (more is 400); unasked, MAX_NEW_TOKENS up to this


class Cancelled(Exception):
    """A request cancelled before its generation began (its client left while it waited for the model)."""


@dataclass
class Request:
    """One parsed request (`api` parses the body)."""

    messages: list[dict[str, str]] | None  # /v1/chat/completions
    prompt: str | None  # /v1/completions
    max_tokens: int | None
    temperature: float | None  # None: the project's
    top_p: float | None
    stop: tuple[str, ...]  # the request's stop strings (the template's markers come on top, for chat)
    stream: bool
    model: str | None


@dataclass
class Plan:
    """A request checked against the model (its prompt fits the context): what generation needs."""

    request: Request
    prompt: str
    prompt_tokens: int
    settings: Settings


@dataclass(frozen=True)
class Answerer:
    """What answers one served name: a backend, or (HF) the run's own model with its adapter switched off."""

    backend: Any
    adapter_off: bool = False


class ServedModel:
    """The models a server answers for (the run's adapter, and the base model it was trained on)
    on one engine. HF generates one request at a time on its one model; vLLM batches concurrent
    requests itself."""

    def __init__(
        self, engine: Engine, target: Target, base: Target | None, settings: Settings, name: str, max_waiting: int
    ):
        self.backend = engine.backend(target)
        self.names: dict[str, Answerer] = {name: Answerer(self.backend)}  # served name -> what answers it
        if base is not None:
            self.base_name = base.label.removeprefix("base ")
            if isinstance(self.backend, HFBackend):  # the same model: one copy in memory
                self.names[self.base_name] = Answerer(self.backend, adapter_off=True)
            else:
                self.names[self.base_name] = Answerer(engine.backend(base))
        self.stops = self.backend.stop_strings()
        self.markers = leak_markers(self.backend, target.template)
        self.template = target.template
        self.settings = settings
        self.name = name
        self.window = self.backend.context_window
        self.serial = isinstance(self.backend, HFBackend)
        self.lock = threading.Lock()  # the HF model and its tokenizer: generation, one request at a time
        self.slots = threading.BoundedSemaphore(max_waiting)
        self.stopping = False  # set once, when the server stops: every generation ends, none starts
        self._cancels: weakref.WeakSet[threading.Event] = weakref.WeakSet()
        self._cancels_lock = threading.Lock()
        # Rendering and counting a prompt use a copy of the tokenizer, under a lock of its own: a fast
        # tokenizer is not thread-safe ("Already borrowed"), and an over-long prompt is refused at once,
        # without waiting for the generation in progress.
        renderer = self.backend.renderer
        try:
            tokenizer = copy.deepcopy(renderer.tokenizer)
            self.prep_renderer = Renderer(tokenizer, renderer.template, renderer.thinking, self.backend.generation_eos)
            self.prep_lock = threading.Lock()
        except Exception:  # a tokenizer that cannot be copied shares the model's lock
            self.prep_renderer, self.prep_lock = renderer, self.lock

    def cancel_event(self) -> threading.Event:
        """A request's cancel event: set by the server when its client hangs up, and by `stop`."""
        cancel = threading.Event()
        with self._cancels_lock:
            self._cancels.add(cancel)
            if self.stopping:
                cancel.set()
        return cancel

    def stop(self) -> None:
        """The server stops: every generation in progress ends at its next step."""
        with self._cancels_lock:
            self.stopping = True
            for cancel in list(self._cancels):
                cancel.set()

    def listed(self) -> list[dict[str, Any]]:
        return [{"id": n, "object": "model", "created": 0, "owned_by": "autotrain-runner"} for n in self.names]

    def prepare(self, messages: list[dict[str, str]] | None, text: str | None = None) -> tuple[str, int]:
        """The prompt (the messages rendered by the run's renderer, or a raw completion prompt) and
        its length in tokens, counted on the ids generation will see."""
        with self.prep_lock:
            if messages is None:
                prompt = text or ""
            else:
                from jinja2 import TemplateError

                try:
                    prompt = self.prep_renderer.prompt_text(messages)
                except TemplateError as exc:
                    raise BadRequest(
                        HTTPStatus.BAD_REQUEST,
                        f"the model's chat template refuses these messages: {exc}",
                        None,
                        "messages",
                    ) from None
            tokens = len(self.prep_renderer.encode(prompt))
        return prompt, tokens

    def plan(self, request: Request) -> Plan:
        """The request's prompt and settings; 400 `context_length_exceeded` when they do not fit."""
        prompt, prompt_tokens = self.prepare(request.messages, request.prompt)
        return Plan(request, prompt, prompt_tokens, self._settings(request, prompt_tokens))

    def _settings(self, request: Request, prompt_tokens: int) -> Settings:
        max_tokens = request.max_tokens
        if max_tokens is None:  # not asked for: the project's MAX_NEW_TOKENS, or what room the context leaves
            max_tokens = max(1, min(self.settings.max_new_tokens, MAX_TOKENS, self.window - prompt_tokens))
        overflow = context_overflow(self.window, prompt_tokens, max_tokens)  # what `atr chat` checks too
        if overflow:
            raise BadRequest(
                HTTPStatus.BAD_REQUEST,
                overflow,
                "context_length_exceeded",
                "messages" if request.messages is not None else "prompt",
            )
        return Settings(
            max_new_tokens=max_tokens,
            temperature=self.settings.temperature if request.temperature is None else request.temperature,
            top_p=self.settings.top_p if request.top_p is None else request.top_p,
            repetition_penalty=self.settings.repetition_penalty,
            batch_size=1,
        )

    @contextlib.contextmanager
    def _generating(self, model_name: str | None, cancel: threading.Event) -> Iterator[Any]:
        """The backend for the requested model (the run's, unless the base model is named), held
        for the generation: under the lock for HF, with the adapter off for its base model."""
        chosen = self.names.get(model_name or self.name) or self.names[self.name]  # an unknown name: the run
        if not self.serial:
            yield chosen.backend
            return
        with self.lock:
            if cancel.is_set():  # nobody waits for this answer any more: the next request gets the model
                raise Cancelled
            if chosen.adapter_off:
                with self.backend.model.disable_adapter():
                    yield self.backend
            else:
                yield self.backend

    def _streamed(self, plan: Plan, backend: Any, cancel: threading.Event) -> Any:
        """The answer as it is generated: ends at the template's markers (chat) and the request's `stop`."""
        stops = self.stops if plan.request.messages is not None else ()
        return backend.stream(plan.prompt, plan.settings, stops, cancel, plan.request.stop)

    def complete(self, plan: Plan, cancel: threading.Event) -> dict[str, Any]:
        """The whole answer, generated as `stream` generates it (the same answer, the same cancelling)."""
        with self._generating(plan.request.model, cancel) as backend:
            streamed = self._streamed(plan, backend, cancel)
            for _ in streamed:
                pass
        assert streamed.generated is not None
        return self._body(plan.request, streamed.generated, plan.prompt_tokens)

    def stream(self, plan: Plan, cancel: threading.Event) -> Iterator[dict[str, Any]]:
        """The chunks of a streamed answer, the last one with the finish reason and the flags."""
        request = plan.request
        ident, created, name = _ident(request), int(time.time()), request.model or self.name
        with self._generating(request.model, cancel) as backend:
            streamed = self._streamed(plan, backend, cancel)
            if request.messages is not None:
                yield _chunk(request, name, ident, created, {"role": "assistant", "content": ""}, None)
            for piece in streamed:
                yield _chunk(
                    request, name, ident, created, {"content": piece} if request.messages is not None else piece, None
                )
        generated = streamed.generated
        assert generated is not None
        last = _chunk(request, name, ident, created, {} if request.messages is not None else "", _finish(generated))
        last["usage"] = _usage(plan.prompt_tokens, generated)
        last["x_atr"] = self.flags(generated.text)
        yield last

    def flags(self, text: str) -> dict[str, Any]:
        """What `atr chat` warns about: the template's markers in the answer, and loops."""
        return {"leaked": metrics.leaks(text, self.markers), "repeats": metrics.repeats(text)}

    def _body(self, request: Request, generated: Generated, prompt_tokens: int) -> dict[str, Any]:
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


def _ident(request: Request) -> str:
    return f"{'chatcmpl' if request.messages is not None else 'cmpl'}-{uuid.uuid4().hex[:24]}"


def _finish(generated: Generated) -> str:
    return "stop" if generated.finished else "length"


def _usage(prompt_tokens: int, generated: Generated) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": generated.new_tokens,
        "total_tokens": prompt_tokens + generated.new_tokens,
    }


def _chunk(request: Request, model: str, ident: str, created: int, delta: Any, finish: str | None) -> dict[str, Any]:
    if request.messages is not None:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        kind = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": delta, "finish_reason": finish}
        kind = "text_completion"
    return {"id": ident, "object": kind, "created": created, "model": model, "choices": [choice]}

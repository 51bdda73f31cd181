"""`atr chat`: talk to a run (or the base model) through the template it was trained with.

The conversation is rendered by the run's recorded template, never a hand-built
"User:/Assistant:" string. Tokens stream as they are generated; the next-turn marker is held
back so it never reaches the screen. History is trimmed from the oldest turn to fit the context
window; a message that cannot fit alone is refused at once, as `atr serve` refuses it. An answer
that leaks the template or loops gets a visible warning. Ctrl-C during an answer stops the
generation at its next step and returns to the prompt; Ctrl-C at the prompt leaves.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from autotrain_runner.config.load import load_config
from autotrain_runner.evaluation import metrics
from autotrain_runner.evaluation.targets import (
    base_target,
    context_overflow,
    generation_settings,
    leak_markers,
    openai_markers,
    render_prompt,
    run_target,
)
from autotrain_runner.generation.engine import Engine, openai_backend

EXIT_WORDS = {"/exit", "/quit", "종료"}
HELP = "commands: /reset (forget the conversation), /exit or 종료 (leave)"


def chat(
    project: Path | str,
    overrides: Sequence[str] = (),
    run_id: str | None = None,
    base: bool = False,
    backend: str = "hf",
    stdin: IO[str] = sys.stdin,
    stdout: IO[str] = sys.stdout,
) -> None:
    with contextlib.ExitStack() as stack:
        _chat(project, overrides, run_id, base, backend, _utf8_tolerant(stdin), stdout, stack)


def _chat(project, overrides, run_id, base, backend, stdin, stdout, stack: contextlib.ExitStack) -> None:
    config = load_config(project, overrides, needs_data=False)
    settings = generation_settings(config, batch_size=1)
    system = [{"role": "system", "content": config.get("SYSTEM_PROMPT")}] if config.get("SYSTEM_PROMPT") else []
    if backend == "openai":  # a server (vLLM) renders the template and keeps the model: answers arrive whole
        server = openai_backend(config, concurrency=1)
        label, template_name = f"{server.model} at {server.shown_url}", "the server's"
        markers = openai_markers(config.template)

        def reply(history: list[dict[str, str]]) -> tuple[list[dict[str, str]], str, bool]:
            answer = server.generate_messages([system + history], settings)[0]
            stdout.write(answer.text)
            return history, answer.text, answer.finished

    else:
        target = base_target(config, None) if base else run_target(config, run_id, None)
        target.refuse_generating()
        engine = stack.enter_context(Engine(config, [target], echo=lambda line: stdout.write(line + "\n")))
        model = engine.backend(target)
        template = target.template
        label, template_name = target.label, template.name
        markers = leak_markers(model, template)
        window = model.context_window
        stops = model.stop_strings()

        def reply(history: list[dict[str, str]]) -> tuple[list[dict[str, str]], str, bool]:
            history, prompt = _fit(model, system, history, window - settings.max_new_tokens)
            overflow = context_overflow(window, model.count_tokens(prompt), settings.max_new_tokens)
            if overflow:
                raise _TooLong(overflow)
            streamed = model.stream(prompt, settings, stops)
            pieces = iter(streamed)
            try:
                for piece in pieces:
                    stdout.write(piece)
                    stdout.flush()
            except KeyboardInterrupt:
                pieces.close()  # sets the stream's cancel: generation stops at its next step, and ends
                raise _Stopped from None
            assert streamed.generated is not None
            return history, streamed.generated.text, streamed.generated.finished

    stdout.write(f"chatting with {label} (template {template_name}); {HELP}\n")
    history: list[dict[str, str]] = []
    while True:
        stdout.write("you> ")
        stdout.flush()
        line = stdin.readline()  # Ctrl-C here leaves (exit 130)
        if not line:  # end of input
            stdout.write("\n")
            return
        text = line.strip()
        if not text:
            continue
        if _SURROGATES.search(text):  # bytes that are not UTF-8, kept apart by surrogateescape
            stdout.write("(that line is not UTF-8 text; set the terminal to UTF-8 and type it again)\n")
            continue
        if text in EXIT_WORDS:
            return
        if text == "/reset":
            history = []
            stdout.write("(conversation reset)\n")
            continue
        history.append({"role": "user", "content": text})
        stdout.write("bot> ")
        try:
            history, answer, finished = reply(history)
        except _TooLong as exc:
            history.pop()
            stdout.write(f"(not sent: {exc})\n")
            continue
        except _Stopped:
            history.pop()  # an answer cut short is not part of the conversation
            stdout.write("\n(stopped; Ctrl-C at the prompt leaves)\n")
            continue
        stdout.write("\n")
        history.append({"role": "assistant", "content": answer})
        leaked = metrics.leaks(answer, markers)
        if leaked:
            stdout.write(
                f"warning: the answer contains the template's markers {leaked}: the model leaks its "
                "prompt template (often over-training)\n"
            )
        if metrics.repeats(answer):
            stdout.write("warning: the answer repeats itself (a loop; often over-training)\n")
        if not finished:
            stdout.write(f"warning: no end of answer within MAX_NEW_TOKENS={settings.max_new_tokens}\n")
        stdout.flush()


class _TooLong(Exception):
    """The message cannot fit the context even alone: nothing is generated."""


class _Stopped(Exception):
    """Ctrl-C during an answer: the generation was stopped."""


_SURROGATES = re.compile("[\udc80-\udcff]")


def _utf8_tolerant(stdin: IO[str]) -> IO[str]:
    """The terminal's input, reading bytes that are not UTF-8 as lone surrogates, not an exception."""
    if isinstance(stdin, io.TextIOWrapper):
        with contextlib.suppress(ValueError, io.UnsupportedOperation):
            stdin.reconfigure(errors="surrogateescape")
    return stdin


def _fit(backend, system, history, budget: int):
    """Drop the oldest exchanges until the rendered prompt fits the context window."""
    while True:
        prompt = render_prompt(backend, system + history)
        if backend.count_tokens(prompt) <= budget or len(history) <= 1:
            return history, prompt
        history = history[2:] if len(history) > 2 else history[1:]

"""A prompt list (`--prompts`, EVAL_PROMPTS): one prompt per line, or JSONL records, read and
checked in full before any model or engine starts, so that a bad file fails in a second."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autotrain_runner.config.envfile import display_path
from autotrain_runner.data.base import conversation_problem
from autotrain_runner.data.readers import loads, read_text
from autotrain_runner.errors import ConfigError
from autotrain_runner.redact import SecretMatcher


def read_prompts(path: Path, secrets: Mapping[str, str] = ()) -> list[dict[str, Any]]:
    """Samples {id, messages, reference: None}. A line starting with `{` is a record with `prompt`
    (or `content`), or `messages` ending with a user turn; any other line is the prompt itself.
    A wrong type, an empty prompt or a secret (a token shape, a configured value) is an error
    naming the file and line: a prompt is sent to the model and its answer is written down."""
    name = display_path(path)
    if not path.is_file():
        raise ConfigError(f"{name}: no such prompt list (one prompt per line, or JSONL)")
    try:
        text, _ = read_text(path)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot be read: {exc.strerror or exc}") from None
    matcher = SecretMatcher({value: f"the value of {key}" for key, value in dict(secrets).items()}, min_length=8)
    items = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        messages = _messages(loads(line, where), where) if line.lstrip().startswith("{") else None
        messages = messages or [{"role": "user", "content": line.strip()}]
        for message in messages:
            found = matcher.find(message["content"])
            if found:
                raise ConfigError(f"{where}: holds {found[0].what}; take it out of the prompt list")
        items.append({"id": f"prompt-{number}", "messages": messages, "reference": None})
    if not items:
        raise ConfigError(f"{name}: no prompts (one per line, or JSONL)")
    return items


def _messages(record: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: a JSONL prompt is an object with prompt or messages")
    if "messages" in record:
        messages = record["messages"]
        # the conversation so far ends with the user's turn: check it as if an answer followed
        problem = (
            conversation_problem([*messages, {"role": "assistant", "content": "."}])
            if isinstance(messages, list)
            else "messages must be a list of {role, content}"
        )
        if problem:
            raise ConfigError(f"{where}: messages: {problem}")
        return messages
    key = "prompt" if "prompt" in record else "content" if "content" in record else None
    if key is None:
        raise ConfigError(f"{where}: a JSONL prompt needs prompt (or content) or messages")
    value = record[key]
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string, got {type(value).__name__} {str(value)[:40]!r}")
    if not value.strip():
        raise ConfigError(f"{where}: {key} is empty")
    return [{"role": "user", "content": value}]

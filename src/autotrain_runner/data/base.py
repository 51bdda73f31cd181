"""What every builder produces, and how bad rows are handled, in one place."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotrain_runner.errors import ConfigError, Problem

ROLES = ("system", "user", "assistant")


@dataclass
class Sample:
    """One training conversation: optional system, then user/assistant turns ending with the answer."""

    messages: list[dict[str, str]]
    group: str  # a dialogue id: samples of one group never cross splits
    where: str  # file and line it came from
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Options:
    """The data keys of the config, typed; builders read what they need."""

    values: dict[str, Any]
    base_dir: Path

    def get(self, key: str, default: Any = None) -> Any:
        value = self.values.get(key)
        return default if value is None else value


class BadRows:
    """ON_BAD_ROWS=error (default): collect them all, then stop and list the first ten.
    ON_BAD_ROWS=skip: drop them and count them by reason."""

    def __init__(self, mode: str):
        self.mode = mode
        self.rows: list[tuple[str, str]] = []
        self.reasons: Counter[str] = Counter()

    def add(self, where: str, reason: str) -> None:
        self.rows.append((where, reason))
        self.reasons[reason.split(":")[0]] += 1

    def raise_if_any(self) -> None:
        if self.mode == "error" and self.rows:
            problems = [Problem("error", where, "", reason) for where, reason in self.rows[:10]]
            more = len(self.rows) - 10
            hint = f"{more} more bad rows not shown; " if more > 0 else ""
            problems.append(
                Problem("error", "ON_BAD_ROWS", "", f"{hint}fix them, or set ON_BAD_ROWS=skip to drop and count them")
            )
            raise ConfigError(problems)


Builder = Callable[[list[Path], Options, BadRows], Iterator[Sample]]


def conversation_problem(messages: list[dict[str, str]]) -> str | None:
    """Why a conversation cannot train, or None: roles, order, empty turns."""
    if not messages:
        return "empty conversation"
    for message in messages:
        if not isinstance(message, dict):
            return "a message is not an object {role, content}"
        if message.get("role") not in ROLES:
            return f"unknown role {message.get('role')!r} (use system, user, assistant)"
        if not isinstance(message.get("content"), str) or not message["content"].strip():
            return f"empty {message.get('role')} message"
    turns = messages[1:] if messages[0]["role"] == "system" else messages
    if any(m["role"] == "system" for m in turns):
        return "system message after the first position"
    expected = ["user", "assistant"] * (len(turns) // 2 + 1)
    if [m["role"] for m in turns] != expected[: len(turns)]:
        return "roles must alternate user, assistant, ..."
    if not turns or turns[-1]["role"] != "assistant":
        return "the last message must be the assistant's answer"
    return None


def with_system(system: str | None, turns: list[dict[str, str]]) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + turns

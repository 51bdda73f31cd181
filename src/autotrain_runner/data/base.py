"""What every builder produces, how a record's shape is checked, and how bad rows are handled, in one place."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from autotrain_runner.config.autotrain_keys import PAIR_TRAINERS
from autotrain_runner.errors import ConfigError, Level, Problem

ROLES = ("system", "user", "assistant")


@dataclass
class Sample:
    """One training conversation: optional system, then user/assistant turns ending with the answer."""

    messages: list[dict[str, str]]
    group: str  # a dialogue id: samples of one group never cross splits
    where: str  # file and line it came from
    meta: dict[str, Any] = field(default_factory=dict)
    rejected: str | None = None  # a preference pair's rejected answer (the chosen one ends `messages`)


@dataclass
class Options:
    """The data keys of the config, typed; builders read what they need."""

    values: dict[str, Any]
    base_dir: Path
    # what a builder learned about an input while reading it (the sheets of a workbook it read),
    # by input path, for the manifest
    read: dict[Path, dict[str, Any]] = field(default_factory=dict)

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

    def add(self, where: str, reason: str, kind: str | None = None) -> None:
        """`kind` is what the row is counted as; by default the reason up to its first colon."""
        self.rows.append((where, reason))
        self.reasons[kind or reason.split(":")[0]] += 1

    def invalid(self, where: str, path: str, message: str) -> None:
        """A field that does not have the shape the record needs: `body.dialogue[2].utterance: expected
        a string, got int`, counted as `invalid body.dialogue[].utterance` whatever its index."""
        self.add(
            where, f"{path}: {message}" if path else message, "invalid " + re.sub(r"\[\d+\]", "[]", path or "record")
        )

    def raise_if_any(self) -> None:
        if self.mode == "error" and self.rows:
            problems = [Problem(Level.ERROR, where, "", reason) for where, reason in self.rows[:10]]
            more = len(self.rows) - 10
            hint = f"{more} more bad rows not shown; " if more > 0 else ""
            problems.append(
                Problem(
                    Level.ERROR, "ON_BAD_ROWS", "", f"{hint}fix them, or set ON_BAD_ROWS=skip to drop and count them"
                )
            )
            raise ConfigError(problems)


Builder = Callable[[list[Path], Options, BadRows], Iterator[Sample]]

# --- the shape of a record: pydantic models with strict types, their first error as one line

_JSON_TYPES = {
    type(None): "null",
    bool: "bool",
    int: "int",
    float: "float",
    str: "string",
    list: "list",
    dict: "object",
}


def json_type(value: Any) -> str:
    """What a JSON value is, in a message: null, bool, int, float, string, list or object."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def expected_text(value: Any) -> str | None:
    """Why a value that must be text is not (null included), or None."""
    return None if isinstance(value, str) else f"expected a string, got {json_type(value)}"


class Strict(BaseModel):
    """A record's shape: strict types (a number is no text, text no number); fields it does not name
    are ignored."""

    model_config = ConfigDict(strict=True)


def _ident(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a string or an integer, got {json_type(value)}")
    return value


# An id (a dialogue's, a talk's): text or an integer, kept as text.
Ident = Annotated[str, BeforeValidator(_ident)]

_EXPECTED = {
    "string_type": "a string",
    "model_type": "an object",
    "dict_type": "an object",
    "list_type": "a list",
    "int_type": "an integer",
    "bool_type": "true or false",
}

M = TypeVar("M", bound=BaseModel)


def _key(name: Any) -> str:
    """A field name as a bad row shows it: as written, or quoted when it holds a line break or other
    control character (a key from a hostile file must not break the one-line error)."""
    text = str(name)
    return json.dumps(text, ensure_ascii=False) if any(ord(c) < 32 or ord(c) == 127 for c in text) else text


def parse(model: type[M], record: Any, where: str, bad: BadRows) -> M | None:
    """The record as `model`, or None with its first problem recorded as a bad row naming the field."""
    try:
        return model.model_validate(record)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_context=False)[0]
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{_key(part)}" for part in error["loc"]).lstrip(".")
        kind = error["type"]
        if kind == "missing":
            message = "missing"
        elif kind in _EXPECTED:
            message = f"expected {_EXPECTED[kind]}, got {json_type(error['input'])}"
        else:  # a validator's own message ("Value error, ..."), one line
            message = error["msg"].removeprefix("Value error, ").splitlines()[0]
        bad.invalid(where, path, message)
        return None


# --- emptiness

# What shows something: anything but whitespace (U+3000 and U+00A0 included), controls, Unicode's
# default-ignorable code points (zero-width spaces and joiners, U+FEFF, bidi marks, variation
# selectors, the Hangul fillers U+115F, U+1160, U+3164, U+FFA0, tags) and the braille blank.
_VISIBLE = re.compile(
    r"[^\s\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
    r"\u202a-\u202e\u2060-\u206f\u2800\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
    r"\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)


def is_blank(text: str) -> bool:
    """True when the text shows nothing: whitespace, zero-width and other invisible characters."""
    return _VISIBLE.search(text) is None


def conversation_problem(messages: list[dict[str, str]]) -> str | None:
    """Why a conversation cannot train, or None: roles, order, empty turns."""
    if not messages:
        return "empty conversation"
    for message in messages:
        if not isinstance(message, dict):
            return "a message is not an object {role, content}"
        if message.get("role") not in ROLES:
            return f"unknown role {message.get('role')!r} (use system, user, assistant)"
        if not isinstance(message.get("content"), str) or is_blank(message["content"]):
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


def pairs_wanted(options: Options) -> bool:
    """Whether the builders make preference pairs: the trainer decides (PREFERENCE=chosen is for sft)."""
    return options.get("TRAINER") in PAIR_TRAINERS


def pair_problem(chosen: Any, rejected: Any) -> str | None:
    """Why two answers are not a preference pair, or None (the reason's first word counts the row)."""
    for name, answer in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(answer, str):
            return f"{name} is not an answer: text, or an assistant turn"
        if is_blank(answer):
            return f"empty answer: {name}"
    if chosen.strip() == rejected.strip():
        return "chosen equals rejected: the pair prefers nothing"
    return None


def with_system(system: str | None, turns: list[dict[str, str]]) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + turns

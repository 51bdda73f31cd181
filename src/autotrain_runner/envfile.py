"""Reading one `.env` file: python-dotenv for the syntax, plus the bash default forms.

python-dotenv parses quoting, `export`, comments and escapes; it does not know `${VAR:=default}`,
which real project files use, so expansion is done here, after parsing, with one function that
understands `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:=default}`. Single-quoted values are
not expanded, as in bash.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dotenv.parser import parse_stream

from .errors import Problem


@dataclass(frozen=True)
class Entry:
    """One `KEY=value` line as written, before expansion."""

    key: str
    raw: str
    line: int
    expand: bool  # False for single-quoted values


_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REFERENCE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-=])(?P<default>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def read_entries(path: Path) -> tuple[list[Entry], list[Problem]]:
    """Parse a file into entries; every malformed line is reported, and parsing goes on after it."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [Problem("error", display_path(path), "", f"is not UTF-8 text ({exc.reason}); save it as UTF-8")]
    lines = text.splitlines(keepends=True)
    entries: list[Entry] = []
    problems: list[Problem] = []
    start = 0
    while start < len(lines):
        resumed_at = None
        chunk = "".join(lines[start:])
        offset = 0
        for binding in parse_stream(io.StringIO(chunk)):
            # dotenv counts a binding from the blank lines before it: count to its first character
            original = binding.original.string
            leading = len(original) - len(original.lstrip())
            line = start + 1 + chunk.count("\n", 0, offset + leading)
            offset += len(original)
            if binding.error:
                problems.append(_malformed(path, line, lines[line - 1]))
                resumed_at = line  # dotenv swallows the rest after an open quote: resume below it
                break
            if binding.key is None:
                continue
            if binding.value is None:
                problems.append(
                    Problem("error", f"{display_path(path)}:{line}", binding.key, "has no '='; write KEY=value")
                )
                continue
            entries.append(Entry(binding.key, binding.value, line, not _single_quoted(binding.original.string)))
        if resumed_at is None:
            break
        start = resumed_at
    return entries, problems


def _malformed(path: Path, line: int, text: str) -> Problem:
    where = f"{display_path(path)}:{line}"
    stripped = text.strip()
    key = stripped.split("=", 1)[0].removeprefix("export ").strip() if "=" in stripped else ""
    if "=" in stripped and _KEY.match(key):
        value = stripped.split("=", 1)[1].strip()
        for quote in ("'", '"'):
            if value.startswith(quote) and (len(value) == 1 or not value.rstrip().endswith(quote)):
                return Problem("error", where, key, f"unterminated {quote} quote; close it on this line")
        return Problem("error", where, key, f"cannot parse value {value!r}; quote it")
    return Problem("error", where, "", f"malformed line {stripped[:60]!r}; expected KEY=value")


def _single_quoted(original: str) -> bool:
    _, _, value = original.partition("=")
    return value.lstrip().startswith("'")


def expand(raw: str, lookup: Callable[[str], str | None], assign: Callable[[str, str], None]) -> str:
    """Expand `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:=default}` like bash.

    `lookup` returns the current value of a variable or None when it is unset; `assign` is called
    for `:=` so that the default sticks for later lines, as in bash.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        value = lookup(name)
        op = match.group("op")
        if op is None:
            return value or ""
        empty_counts = op.startswith(":")
        missing = value is None or (empty_counts and value == "")
        if not missing:
            return value or ""
        default = _unquote(expand(match.group("default") or "", lookup, assign))
        if op.endswith("="):
            assign(name, default)
        return default

    return _REFERENCE.sub(replace, raw)


def references(raw: str) -> set[str]:
    """Names of the variables a raw value refers to."""
    return {m.group("braced") or m.group("bare") for m in _REFERENCE.finditer(raw)}


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text

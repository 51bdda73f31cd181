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

from autotrain_runner.errors import Level, Problem
from autotrain_runner.redact import Redactor, is_secret_key, unicode_encoding


@dataclass(frozen=True)
class Entry:
    """One `KEY=value` line as written, before expansion."""

    key: str
    raw: str
    line: int
    expand: bool  # False for single-quoted values


_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-=])(?P<default>.*))?", re.DOTALL)
_REFERENCE = re.compile(r"(?<!\\)\$\{?([A-Za-z_][A-Za-z0-9_]*)")


# An env file is a few dozen lines; a bigger "env file" is some other file named by mistake.
MAX_ENV_BYTES = 1 << 20
# `${A:-${B:-...}}` nests by recursion: far deeper than any real file, and far short of Python's limit.
MAX_NESTING = 32
_TOKEN_SHAPES = Redactor(urls=False)


class ExpansionError(ValueError):
    """A value that cannot be expanded (nested too deep); the caller names the file and line."""


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when below it, with any
    token-shaped file or folder name (`raw/hf_....csv`) masked, since the text is shown and written."""
    try:
        shown = str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # not below it, a name too long, a symlink loop
        shown = str(path)
    return _TOKEN_SHAPES(shown)


def _read_text(path: Path) -> tuple[str, list[Problem]]:
    """The file's text; a line that is not UTF-8 (cp949, say) is reported and read as blank, so the
    other lines still count and no setting is reported missing because of its neighbour."""
    where = display_path(path)
    try:
        if not path.is_file():
            return "", [Problem(Level.ERROR, where, "", "is not a regular file; give the path of an env file")]
        if path.stat().st_size > MAX_ENV_BYTES:
            return "", [Problem(Level.ERROR, where, "", f"is larger than {MAX_ENV_BYTES >> 20} MB: not an env file")]
        data = path.read_bytes()[: MAX_ENV_BYTES + 1]
    except OSError as exc:
        return "", [Problem(Level.ERROR, where, "", f"cannot be read: {exc.strerror or exc}")]
    if len(data) > MAX_ENV_BYTES:  # a file that says it is empty and is not (/proc, a device)
        return "", [Problem(Level.ERROR, where, "", f"is larger than {MAX_ENV_BYTES >> 20} MB: not an env file")]
    encoding = unicode_encoding(data) or "utf-8"  # PowerShell's `>` writes UTF-16 with a BOM
    try:
        return data.decode(encoding), []
    except UnicodeDecodeError:
        if encoding != "utf-8":
            return "", [
                Problem(Level.ERROR, where, "", f"is not valid {encoding.upper()} text; save the file as UTF-8")
            ]
    lines, problems = [], []
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append("")
            problems.append(
                Problem(Level.ERROR, f"{where}:{number}", "", "is not UTF-8 text (cp949?); save the file as UTF-8")
            )
    return "\n".join(lines), problems


def read_entries(path: Path) -> tuple[list[Entry], list[Problem]]:
    """Parse a file into entries; every malformed line is reported, and parsing goes on after it."""
    text, problems = _read_text(path)
    # split at \n only: str.splitlines also breaks at U+2028, U+0085 and the like inside a value
    lines = text.split("\n")
    lines = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    entries: list[Entry] = []
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
                    Problem(Level.ERROR, f"{display_path(path)}:{line}", binding.key, "has no '='; write KEY=value")
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
            if value.startswith(quote) and value.count(quote) == 1:
                return Problem(Level.ERROR, where, key, f"unterminated {quote} quote; close it on this line")
        if is_secret_key(key):  # never repeat a secret's value, not even a broken one
            return Problem(Level.ERROR, where, key, "cannot parse the value; quote it, with nothing after the quotes")
        return Problem(
            Level.ERROR, where, key, f"cannot parse value {value!r}; quote it, with nothing after the quotes"
        )
    first = stripped.split()[0] if stripped.split() else ""
    if _KEY.match(first) and is_secret_key(first):
        return Problem(Level.ERROR, where, first, "no '=' after the key; write KEY=value")
    return Problem(Level.ERROR, where, "", f"malformed line {Redactor()(stripped[:60])!r}; expected KEY=value")


def _single_quoted(original: str) -> bool:
    _, _, value = original.partition("=")
    return value.lstrip().startswith("'")


def expand(raw: str, lookup: Callable[[str], str | None], assign: Callable[[str, str], None], depth: int = 0) -> str:
    """Expand `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:=default}` like bash, defaults nested
    (`${A:-${B:-x}}`); `\\$` is a literal dollar sign.

    `lookup` returns the current value of a variable or None when it is unset; `assign` is called
    for `:=` so that the default sticks for later lines, as in bash.
    """
    if depth > MAX_NESTING:
        raise ExpansionError(f"defaults nested more than {MAX_NESTING} deep (${{A:-${{B:-...}}}})")
    out: list[str] = []
    i = 0
    while i < len(raw):
        if raw.startswith("\\$", i):
            out.append("$")
            i += 2
        elif raw.startswith("${", i) and (end := _closing_brace(raw, i + 2)) is not None:
            out.append(_braced(raw[i + 2 : end], lookup, assign, depth))
            i = end + 1
        elif raw[i] == "$" and (name := _NAME.match(raw, i + 1)):
            out.append(lookup(name.group()) or "")
            i = name.end()
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


def _closing_brace(raw: str, start: int) -> int | None:
    depth = 1
    for i in range(start, len(raw)):
        if raw.startswith("${", i):
            depth += 1
        elif raw[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


def _braced(body: str, lookup: Callable[[str], str | None], assign: Callable[[str, str], None], depth: int) -> str:
    match = _BRACED.fullmatch(body)
    if match is None:
        return "${" + body + "}"  # not an expansion bash knows: kept as written
    name, op, default = match.group("name"), match.group("op"), match.group("default")
    value = lookup(name)
    if op is None:
        return value or ""
    missing = value is None or (op.startswith(":") and value == "")
    if not missing:
        return value or ""
    default = _unquote(expand(default, lookup, assign, depth + 1))
    if op.endswith("="):
        assign(name, default)
    return default


def references(raw: str) -> set[str]:
    """Names of the variables a raw value refers to."""
    return set(_REFERENCE.findall(raw))


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text

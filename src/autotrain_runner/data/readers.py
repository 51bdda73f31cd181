"""Reading the files people bring: encodings detected, every record located by file and line."""

from __future__ import annotations

import csv
import functools
import glob
import io
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotrain_runner.config.dataset_dir import raw_root
from autotrain_runner.config.envfile import display_path
from autotrain_runner.data import outputs
from autotrain_runner.errors import ConfigError
from autotrain_runner.redact import unicode_encoding

TABLE_SUFFIXES = (".csv", ".tsv", ".xlsx")
JSON_SUFFIXES = (".json", ".jsonl")


@dataclass
class Located:
    where: str  # "file:line", "file[item 3]" or "file:row 5"
    record: Any


def find_inputs(spec: str, base_dir: Path, suffixes: tuple[str, ...], exclude: Sequence[Path] = ()) -> list[Path]:
    """RAW_DATA: a file, a folder (its files with the builder's suffixes), or a glob.

    A folder or a glob never yields files from `exclude` (resolved folders: the dataset folder and
    atr's outputs), from folders a build made (their marker, or an older build's layout) or from
    hidden folders below where the search starts; a file named on its own is read as it is.
    """
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if _system_file(path):
        raise ConfigError(f"RAW_DATA {display_path(path)}: a file of the system (/proc, /sys, /dev), not a corpus")
    if path.is_file():
        return [path]
    skip = functools.partial(_skipped, exclude=list(exclude), cache={})
    if path.is_dir():
        found, seen = [], set()
        for folder, dirs, files in os.walk(path, followlinks=True):
            here, real = Path(folder), Path(folder).resolve()
            if real in seen or (here != path and skip(real, files)):  # seen: a link loop, or a folder twice
                dirs.clear()
                continue
            seen.add(real)
            dirs.sort()
            found += [here / f for f in files if Path(f).suffix.lower() in suffixes and (here / f).is_file()]
        found.sort()
    else:
        root = raw_root(spec, base_dir)
        found = sorted(
            Path(p)
            for p in glob.glob(str(path), recursive=True)
            if Path(p).is_file() and not any(skip(d) for d in _below(Path(p).resolve().parent, root, exclude))
        )
    if not found:
        raise ConfigError(f"RAW_DATA {spec!r}: no {'/'.join(suffixes)} files at {display_path(path)}")
    return found


def _system_file(path: Path) -> bool:
    """Under /proc, /sys or /dev, or a device, pipe or socket: what reads as text and is none."""
    try:
        real = path.resolve()
        special = real.exists() and not real.is_file() and not real.is_dir()
    except (OSError, RuntimeError):
        return False
    return special or any(real.is_relative_to(root) for root in ("/proc", "/sys", "/dev"))


def _below(folder: Path, root: Path, exclude: Sequence[Path]) -> list[Path]:
    """The folders from `root` (exclusive) down to `folder`; when `folder` is not below `root`
    (a `..` or a link in the pattern), the excluded ones it lies in."""
    chain = [folder, *folder.parents]
    if root in chain:
        return chain[: chain.index(root)]
    return [d for d in chain if d in exclude]


def _skipped(folder: Path, files: Iterable[str] | None = None, *, exclude: list[Path], cache: dict) -> bool:
    if folder not in cache:
        if files is None:
            try:
                files = [p.name for p in folder.iterdir() if not p.is_dir()]
            except OSError:
                files = []
        cache[folder] = outputs.skip_folder(folder, files, exclude)
    return cache[folder]


# ENCODING= for the build in progress: `atr data` sets it around the builder, so that every reader
# (and the manifest's description of each input) decodes with it instead of guessing.
FORCED_ENCODING: ContextVar[str | None] = ContextVar("FORCED_ENCODING", default=None)
# cp949 decodes many other double-byte encodings without an error: Shift-JIS kana and kanji come out
# as the rare Hangul syllables cp949 adds to EUC-KR's 2,350 common ones. Real Korean text has a few
# of those at most; text made mostly of them was written in another encoding.
_RARE_SHARE = 0.5
_RARE_MINIMUM = 4


def decode(raw: bytes) -> tuple[str, str]:
    """Text and the encoding it was in: ENCODING= when set; else a BOM (UTF-8, UTF-16, UTF-32) or
    UTF-16's interleaved NUL bytes, then UTF-8, then the Korean code pages. Raises UnicodeDecodeError
    for anything else, and for cp949 text that is implausible Korean (Shift-JIS, say)."""
    forced = FORCED_ENCODING.get()
    if forced:
        return raw.decode(forced), forced
    unicode = unicode_encoding(raw)
    if unicode:
        return raw.decode(unicode), unicode
    for encoding in ("utf-8", "euc-kr", "cp949"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding == "cp949" and _implausible_korean(text):
            raise UnicodeDecodeError("cp949", raw[:1], 0, 1, "implausible as Korean text")
        return text, encoding
    raise UnicodeDecodeError("utf-8/cp949", raw[:1], 0, 1, "not UTF-8, UTF-16, EUC-KR or CP949")


def _implausible_korean(text: str) -> bool:
    syllables = [ch for ch in text if "\uac00" <= ch <= "\ud7a3"]
    # KS X 1001's syllables have lead bytes from 0xB0 in cp949; the ones cp949 adds, below 0xA1
    rare = sum(ch.encode("cp949")[0] < 0xA1 for ch in syllables)
    return rare >= _RARE_MINIMUM and rare > _RARE_SHARE * len(syllables)


def read_text(path: Path) -> tuple[str, str]:
    try:
        return decode(path.read_bytes())
    except UnicodeDecodeError as exc:
        name = display_path(path)
        if FORCED_ENCODING.get():
            line = path.read_bytes()[: exc.start].count(b"\n") + 1
            raise ConfigError(f"{name}:{line}: ENCODING: not valid {FORCED_ENCODING.get()} text") from None
        if exc.reason == "implausible as Korean text":
            raise ConfigError(
                f"{name}: ENCODING: decodes as cp949 only into rare Hangul, so it is in another encoding "
                "(Shift-JIS?); save it as UTF-8 or set ENCODING= to the file's encoding"
            ) from None
        raise ConfigError(
            f"{name}: ENCODING: not UTF-8, UTF-16, UTF-32, EUC-KR or CP949 text; save it as UTF-8 or set ENCODING="
        ) from None


# A cell of a real corpus can be long (a whole dialogue); csv's default limit is 128 KiB.
MAX_FIELD = 64 << 20


def loads(text: str, where: str) -> Any:
    """json.loads with its failures as one line naming the place; a lone surrogate (`"\\ud800"`),
    which no file can hold as UTF-8, is one of them."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        line = where if ":" in where.rsplit("/", 1)[-1] else f"{where}:{exc.lineno}"
        raise ConfigError(f"{line}: malformed JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise ConfigError(f"{where}: JSON nested too deeply to read (thousands of levels)") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise ConfigError(f"{where}: JSON that cannot be read ({exc})") from None
    if _ESCAPED_SURROGATE.search(text) and _has_lone_surrogate(data):
        raise ConfigError(f"{where}: a string holds a lone surrogate escape (\\ud800-\\udfff), which is no text")
    return data


_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(data: Any) -> bool:
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and _SURROGATE.search(item):
            return True
        if isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            stack += item
    return False


def json_records(path: Path, text: str) -> Iterator[Located]:
    """Records of a .jsonl (one per line) or a .json (a list, or an object with a `data` list)."""
    name = display_path(path)
    if path.suffix.lower() == ".jsonl":
        # lines end at \n only: str.splitlines also splits at U+2028 and U+0085, which
        # json.dumps(ensure_ascii=False) leaves inside strings
        for number, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            yield Located(f"{name}:{number}", loads(line, f"{name}:{number}"))
        return
    data = loads(text, name)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise ConfigError(f"{name}: expected a list of records (or an object with a 'data' list)")
    for index, item in enumerate(data):
        yield Located(f"{name}[item {index}]", item)


@dataclass
class Table:
    """A csv, tsv or xlsx file as read: header, rows as dicts, encoding, and the sheets read (xlsx)."""

    header: list[str]
    rows: Iterator[Located]
    encoding: str
    sheets: tuple[str, ...] = ()


def table_rows(path: Path, sheet: str | None = None) -> Table:
    """Header and rows as dicts located by spreadsheet row number (the header is row 1).

    A workbook: every sheet that has the first sheet's header, or the sheets `sheet` (SHEET=, names
    separated by commas) names; a sheet with another header is refused, never left out unsaid. A
    column named twice is refused too: a row would keep only the last one's value.
    """
    name = display_path(path)
    if path.suffix.lower() == ".xlsx":
        return _workbook(path, name, [s.strip() for s in (sheet or "").split(",") if s.strip()])
    text, encoding = read_text(path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    # strict: a quote left open is an error at its row, not the rest of the file read as one field
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header = _unique(f"{name}:row 1", [c.strip() for c in next(_checked(name, reader, 1), [])])
    return Table(header, _dict_rows(name, header, _checked(name, reader, 2)), encoding)


def _workbook(path: Path, name: str, wanted: list[str]) -> Table:
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a broken file
        raise ConfigError(f"{name}: not a readable xlsx workbook ({exc})") from None
    try:
        titles = [ws.title for ws in book.worksheets]
        missing = [s for s in wanted if s not in titles]
        if missing:
            raise ConfigError(
                f"{name}: SHEET: no sheet {', '.join(map(repr, missing))} here (sheets: {', '.join(titles)})"
            )
        headers: dict[str, list[str]] = {}  # the sheets to read, with their headers
        for title in titles if not wanted else [t for t in titles if t in wanted]:
            rows = book[title].iter_rows(values_only=True)
            header = [str(c).strip() if c is not None else "" for c in next(rows, ())]
            while header and not header[-1]:  # a sheet's width can run past its last named column
                header.pop()
            if header or any(v.strip() for row in rows for v in _cells(row)):  # an empty sheet: nothing left out
                headers[title] = header
        first = next(iter(headers), None)
        other = [t for t in headers if headers[t] != headers[first]]
        if other:
            raise ConfigError(
                f"{name}: sheet {', '.join(map(repr, other))} has another header than sheet {first!r}; "
                f"set SHEET= to the sheets to read, which share one header (sheets: {', '.join(titles)})"
            )
        label = (lambda title: f"{name}[{title}]") if len(titles) > 1 else (lambda title: name)
        header = _unique(f"{label(first)}:row 1", headers[first]) if first is not None else []
    except BaseException:
        book.close()
        raise
    return Table(header, _sheet_rows(book, list(headers), header, label), "xlsx", tuple(headers))


def _sheet_rows(book, titles: list[str], header: list[str], label) -> Iterator[Located]:
    try:
        for title in titles:
            rows = book[title].iter_rows(values_only=True)
            next(rows, None)
            yield from _dict_rows(label(title), header, rows)
    finally:
        book.close()


def _cells(row) -> list[str]:
    """A spreadsheet row as text: a number in a cell is its text (5 is "5"), an empty cell ""."""
    return ["" if v is None else str(v) for v in row]


def _unique(where: str, header: list[str]) -> list[str]:
    counts = Counter(c for c in header if c)
    twice = [c for c, n in counts.items() if n > 1]
    if twice:
        raise ConfigError(
            f"{where}: column {', '.join(map(repr, twice))} appears more than once in the header; rename or "
            "remove the copies (a row would keep only the last one's value)"
        )
    return header


def _checked(name: str, reader, first_row: int) -> Iterator[list[str]]:
    """The reader's rows, with csv's errors as one line naming the row."""
    csv.field_size_limit(MAX_FIELD)
    number = first_row
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            hint = "; is a quote left open?" if "unexpected end of data" in str(exc) else ""
            raise ConfigError(f"{name}:row {number}: not valid CSV ({exc}){hint}") from None
        yield row
        number += 1


def _dict_rows(name: str, header: list[str], rows) -> Iterator[Located]:
    for number, row in enumerate(rows, 2):
        values = _cells(row)
        if not any(v.strip() for v in values):
            continue
        yield Located(f"{name}:row {number}", dict(zip(header, values, strict=False)))

"""Reading the files people bring: encodings detected, every record located by file and line."""

from __future__ import annotations

import csv
import functools
import glob
import io
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotrain_runner.config.dataset_dir import raw_root
from autotrain_runner.config.envfile import display_path
from autotrain_runner.data import outputs
from autotrain_runner.errors import ConfigError

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


def decode(raw: bytes) -> tuple[str, str]:
    """Text and the encoding it was in: BOMs first, then UTF-8, then the Korean code pages."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8"), "utf-8-sig"
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16"), "utf-16"
    for encoding in ("utf-8", "euc-kr", "cp949"):
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise UnicodeDecodeError("utf-8/cp949", raw[:1], 0, 1, "not UTF-8, UTF-16, EUC-KR or CP949")


# A cell of a real corpus can be long (a whole dialogue); csv's default limit is 128 KiB.
MAX_FIELD = 64 << 20


def read_text(path: Path) -> tuple[str, str]:
    try:
        return decode(path.read_bytes())
    except UnicodeDecodeError:
        raise ConfigError(f"{display_path(path)}: not UTF-8, UTF-16, EUC-KR or CP949 text") from None


def loads(text: str, where: str) -> Any:
    """json.loads with its failures as one line naming the place."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        line = where if ":" in where.rsplit("/", 1)[-1] else f"{where}:{exc.lineno}"
        raise ConfigError(f"{line}: malformed JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise ConfigError(f"{where}: JSON nested too deeply to read (thousands of levels)") from None


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


def table_rows(path: Path) -> tuple[list[str], Iterator[Located], str]:
    """Header, rows as dicts located by spreadsheet row number (the header is row 1), encoding."""
    name = display_path(path)
    if path.suffix.lower() == ".xlsx":
        from openpyxl import load_workbook

        try:
            sheet = load_workbook(path, read_only=True, data_only=True).active
        except Exception as exc:  # openpyxl raises many kinds for a broken file
            raise ConfigError(f"{name}: not a readable xlsx workbook ({exc})") from None
        rows = sheet.iter_rows(values_only=True)
        header = [str(c).strip() if c is not None else "" for c in next(rows, ())]
        return header, _dict_rows(name, header, rows), "xlsx"
    text, encoding = read_text(path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    # strict: a quote left open is an error at its row, not the rest of the file read as one field
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header = [c.strip() for c in next(_checked(name, reader, 1), [])]
    return header, _dict_rows(name, header, _checked(name, reader, 2)), encoding


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
        values = ["" if v is None else str(v) for v in row]
        if not any(v.strip() for v in values):
            continue
        yield Located(f"{name}:row {number}", dict(zip(header, values, strict=False)))

"""Reading the files people bring: encodings detected, every record located by file and line."""

from __future__ import annotations

import csv
import glob
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..envfile import display_path
from ..errors import ConfigError

TABLE_SUFFIXES = (".csv", ".tsv", ".xlsx")
JSON_SUFFIXES = (".json", ".jsonl")


@dataclass
class Located:
    where: str  # "file:line", "file[item 3]" or "file:row 5"
    record: Any


def find_inputs(spec: str, base_dir: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """RAW_DATA: a file, a folder (its files with the builder's suffixes), or a glob."""
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    else:
        found = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    if not found:
        raise ConfigError(f"RAW_DATA {spec!r}: no {'/'.join(suffixes)} files at {display_path(path)}")
    return found


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


def read_text(path: Path) -> tuple[str, str]:
    try:
        return decode(path.read_bytes())
    except UnicodeDecodeError:
        raise ConfigError(f"{display_path(path)}: not UTF-8, UTF-16, EUC-KR or CP949 text") from None


def json_records(path: Path, text: str) -> Iterator[Located]:
    """Records of a .jsonl (one per line) or a .json (a list, or an object with a `data` list)."""
    name = display_path(path)
    if path.suffix.lower() == ".jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                yield Located(f"{name}:{number}", json.loads(line))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{name}:{number}: malformed JSON ({exc.msg} at column {exc.colno})") from None
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name}:{exc.lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from None
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
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [c.strip() for c in next(reader, [])]
    return header, _dict_rows(name, header, reader), encoding


def _dict_rows(name: str, header: list[str], rows) -> Iterator[Located]:
    for number, row in enumerate(rows, 2):
        values = ["" if v is None else str(v) for v in row]
        if not any(v.strip() for v in values):
            continue
        yield Located(f"{name}:row {number}", dict(zip(header, values, strict=False)))

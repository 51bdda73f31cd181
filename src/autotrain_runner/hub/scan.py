"""The push's secret scan: every byte that would leave this machine, the generated card included.

What a secret looks like is redact's (`SecretMatcher`, `SECRET_ASSIGNMENT`): token shapes anywhere
(inside words, next to any script), after JSON and \\uXXXX unescaping, and configured values with
their sanitized forms. Assignments are looked for in text files only: in binary data such a
pattern is noise.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from autotrain_runner.config.records import Config
from autotrain_runner.hub.files import CARD, Upload
from autotrain_runner.hub.repo import Token
from autotrain_runner.layout.records import RunRecord
from autotrain_runner.redact import ASSIGNMENT, SECRET_ASSIGNMENT, SecretMatcher, as_text, is_secret_key

_TEXT_SUFFIXES = (".json", ".txt", ".md", ".jinja")
_CHUNK = 16 << 20
_MIN_SECRET = 8  # shorter configured values would match by chance


@dataclass(frozen=True)
class Hit:
    where: str  # "adapter_config.json:3", "tokenizer.model (byte 1024)"
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def known_secrets(config: Config, token: Token | None) -> dict[str, str]:
    """Secret values this process knows, each with a name to report instead of the value."""
    found = {}
    for name, value in os.environ.items():
        if is_secret_key(name) and len(value) >= _MIN_SECRET:
            found[value] = f"the value of the environment variable {name}"
    for key, value in config.values.items():
        if is_secret_key(key) and isinstance(value.value, str) and len(value.value) >= _MIN_SECRET:
            found[value.value] = f"the value of {key}"
    if token is not None and len(token.secret) >= _MIN_SECRET:
        found.setdefault(token.secret, "the Hub token")
    return found


def scan(files: Sequence[Upload], secrets: dict[str, str]) -> list[Hit]:
    hits: list[Hit] = []
    for upload in files:
        if isinstance(upload.source, bytes):  # the card, or a file with a local path taken out
            text = upload.source.decode("utf-8")
            label = functools.partial(_card_section, text) if upload.name == CARD else None
            hits += scan_text(upload.name, text, secrets, label)
        elif upload.name.endswith(".safetensors"):
            hits += _scan_safetensors(upload.name, upload.source, secrets)
        elif upload.name.endswith(_TEXT_SUFFIXES):
            decoded = as_text(upload.source.read_bytes())  # UTF-8, or UTF-16/32 by BOM or NUL bytes
            if decoded is None:
                hits += _scan_bytes(upload.name, upload.source, secrets)
            else:
                hits += scan_text(upload.name, decoded, secrets)
        else:
            hits += _scan_bytes(upload.name, upload.source, secrets)
    return hits


TRAINED_ON = "trained on "


def scan_training_data(run_dir: Path, record: RunRecord, secrets: dict[str, str]) -> list[Hit]:
    """The data the run trained on (staged in its folder): not uploaded, but what the weights learned."""
    staged = [record.data.get("staged"), (record.data.get("valid") or {}).get("staged")]
    hits = []
    for name in filter(None, staged):
        path = run_dir / name
        text = as_text(path.read_bytes()) if path.is_file() else None
        if text is not None:
            # what `atr data` refuses: token shapes and configured values (an `api_key=...` in a
            # coding corpus is text, not a secret of this machine)
            found = scan_text(name, text, secrets, assignments=False)
            hits += [Hit(TRAINED_ON + hit.where, hit.what) for hit in found]
    return hits


def scan_text(
    name: str,
    text: str,
    secrets: dict[str, str],
    label: Callable[[int], str] | None = None,
    assignments: bool = True,
) -> list[Hit]:
    matcher = SecretMatcher(secrets, min_length=_MIN_SECRET)
    hits = []
    for number, line in enumerate(_lines(text), 1):
        found = [hit.what for hit in matcher.find(line)]
        if assignments and SECRET_ASSIGNMENT.search(line):
            found.append(ASSIGNMENT)
        where = f"{name}:{number}" + (f" ({label(number)})" if label else "")
        hits += [Hit(where, what) for what in dict.fromkeys(found)]
    return hits


def _lines(text: str) -> list[str]:
    """Lines as an editor numbers them: only at \\n, \\r\\n or \\r (str.splitlines also splits at
    U+2028, U+0085 and other characters that JSON strings hold)."""
    lines = re.split(r"\r\n|\r|\n", text)
    return lines[:-1] if lines[-1] == "" else lines


def _card_section(card: str, number: int) -> str:
    """Where a line of the card comes from, for a reader who is not shown the card."""
    lines = _lines(card)[:number]
    headings = [line.removeprefix("## ") for line in lines if line.startswith("## ")]
    return "the generated model card, " + (f"section {headings[-1]!r}" if headings else "its metadata or title")


def _scan_safetensors(name: str, path: Path, secrets: dict[str, str]) -> list[Hit]:
    """The header (tensor names, shapes and the free-form __metadata__) is the only text in a
    safetensors file; the rest is numbers, where a match would be chance, so only the header is read."""
    with path.open("rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        if size <= 0 or size > min(path.stat().st_size, 100 << 20):
            return [Hit(name, "not a readable safetensors file (header length); not uploaded unchecked")]
        header = handle.read(size).decode("utf-8", errors="replace")
    try:  # the metadata as its writer gave it, escapes decoded: a value is scanned whatever its JSON spelling
        metadata = json.loads(header).get("__metadata__") or {}
    except (ValueError, AttributeError):
        metadata = {}
    texts = [header, *(str(v) for pair in metadata.items() for v in pair)] if isinstance(metadata, dict) else [header]
    found = [hit.what for text in texts for hit in scan_text(name, text, secrets)]
    return [Hit(f"{name} (safetensors header)", what) for what in dict.fromkeys(found)]


def _scan_bytes(name: str, path: Path, secrets: dict[str, str]) -> list[Hit]:
    """A binary file, 16 MiB at a time, as latin-1 (one character a byte, so offsets are bytes);
    UTF-16 text inside it (NUL bytes between ASCII letters) is read with the NULs taken out."""
    matcher = SecretMatcher(
        {s.encode("utf-8").decode("latin-1"): w for s, w in secrets.items()}, min_length=_MIN_SECRET
    )
    overlap = 512
    hits, seen = [], set()
    with path.open("rb") as handle:
        offset, tail = 0, b""
        while chunk := handle.read(_CHUNK):
            data, start = tail + chunk, offset - len(tail)
            text = data.decode("latin-1")
            found = [(hit.what, f"byte {start + hit.start}") for hit in matcher.find(text)]
            if "\x00" in text:
                found += [
                    (hit.what, f"UTF-16 text near byte {start}") for hit in matcher.find(text.replace("\x00", ""))
                ]
            for what, at in found:
                if what not in seen:
                    seen.add(what)
                    hits.append(Hit(f"{name} ({at})", what))
            tail, offset = data[-overlap:], offset + len(chunk)
    return hits

"""Keeping secrets out of files, argv, logs and stdout: the one secret matcher.

A key is secret when a part of its name (between underscores) is TOKEN, KEY, SECRET or PASSWORD:
HF_TOKEN, OPENAI_API_KEY, but not TOKENIZERS_PARALLELISM or MAX_NEW_TOKENS. Values of such keys
are replaced by `***` wherever text leaves the process; so are token shapes (`hf_...`, `sk-...`,
GitHub and AWS keys, private keys) and the password of a URL (`http://user:***@host`).

`SecretMatcher` is the only place that knows what a secret looks like; the redactor (`Redactor`),
`atr check`'s output (through `Config.resolved_table`) and `atr push`'s scan all use it (the scan
also stops `SECRET_ASSIGNMENT`, defined here beside the token shapes). It finds
a secret anywhere: inside a word and next to any script (`토큰hf_...`, `...답하세요hf_...`,
`hf_...한글`), after JSON string and `\\uXXXX` unescaping (`hf\\u005f...`), and in the form
AutoTrain gives a project name (`hf-...`: every run of other characters turned into `-`).
`as_text` reads UTF-8, UTF-16 and UTF-32 files (with a BOM, or UTF-16 without one), so that no
encoding hides a token from the scan.
"""

from __future__ import annotations

import codecs
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MASK = "***"
_SECRET_NAME = re.compile(r"(^|_)(TOKEN|KEY|SECRET|PASSWORD)(_|$)", re.IGNORECASE)
# Hub tokens the child must not inherit unless the runner hands one over on purpose.
HUB_TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_API_TOKEN")

# Token shapes, caught even when they arrive under an innocent name. No word boundaries: a token
# glued to a word of any script is still a token. Only `sk-` and `AKIA`, whose bodies ordinary
# words can spell (`task-list-...`), must not be the tail of an ASCII word. `hf-...` and `ghp-...`
# are the forms AutoTrain gives a token in a project name.
TOKEN_SHAPES: dict[str, re.Pattern[str]] = {
    "a Hugging Face token (hf_...)": re.compile(r"hf[_-][A-Za-z0-9]{20,}"),
    "an OpenAI-style key (sk-...)": re.compile(r"(?<![A-Za-z0-9])sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"),
    "a GitHub token": re.compile(r"gh[pousr][_-][A-Za-z0-9]{36,}|github[_-]pat[_-][A-Za-z0-9_-]{50,}"),
    "an AWS access key id": re.compile(r"(?<![A-Z0-9])AKIA[0-9A-Z]{16}(?![0-9A-Z])"),
    "a private key": re.compile(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:[A-Za-z0-9+/=\s\\]*-----END [A-Z ]*PRIVATE KEY-----)?"
    ),
}
URL_PASSWORD = "a URL with a password (scheme://user:password@host)"
# `api_key: "..."`, `password = ...`: a secret written as an assignment. `atr push`'s scan stops a
# file that holds one; masking leaves it (it masks the shapes above and the configured values).
ASSIGNMENT = "a secret assignment (api_key=..., password=...)"
SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b(?:api[_-]?key|secret[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token|password|passwd)"
    r"[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9_\-./+=]{12,}"
)
# The userinfo of `scheme://user:password@host`: what is masked, scheme and host stay readable.
_URL_USERINFO = re.compile(r"(?<=://)[^\s/@:'\"<>\\]*:[^\s/@'\"<>\\]*(?=@)")
# One escaped character as JSON (`\u005f`, `\"`, `\\`) or Python (`\x5f`) writes it, escaped once
# or more (JSON inside a JSON string).
_ESCAPE = re.compile(r"\\+(?:u([0-9a-fA-F]{4})|x([0-9a-fA-F]{2})|([\"'/\\]))")
_SANITIZED = re.compile(r"[^A-Za-z0-9]+")


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_NAME.search(key))


def sanitized(secret: str) -> str:
    """The secret as AutoTrain writes a project name: letters and digits, every other run `-`."""
    return _SANITIZED.sub("-", secret).strip("-")


def hide_credentials(url: str) -> str:
    """`http://user:pass@host/v1` -> `http://***@host/v1`; a URL without a password is unchanged."""
    return _URL_USERINFO.sub(MASK, url)


@dataclass(frozen=True)
class Found:
    start: int  # in the text as given, escapes included
    end: int
    what: str  # "a Hugging Face token (hf_...)", "the value of HF_TOKEN", ...


class SecretMatcher:
    """Known secret values (each with what to call it) and the token shapes, found anywhere."""

    def __init__(
        self, secrets: Mapping[str, str] | Iterable[str] = (), *, min_length: int = 4, urls: bool = True
    ) -> None:
        self._min, self._urls = min_length, urls
        self._literals: dict[str, str] = {}
        pairs = secrets.items() if isinstance(secrets, Mapping) else ((s, "a configured secret") for s in secrets)
        for secret, what in pairs:
            self.add(secret, what)

    def add(self, secret: str, what: str = "a configured secret") -> None:
        for form in (secret, sanitized(secret or "")):
            if form and len(form) >= self._min and form not in self._literals:
                self._literals[form] = what
        # the longest first, so that a secret inside another is masked as part of the longer one
        self._literals = dict(sorted(self._literals.items(), key=lambda item: len(item[0]), reverse=True))

    def find(self, text: str) -> list[Found]:
        """Every secret in the text, as written and after unescaping, in the text's own positions."""
        found = self._find_plain(text)
        if "\\" in text:
            decoded, back = _unescape(text)
            if decoded != text:
                found += [Found(*back(f.start, f.end), f.what) for f in self._find_plain(decoded)]
        return sorted(set(found), key=lambda f: (f.start, -f.end, f.what))

    def mask(self, text: str) -> str:
        spans: list[list[int]] = []
        for found in self.find(text):  # sorted by start: merge overlapping spans
            if spans and found.start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], found.end)
            else:
                spans.append([found.start, found.end])
        if not spans:
            return text
        out, at = [], 0
        for start, end in spans:
            out += [text[at:start], MASK]
            at = end
        out.append(text[at:])
        return "".join(out)

    __call__ = mask

    def _find_plain(self, text: str) -> list[Found]:
        found = [Found(*m.span(), what) for what, shape in TOKEN_SHAPES.items() for m in shape.finditer(text)]
        if self._urls and "://" in text:
            found += [Found(*m.span(), URL_PASSWORD) for m in _URL_USERINFO.finditer(text)]
        for secret, what in self._literals.items():
            at = text.find(secret)
            while at >= 0:
                found.append(Found(at, at + len(secret), what))
                at = text.find(secret, at + 1)
        return found


class Redactor(SecretMatcher):
    """Replaces known secret values, their sanitized forms and token shapes with `***`."""

    @classmethod
    def of_environment(cls, environ: Mapping[str, str]) -> Redactor:
        """Token shapes and the values of the environment's secret-named variables (HF_TOKEN, ...)."""
        # from 8 characters: a short value (`API_KEY=test`) would mask ordinary words in every line
        secrets = {value: f"the value of {name}" for name, value in environ.items() if value and is_secret_key(name)}
        return cls(secrets, min_length=8)


def _unescape(text: str):
    """The text with every escape decoded, and a function from a decoded span to the span of the
    text as given (an escaped character spans its whole escape)."""
    parts: list[str] = []
    segments: list[tuple[int, int, int, bool]] = []  # (decoded start, start, end, is one escape)
    decoded_at = at = 0
    for match in _ESCAPE.finditer(text):
        if match.start() > at:
            segments.append((decoded_at, at, match.start(), False))
            parts.append(text[at : match.start()])
            decoded_at += match.start() - at
        hex_code = match.group(1) or match.group(2)
        parts.append(chr(int(hex_code, 16)) if hex_code else match.group(3))
        segments.append((decoded_at, match.start(), match.end(), True))
        decoded_at += 1
        at = match.end()
    if at < len(text):
        segments.append((decoded_at, at, len(text), False))
        parts.append(text[at:])
    starts = [segment[0] for segment in segments]

    def original(index: int) -> tuple[int, int]:
        decoded_start, start, end, escape = segments[bisect_right(starts, index) - 1]
        return (start, end) if escape else (start + index - decoded_start, start + index - decoded_start + 1)

    def back(start: int, end: int) -> tuple[int, int]:
        return original(start)[0], original(end - 1)[1]

    return "".join(parts), back


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16's: FF FE 00 00 starts with FF FE
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def unicode_encoding(data: bytes) -> str | None:
    """The Unicode encoding a file's bytes say they are in: their BOM (UTF-8, UTF-16, UTF-32), or
    UTF-16 by the NUL bytes that interleave ASCII text (what Windows tools write without a BOM);
    None when they say nothing (UTF-8 without a BOM, or a legacy code page)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    sample = data[:4096]
    if b"\x00" in sample:
        half = max(len(sample) // 2, 1)
        even, odd = sample[0::2].count(0), sample[1::2].count(0)
        if odd >= half * 0.3 and even <= odd / 8:
            return "utf-16-le"
        if even >= half * 0.3 and odd <= even / 8:
            return "utf-16-be"
    return None


def as_text(data: bytes) -> str | None:
    """The text of a file in UTF-8, UTF-16 or UTF-32 (by its BOM, or UTF-16 by the NUL bytes that
    interleave ASCII text); None for anything else, which is then read as bytes."""
    encoding = unicode_encoding(data)
    if encoding:
        return data.decode(encoding, errors="replace")
    if b"\x00" in data[:4096]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None

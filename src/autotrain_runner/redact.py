"""Keeping secrets out of files, argv, logs and stdout.

A key is secret when it is HF_TOKEN or its name contains TOKEN or KEY (DESIGN.md). Values of such
keys are replaced by `***` wherever text leaves the process.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

MASK = "***"
_SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD", re.IGNORECASE)
# Hugging Face user access tokens; caught even when they arrive under an innocent name.
_HF_TOKEN_SHAPE = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_NAME.search(key))


def secret_values(values: Mapping[str, str]) -> list[str]:
    """The non-trivial values of secret keys, longest first so that replacement is greedy."""
    found = {v for k, v in values.items() if is_secret_key(k) and v and len(v) >= 4}
    return sorted(found, key=len, reverse=True)


class Redactor:
    """Replaces known secret values and token-shaped strings with `***`."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def add(self, secret: str) -> None:
        if secret and len(secret) >= 4 and secret not in self._secrets:
            self._secrets = sorted([*self._secrets, secret], key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return _HF_TOKEN_SHAPE.sub(MASK, text)

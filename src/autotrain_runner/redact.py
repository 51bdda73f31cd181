"""Keeping secrets out of files, argv, logs and stdout.

A key is secret when a part of its name (between underscores) is TOKEN, KEY, SECRET or PASSWORD:
HF_TOKEN, OPENAI_API_KEY, but not TOKENIZERS_PARALLELISM or MAX_NEW_TOKENS. Values of such keys
are replaced by `***` wherever text leaves the process; so are Hugging Face token shapes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
_SECRET_NAME = re.compile(r"(^|_)(TOKEN|KEY|SECRET|PASSWORD)(_|$)", re.IGNORECASE)
# Hub tokens the child must not inherit unless the runner hands one over on purpose.
HUB_TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_API_TOKEN")
# Hugging Face user access tokens; caught even when they arrive under an innocent name.
_HF_TOKEN_SHAPE = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_NAME.search(key))


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

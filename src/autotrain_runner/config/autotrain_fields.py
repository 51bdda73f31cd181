"""What the installed AutoTrain accepts, known without importing it.

Importing `autotrain` imports torch (about 5 s cold), too slow for `atr check`. So the field
schema of `LLMTrainingParams` and the backend names are kept in `autotrain_fields.json`, made by
`training.autotrain_schema.snapshot_live()` from the pinned AutoTrain; a test compares the two so
that they cannot drift.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SNAPSHOT = "autotrain_fields.json"


@cache
def snapshot() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath(SNAPSHOT).read_text(encoding="utf-8"))


def fields() -> dict[str, dict[str, Any]]:
    return snapshot()["fields"]


def backends() -> list[str]:
    return snapshot()["backends"]

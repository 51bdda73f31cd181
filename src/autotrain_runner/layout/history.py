"""`train_log.jsonl`: what a trainer logged, read back (written by `training.measure.LogLines`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_log_history(path: Path) -> list[dict[str, Any]] | None:
    """What the trainer logged, as its own `log_history` holds it: the entries after a `train_begin`
    replace those of the steps it repeats. None when the file is not there (the trainer died first)."""
    if not path.is_file():
        return None
    history: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        if not isinstance(entry, dict):
            continue
        if entry.get("event") == "train_begin":
            history = [e for e in history if int(e.get("step", 0)) <= int(entry.get("step", 0))]
            continue
        history.append(entry)
    return history

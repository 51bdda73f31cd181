"""What `atr push` will do: the repo, the run, the files, the card; `--dry-run` prints it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autotrain_runner.hub.files import Excluded, Upload
from autotrain_runner.hub.repo import Chosen, Token


@dataclass
class Plan:
    repo: Chosen
    token: Token | None
    run_id: str
    run_dir: Path
    kind: str  # "adapter", "merged" or "full"
    private: bool
    files: list[Upload]
    excluded: list[Excluded]
    card: str
    base: str = ""
    notes: list[str] = field(default_factory=list)
    url: str | None = None  # the commit, once uploaded

"""What `atr data` does around its dataset folder; where the folder may be, and what it may
replace, is checked when the config is loaded (`config.dataset_dir`).

- Input discovery (a `RAW_DATA` folder or glob) skips the dataset folder, atr's own outputs
  (`runs/`, `datasets/`, `sweeps/`, `eval/` of the project), every folder holding the marker and
  hidden folders, so `RAW_DATA=.` never reads what atr wrote.
- A build writes into `.<name>.building-<pid>-<random>` beside the target and swaps it in; what a
  killed build leaves there (and `.<name>.old-<pid>-<random>`, the dataset it replaced) is deleted
  by the next build once that process is gone; when no dataset folder is left (killed between the
  two renames), the newest `.old-` folder becomes the dataset again instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from autotrain_runner import layout
from autotrain_runner.config.dataset_dir import (
    file_problem,
    foreign_problem,
    train_file_name,
)

if TYPE_CHECKING:
    from autotrain_runner.config.records import Config

PROJECT_OUTPUTS = ("runs", "datasets", "sweeps", "eval")  # what atr writes inside a project folder
MARKER_TEXT = "made by `atr data` (autotrain-runner), which replaces this folder on every build\n"
_TEMP = re.compile(r"\.(?:building|old)-(?P<pid>\d+)-[A-Za-z0-9_]+")  # after ".<name>"
_LEGACY_TEMP = re.compile(r"\.building-[A-Za-z0-9_]{8}|\.old")  # what versions before the marker left


def folder_problem(folder: Path) -> str | None:
    """Why a dataset may not be written to `folder` (resolved), or None."""
    return file_problem(folder) or foreign_problem(folder)


def excluded(config: Config) -> list[Path]:
    """Folders input discovery never enters: the dataset folder and atr's outputs in the project."""
    return [config.dataset_dir, *(config.project_dir.resolve() / name for name in PROJECT_OUTPUTS)]


def skip_folder(folder: Path, names: Iterable[str], exclude: list[Path]) -> bool:
    """Whether input discovery leaves this folder (resolved) out; `names`: the files in it."""
    names = set(names)
    if folder.name.startswith(".") or folder in exclude or layout.DATASET_MARKER in names:
        return True
    return layout.MANIFEST_JSON in names and names <= layout.DATASET_FILES | {train_file_name(folder)}


def remove_stale(target: Path) -> list[Path]:
    """Delete what killed builds left beside `target`: their temp folders and the datasets they
    were replacing. Only folders atr made (marker, or nothing but atr's names) whose process is gone."""
    removed = []
    try:
        siblings = list(target.parent.iterdir())
    except OSError:
        return []
    prefix = f".{target.name}"
    _restore_orphan(target, siblings, prefix)
    for path in siblings:
        if not path.name.startswith(prefix) or not path.is_dir() or path.is_symlink() or not path.exists():
            continue
        tail = path.name[len(prefix) :]
        match = _TEMP.fullmatch(tail)
        stale = not layout.process_alive(int(match["pid"])) if match else bool(_LEGACY_TEMP.fullmatch(tail))
        if not stale:
            continue
        with contextlib.suppress(OSError):
            names = {p.name for p in path.iterdir()}
            if names <= layout.DATASET_FILES | {train_file_name(path)}:
                shutil.rmtree(path)
                removed.append(path)
    return removed


def _restore_orphan(target: Path, siblings: list[Path], prefix: str) -> None:
    """A build killed between moving the dataset aside and moving the new one in left only
    `.<name>.old-<pid>-...`: with no dataset folder, the newest such folder of a process that is gone
    becomes the dataset again, rather than being deleted as stale."""
    if target.exists():
        return
    orphans = []
    for path in siblings:
        match = _TEMP.fullmatch(path.name[len(prefix) :]) if path.name.startswith(prefix) else None
        moved_aside = match and path.name[len(prefix) :].startswith(".old-") and not path.is_symlink()
        ours = moved_aside and (path / layout.DATASET_MARKER).is_file()
        if ours and not layout.process_alive(int(match["pid"])):
            orphans.append(path)
    if orphans:
        with contextlib.suppress(OSError):
            os.replace(max(orphans, key=lambda p: p.stat().st_mtime), target)

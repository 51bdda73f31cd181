"""The dataset folder `atr data` owns: where it may write, what it may replace, what it leaves out.

- Every dataset folder `atr data` creates holds a marker file, `.atr-dataset`. A build replaces
  an existing folder only when it holds nothing but atr's own output names and either the marker
  or a `manifest.json` (a build of a version before the marker), or nothing at all; any other
  folder, or a file, is refused before anything is read or written.
- The folder never overlaps the inputs: it may not hold the env file (so not the project folder
  or a folder above it), a preset, `RAW_DATA`, the template file or a local model; nor atr's
  `runs/`, `sweeps/` or `eval/` of the project.
- Input discovery (a `RAW_DATA` folder or glob) skips the dataset folder, atr's own outputs
  (`runs/`, `datasets/`, `sweeps/`, `eval/` of the project), every folder holding the marker and
  hidden folders, so `RAW_DATA=.` never reads what atr wrote.
- A build writes into `.<name>.building-<pid>-<random>` beside the target and swaps it in; what a
  killed build leaves there (and `.<name>.old-<pid>-<random>`, the dataset it replaced) is deleted
  by the next build once that process is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from autotrain_runner.config.envfile import display_path as _display_path
from autotrain_runner.errors import Problem

if TYPE_CHECKING:
    from autotrain_runner.config.project import Config

MARKER = ".atr-dataset"
MANIFEST = "manifest.json"
OUTPUT_NAMES = frozenset({MARKER, MANIFEST, "train.csv", "train.jsonl", "valid.jsonl", "test.jsonl", "pairs.json"})
PROJECT_OUTPUTS = ("runs", "datasets", "sweeps", "eval")  # what atr writes inside a project folder
MARKER_TEXT = "made by `atr data` (autotrain-runner), which replaces this folder on every build\n"
_GLOB = re.compile(r"[*?\[]")
_TEMP = re.compile(r"\.(?:building|old)-(?P<pid>\d+)-[A-Za-z0-9_]+")  # after ".<name>"
_LEGACY_TEMP = re.compile(r"\.building-[A-Za-z0-9_]{8}|\.old")  # what versions before the marker left
REPLACED = "every build replaces the whole folder"


def display_path(path: Path) -> str:
    try:
        return _display_path(path)
    except (OSError, RuntimeError):  # a link loop, a name too long
        return str(path)


def _train_file(folder: Path) -> str:
    try:
        name = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("train_file")
    except (OSError, ValueError, AttributeError):
        return ""
    return name if isinstance(name, str) else ""


def file_problem(folder: Path) -> str | None:
    """`folder` (resolved) is a file, or lies below one."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None or existing.is_dir():
        return None
    what = "is a file" if existing == folder else f"lies below {display_path(existing)}, which is a file"
    return f"{what}, not a folder; atr data writes a folder of its own: name a new folder"


def foreign_problem(folder: Path) -> str | None:
    """`folder` exists and holds something atr did not write: replacing it would lose that."""
    if not folder.is_dir():
        return None
    names = {p.name for p in folder.iterdir()}
    if not names:
        return None
    if MARKER not in names and MANIFEST not in names:
        return (
            f"exists and was not made by atr data (no {MARKER} in it), and {REPLACED}: "
            "name a new folder, or move this one away"
        )
    extra = sorted(names - OUTPUT_NAMES - {_train_file(folder)})
    if not extra:
        return None
    shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
    return f"holds what atr data did not write ({shown}), and {REPLACED}: move it out, or name a new folder"


def folder_problem(folder: Path) -> str | None:
    """Why a dataset may not be written to `folder` (resolved), or None."""
    return file_problem(folder) or foreign_problem(folder)


def raw_root(spec: str, base_dir: Path) -> Path:
    """The folder or file RAW_DATA names; for a glob, the folder its pattern starts in."""
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else base_dir / path
    parts = []
    for part in path.parts:
        if _GLOB.search(part):
            break
        parts.append(part)
    return Path(*parts).resolve()


def raw_base(config: Config) -> Path:
    """The folder RAW_DATA is relative to: the file that set it, else the current folder."""
    source = config.values["RAW_DATA"].source
    return source.path.parent if source.path else Path.cwd()


def _inputs(config: Config) -> list[tuple[str, Path]]:
    """What a build reads or the project needs, each with what to call it."""
    found = [("the env file", config.env_file.resolve())]
    found += [("the env file", v.source.path.resolve()) for v in config.values.values() if v.source.path]
    if "RAW_DATA" in config.values:
        found.append(("RAW_DATA", raw_root(str(config.get("RAW_DATA")), raw_base(config))))
    template = config.get("PROMPT_TEMPLATE")
    if template and str(template).endswith(".json"):
        path = Path(str(template)).expanduser()
        found.append(("PROMPT_TEMPLATE", (path if path.is_absolute() else config.project_dir / path).resolve()))
    if config.model.path is not None:
        found.append(("MODEL", config.model.path.resolve()))
    return found


def overlap_problem(folder: Path, inputs: list[tuple[str, Path]]) -> str | None:
    """`folder` is, or holds, one of the inputs."""
    for what, path in inputs:
        if path == folder or folder in path.parents:
            return f"{'is' if path == folder else 'holds'} {what} {display_path(path)}, and {REPLACED}: " + (
                "name a folder of its own" if path == folder or what != "RAW_DATA" else "move RAW_DATA out of it"
            )
    return None


def outputs_problem(folder: Path, project_dir: Path) -> str | None:
    """`folder` is, holds or lies in the project's runs/, sweeps/ or eval/, which other commands write."""
    for name in ("runs", "sweeps", "eval"):
        other = project_dir.resolve() / name
        if other == folder or other in folder.parents or folder in other.parents:
            return f"overlaps {display_path(other)}, where atr writes its {name}: name a folder of its own"
    return None


def dataset_dir_problems(config: Config) -> list[Problem]:
    """DATASET_DIR (or its default) checked up front, by `atr check` and before `atr data` reads anything."""
    folder = config.dataset_dir
    value = config.values.get("DATASET_DIR")
    where = str(value.source) if value else str(config.source("DATA_BUILDER"))
    if value is None:
        shown = f"{display_path(folder)} (the default)"
    else:
        resolved = display_path(folder)
        shown = repr(str(value.value)) + ("" if resolved == str(value.value) else f" ({resolved})")
    try:
        folder.resolve()  # a link loop in it
        problem = (
            file_problem(folder)
            or overlap_problem(folder, _inputs(config))
            or outputs_problem(folder, config.project_dir)
            or foreign_problem(folder)
        )
    except (OSError, RuntimeError) as exc:  # a name too long, a link loop, no permission
        problem = f"cannot be used as a folder ({getattr(exc, 'strerror', None) or exc})"
    return [Problem("error", where, "DATASET_DIR", f"{shown} {problem}")] if problem else []


def excluded(config: Config) -> list[Path]:
    """Folders input discovery never enters: the dataset folder and atr's outputs in the project."""
    return [config.dataset_dir, *(config.project_dir.resolve() / name for name in PROJECT_OUTPUTS)]


def skip_folder(folder: Path, names: Iterable[str], exclude: list[Path]) -> bool:
    """Whether input discovery leaves this folder (resolved) out; `names`: the files in it."""
    names = set(names)
    if folder.name.startswith(".") or folder in exclude or MARKER in names:
        return True
    return MANIFEST in names and names <= OUTPUT_NAMES | {_train_file(folder)}


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: someone else's process
        return True
    try:  # a killed process nobody has reaped yet is a zombie: gone all the same (Linux)
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_stale(target: Path) -> list[Path]:
    """Delete what killed builds left beside `target`: their temp folders and the datasets they
    were replacing. Only folders atr made (marker, or nothing but atr's names) whose process is gone."""
    removed = []
    try:
        siblings = list(target.parent.iterdir())
    except OSError:
        return []
    prefix = f".{target.name}"
    for path in siblings:
        if not path.name.startswith(prefix) or not path.is_dir() or path.is_symlink():
            continue
        tail = path.name[len(prefix) :]
        match = _TEMP.fullmatch(tail)
        stale = not _alive(int(match["pid"])) if match else bool(_LEGACY_TEMP.fullmatch(tail))
        if not stale:
            continue
        with contextlib.suppress(OSError):
            names = {p.name for p in path.iterdir()}
            if names <= OUTPUT_NAMES | {_train_file(path)}:
                shutil.rmtree(path)
                removed.append(path)
    return removed

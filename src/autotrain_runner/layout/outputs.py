"""The one guard for every output a user names (`--out` of report, eval and the benchmarks).

An output may replace only what atr wrote for that same purpose. Refused, with exit 2 and one line,
before any work starts:
- a device, pipe or socket (`/dev/null` as root became a regular file);
- for a file output, a folder; for a folder output, a file;
- an existing file that is not this kind of output (raw data, an env file, a run's `run.json`, a
  template, a prompt list: each is "not ours" by its content), or a non-empty folder that is not;
- a new path inside a project's `runs/`, `sweeps/` or `eval/` or inside a dataset folder: those hold
  atr's own records, laid out by this package, and a stray file there reads as a damaged record.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

from autotrain_runner.errors import ConfigError

Recognise = Callable[[Path], bool]  # whether an existing file (or folder) is this kind of output
_RECORD_FOLDERS = ("runs", "sweeps", "eval")  # layout.RUNS_DIR, SWEEPS_DIR, EVAL_DIR
_DATASET_MARKER = ".atr-dataset"  # layout.DATASET_MARKER


def _head(path: Path, size: int = 4096) -> str:
    try:
        with path.open("rb") as handle:
            return handle.read(size).decode("utf-8", errors="replace")
    except OSError:
        return ""


def html_report(path: Path) -> bool:
    return "autotrain-runner report</title>" in _head(path)


def json_with(*keys: str) -> Recognise:
    def recognise(path: Path) -> bool:
        import json

        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and all(k in data for k in keys)

    return recognise


def text_starting(prefix: str) -> Recognise:
    return lambda path: _head(path, len(prefix.encode()) + 4).startswith(prefix)


def eval_folder(path: Path) -> bool:
    return (path / "metrics.json").is_file() or (path / "predictions.jsonl").is_file()


def check_output(
    path: Path,
    what: str,
    ours: Recognise,
    *,
    folder: bool = False,
    option: str = "--out",
    default: Path | None = None,
) -> Path:
    """`path` if it may be written as `what`; else a ConfigError naming the option and the path.
    `default` is the place atr writes `what` when no path is given: always allowed."""
    shown = f"{option} {path}"
    if default is not None and path.absolute() == default.absolute():
        return path
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot be used ({exc.strerror or exc})") from None
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ConfigError(f"{shown}: a device or special file, not a place to write {what}")
    if mode is not None and stat.S_ISDIR(mode) and not folder:
        raise ConfigError(f"{shown}: is a folder; name the file to write {what} to")
    if mode is not None and stat.S_ISREG(mode) and folder:
        raise ConfigError(f"{shown}: is a file; {what} is a folder")
    if mode is not None:
        empty_folder = folder and not any(path.iterdir())
        if not empty_folder and not ours(path):
            kind = "folder" if folder else "file"
            raise ConfigError(
                f"{shown}: an existing {kind} that is not {what} atr wrote; refusing to replace it "
                "(name a new path, or delete it first)"
            )
        return path
    inside = _inside_records(path.absolute())
    if inside:
        raise ConfigError(f"{shown}: inside {inside}, which holds atr's own records; name a path outside it")
    return path


def _inside_records(path: Path) -> str | None:
    """The record folder (`runs/`, `sweeps/`, `eval/` of a project, or a dataset folder) above `path`."""
    for parent in path.parents:
        if parent.name in _RECORD_FOLDERS and _is_project(parent.parent):
            return f"{parent.name}/ of {parent.parent}"
        if (parent / _DATASET_MARKER).is_file():
            return f"the dataset folder {parent}"
    return None


def _is_project(folder: Path) -> bool:
    return (folder / "project.env").is_file() or any(folder.glob("*.env"))

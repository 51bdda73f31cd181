"""DATASET_DIR: the folder `atr data` writes, where it is and whether it may be written there.

Checked when the config is loaded, so that `atr check` reports it and `atr data` refuses before
anything is read or written:

- Every dataset folder `atr data` creates holds a marker file, `.atr-dataset`. A build replaces
  an existing folder only when it holds nothing but atr's own output names and either the marker
  or a `manifest.json` (a build of a version before the marker), or nothing at all; any other
  folder, or a file, is refused.
- The folder never overlaps the inputs: it may not hold the env file (so not the project folder
  or a folder above it), a preset, `RAW_DATA`, the template file or a local model; nor atr's
  `runs/`, `sweeps/` or `eval/` of the project.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from autotrain_runner import layout
from autotrain_runner.config.envfile import display_path
from autotrain_runner.config.files import PROJECT_ENV
from autotrain_runner.errors import Level, Problem

if TYPE_CHECKING:
    from autotrain_runner.config.records import Config, Value

REPLACED = "every build replaces the whole folder"
_GLOB = re.compile(r"[*?\[]")


def dataset_id(env_file: Path) -> str:
    """`projects/demo/project.env` -> demo; `mymodel.env` -> mymodel."""
    return env_file.parent.name if env_file.name == PROJECT_ENV else env_file.name.removesuffix(".env")


def resolve_dataset_dir(values: dict[str, Value], env_file: Path) -> Path:
    """DATASET_DIR, else `datasets/<project>` at the root that holds `projects/` (the layout)."""
    if "DATASET_DIR" in values:
        value = values["DATASET_DIR"]
        base = value.source.path.parent if value.source.path else Path.cwd()
        path = base / Path(str(value.value)).expanduser()
        try:
            return path.resolve()
        except (OSError, RuntimeError):  # a link loop, a name too long: the DATASET_DIR checks report it
            return Path(os.path.abspath(path))
    project_dir = env_file.parent.resolve()
    root = project_dir.parent.parent if project_dir.parent.name == "projects" else project_dir
    return root / "datasets" / dataset_id(env_file)


def dataset_dir_problems(config: Config) -> list[Problem]:
    """DATASET_DIR (or its default) checked up front, by `atr check` and before `atr data` reads anything."""
    folder = config.dataset_dir
    value = config.values.get("DATASET_DIR")
    where = str(value.source) if value else str(config.source("DATA_BUILDER"))
    if value is None:
        shown = f"{_display(folder)} (the default)"
    else:
        resolved = _display(folder)
        shown = repr(str(value.value)) + ("" if resolved == str(value.value) else f" ({resolved})")
    try:
        folder.resolve()  # a link loop in it
        problem = (
            file_problem(folder)
            or overlap_problem(folder, _inputs(config))
            or outputs_problem(folder, config.project_dir)
            or foreign_problem(folder)
            or owner_problem(folder, config.env_file)
        )
    except (OSError, RuntimeError) as exc:  # a name too long, a link loop, no permission
        problem = f"cannot be used as a folder ({getattr(exc, 'strerror', None) or exc})"
    return [Problem(Level.ERROR, where, "DATASET_DIR", f"{shown} {problem}")] if problem else []


def file_problem(folder: Path) -> str | None:
    """`folder` (resolved) is a file, or lies below one."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None or existing.is_dir():
        return None
    what = "is a file" if existing == folder else f"lies below {_display(existing)}, which is a file"
    return f"{what}, not a folder; atr data writes a folder of its own: name a new folder"


def owner_problem(folder: Path, env_file: Path) -> str | None:
    """`folder` holds a dataset another project built (its manifest names that project's env file):
    building this one there would replace it. Datasets built before the manifest named its project
    are taken as this project's."""
    manifest = layout.read_manifest(folder) if folder.is_dir() else None
    if manifest is None or not manifest.env_file:
        return None
    owner = (folder / manifest.env_file).resolve()  # recorded relative to the dataset folder
    if owner == env_file.resolve() or not owner.is_file():
        return None
    return (
        f"holds the dataset of another project (built from {_display(owner)}); give this project "
        "a DATASET_DIR of its own"
    )


def foreign_problem(folder: Path) -> str | None:
    """`folder` exists and holds something atr did not write: replacing it would lose that."""
    if not folder.is_dir():
        return None
    names = {p.name for p in folder.iterdir()}
    if not names:
        return None
    if layout.DATASET_MARKER not in names and layout.MANIFEST_JSON not in names:
        return (
            f"exists and was not made by atr data (no {layout.DATASET_MARKER} in it), and {REPLACED}: "
            "name a new folder, or move this one away"
        )
    extra = sorted(names - layout.DATASET_FILES - {train_file_name(folder)})
    if not extra:
        return None
    shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
    return f"holds what atr data did not write ({shown}), and {REPLACED}: move it out, or name a new folder"


def overlap_problem(folder: Path, inputs: list[tuple[str, Path]]) -> str | None:
    """`folder` is, or holds, one of the inputs."""
    for what, path in inputs:
        if path == folder or folder in path.parents:
            return f"{'is' if path == folder else 'holds'} {what} {_display(path)}, and {REPLACED}: " + (
                "name a folder of its own" if path == folder or what != "RAW_DATA" else "move RAW_DATA out of it"
            )
    return None


def outputs_problem(folder: Path, project_dir: Path) -> str | None:
    """`folder` is, holds or lies in the project's runs/, sweeps/ or eval/, which other commands write."""
    for name in (layout.RUNS_DIR, layout.SWEEPS_DIR, layout.EVAL_DIR):
        other = project_dir.resolve() / name
        if other == folder or other in folder.parents or folder in other.parents:
            return f"overlaps {_display(other)}, where atr writes its {name}: name a folder of its own"
    return None


def train_file_name(folder: Path) -> str:
    """The training file a dataset folder's manifest names ("" when there is none to read)."""
    manifest = layout.read_manifest(folder)
    return (manifest.train_file or "") if manifest else ""


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


def _display(path: Path) -> str:
    try:
        return display_path(path)
    except (OSError, RuntimeError):  # a link loop, a name too long
        return str(path)

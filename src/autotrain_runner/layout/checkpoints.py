"""A run's resumable checkpoints: `checkpoint-N` folders the Trainer writes in the run's output folder.

The Trainer writes a checkpoint's files in place, `trainer_state.json` last, and deletes older
checkpoints (beyond SAVE_TOTAL_LIMIT) only after that. So a checkpoint counts when its
`trainer_state.json` is whole and names its own step, and the weights, optimizer and scheduler it
resumes from are there: a process killed while saving leaves the newest folder incomplete and the
previous one complete, and the previous one is what a resume uses.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from autotrain_runner.errors import ConfigError

PREFIX = "checkpoint-"
EPOCH_DIR = "epoch-{}"  # in a run's output folder: the adapter at the end of that epoch (KEEP_EPOCHS)
STATE = "trainer_state.json"
_NAME = re.compile(rf"^{PREFIX}(\d+)$")
_WEIGHTS = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
_NEEDED = ("optimizer.pt", "scheduler.pt")  # what makes it resumable rather than only a model


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int
    epoch: float
    max_steps: int

    @property
    def progress(self) -> float:
        return self.step / self.max_steps if self.max_steps else 0.0


def read_checkpoint(folder: Path) -> Checkpoint | None:
    """The checkpoint in `folder`, or None when it is not a whole one."""
    match = _NAME.match(folder.name)
    if not match or not folder.is_dir():
        return None
    try:
        state = json.loads((folder / STATE).read_text(encoding="utf-8"))
        step, epoch, max_steps = int(state["global_step"]), float(state["epoch"]), int(state["max_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if step != int(match[1]) or not any((folder / name).is_file() for name in _WEIGHTS):
        return None
    if not all((folder / name).is_file() and (folder / name).stat().st_size > 0 for name in _NEEDED):
        return None
    return Checkpoint(folder, step, epoch, max_steps)


def checkpoints(output_dir: Path) -> list[Checkpoint]:
    """The whole checkpoints in a run's output folder, by step."""
    if not output_dir.is_dir():
        return []
    found = (read_checkpoint(p) for p in output_dir.iterdir() if _NAME.match(p.name))
    return sorted((c for c in found if c is not None), key=lambda c: c.step)


def latest(output_dir: Path) -> Checkpoint | None:
    found = checkpoints(output_dir)
    return found[-1] if found else None


def incomplete(output_dir: Path) -> list[Path]:
    """`checkpoint-N` folders that are not whole ones (a save the process did not finish)."""
    if not output_dir.is_dir():
        return []
    return sorted(p for p in output_dir.iterdir() if _NAME.match(p.name) and read_checkpoint(p) is None)


def remove_all(output_dir: Path) -> None:
    """Every `checkpoint-N` folder: a succeeded run's model is saved, and its optimizer states are large."""
    if output_dir.is_dir():
        for folder in output_dir.iterdir():
            if _NAME.match(folder.name) and folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)


def kept_adapter(run_id: str, output_dir: Path, epoch: int, epochs_trained: object) -> Path:
    """The adapter a run kept at `epoch` (KEEP_EPOCHS, `epoch-K/` in its output folder), for
    `atr eval --epoch` and `atr push --epoch`; a ConfigError naming the run when it kept none."""
    kept = output_dir / EPOCH_DIR.format(epoch)
    if not (kept / "adapter_config.json").is_file():
        raise ConfigError(
            f"run {run_id} kept no adapter for epoch {epoch} (it keeps the epochs KEEP_EPOCHS names; "
            f"it trained {epochs_trained})"
        )
    return kept

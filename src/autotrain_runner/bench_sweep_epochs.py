"""`atr bench sweep-epochs PROJECT`: a sweep's epochs trained separately against taken from checkpoints.

Runs the project's sweep twice, as a user would: `atr sweep PROJECT --name <id>-trainings` (each
epoch count trained on its own) and `atr sweep PROJECT --name <id>-checkpoints --set
SWEEP_EPOCHS_FROM=checkpoints` (each rank and learning rate trained once, to the most epochs, its
checkpoints evaluated). Reported side by side: the wall time of each sweep and the training seconds
of its trials, and per (epochs, rank, lr) the chrF and held-out loss of both, with the difference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autotrain_runner import hardware, layout
from autotrain_runner.bench_resume import run_atr
from autotrain_runner.config.load import load_config

MODES = ("trainings", "checkpoints")


def run(project: Path, overrides: Sequence[str], echo: Callable[[str], None] = print) -> dict[str, Any]:
    config = load_config(project, overrides)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    sets = [f"--set={item}" for item in overrides]
    found: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        name = f"bench-epochs-{stamp}-{mode}"
        started = time.perf_counter()
        run_atr("sweep", str(project), "--name", name, f"--set=SWEEP_EPOCHS_FROM={mode}", *sets)
        wall = time.perf_counter() - started
        record = layout.read_json(layout.sweep_dir(config.project_dir, name) / layout.SWEEP_JSON) or {}
        found[mode] = {"wall_s": round(wall, 1), "record": record}
        echo(f"{mode}: {wall:.1f} s")
    rows = _side_by_side(config.project_dir, found)
    trainings, checkpoints = (found[m]["wall_s"] for m in MODES)
    return {
        "project": config.display_name,
        "cpu": hardware.cpu_features(),
        "sweeps": {
            mode: {
                "id": found[mode]["record"].get("id"),
                "wall_s": found[mode]["wall_s"],
                "train_s": round(sum(t.get("train_s") or 0 for t in found[mode]["record"].get("trials", [])), 1),
                "trainings": sum(1 for t in found[mode]["record"].get("trials", []) if t.get("train_s")),
            }
            for mode in MODES
        },
        "wall_checkpoints_vs_trainings": round(checkpoints / trainings, 2) if trainings else None,
        "rows": rows,
    }


def _side_by_side(project_dir: Path, found: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (epochs, rank, lr): chrF and held-out loss of each mode's trial."""
    figures: dict[tuple, dict[str, Any]] = {}
    for mode in MODES:
        record = found[mode]["record"]
        folder = layout.sweep_dir(project_dir, record.get("id", ""))
        for trial in record.get("trials", []):
            key = (trial["epochs"], trial["lora_r"], trial["lr"])
            metrics = layout.read_json(layout.trial_eval_dir(folder, trial["trial"]) / layout.METRICS_JSON) or {}
            row = figures.setdefault(key, {"epochs": key[0], "lora_r": key[1], "lr": key[2]})
            row[f"{mode}_trial"] = trial["trial"]
            row[f"{mode}_chrf"] = metrics.get("chrf")
            row[f"{mode}_valid_loss"] = metrics.get("valid_loss")
    for row in figures.values():
        for metric in ("chrf", "valid_loss"):
            a, b = row.get(f"trainings_{metric}"), row.get(f"checkpoints_{metric}")
            row[f"{metric}_difference"] = round(b - a, 4) if a is not None and b is not None else None
    return sorted(figures.values(), key=lambda r: (r["lr"], r["lora_r"], r["epochs"]))

"""`atr bench resume PROJECT`: what a run killed mid-training loses once it is resumed.

One uninterrupted `atr train`, then per fraction (0.3, 0.6, 0.9 of the epochs): an `atr train`
killed with SIGKILL, runner and trainer at once (the machine taken back), once its logged epoch
reaches that fraction, then `atr train --resume` of that run. Each finished run is evaluated with
`atr eval` on the test split. Reported side by side: the step each resume continued from, the
final training and held-out loss, chrF, and the wall time lost against the uninterrupted run
(the killed part plus the resumed part, minus the uninterrupted run). The runs stay in the project,
named `bench-resume-<time>-...`, as ordinary runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autotrain_runner import hardware, layout
from autotrain_runner.config.load import load_config
from autotrain_runner.errors import WorkError


def run(
    project: Path, fractions: Sequence[float], overrides: Sequence[str], echo: Callable[[str], None] = print
) -> dict[str, Any]:
    config = load_config(project, overrides)
    project_dir, epochs = config.project_dir, float(config.get("EPOCHS") or 1)
    sets = [f"--set={item}" for item in overrides]
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_atr("data", str(project), *sets)

    whole_id = f"bench-resume-{stamp}-whole"
    started = time.perf_counter()
    run_atr("train", str(project), "--run-id", whole_id, *sets)
    whole_s = time.perf_counter() - started
    echo(f"uninterrupted: {whole_s:.1f} s")
    rows = [_row(project, project_dir, whole_id, None, whole_s, whole_s, sets)]
    for fraction in fractions:
        run_id = f"bench-resume-{stamp}-{round(fraction * 100)}"
        started = time.perf_counter()
        killed_at = _train_and_kill(project, project_dir / layout.RUNS_DIR / run_id, run_id, fraction * epochs, sets)
        killed_s = time.perf_counter() - started
        started = time.perf_counter()
        resumed = run_atr("train", str(project), "--resume", run_id, *sets)
        for line in resumed.splitlines():  # what the user sees: from which step, and how it ended
            if line.startswith(("run ", "succeeded:", "  removing")):
                echo(line)
        total_s = killed_s + time.perf_counter() - started
        echo(f"killed at epoch {killed_at:.2f}, resumed: {total_s:.1f} s in all")
        rows.append(_row(project, project_dir, run_id, killed_at, total_s, whole_s, sets))
    return {
        "project": config.display_name,
        "epochs": epochs,
        "checkpoint_every": config.get("CHECKPOINT_EVERY"),
        "cpu": hardware.cpu_features(),
        "rows": rows,
    }


def _train_and_kill(project: Path, run_dir: Path, run_id: str, epoch: float, sets: list[str]) -> float:
    """Start `atr train`, and SIGKILL it with its trainer once the logged epoch reaches `epoch`."""
    from autotrain_runner.training.train import losses_from_log

    runner = subprocess.Popen(
        [sys.executable, "-m", "autotrain_runner", "train", str(project), "--run-id", run_id, *sets],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        start_new_session=True,
    )
    reached = 0.0
    while reached < epoch:
        if runner.poll() is not None:
            raise WorkError(f"run {run_id} ended (exit {runner.returncode}) before epoch {epoch:.2f}")
        time.sleep(0.5)
        log = run_dir / layout.TRAIN_LOG
        text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
        reached = max(losses_from_log(text)["loss_epochs"] or [0.0])
    trainer = (layout.read_json(run_dir / layout.RUN_JSON) or {}).get("pid")
    for group in (trainer, runner.pid):
        if group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
    runner.wait()
    return reached


def _row(
    project: Path, project_dir: Path, run_id: str, killed_at: float | None, wall_s: float, whole_s: float, sets
) -> dict[str, Any]:
    run_dir = project_dir / layout.RUNS_DIR / run_id
    record = layout.read_json(run_dir / layout.RUN_JSON) or {}
    run_atr("eval", str(project), "--run", run_id, *sets)
    evaluated = layout.run_evaluation(run_dir)
    metrics = (layout.read_json(evaluated / layout.METRICS_JSON) or {}) if evaluated else {}
    segments = record.get("segments") or []
    return {
        "run": run_id,
        "killed_at_epoch": None if killed_at is None else round(killed_at, 3),
        "resumed_from_step": segments[-1].get("from_step") if len(segments) > 1 else None,
        "last_step_loss": record.get("last_step_loss"),
        "eval_loss": record.get("eval_loss"),
        "chrf": metrics.get("chrf"),
        "wall_s": round(wall_s, 1),
        "lost_s": round(wall_s - whole_s, 1),
        "wall_vs_uninterrupted": round(wall_s / whole_s, 2),
    }


def run_atr(*args: str) -> str:
    """The real `atr`, its output captured, as the benchmarks run it; a failure raises with its reason."""
    done = subprocess.run(
        [sys.executable, "-m", "autotrain_runner", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=False,
    )
    if done.returncode != 0:
        from autotrain_runner.families.harness import failure_reason

        raise WorkError(f"atr {args[0]} {args[1]} exited {done.returncode}: {failure_reason(done)}")
    return done.stdout

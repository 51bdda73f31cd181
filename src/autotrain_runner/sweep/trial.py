"""One trial: its spec (what a worker needs to run it, in plain JSON) and `run_trial`, which
trains it and evaluates it.

Every executor runs the same `run_trial`: this process one trial at a time, a local worker
process (`sweep.workers`), or a Ray task (`sweep.ray_executor`), so a trial trains, evaluates and
records exactly alike wherever it runs. A failure of the trial is its outcome, never the sweep's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from autotrain_runner import layout
from autotrain_runner.config.records import Config
from autotrain_runner.errors import RunnerError, WorkError
from autotrain_runner.layout.records import Status
from autotrain_runner.sweep.grid import Trial


def trial_spec(
    project: Path | str,
    overrides: Sequence[str],
    cpu: bool,
    trial: Trial,
    record: dict[str, Any],
    config: Config,
    step: str,
    folder: Path,
) -> dict[str, Any]:
    """What `run_trial` gets, in plain JSON: a worker reads it from its stdin, a Ray task gets it
    as its argument."""
    evaluation = record["evaluation"]
    entry = next(e for e in record["trials"] if e["trial"] == trial.name)
    if step == "checkpoint":  # the run of the trial that trains its schedule, at this trial's epoch
        run_id = next(e for e in record["trials"] if e["trial"] == trial.trained_by)["run_id"]
    elif step in ("eval", "resume"):  # the trial's run: evaluated, or continued from its last checkpoint
        run_id = entry["run_id"]
    else:
        run_id = _free_run_id(config.project_dir, f"{record['id']}-{trial.name}")
    return {
        "project": str(project),
        "overrides": [*overrides, *trial.overrides()],
        "cpu": cpu,
        "trial": trial.name,
        "run_id": run_id,
        "train": step in ("train", "resume"),
        "resume": step == "resume",
        "epoch": trial.epochs if step == "checkpoint" else None,
        "split": evaluation["split"],
        "prompts": evaluation["prompts"],
        "eval_out": str(layout.trial_eval_dir(folder, trial.name)),
    }


def run_trial(spec: dict[str, Any], echo: Callable[[str], None]) -> dict[str, Any]:
    """Train one trial (unless its run already succeeded) and evaluate it. A failure of the trial,
    whatever raised it (AutoTrain, CUDA out of memory in generation), is its outcome, not the sweep's."""
    from autotrain_runner.evaluation.evaluate import evaluate
    from autotrain_runner.generation.generate import release_memory
    from autotrain_runner.training.train import train

    outcome: dict[str, Any] = {}
    if spec["train"]:
        try:
            resume = spec["run_id"] if spec.get("resume") else False
            run_id = None if resume else spec["run_id"]
            result = train(spec["project"], spec["overrides"], run_id=run_id, cpu=spec["cpu"], echo=echo, resume=resume)
        except Exception as exc:  # AutoTrain crashed or rejected this trial's values, or worse
            record = layout.read_json(_run_json(spec)) or {}
            return {"status": Status.FAILED, "error": failure(exc), "train_s": record.get("duration_s", 0.0)}
        outcome["train_s"] = result.record.duration_s or 0.0
        if result.status != Status.SUCCEEDED:
            return {**outcome, "status": result.status, "error": result.record.error}
    if not spec.get("evaluate", True):  # evaluated after all trials, on one engine (`sweep.one_engine`)
        return {**outcome, "status": Status.TRAINED}
    began = time.monotonic()
    try:
        evaluate(
            spec["project"],
            spec["overrides"],
            run_id=spec["run_id"],
            epoch=spec.get("epoch"),
            out=Path(spec["eval_out"]),
            **eval_inputs(spec["split"], spec["prompts"]),
            echo=echo,
        )
    except Exception as exc:
        return {**outcome, "status": Status.FAILED, "error": "evaluation failed: " + failure(exc)}
    except KeyboardInterrupt:
        return {**outcome, "status": Status.INTERRUPTED, "error": "interrupted by the user (Ctrl-C) during evaluation"}
    finally:
        release_memory()  # the next trial trains in a child process: give the GPU back
    return {**outcome, "status": Status.SUCCEEDED, "eval_s": round(time.monotonic() - began, 2)}


def eval_inputs(split: str | None, prompts: str | None) -> dict[str, Any]:
    """The split (EVAL_PROMPTS then runs beside it, into `prompts/`), or the prompt list alone."""
    return {"split": split} if split else {"prompts_file": Path(str(prompts))}


def failure(exc: Exception) -> str:
    """A failure in a few lines, as sweep.json and the sweep's output show it."""
    text = str(exc) if isinstance(exc, RunnerError) else f"{type(exc).__name__}: {exc}"
    return _excerpt(text)


def _free_run_id(project_dir: Path, base: str) -> str:
    """Runs are never overwritten: a retried trial gets the next free suffix."""
    root = project_dir / layout.RUNS_DIR
    for n in range(1, 1000):
        candidate = base if n == 1 else f"{base}-{n}"
        if not (root / candidate).exists():
            return candidate
    raise WorkError(f"{root}: no free run id for {base}")


def _run_json(spec: dict[str, Any]) -> Path:
    project = Path(spec["project"])
    project_dir = project if project.is_dir() else project.parent
    return project_dir / layout.RUNS_DIR / spec["run_id"] / layout.RUN_JSON


def _excerpt(text: str, lines: int = 6, chars: int = 600) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[-chars:]

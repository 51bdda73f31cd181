"""One trial: its spec (what a worker needs to run it; plain JSON where it crosses a process) and
`run_trial`, which trains it and evaluates it, and says its outcome.

Every executor runs the same `run_trial`: this process one trial at a time, a local worker
process (`sweep.workers`), or a Ray task (`sweep.ray_executor`), so a trial trains, evaluates and
records exactly alike wherever it runs. A failure of the trial is its outcome, never the sweep's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from autotrain_runner import layout
from autotrain_runner.config.records import Config
from autotrain_runner.errors import RunnerError, WorkError
from autotrain_runner.layout.records import Status, SweepRecord
from autotrain_runner.sweep.grid import Trial


class Step(StrEnum):
    """What a sweep run does with a trial (`sweep.record.plan_trials`)."""

    TRAIN = "train"  # train it, then evaluate it
    RESUME = "resume"  # continue its interrupted run from its last checkpoint, then evaluate it
    EVAL = "eval"  # its run succeeded: evaluate it only
    CHECKPOINT = "checkpoint"  # evaluate another trial's run at this trial's epoch
    REUSE = "reuse"  # done as it is


@dataclass(frozen=True)
class TrialSpec:
    """What `run_trial` gets: a worker reads it from its stdin and a Ray task gets it as its argument,
    as JSON (`to_json`, `from_json`)."""

    project: str
    overrides: list[str]
    cpu: bool
    trial: str
    run_id: str
    train: bool  # train (or resume) its run before it is evaluated
    resume: bool
    epoch: int | None  # a checkpoint trial: the kept adapter of its run at this epoch
    split: str | None
    prompts: str | None
    eval_out: str
    evaluate: bool = True  # False: evaluated after every trial, on one engine (`sweep.one_engine`)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialSpec:
        return cls(**data)


@dataclass(frozen=True)
class Outcome:
    """What became of a trial, wherever it ran; a timing is None where that step did not run."""

    status: Status
    error: str | None = None
    train_s: float | None = None
    eval_s: float | None = None
    node: str | None = None  # the Ray node that ran it

    def to_json(self) -> dict[str, Any]:
        return {name: value for name, value in dataclasses.asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        return cls(**{**data, "status": Status(data["status"])})


def trial_spec(
    project: Path | str,
    overrides: Sequence[str],
    cpu: bool,
    trial: Trial,
    record: SweepRecord,
    config: Config,
    step: Step,
    folder: Path,
    evaluate: bool = True,
) -> TrialSpec:
    """What `run_trial` needs to run this trial's step."""
    if step == Step.CHECKPOINT:  # the run of the trial that trains its schedule, at this trial's epoch
        run_id = record.entry(str(trial.trained_by)).run_id
    elif step in (Step.EVAL, Step.RESUME):  # the trial's run: evaluated, or continued from its last checkpoint
        run_id = record.entry(trial.name).run_id
    else:
        run_id = _free_run_id(config.project_dir, f"{record.id}-{trial.name}")
    return TrialSpec(
        project=str(project),
        overrides=[*overrides, *trial.overrides()],
        cpu=cpu,
        trial=trial.name,
        run_id=str(run_id),
        train=step in (Step.TRAIN, Step.RESUME),
        resume=step == Step.RESUME,
        epoch=trial.epochs if step == Step.CHECKPOINT else None,
        split=record.evaluation["split"],
        prompts=record.evaluation["prompts"],
        eval_out=str(layout.trial_eval_dir(folder, trial.name)),
        evaluate=evaluate,
    )


def run_trial(spec: TrialSpec, echo: Callable[[str], None]) -> Outcome:
    """Train one trial (unless its run already succeeded) and evaluate it. A failure of the trial,
    whatever raised it (AutoTrain, CUDA out of memory in generation), is its outcome, not the sweep's."""
    from autotrain_runner.evaluation.evaluate import evaluate
    from autotrain_runner.generation.generate import release_memory
    from autotrain_runner.training.train import train

    train_s = None
    if spec.train:
        try:
            resume = spec.run_id if spec.resume else False
            run_id = None if resume else spec.run_id
            result = train(spec.project, spec.overrides, run_id=run_id, cpu=spec.cpu, echo=echo, resume=resume)
        except Exception as exc:  # AutoTrain crashed or rejected this trial's values, or worse
            record = layout.read_json(_run_json(spec)) or {}
            return Outcome(Status.FAILED, error=failure(exc), train_s=record.get("duration_s") or 0.0)
        train_s = result.record.duration_s or 0.0
        if result.status != Status.SUCCEEDED:
            return Outcome(Status(result.status), error=result.record.error, train_s=train_s)
    if not spec.evaluate:  # evaluated after all trials, on one engine (`sweep.one_engine`)
        return Outcome(Status.TRAINED, train_s=train_s)
    began = time.monotonic()
    try:
        evaluate(
            spec.project,
            spec.overrides,
            run_id=spec.run_id,
            epoch=spec.epoch,
            out=Path(spec.eval_out),
            **eval_inputs(spec.split, spec.prompts),
            echo=echo,
        )
    except Exception as exc:
        return Outcome(Status.FAILED, error="evaluation failed: " + failure(exc), train_s=train_s)
    except KeyboardInterrupt:
        error = "interrupted by the user (Ctrl-C) during evaluation"
        return Outcome(Status.INTERRUPTED, error=error, train_s=train_s)
    finally:
        release_memory()  # the next trial trains in a child process: give the GPU back
    return Outcome(Status.SUCCEEDED, train_s=train_s, eval_s=round(time.monotonic() - began, 2))


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


def _run_json(spec: TrialSpec) -> Path:
    project = Path(spec.project)
    project_dir = project if project.is_dir() else project.parent
    return project_dir / layout.RUNS_DIR / spec.run_id / layout.RUN_JSON


def _excerpt(text: str, lines: int = 6, chars: int = 600) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[-chars:]

"""The sweep's record, `sweep.json`: created or checked against the grid, what each trial still
needs, and every change a trial's outcome makes to it.

The record is a `SweepRecord` of `TrialEntry`s, written by `sweep.run` after each change
(`layout.write_sweep`), so that a sweep stopped at any point leaves it consistent and the next run
resumes from it.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autotrain_runner import layout
from autotrain_runner.config.records import Config
from autotrain_runner.errors import ConfigError
from autotrain_runner.evaluation.targets import generation_settings, prompts_path
from autotrain_runner.layout import checkpoints
from autotrain_runner.layout.records import RecordError, Status, SweepRecord, TrialEntry
from autotrain_runner.sweep.grid import Trial, alpha_rule, unique
from autotrain_runner.sweep.trial import Outcome, Step, TrialSpec


def sweep_evaluation(config: Config) -> dict[str, Any]:
    """What each trial is evaluated on, and a key that changes when the evaluation would."""
    split = config.dataset_dir / "test.jsonl"
    listed = prompts_path(config)
    if listed is not None and not listed.is_file():
        raise ConfigError(f"{config.source('EVAL_PROMPTS')}: EVAL_PROMPTS: {listed} does not exist")
    if not split.is_file() and listed is None:
        raise ConfigError(
            f"{config.env_file}: EVAL_PROMPTS: a sweep evaluates every trial, and there is no test split "
            f"({split}) and no EVAL_PROMPTS; build the split with DATA_BUILDER and `atr data`, or set EVAL_PROMPTS"
        )
    payload = {
        "split": layout.sha256_file(split) if split.is_file() else None,
        "prompts": layout.sha256_file(listed) if listed is not None else None,
        "generation": generation_settings(config).describe(),
        "template": config.template.describe(),
        "metrics": [config.get("BLEU_TOKENIZE"), config.get("EMBEDDING_MODEL")],
    }
    return {
        "key": layout.config_hash(payload),
        "split": "test" if split.is_file() else None,
        "prompts": str(listed) if listed is not None else None,
    }


def load_record(
    folder: Path,
    sweep_id: str,
    config: Config,
    trials: list[Trial],
    evaluation: dict[str, Any],
    identity: str,
    force: bool,
) -> SweepRecord:
    """The record found in the folder (refused when it was another grid, unless --force), or a
    new one; either way brought up to this grid and evaluation."""
    path = folder / layout.SWEEP_JSON
    found = layout.read_json(path)
    if found and found.get("identity") not in (None, identity) and not force:
        raise ConfigError(
            f"{path}: sweep {sweep_id} was run with another grid, training config, model or "
            "data; give this one another --name, or --force to redo this one"
        )
    try:
        record = SweepRecord.from_json(found) if found else None
    except RecordError as exc:
        if not force:
            raise ConfigError(f"{path}: {exc}; --force starts this sweep's record again") from None
        record = None
    if record is None:
        record = SweepRecord(
            id=sweep_id, project=config.display_name, env_file=str(config.env_file), created_at=now(), trials=[]
        )
    record.identity, record.eval_key = identity, evaluation["key"]
    record.metric, record.flag_limit = config.get("SWEEP_METRIC"), config.get("SWEEP_FLAG_LIMIT")
    record.model = config.model.spec
    record.evaluation = {k: v for k, v in evaluation.items() if k != "key"}
    record.grid = {
        "epochs": unique([t.epochs for t in trials]),
        "lora_r": unique([t.lora_r for t in trials]),
        "lora_alpha": unique([t.lora_alpha for t in trials]),
        "lr": unique([t.lr if t.lr is not None else config.get("LR") for t in trials]),
        "alpha": alpha_rule(config),
    }
    known = {entry.trial: entry for entry in record.trials}
    record.trials = [
        known.get(t.name)
        or TrialEntry(
            trial=t.name,
            epochs=t.epochs,
            lora_r=t.lora_r,
            lora_alpha=t.lora_alpha,
            lr=t.lr if t.lr is not None else config.get("LR"),
            schedule=t.schedule or None,
            status=Status.PENDING,
        )
        for t in trials
    ]
    return record


def plan_trials(
    folder: Path, config: Config, record: SweepRecord, evaluation: dict[str, Any], force: bool
) -> dict[str, Step]:
    """Per trial: train (and evaluate), resume its interrupted run from its last checkpoint, evaluate
    only (its run succeeded), evaluate a checkpoint of another trial's run, or reuse as it is."""
    plan = {}
    for entry in record.trials:
        evaluated = layout.trial_eval_dir(folder, entry.trial) / layout.METRICS_JSON
        if entry.schedule:  # a checkpoint of another trial's run: evaluated once that one is trained
            done = entry.status == Status.SUCCEEDED and entry.eval_key == evaluation["key"]
            plan[entry.trial] = Step.REUSE if done and not force and evaluated.is_file() else Step.CHECKPOINT
            continue
        run_dir = config.project_dir / layout.RUNS_DIR / str(entry.run_id)
        found = layout.read_run(run_dir) if entry.run_id and (run_dir / layout.RUN_JSON).is_file() else None
        if not force and found and found.status in (Status.INTERRUPTED, Status.FAILED) and _resumable(run_dir, found):
            plan[entry.trial] = Step.RESUME
        elif force or found is None or found.status != Status.SUCCEEDED:
            plan[entry.trial] = Step.TRAIN
        elif entry.eval_key != evaluation["key"] or entry.status != Status.SUCCEEDED or not evaluated.is_file():
            plan[entry.trial] = Step.EVAL
        else:
            plan[entry.trial] = Step.REUSE
    return plan


def _resumable(run_dir: Path, run) -> bool:
    return bool(run.output_dir) and checkpoints.latest(run_dir / run.output_dir) is not None


def mark_running(record: SweepRecord, spec: TrialSpec) -> None:
    record.entry(spec.trial).start(spec.run_id, spec.train)


def apply_outcome(record: SweepRecord, spec: TrialSpec, outcome: Outcome, eval_key: str) -> None:
    """A trial's outcome (from `sweep.trial.run_trial`, wherever it ran) into its entry."""
    entry = record.entry(spec.trial)
    entry.attempted(spec.run_id, spec.train)
    entry.status, entry.run_id = outcome.status, spec.run_id
    entry.node, entry.error = outcome.node or socket.gethostname(), outcome.error
    if outcome.status == Status.SUCCEEDED:
        entry.eval_key = eval_key
    if outcome.train_s is not None:
        entry.train_s = outcome.train_s
    if outcome.eval_s is not None:
        entry.eval_s = outcome.eval_s


def count_evaluation(record: SweepRecord, seconds: float, loads: int) -> None:
    """sweep.json's `evaluation_engine`: the engine, how many times the base model was loaded for
    evaluation, and the seconds evaluation took in all."""
    summary = record.evaluation_engine or {"engine": "hf", "base_loads": 0, "eval_s": 0.0}
    summary["base_loads"] += loads
    summary["eval_s"] = round(summary["eval_s"] + seconds, 2)
    record.evaluation_engine = summary


def close_record(record: SweepRecord, interrupted: bool) -> None:
    """The sweep's status once its trials stopped; a trial cut short is marked interrupted."""
    for entry in record.trials:
        if entry.status in (Status.RUNNING, Status.TRAINED):  # cut short (Ctrl-C, or a failure of this process)
            why = "interrupted by the user (Ctrl-C)" if interrupted else "the sweep itself stopped; see its output"
            entry.status, entry.error = Status.INTERRUPTED, why
    statuses = {entry.status for entry in record.trials}
    record.status = (
        Status.INTERRUPTED if interrupted else Status.FAILED if statuses - {Status.SUCCEEDED} else Status.SUCCEEDED
    )


def timing(total: float, work: float, parallel: int) -> dict[str, Any]:
    """Overhead is what the sweep adds to its trials' own work; it is only defined one trial at a time."""
    figures: dict[str, Any] = {"total_s": round(total, 2), "work_s": round(work, 2)}
    if parallel == 1:
        figures["overhead_s"] = round(total - work, 2)
        figures["overhead_pct"] = round(100 * (total - work) / total, 2) if total else None
    return figures


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

"""The sweep's record, `sweep.json`: created or checked against the grid, what each trial still
needs, and every change a trial's outcome makes to it.

The record is a plain dict, written by `sweep.run` after each change (`layout.write_sweep`),
so that a sweep stopped at any point leaves it consistent and the next run resumes from it.
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
from autotrain_runner.layout.records import Status
from autotrain_runner.sweep.grid import SWEPT_FIELDS, Trial, alpha_rule, unique


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
) -> dict[str, Any]:
    """The record found in the folder (refused when it was another grid, unless --force), or a
    new one; either way brought up to this grid and evaluation."""
    found = layout.read_json(folder / layout.SWEEP_JSON)
    if found and found.get("identity") not in (None, identity) and not force:
        raise ConfigError(
            f"{folder / layout.SWEEP_JSON}: sweep {sweep_id} was run with another grid, training config, model or "
            "data; give this one another --name, or --force to redo this one"
        )
    record = found or {
        "id": sweep_id,
        "project": config.display_name,
        "env_file": str(config.env_file),
        "created_at": now(),
        "trials": [],
        "base": {},
    }
    record.update(
        identity=identity,
        eval_key=evaluation["key"],
        metric=config.get("SWEEP_METRIC"),
        flag_limit=config.get("SWEEP_FLAG_LIMIT"),
        model=config.model.spec,
        evaluation={k: v for k, v in evaluation.items() if k != "key"},
        grid={
            "epochs": unique([t.epochs for t in trials]),
            "lora_r": unique([t.lora_r for t in trials]),
            "lora_alpha": unique([t.lora_alpha for t in trials]),
            "lr": unique([t.lr if t.lr is not None else config.get("LR") for t in trials]),
            "alpha": alpha_rule(config),
        },
    )
    known = {entry["trial"]: entry for entry in record["trials"]}
    record["trials"] = [
        known.get(t.name)
        or {
            "trial": t.name,
            **{field: getattr(t, field) for field in SWEPT_FIELDS},
            "lr": t.lr if t.lr is not None else config.get("LR"),
            **({"schedule": t.schedule} if t.schedule else {}),
            "status": Status.PENDING,
            "run_id": None,
            "attempts": [],
            "error": None,
        }
        for t in trials
    ]
    return record


def plan_trials(
    folder: Path, config: Config, record: dict[str, Any], evaluation: dict[str, Any], force: bool
) -> dict[str, str]:
    """Per trial: train (and evaluate), resume its interrupted run from its last checkpoint, evaluate
    only (its run succeeded), evaluate a checkpoint of another trial's run, or reuse as it is."""
    plan = {}
    for entry in record["trials"]:
        if entry.get("schedule"):  # a checkpoint of another trial's run: evaluated once that one is trained
            evaluated = layout.trial_eval_dir(folder, entry["trial"]) / layout.METRICS_JSON
            done = entry["status"] == Status.SUCCEEDED and entry.get("eval_key") == evaluation["key"]
            plan[entry["trial"]] = "reuse" if done and not force and evaluated.is_file() else "checkpoint"
            continue
        run_dir = config.project_dir / layout.RUNS_DIR / str(entry["run_id"])
        found = layout.read_run(run_dir) if entry["run_id"] and (run_dir / layout.RUN_JSON).is_file() else None
        run = {"status": found.status} if found else {}
        evaluated = layout.trial_eval_dir(folder, entry["trial"]) / layout.METRICS_JSON
        if not force and found and found.status in (Status.INTERRUPTED, Status.FAILED) and _resumable(run_dir, found):
            plan[entry["trial"]] = "resume"
        elif force or run.get("status") != Status.SUCCEEDED:
            plan[entry["trial"]] = "train"
        elif (
            entry.get("eval_key") != evaluation["key"] or entry["status"] != Status.SUCCEEDED or not evaluated.is_file()
        ):
            plan[entry["trial"]] = "eval"
        else:
            plan[entry["trial"]] = "reuse"
    return plan


def _resumable(run_dir: Path, run) -> bool:
    return bool(run.output_dir) and checkpoints.latest(run_dir / run.output_dir) is not None


def mark_running(record: dict[str, Any], spec: dict[str, Any]) -> None:
    entry = _entry(record, spec)
    entry.update(status=Status.RUNNING, run_id=spec["run_id"], error=None)
    if spec["train"] and spec["run_id"] not in entry["attempts"]:
        entry["attempts"].append(spec["run_id"])


def apply_outcome(record: dict[str, Any], spec: dict[str, Any], outcome: dict[str, Any], eval_key: str) -> None:
    """A trial's outcome (from `sweep.trial.run_trial`, wherever it ran) into its entry."""
    entry = _entry(record, spec)
    if spec["train"] and spec["run_id"] not in entry["attempts"]:
        entry["attempts"].append(spec["run_id"])
    entry.update(
        status=outcome["status"],
        run_id=spec["run_id"],
        node=outcome.get("node") or socket.gethostname(),
        error=outcome.get("error"),
        eval_key=eval_key if outcome["status"] == Status.SUCCEEDED else entry.get("eval_key"),
    )
    for timing in ("train_s", "eval_s"):
        if timing in outcome:
            entry[timing] = outcome[timing]


def count_evaluation(record: dict[str, Any], seconds: float, loads: int) -> None:
    """sweep.json's `evaluation_engine`: the engine, how many times the base model was loaded for
    evaluation, and the seconds evaluation took in all."""
    summary = record.setdefault("evaluation_engine", {"engine": "hf", "base_loads": 0, "eval_s": 0.0})
    summary["base_loads"] += loads
    summary["eval_s"] = round(summary["eval_s"] + seconds, 2)


def close_record(record: dict[str, Any], interrupted: bool) -> None:
    """The sweep's status once its trials stopped; a trial cut short is marked interrupted."""
    for entry in record["trials"]:
        if entry["status"] in (Status.RUNNING, Status.TRAINED):  # cut short (Ctrl-C, or a failure of this process)
            why = "interrupted by the user (Ctrl-C)" if interrupted else "the sweep itself stopped; see its output"
            entry.update(status=Status.INTERRUPTED, error=why)
    statuses = {entry["status"] for entry in record["trials"]}
    record["status"] = (
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


def _entry(record: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    return next(e for e in record["trials"] if e["trial"] == spec["trial"])

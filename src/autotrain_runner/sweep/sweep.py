"""`atr sweep`: epochs x LoRA rank (x alpha, x learning rate), every trial trained and evaluated.

Reads top to bottom: the grid (command-line lists over the SWEEP_* keys) -> the sweep folder and
its record, `sweep.json` -> the base model, evaluated once -> the trials, each an ordinary run
followed by `atr eval` (reused when done, retried when failed or interrupted), one at a time in
this process or N at once in worker processes -> the leaderboard, the outputs side by side and
the plots (`results.write_results`).

The sweep id is a digest of what the trials train on (the grid, the other training parameters,
the model and the training file), so the same command finds the same sweep and resumes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autotrain_runner import data, hardware, layout
from autotrain_runner.config import models
from autotrain_runner.config.project import Config, load_config
from autotrain_runner.errors import ConfigError, WorkError
from autotrain_runner.evaluation.evaluate import generation_settings, prompts_path
from autotrain_runner.sweep import ray_executor as sweep_ray
from autotrain_runner.training import command

BASE_DIR = "base"
_OUTCOME = "\x1eatr-trial-outcome "  # the worker's last stdout line; never part of a log line
_SWEPT_FIELDS = ("epochs", "lora_r", "lora_alpha", "lr")


@dataclass(frozen=True)
class Trial:
    epochs: int
    lora_r: int
    lora_alpha: int
    lr: float | None  # None: the project's LR

    @property
    def name(self) -> str:
        name = f"e{self.epochs}-r{self.lora_r}-a{self.lora_alpha}"
        return name if self.lr is None else f"{name}-lr{self.lr:g}"

    def overrides(self) -> list[str]:
        sets = [f"EPOCHS={self.epochs}", f"LORA_R={self.lora_r}", f"LORA_ALPHA={self.lora_alpha}"]
        return sets if self.lr is None else [*sets, f"LR={self.lr!r}"]


@dataclass
class SweepResult:
    folder: Path
    status: str  # succeeded, failed, interrupted
    record: dict[str, Any]


def cli_overrides(
    epochs: str | None,
    lora_r: str | None,
    lora_alpha: str | None,
    alpha_ratio: str | None,
    lr: str | None,
    parallel: str | None = None,
    executor: str | None = None,
    ray_address: str | None = None,
) -> list[str]:
    """Command-line lists become the SWEEP_* keys, so one validation serves the flags and the env file."""
    given = {
        "SWEEP_EPOCHS": epochs,
        "SWEEP_LORA_R": lora_r,
        "SWEEP_LORA_ALPHA": lora_alpha,
        "SWEEP_ALPHA_RATIO": alpha_ratio,
        "SWEEP_LR": lr,
        "SWEEP_PARALLEL": parallel,
        "SWEEP_EXECUTOR": executor,
        "SWEEP_RAY_ADDRESS": ray_address,
    }
    return [f"{key}={value}" for key, value in given.items() if value is not None]


def grid(config: Config) -> list[Trial]:
    """The trials, in the order they run: learning rate, then rank, then epochs."""
    if not any(config.get(k) for k in ("SWEEP_EPOCHS", "SWEEP_LORA_R", "SWEEP_LORA_ALPHA", "SWEEP_LR")):
        raise ConfigError(
            f"{config.env_file}: SWEEP_EPOCHS: nothing to sweep; pass --epochs 1,2,3 and/or --lora-r 8,16 "
            "(or set SWEEP_EPOCHS / SWEEP_LORA_R)"
        )
    epochs = _unique(config.get("SWEEP_EPOCHS") or [config.get("EPOCHS")])
    ranks = _unique(config.get("SWEEP_LORA_R") or [config.get("LORA_R")])
    alphas = config.get("SWEEP_LORA_ALPHA")
    if alphas is not None and "SWEEP_ALPHA_RATIO" in config.values:
        raise ConfigError(
            f"{config.source('SWEEP_ALPHA_RATIO')}: SWEEP_ALPHA_RATIO: SWEEP_LORA_ALPHA "
            f"({config.source('SWEEP_LORA_ALPHA')}) already gives the alphas; set one of the two"
        )
    if alphas is not None:
        if len(alphas) != len(ranks):
            raise ConfigError(
                f"{config.source('SWEEP_LORA_ALPHA')}: SWEEP_LORA_ALPHA: {len(alphas)} alphas for {len(ranks)} ranks "
                f"({','.join(map(str, ranks))}); give one alpha per rank, or use --alpha-ratio"
            )
        pairs = list(zip(ranks, alphas, strict=True))
    elif config.get("SWEEP_LORA_R") or "SWEEP_ALPHA_RATIO" in config.values:
        ratio = config.get("SWEEP_ALPHA_RATIO")
        pairs = [(r, max(1, round(ratio * r))) for r in ranks]
    else:  # the rank is not swept: the project's alpha stays as it is
        pairs = [(r, config.get("LORA_ALPHA")) for r in ranks]
    lrs: list[float | None] = _unique(config.get("SWEEP_LR") or [None])
    return [Trial(e, r, a, lr) for lr in lrs for r, a in pairs for e in epochs]


def sweep(
    project: Path | str,
    overrides: Sequence[str] = (),
    force: bool = False,
    cpu: bool = False,
    name: str | None = None,
    echo: Callable[[str], None] = print,
) -> SweepResult:
    # --- setup: the grid, the sweep folder, what is already done
    from autotrain_runner.training.train import refuse_what_cannot_run_here

    started = time.monotonic()
    config = load_config(project, overrides, cpu=cpu)
    if config.get("DATA_BUILDER") and data.ensure_built(project, overrides, echo=echo).status == "built":
        config = load_config(project, overrides, cpu=cpu)  # the trials train on what was just built
    trials = grid(config)
    refuse_what_cannot_run_here(config)
    evaluation = _evaluation(config)
    identity = _identity(config, trials)
    sweep_id = name or f"sweep-{identity}"
    if "/" in sweep_id or sweep_id.startswith("."):
        raise ConfigError(f"--name {sweep_id!r}: use letters, digits, '-' and '_'")
    folder = layout.sweep_dir(config.project_dir, sweep_id)
    on_ray = sweep_ray.executor(config) == "ray"
    slots = [{}] if on_ray else _slots(config)
    _held = _lock(folder)  # held until sweep() returns: one `atr sweep` per sweep folder
    record = _load_record(folder, sweep_id, config, trials, evaluation, identity, force)
    cluster = sweep_ray.connect(config, echo) if on_ray else None
    ray_task = (
        {"resources": sweep_ray.task_resources(config, cluster), "needs": sweep_ray.shared_paths(config)}
        if cluster
        else None
    )
    parallel = sweep_ray.capacity(cluster, ray_task["resources"]) if ray_task else len(slots)
    record.update(status="running", parallel=parallel, updated_at=_now())
    record["executor"] = {"kind": "ray", **cluster, **ray_task["resources"]} if ray_task else {"kind": "local"}
    layout.write_json_atomic(folder / layout.SWEEP_JSON, record)
    plan = _plan(folder, config, record, evaluation, force)
    echo(
        f"sweep {sweep_id}: {len(trials)} trials ({_count(plan, 'train')} to train, "
        f"{_count(plan, 'eval')} to evaluate, {_count(plan, 'reuse')} done), {parallel} at a time; folder {folder}"
    )

    # --- run: the base model once, then the trials; Ctrl-C or TERM leaves sweep.json consistent
    work_s = 0.0
    interrupted = False
    record_lock = threading.RLock()  # worker threads mark trials running while this one records outcomes
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        base_due = force or record["base"].get("eval_key") != evaluation["key"]
        if base_due or any(step != "reuse" for step in plan.values()):
            models.ensure_converted(config.model, log=echo)  # once, here, before any worker needs it
        # vLLM: the trials only train, then one engine evaluates the base model and every adapter
        together = _one_engine(config)
        record["evaluation_engine"] = {"engine": "vllm" if together else "hf", "base_loads": 0, "eval_s": 0.0}
        if base_due and not together:
            work_s += _evaluate_base(project, overrides, folder, record, evaluation, echo)
        todo = [t for t in trials if plan[t.name] != "reuse"]
        where = Path(project).resolve() if on_ray else project  # a Ray node may start in another folder
        specs = [_spec(where, overrides, cpu, t, record, config, plan[t.name], folder) for t in todo]
        for spec in specs:
            spec["evaluate"] = not together
        for spec, outcome in _execute(specs, slots, record, folder, echo, record_lock, ray_task):
            with record_lock:
                _apply(record, spec, outcome, evaluation["key"])
                if "eval_s" in outcome:
                    _count_evaluation(record, outcome["eval_s"], loads=1)
                layout.write_json_atomic(folder / layout.SWEEP_JSON, record)
            work_s += outcome.get("train_s", 0.0) + outcome.get("eval_s", 0.0)
            why = f" ({outcome['error']})" if outcome.get("error") else ""
            echo(f"trial {spec['trial']}: {outcome['status']}{why}")
        if together:
            work_s += evaluate_on_one_engine(config, folder, record, evaluation, base_due, echo)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if on_ray:
            sweep_ray.disconnect()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for entry in record["trials"]:
            if entry["status"] in ("running", "trained"):  # cut short (Ctrl-C, or a failure of this process)
                why = "interrupted by the user (Ctrl-C)" if interrupted else "the sweep itself stopped; see its output"
                entry.update(status="interrupted", error=why)
        statuses = {entry["status"] for entry in record["trials"]}
        record["status"] = "interrupted" if interrupted else "failed" if statuses - {"succeeded"} else "succeeded"
        total = time.monotonic() - started
        record["timing"] = _timing(total, work_s, parallel)
        record["updated_at"] = _now()
        layout.write_json_atomic(folder / layout.SWEEP_JSON, record)

    # --- results
    from autotrain_runner.evaluation.results import write_results
    from autotrain_runner.report.plots import font_note

    for path in write_results(config, folder, record):
        echo(f"wrote {path}")
    if font_note():
        echo(f"note: {font_note()}")
    record["timing"] = _timing(time.monotonic() - started, work_s, parallel)
    layout.write_json_atomic(folder / layout.SWEEP_JSON, record)
    return SweepResult(folder, record["status"], record)


# --- the grid and the record


def _unique(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def _identity(config: Config, trials: list[Trial]) -> str:
    """What the trials train on: the grid, the other training parameters, the model, the data.
    The learning rate stays in it unless it is swept; the model is named by its spec, not the
    path it was converted to, so the same project on another machine is the same sweep."""
    swept = {"epochs", "lora_r", "lora_alpha", "model", *(("lr",) if config.get("SWEEP_LR") else ())}
    fields = {k: v for k, v in command.autotrain_fields(config).items() if k not in swept}
    payload = {"trials": sorted(t.name for t in trials), "fields": fields, "model": config.model.spec}
    payload["engine"] = command.engine_options(config)  # LOSS_ON: the same grid on another loss is another sweep
    if config.data_file is not None:
        payload["data"] = layout.sha256_file(config.data_file)
    return layout.config_hash(payload)


def _evaluation(config: Config) -> dict[str, Any]:
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


def _load_record(
    folder: Path,
    sweep_id: str,
    config: Config,
    trials: list[Trial],
    evaluation: dict[str, Any],
    identity: str,
    force: bool,
) -> dict[str, Any]:
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
        "created_at": _now(),
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
            "epochs": _unique([t.epochs for t in trials]),
            "lora_r": _unique([t.lora_r for t in trials]),
            "lora_alpha": _unique([t.lora_alpha for t in trials]),
            "lr": _unique([t.lr if t.lr is not None else config.get("LR") for t in trials]),
            "alpha": _alpha_rule(config),
        },
    )
    known = {entry["trial"]: entry for entry in record["trials"]}
    record["trials"] = [
        known.get(t.name)
        or {
            "trial": t.name,
            **{field: getattr(t, field) for field in _SWEPT_FIELDS},
            "lr": t.lr if t.lr is not None else config.get("LR"),
            "status": "pending",
            "run_id": None,
            "attempts": [],
            "error": None,
        }
        for t in trials
    ]
    return record


def _alpha_rule(config: Config) -> str:
    if config.get("SWEEP_LORA_ALPHA"):
        return "paired with the ranks"
    if config.get("SWEEP_LORA_R") or "SWEEP_ALPHA_RATIO" in config.values:
        return f"{config.get('SWEEP_ALPHA_RATIO'):g} x rank"
    return f"{config.get('LORA_ALPHA')} (LORA_ALPHA)"


def _plan(
    folder: Path, config: Config, record: dict[str, Any], evaluation: dict[str, Any], force: bool
) -> dict[str, str]:
    """Per trial: train (and evaluate), evaluate only (its run succeeded), or reuse as it is."""
    plan = {}
    for entry in record["trials"]:
        run = layout.read_json(config.project_dir / layout.RUNS_DIR / str(entry["run_id"]) / layout.RUN_JSON) or {}
        evaluated = layout.trial_eval_dir(folder, entry["trial"]) / "metrics.json"
        if force or run.get("status") != "succeeded":
            plan[entry["trial"]] = "train"
        elif entry.get("eval_key") != evaluation["key"] or entry["status"] != "succeeded" or not evaluated.is_file():
            plan[entry["trial"]] = "eval"
        else:
            plan[entry["trial"]] = "reuse"
    return plan


def _count(plan: dict[str, str], step: str) -> int:
    return sum(1 for s in plan.values() if s == step)


def _spec(
    project: Path | str,
    overrides: Sequence[str],
    cpu: bool,
    trial: Trial,
    record: dict[str, Any],
    config: Config,
    step: str,
    folder: Path,
) -> dict[str, Any]:
    evaluation = record["evaluation"]
    entry = next(e for e in record["trials"] if e["trial"] == trial.name)
    run_id = entry["run_id"] if step == "eval" else _free_run_id(config.project_dir, f"{record['id']}-{trial.name}")
    return {
        "project": str(project),
        "overrides": [*overrides, *trial.overrides()],
        "cpu": cpu,
        "trial": trial.name,
        "run_id": run_id,
        "train": step == "train",
        "split": evaluation["split"],
        "prompts": evaluation["prompts"],
        "eval_out": str(layout.trial_eval_dir(folder, trial.name)),
    }


def _free_run_id(project_dir: Path, base: str) -> str:
    """Runs are never overwritten: a retried trial gets the next free suffix."""
    root = project_dir / layout.RUNS_DIR
    for n in range(1, 1000):
        candidate = base if n == 1 else f"{base}-{n}"
        if not (root / candidate).exists():
            return candidate
    raise WorkError(f"{root}: no free run id for {base}")


def _apply(record: dict[str, Any], spec: dict[str, Any], outcome: dict[str, Any], eval_key: str) -> None:
    entry = next(e for e in record["trials"] if e["trial"] == spec["trial"])
    if spec["train"] and spec["run_id"] not in entry["attempts"]:
        entry["attempts"].append(spec["run_id"])
    entry.update(
        status=outcome["status"],
        run_id=spec["run_id"],
        node=outcome.get("node") or socket.gethostname(),
        error=outcome.get("error"),
        eval_key=eval_key if outcome["status"] == "succeeded" else entry.get("eval_key"),
    )
    for timing in ("train_s", "eval_s"):
        if timing in outcome:
            entry[timing] = outcome[timing]


def _timing(total: float, work: float, parallel: int) -> dict[str, Any]:
    """Overhead is what the sweep adds to its trials' own work; it is only defined one trial at a time."""
    timing: dict[str, Any] = {"total_s": round(total, 2), "work_s": round(work, 2)}
    if parallel == 1:
        timing["overhead_s"] = round(total - work, 2)
        timing["overhead_pct"] = round(100 * (total - work) / total, 2) if total else None
    return timing


# --- the base model


def _evaluate_base(
    project: Path | str,
    overrides: Sequence[str],
    folder: Path,
    record: dict[str, Any],
    evaluation: dict[str, Any],
    echo: Callable[[str], None],
) -> float:
    from autotrain_runner.evaluation.evaluate import evaluate
    from autotrain_runner.generation.generate import release_memory

    began = time.monotonic()
    try:
        evaluate(
            project,
            overrides,
            base=True,
            out=folder / BASE_DIR,
            **_eval_inputs(evaluation["split"], evaluation["prompts"]),
            echo=echo,
        )
        record["base"] = {"folder": BASE_DIR, "eval_key": evaluation["key"]}
    except Exception as exc:  # the trials are worth running without their reference
        record["base"] = {"folder": BASE_DIR, "eval_key": None, "error": _failure(exc)}
        echo(f"warning: the base model's evaluation failed, the sweep goes on without it: {_failure(exc)}")
    finally:
        release_memory()
    seconds = round(time.monotonic() - began, 2)
    record["base"]["eval_s"] = seconds
    _count_evaluation(record, seconds, loads=1)
    layout.write_json_atomic(folder / layout.SWEEP_JSON, record)
    return seconds


def _count_evaluation(record: dict[str, Any], seconds: float, loads: int) -> None:
    """sweep.json's `evaluation_engine`: the engine, how many times the base model was loaded for
    evaluation, and the seconds evaluation took in all."""
    summary = record.setdefault("evaluation_engine", {"engine": "hf", "base_loads": 0, "eval_s": 0.0})
    summary["base_loads"] += loads
    summary["eval_s"] = round(summary["eval_s"] + seconds, 2)


def _one_engine(config: Config) -> bool:
    """Whether this sweep evaluates on one vLLM engine (GENERATION_ENGINE, and what vLLM supports)."""
    from autotrain_runner.evaluation.evaluate import base_target
    from autotrain_runner.generation import vllm_server

    base = base_target(config, None)
    quiet = vllm_server.choose(config.get("GENERATION_ENGINE"), [base], lambda line: None)
    return quiet == "vllm"


def evaluate_on_one_engine(
    config: Config,
    folder: Path,
    record: dict[str, Any],
    evaluation: dict[str, Any],
    base_due: bool,
    echo: Callable[[str], None],
    choice: str | None = None,
    out_root: Path | None = None,
) -> float:
    """The base model (when due) and every trained trial, each on the sweep's evaluation, on one
    engine: with vLLM, one base-model load for all. A trial whose evaluation fails is failed; the
    others go on. Returns the seconds the phase took."""
    from autotrain_runner.evaluation.evaluate import Engine, base_target, evaluate_targets, run_target

    began = time.monotonic()
    root = out_root or folder
    # (the trial's entry, or None for the base model; its target)
    pairs: list[tuple[dict[str, Any] | None, Any]] = [
        (e, run_target(config, e["run_id"], layout.trial_eval_dir(root, e["trial"])))
        for e in record["trials"]
        if e["status"] == "trained"
    ]
    if base_due:
        pairs.insert(0, (None, base_target(config, root / BASE_DIR)))
    if not pairs:
        return 0.0
    inputs = _eval_inputs(evaluation["split"], evaluation["prompts"])
    with Engine(config, [target for _, target in pairs], choice=choice, echo=echo) as engine:
        for entry, target in pairs:
            started = time.monotonic()
            try:
                evaluate_targets(config, [target], engine, echo=echo, **inputs)
                error = None
            except Exception as exc:  # this target's failure, not the sweep's
                error = _failure(exc)
            seconds = round(time.monotonic() - started, 2)
            if entry is None:  # the base model
                record["base"] = {
                    "folder": BASE_DIR,
                    "eval_key": None if error else evaluation["key"],
                    "eval_s": seconds,
                }
                if error:
                    record["base"]["error"] = error
                    echo(f"warning: the base model's evaluation failed, the sweep goes on without it: {error}")
            else:
                update = {"status": "succeeded", "error": None, "eval_key": evaluation["key"], "eval_s": seconds}
                if error:
                    update.update(status="failed", error="evaluation failed: " + error, eval_key=entry.get("eval_key"))
                entry.update(update)
                echo(f"trial {entry['trial']}: {entry['status']}" + (f" ({entry['error']})" if error else ""))
            if out_root is None:
                layout.write_json_atomic(folder / layout.SWEEP_JSON, record)
        loads = engine.base_loads
        start_s = engine.server.start_s if engine.server else None
    seconds = round(time.monotonic() - began, 2)
    record["evaluation_engine"] = {"engine": engine.kind, "base_loads": loads, "eval_s": seconds}
    if start_s is not None:
        record["evaluation_engine"]["start_s"] = start_s
    return seconds


def _eval_inputs(split: str | None, prompts: str | None) -> dict[str, Any]:
    """The split (EVAL_PROMPTS then runs beside it, into `prompts/`), or the prompt list alone."""
    return {"split": split} if split else {"prompts_file": Path(str(prompts))}


# --- the trials


def run_trial(spec: dict[str, Any], echo: Callable[[str], None]) -> dict[str, Any]:
    """Train one trial (unless its run already succeeded) and evaluate it. A failure of the trial,
    whatever raised it (AutoTrain, CUDA out of memory in generation), is its outcome, not the sweep's."""
    from autotrain_runner.evaluation.evaluate import evaluate
    from autotrain_runner.generation.generate import release_memory
    from autotrain_runner.training.train import train

    outcome: dict[str, Any] = {}
    if spec["train"]:
        try:
            result = train(spec["project"], spec["overrides"], run_id=spec["run_id"], cpu=spec["cpu"], echo=echo)
        except Exception as exc:  # AutoTrain crashed or rejected this trial's values, or worse
            record = layout.read_json(_run_json(spec)) or {}
            return {"status": "failed", "error": _failure(exc), "train_s": record.get("duration_s", 0.0)}
        outcome["train_s"] = result.record.get("duration_s", 0.0)
        if result.status != "succeeded":
            return {**outcome, "status": result.status, "error": result.record.get("error")}
    if not spec.get("evaluate", True):  # evaluated after all trials, on one engine (`evaluate_on_one_engine`)
        return {**outcome, "status": "trained"}
    began = time.monotonic()
    try:
        evaluate(
            spec["project"],
            spec["overrides"],
            run_id=spec["run_id"],
            out=Path(spec["eval_out"]),
            **_eval_inputs(spec["split"], spec["prompts"]),
            echo=echo,
        )
    except Exception as exc:
        return {**outcome, "status": "failed", "error": "evaluation failed: " + _failure(exc)}
    except KeyboardInterrupt:
        return {**outcome, "status": "interrupted", "error": "interrupted by the user (Ctrl-C) during evaluation"}
    finally:
        release_memory()  # the next trial trains in a child process: give the GPU back
    return {**outcome, "status": "succeeded", "eval_s": round(time.monotonic() - began, 2)}


def _failure(exc: Exception) -> str:
    from autotrain_runner.errors import RunnerError

    text = str(exc) if isinstance(exc, RunnerError) else f"{type(exc).__name__}: {exc}"
    return _excerpt(text)


def _run_json(spec: dict[str, Any]) -> Path:
    project = Path(spec["project"])
    project_dir = project if project.is_dir() else project.parent
    return project_dir / layout.RUNS_DIR / spec["run_id"] / layout.RUN_JSON


def _excerpt(text: str, lines: int = 6, chars: int = 600) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[-chars:]


def _execute(
    specs: list[dict[str, Any]],
    slots: list[dict[str, str]],
    record: dict[str, Any],
    folder: Path,
    echo: Callable[[str], None],
    lock: threading.RLock,
    ray_task: dict[str, Any] | None = None,
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Yield (spec, outcome) as trials finish: as Ray tasks, in this process one at a time, or in
    worker processes."""

    def mark_running(spec: dict[str, Any]) -> None:
        with lock:
            entry = next(e for e in record["trials"] if e["trial"] == spec["trial"])
            entry.update(status="running", run_id=spec["run_id"], error=None)
            if spec["train"] and spec["run_id"] not in entry["attempts"]:
                entry["attempts"].append(spec["run_id"])
            layout.write_json_atomic(folder / layout.SWEEP_JSON, record)

    if ray_task is not None:
        yield from sweep_ray.execute(specs, ray_task["resources"], ray_task["needs"], mark_running, echo)
        return
    if len(slots) == 1 and not slots[0]:
        for spec in specs:
            mark_running(spec)
            outcome = run_trial(spec, lambda line, name=spec["trial"]: echo(f"[{name}] {line}"))
            yield spec, outcome
            if outcome["status"] == "interrupted":
                raise KeyboardInterrupt
        return
    yield from _execute_in_workers(specs, slots, mark_running, echo)


def _slots(config: Config) -> list[dict[str, str]]:
    """Environment of each concurrent trial: one CUDA device each, or a share of the CPU cores."""
    devices = hardware.cuda_device_count()
    count = config.get("SWEEP_PARALLEL") or max(1, devices)
    if count == 1:
        return [{}]  # this process, as it is
    if devices:  # the devices this process may use, as CUDA_VISIBLE_DEVICES names them
        visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        ids = visible[:devices] if visible else [str(i) for i in range(devices)]
        return [{"CUDA_VISIBLE_DEVICES": ids[i % len(ids)]} for i in range(count)]
    cores = sorted(os.sched_getaffinity(0))
    if count > len(cores):
        raise ConfigError(
            f"{config.source('SWEEP_PARALLEL')}: SWEEP_PARALLEL: {count} trials at once, and this machine has "
            f"{len(cores)} cores for CPU trials"
        )
    shares = [cores[i::count] for i in range(count)]
    return [
        {
            "ATR_CPU_CORES": ",".join(map(str, share)),
            **dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS"), str(len(share))),
        }
        for share in shares
    ]


def _execute_in_workers(specs, slots, mark_running, echo) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    free = list(range(len(slots)))
    lock = threading.Lock()
    children: dict[str, subprocess.Popen] = {}
    stopping = threading.Event()

    def work(spec: dict[str, Any]) -> dict[str, Any]:
        with lock:
            if stopping.is_set():
                return {"status": "pending", "error": None}
            slot = free.pop()
            mark_running(spec)
            child = subprocess.Popen(
                [sys.executable, "-m", "autotrain_runner.sweep.sweep"],
                env={**os.environ, **slots[slot]},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                encoding="utf-8",
                errors="replace",
                start_new_session=True,  # not the terminal's Ctrl-C: this process forwards it, exactly once
            )
            children[spec["trial"]] = child
        outcome = None
        try:
            assert child.stdin is not None and child.stdout is not None
            with contextlib.suppress(BrokenPipeError):  # a worker stopped before it read its spec
                child.stdin.write(json.dumps(spec))  # by pipe: --set values may hold secrets, never a file
                child.stdin.close()
            for line in child.stdout:
                if _OUTCOME in line:
                    before, _, found = line.partition(_OUTCOME)
                    outcome = json.loads(found)
                    line = before
                if line.strip():
                    echo(f"[{spec['trial']}] {line.rstrip()}")
            child.wait()
        finally:
            with lock:
                free.append(slot)
                children.pop(spec["trial"], None)
        if outcome is None and stopping.is_set():
            return {"status": "interrupted", "error": "interrupted by the user (Ctrl-C) as the trial started"}
        return outcome or {"status": "failed", "error": f"the trial's worker exited with code {child.returncode}"}

    def stop_children() -> None:
        stopping.set()
        with lock:
            for child in children.values():
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGINT)

    pool = ThreadPoolExecutor(max_workers=len(slots))
    pending = {pool.submit(work, spec): spec for spec in specs}
    try:
        while pending:
            for future in [f for f in pending if f.done()]:
                spec = pending.pop(future)
                outcome = future.result()
                if outcome["status"] != "pending":
                    yield spec, outcome
            time.sleep(0.2)
    except KeyboardInterrupt:
        stop_children()
        handlers = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:  # the workers stop their trials and report them interrupted
            for future, spec in pending.items():
                outcome = future.result()
                if outcome["status"] != "pending":
                    yield spec, outcome
            pending = {}
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        raise
    finally:  # whatever ended the loop, no worker goes on training behind it
        if pending:
            stop_children()
        pool.shutdown(wait=True, cancel_futures=True)


def _worker() -> int:
    """One trial in a worker process: the spec on stdin, the outcome as the last stdout line."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if os.environ.get("ATR_CPU_CORES"):
            os.sched_setaffinity(0, {int(c) for c in os.environ["ATR_CPU_CORES"].split(",")})
        spec = json.loads(sys.stdin.read())
        outcome = run_trial(spec, lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        outcome = {"status": "interrupted", "error": "interrupted by the user (Ctrl-C)"}
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the outcome line must get out
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(_OUTCOME + json.dumps(outcome), flush=True)
    return 0


# --- small helpers


def _lock(folder: Path):
    """An exclusive lock on the sweep folder, released when this process ends however it ends."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / ".lock").open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise WorkError(f"{folder}: another `atr sweep` is running this sweep; wait for it or stop it") from None
    return handle


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


if __name__ == "__main__":
    sys.exit(_worker())

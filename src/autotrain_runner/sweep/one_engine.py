"""A sweep's evaluation on one engine: with vLLM the trials only train, and then one engine
(one base-model load) evaluates the base model and every trained adapter.

`bench_sweep_eval` runs the same phase again on a finished sweep, with each engine, into a
temporary folder (`out_root`), to compare them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autotrain_runner import layout
from autotrain_runner.config.records import Config
from autotrain_runner.evaluation.evaluate import evaluate_targets
from autotrain_runner.evaluation.targets import base_target, run_target
from autotrain_runner.generation.engine import Engine
from autotrain_runner.layout.records import Status, SweepRecord, TrialEntry
from autotrain_runner.sweep.trial import eval_inputs, failure


def evaluates_on_one_engine(config: Config) -> bool:
    """Whether this sweep evaluates on one vLLM engine (GENERATION_ENGINE, and what vLLM supports)."""
    from autotrain_runner.generation import vllm_server

    base = base_target(config, None)
    quiet = vllm_server.choose(config.get("GENERATION_ENGINE"), [base], lambda line: None)
    return quiet == "vllm"


def evaluate_on_one_engine(
    config: Config,
    folder: Path,
    record: SweepRecord,
    evaluation: dict[str, Any],
    base_due: bool,
    echo: Callable[[str], None],
    choice: str | None = None,
    out_root: Path | None = None,
) -> float:
    """The base model (when due) and every trained trial, each on the sweep's evaluation, on one
    engine: with vLLM, one base-model load for all. A trial whose evaluation fails is failed; the
    others go on. Returns the seconds the phase took."""
    began = time.monotonic()
    root = out_root or folder
    # (the trial's entry, or None for the base model; its target)
    pairs: list[tuple[TrialEntry | None, Any]] = [
        (e, run_target(config, str(e.run_id), layout.trial_eval_dir(root, e.trial), _epoch(e)))
        for e in record.trials
        if e.status == Status.TRAINED
    ]
    if base_due:
        pairs.insert(0, (None, base_target(config, root / layout.SWEEP_BASE_DIR)))
    if not pairs:
        return 0.0
    inputs = eval_inputs(evaluation["split"], evaluation["prompts"])
    trained, evaluated = sum(1 for entry, _ in pairs if entry is not None), 0
    with Engine(config, [target for _, target in pairs], choice=choice, echo=echo) as engine:
        for entry, target in pairs:
            started = time.monotonic()
            try:
                evaluate_targets(config, [target], engine, echo=echo, **inputs)
                error = None
            except Exception as exc:  # this target's failure, not the sweep's
                error = failure(exc)
            seconds = round(time.monotonic() - started, 2)
            if entry is None:  # the base model
                record.base = {
                    "folder": layout.SWEEP_BASE_DIR,
                    "eval_key": None if error else evaluation["key"],
                    "eval_s": seconds,
                }
                if error:
                    record.base["error"] = error
                    echo(f"warning: the base model's evaluation failed, the sweep goes on without it: {error}")
            else:
                entry.eval_s = seconds
                if error:
                    entry.status, entry.error = Status.FAILED, "evaluation failed: " + error
                else:
                    entry.status, entry.error, entry.eval_key = Status.SUCCEEDED, None, evaluation["key"]
                evaluated += 1
                why = f" ({entry.error})" if error else ""
                echo(f"trial {entry.trial}: {entry.status}{why} ({evaluated}/{trained} trials)")
            if out_root is None:
                layout.write_sweep(folder, record)
        loads = engine.base_loads
        start_s = engine.server.start_s if engine.server else None
    seconds = round(time.monotonic() - began, 2)
    record.evaluation_engine = {"engine": engine.kind, "base_loads": loads, "eval_s": seconds}
    if start_s is not None:
        record.evaluation_engine["start_s"] = start_s
    return seconds


def _epoch(entry: TrialEntry) -> int | None:
    """A checkpoint trial (SWEEP_EPOCHS_FROM=checkpoints) is its run's adapter at its epoch."""
    return entry.epochs if entry.schedule else None

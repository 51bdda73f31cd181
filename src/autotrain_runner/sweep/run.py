"""`atr sweep`: epochs x LoRA rank (x alpha, x learning rate), every trial trained and evaluated.

Reads top to bottom: the grid (command-line lists over the SWEEP_* keys, `sweep.grid`) -> the
sweep folder and its record, `sweep.json` (`sweep.record`) -> the base model, evaluated once ->
the trials, each an ordinary run followed by `atr eval` (reused when done, retried when failed or
interrupted; `sweep.trial`), one at a time in this process, N at once in worker processes
(`sweep.workers`) or as Ray tasks (`sweep.ray_executor`) -> with vLLM, every trial evaluated on
one engine (`sweep.one_engine`) -> the leaderboard, the outputs side by side and the plots
(`results.write_results`).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotrain_runner import data, gguf, hardware, layout
from autotrain_runner.config.load import load_config
from autotrain_runner.errors import ConfigError, WorkError
from autotrain_runner.layout.records import Status, SweepRecord
from autotrain_runner.sweep import ray_executor as sweep_ray
from autotrain_runner.sweep.grid import grid, sweep_identity
from autotrain_runner.sweep.one_engine import evaluate_on_one_engine, evaluates_on_one_engine
from autotrain_runner.sweep.record import (
    apply_outcome,
    close_record,
    count_evaluation,
    load_record,
    mark_running,
    now,
    plan_trials,
    sweep_evaluation,
    timing,
)
from autotrain_runner.sweep.trial import Outcome, Step, TrialSpec, eval_inputs, failure, run_trial, trial_spec
from autotrain_runner.sweep.workers import execute_in_workers, raise_interrupt, worker_slots


@dataclass
class SweepResult:
    folder: Path
    status: str  # succeeded, failed, interrupted
    record: SweepRecord


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
    config = load_config(project, overrides, cuda=hardware.use_cuda(cpu))
    if config.get("TRAINER") == "reward":  # before anything is built or trained
        raise ConfigError(
            f"{config.env_file}: TRAINER=reward: a sweep ranks what its trials generate, and a reward model "
            "does not generate; train each setting with atr train and compare reward_accuracy with atr eval"
        )
    if config.get("DATA_BUILDER") and data.ensure_built(project, overrides, echo=echo).status == "built":
        config = load_config(project, overrides, cuda=hardware.use_cuda(cpu))  # the trials train on what was just built
    trials = grid(config)
    refuse_what_cannot_run_here(config)
    evaluation = sweep_evaluation(config)
    identity = sweep_identity(config, trials)
    sweep_id = name or f"sweep-{identity}"
    if "/" in sweep_id or sweep_id.startswith("."):
        raise ConfigError(f"--name {sweep_id!r}: use letters, digits, '-' and '_'")
    folder = layout.sweep_dir(config.project_dir, sweep_id)
    on_ray = sweep_ray.executor(config) == "ray"
    slots = [{}] if on_ray else worker_slots(config)
    with _lock(folder):  # held until sweep() returns: one `atr sweep` per sweep folder
        record = load_record(folder, sweep_id, config, trials, evaluation, identity, force)
        cluster = sweep_ray.connect(config, echo) if on_ray else None
        ray_task = (
            {"resources": sweep_ray.task_resources(config, cluster), "needs": sweep_ray.shared_paths(config)}
            if cluster
            else None
        )
        parallel = sweep_ray.capacity(cluster, ray_task["resources"]) if ray_task else len(slots)
        record.status, record.parallel, record.updated_at = Status.RUNNING, parallel, now()
        record.executor = {"kind": "ray", **cluster, **ray_task["resources"]} if ray_task else {"kind": "local"}
        layout.write_sweep(folder, record)
        plan = plan_trials(folder, config, record, evaluation, force)
        resumed, from_checkpoints = _count(plan, Step.RESUME), _count(plan, Step.CHECKPOINT)
        echo(
            f"sweep {sweep_id}: {len(trials)} trials ({_count(plan, Step.TRAIN) + resumed} to train"
            + (f" ({resumed} resumed from a checkpoint)" if resumed else "")
            + f", {_count(plan, Step.EVAL) + from_checkpoints} to evaluate"
            + (f" ({from_checkpoints} from checkpoints)" if from_checkpoints else "")
            + f", {_count(plan, Step.REUSE)} done), {parallel} at a time; folder {folder}"
        )

        # --- run: the base model once, then the trials; Ctrl-C or TERM leaves sweep.json consistent
        work_s = 0.0
        interrupted = False
        record_lock = threading.RLock()  # worker threads mark trials running while this one records outcomes
        previous = {sig: signal.signal(sig, raise_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
        try:
            base_due = force or record.base.get("eval_key") != evaluation["key"]
            if base_due or any(step != Step.REUSE for step in plan.values()):
                gguf.ensure_converted(config.model, log=echo)  # once, here, before any worker needs it
            # vLLM: the trials only train, then one engine evaluates the base model and every adapter
            together = evaluates_on_one_engine(config)
            record.evaluation_engine = {"engine": "vllm" if together else "hf", "base_loads": 0, "eval_s": 0.0}
            if base_due and not together:
                work_s += _evaluate_base(project, overrides, folder, record, evaluation, echo)
            where = Path(project).resolve() if on_ray else project  # a Ray node may start in another folder
            # the trials that train (or are evaluated alone) first; then the checkpoints of their runs
            for phase in ({Step.TRAIN, Step.RESUME, Step.EVAL}, {Step.CHECKPOINT}):
                todo = [t for t in trials if plan[t.name] in phase and _trainable(record, t, echo)]
                specs = [
                    trial_spec(where, overrides, cpu, t, record, config, plan[t.name], folder, evaluate=not together)
                    for t in todo
                ]
                for done, (spec, outcome) in enumerate(
                    _execute(specs, slots, record, folder, echo, record_lock, ray_task), 1
                ):
                    with record_lock:
                        apply_outcome(record, spec, outcome, evaluation["key"])
                        if outcome.eval_s is not None:
                            count_evaluation(record, outcome.eval_s, loads=1)
                        layout.write_sweep(folder, record)
                    work_s += (outcome.train_s or 0.0) + (outcome.eval_s or 0.0)
                    why = f" ({outcome.error})" if outcome.error else ""
                    echo(f"trial {spec.trial}: {outcome.status}{why} ({done}/{len(specs)} trials)")
            if together:
                work_s += evaluate_on_one_engine(config, folder, record, evaluation, base_due, echo)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if on_ray:
                sweep_ray.disconnect()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            close_record(record, interrupted)
            record.timing = timing(time.monotonic() - started, work_s, parallel)
            record.updated_at = now()
            layout.write_sweep(folder, record)

        # --- results
        from autotrain_runner.plots import font_note
        from autotrain_runner.sweep.results import write_results

        for path in write_results(config, folder, record):
            echo(f"wrote {path}")
        if font_note():
            echo(f"note: {font_note()}")
        record.timing = timing(time.monotonic() - started, work_s, parallel)
        layout.write_sweep(folder, record)
        return SweepResult(folder, str(record.status), record)


def _trainable(record: SweepRecord, trial, echo: Callable[[str], None]) -> bool:
    """A checkpoint trial is evaluated once the trial that trains its schedule has succeeded (or
    trained, for one engine); otherwise it fails with that trial's reason."""
    if trial.schedule is None:
        return True
    source = record.entry(trial.trained_by)
    if source.status in (Status.SUCCEEDED, Status.TRAINED):
        return True
    entry = record.entry(trial.name)
    entry.status = Status.FAILED
    entry.error = f"{trial.trained_by}, whose run it is a checkpoint of, {source.status}"
    echo(f"trial {trial.name}: failed ({entry.error})")
    return False


def _count(plan: dict[str, Step], step: Step) -> int:
    return sum(1 for s in plan.values() if s == step)


def _evaluate_base(
    project: Path | str,
    overrides: Sequence[str],
    folder: Path,
    record: SweepRecord,
    evaluation: dict[str, Any],
    echo: Callable[[str], None],
) -> float:
    """The base model, once, on the trials' evaluation (the hf engine: in this process)."""
    from autotrain_runner.evaluation.evaluate import evaluate
    from autotrain_runner.generation.generate import release_memory

    began = time.monotonic()
    try:
        evaluate(
            project,
            overrides,
            base=True,
            out=folder / layout.SWEEP_BASE_DIR,
            **eval_inputs(evaluation["split"], evaluation["prompts"]),
            echo=echo,
        )
        record.base = {"folder": layout.SWEEP_BASE_DIR, "eval_key": evaluation["key"]}
    except Exception as exc:  # the trials are worth running without their reference
        record.base = {"folder": layout.SWEEP_BASE_DIR, "eval_key": None, "error": failure(exc)}
        echo(f"warning: the base model's evaluation failed, the sweep goes on without it: {failure(exc)}")
    finally:
        release_memory()
    seconds = round(time.monotonic() - began, 2)
    record.base["eval_s"] = seconds
    count_evaluation(record, seconds, loads=1)
    layout.write_sweep(folder, record)
    return seconds


def _execute(
    specs: list[TrialSpec],
    slots: list[dict[str, str]],
    record: SweepRecord,
    folder: Path,
    echo: Callable[[str], None],
    lock: threading.RLock,
    ray_task: dict[str, Any] | None = None,
) -> Iterator[tuple[TrialSpec, Outcome]]:
    """Yield (spec, outcome) as trials finish: as Ray tasks, in this process one at a time, or in
    worker processes."""

    def running(spec: TrialSpec) -> None:
        with lock:
            mark_running(record, spec)
            layout.write_sweep(folder, record)

    if ray_task is not None:
        yield from sweep_ray.execute(specs, ray_task["resources"], ray_task["needs"], running, echo)
        return
    if len(slots) == 1 and not slots[0]:
        for spec in specs:
            running(spec)
            outcome = run_trial(spec, lambda line, name=spec.trial: echo(f"[{name}] {line}"))
            yield spec, outcome
            if outcome.status == Status.INTERRUPTED:
                raise KeyboardInterrupt
        return
    yield from execute_in_workers(specs, slots, running, echo)


def _lock(folder: Path):
    """An exclusive lock on the sweep folder: the open lock file, which releases it when closed (as the
    `with` block ends) or when this process ends however it ends."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / layout.SWEEP_LOCK).open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise WorkError(f"{folder}: another `atr sweep` is running this sweep; wait for it or stop it") from None
    return handle

"""`atr train --resume`: which run, from which checkpoint, and whether the config still trains the same.

A resumed run continues in its own folder from its newest whole checkpoint (`layout.checkpoints`),
with the config it started with: a key that changes what is trained (an AutoTrain field, a
training or data key, the data file's content) is refused with the keys named, unless `--force`.
run.json keeps one segment per process: when it started and stopped, why, from which step, and
the step of the checkpoint it left.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autotrain_runner import layout
from autotrain_runner.config.keys import KEYS
from autotrain_runner.config.records import Config
from autotrain_runner.errors import ConfigError
from autotrain_runner.layout import checkpoints
from autotrain_runner.layout.records import RunRecord, Status

# Keys that change how a run is saved, logged or shipped, not a step of its training: these may differ.
UNTRAINED = {
    "CHECKPOINT_EVERY",
    "SAVE_TOTAL_LIMIT",
    "EARLY_STOPPING",
    "KEEP_EPOCHS",
    "LOG",
    "LOGGING_STEPS",
    "MERGE_ADAPTER",
    "PUSH_TO_HUB",
    "USERNAME",
    "PROJECT_NAME",
    "DATA_FILE",  # its content is compared instead: the same file may be reached by another path
}
_TRAINING_GROUPS = ("autotrain", "training", "data")


def reopen(
    config: Config,
    run_id: str | None,
    force: bool,
    fresh: Callable[[Path], RunRecord],
    echo: Callable[[str], None],
) -> tuple[Path, RunRecord, str | None]:
    """The run to resume, its record reopened for a new segment (`fresh(run_dir)`: this process's
    record, whose runner, config and versions replace the old ones), and the checkpoint it continues from."""
    run_dir, settled = pick_run(config.project_dir, run_id)
    changed = changed_keys(settled, config)
    if changed and not force:
        raise ConfigError(
            f"run {run_dir.name}: {', '.join(changed)} changed since it started; a resumed run trains with "
            "its own config (--force resumes with the new one)"
        )
    record = RunRecord.from_json(layout.read_json(run_dir / layout.RUN_JSON))  # as written (`pick_run` read it)
    log = run_dir / layout.TRAIN_LOG  # its last write is when a killed process last said anything
    last_word = _stamp(log.stat().st_mtime) if log.is_file() else None
    checkpoint = start_from(run_dir / settled.output_dir, echo)
    saved = checkpoint.step if checkpoint else None
    record.close_segment(settled.status, settled.error, saved, record.ended_at or last_word or _stamp())
    if checkpoint is None:
        echo(f"run {run_dir.name}: no whole checkpoint, so it starts again from step 0 in its folder")
    else:
        where = f"step {checkpoint.step} of {checkpoint.max_steps}"
        echo(f"run {run_dir.name}: resuming from {where} ({checkpoint.path.name})")
    now = fresh(run_dir)
    # this process's; with --force, the config it now trains with
    record.runner, record.config, record.engine, record.argv = now.runner, now.config, now.engine, now.argv
    record.versions, record.git, record.cuda, record.notes = now.versions, now.git, now.cuda, now.notes
    if changed:
        record.notes = [*record.notes, f"resumed with --force: {', '.join(changed)} changed"]
    record.status, record.ended_at, record.error, record.pid = Status.RUNNING, None, None, None
    record.open_segment(_stamp(), from_step=saved or 0, changed=changed)
    return run_dir, record, str(checkpoint.path.relative_to(run_dir)) if checkpoint else None


def _stamp(seconds: float | None = None) -> str:
    when = datetime.now(UTC) if seconds is None else datetime.fromtimestamp(seconds, UTC)
    return when.isoformat(timespec="seconds")


def pick_run(project_dir: Path, run_id: str | None) -> tuple[Path, RunRecord]:
    """The named run, or the latest one that did not succeed; refused where there is nothing to resume."""
    if run_id is None:
        candidates = [r for r in layout.list_runs(project_dir) if r.status in (Status.INTERRUPTED, Status.FAILED)]
        if not candidates:
            raise ConfigError(f"{project_dir}: no interrupted or failed run to resume (atr runs lists them)")
        run_id = candidates[-1].id
    run_dir = layout.find_run(project_dir, run_id)
    record = layout.read_run(run_dir)
    if record is None or record.status == Status.DAMAGED:
        raise ConfigError(f"{record.error if record else run_dir}: the record is damaged, so it cannot be resumed")
    if record.status == Status.SUCCEEDED:
        raise ConfigError(f"run {run_id} succeeded: there is nothing to resume")
    if record.status == Status.RUNNING:
        raise ConfigError(f"run {run_id} is still running (trainer pid {record.pid}): stop it first")
    return run_dir, record


def changed_keys(record: RunRecord, config: Config) -> list[str]:
    """The keys whose value now differs from the run's and changes what it trains."""
    before = {_name(entry["key"]): entry.get("value") for entry in record.config if isinstance(entry, dict)}
    now = {_name(key): _plain(value) for key, value, _ in config.resolved_table()}
    changed = []
    for key in sorted(set(before) | set(now)):
        spec = KEYS.get(key)
        if key in UNTRAINED or (spec is not None and spec.group not in _TRAINING_GROUPS):
            continue
        if before.get(key) != now.get(key):
            changed.append(key)
    staged = record.data.get("sha256")
    if staged and config.data_file is not None:
        current = layout.sha256_file(config.data_file) if config.data_file.is_file() else None
        if current != staged:
            changed.append(f"DATA_FILE ({'its content changed' if current else 'missing'})")
    return changed


def _name(shown: str) -> str:
    return shown.split(" (as ")[0]  # "MODEL (as MODEL_NAME)": the key, written under a legacy name


def _plain(value: Any) -> Any:
    """A value as run.json holds it (JSON types)."""
    return json.loads(json.dumps(value, default=str))


def start_from(output_dir: Path, echo) -> checkpoints.Checkpoint | None:
    """The newest whole checkpoint; incomplete `checkpoint-N` folders (a save cut short) are removed."""
    for folder in checkpoints.incomplete(output_dir):
        echo(f"  removing {folder.name}: its save did not finish")
        shutil.rmtree(folder, ignore_errors=True)
    return checkpoints.latest(output_dir)

"""Run folders and their `run.json`: ids, creation, reading (a run whose processes are gone is
interrupted wherever it is read), and finding the run a command should use."""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import time
from pathlib import Path

from autotrain_runner.errors import ConfigError
from autotrain_runner.layout.files import read_json, write_json_atomic
from autotrain_runner.layout.names import RUN_JSON, RUNS_DIR
from autotrain_runner.layout.records import RecordError, RunRecord, Status


def new_run_id(digest: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{digest}"


# A run id names a folder inside the project's runs/: no path, no space, no newline, a sane length.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_run_id(run_id: str, option: str = "--run-id") -> str:
    if not _RUN_ID.fullmatch(run_id):
        shown = run_id if len(run_id) <= 60 else run_id[:57] + "..."
        raise ConfigError(
            f"{option} {shown!r}: a run id is 1-100 letters, digits, '.', '-' and '_', starting with a letter or digit"
        )
    return run_id


def create_run_dir(project_dir: Path, run_id: str | None, digest: str) -> Path:
    """A fresh run folder. A named run that exists is an error; a default id gets a suffix."""
    root = project_dir / RUNS_DIR
    if run_id is not None:
        check_run_id(run_id)
    root.mkdir(parents=True, exist_ok=True)
    if run_id is not None:
        try:
            (root / run_id).mkdir()
        except FileExistsError:
            raise ConfigError(f"{root / run_id}: run exists and is never overwritten; pick another --run-id") from None
        return root / run_id
    base = new_run_id(digest)
    for n in range(1, 100):
        candidate = root / (base if n == 1 else f"{base}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise ConfigError(f"{root}: could not find a free run id for {base}")


def read_run(run_dir: Path) -> RunRecord | None:
    """The run's record; a damaged one comes back with status "damaged" and an error naming the file,
    and a "running" one whose processes are gone as "interrupted" (`_settled`)."""
    data = read_json(run_dir / RUN_JSON)
    if data is None:
        return None
    try:
        return _settled(RunRecord.from_json(data))
    except RecordError as exc:
        return RunRecord(id=run_dir.name, status=Status.DAMAGED, output_dir="", error=f"{run_dir / RUN_JSON}: {exc}")


GONE = "its processes are gone without recording an end (killed, or the machine was taken back)"


def _settled(record: RunRecord) -> RunRecord:
    """A run still "running" whose runner and trainer processes are both gone on this host (kill -9,
    the machine taken back and restarted) is interrupted, wherever it is read. A run started on
    another host (a Ray node) is left as written: its processes cannot be seen from here."""
    runner = record.runner or {}
    if record.status != Status.RUNNING or not runner.get("pid") or runner.get("host") != socket.gethostname():
        return record
    if any(isinstance(pid, int) and process_alive(pid) for pid in (runner.get("pid"), record.pid)):
        return record
    return dataclasses.replace(record, status=Status.INTERRUPTED, error=record.error or GONE)


def process_alive(pid: int) -> bool:
    """Whether a process of this host runs with that pid (a zombie nobody reaped is gone)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: someone else's process
        return True
    except (OverflowError, ValueError):  # a pid no process can have
        return False
    try:  # a killed process nobody has reaped yet is a zombie: gone all the same (Linux)
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def write_run(run_dir: Path, record: RunRecord) -> None:
    """run.json; a field of the wrong type, or one no run record declares, fails here, not in a reader."""
    write_json_atomic(run_dir / RUN_JSON, RunRecord.checked(record.to_json()))


def list_runs(project_dir: Path) -> list[RunRecord]:
    root = project_dir / RUNS_DIR
    if not root.is_dir():
        return []
    records = []
    for run_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        record = read_run(run_dir) or RunRecord(id=run_dir.name, status="unknown (no run.json)", output_dir="")
        records.append(record)
    return sorted(records, key=lambda r: (r.started_at or "", r.id))  # sweep trials are named


def latest_succeeded(project_dir: Path) -> str | None:
    """The succeeded run that finished last. Ids sort by time only when they are the default
    ones: `--run-id` and sweep trials (`sweep-<id>-e2-r16-a32`) name runs otherwise."""
    done = [r for r in list_runs(project_dir) if r.status == Status.SUCCEEDED]
    if not done:
        return None
    return max(done, key=lambda r: (r.ended_at or "", r.id)).id


def succeeded_run(
    project_dir: Path, run_id: str | None, use: str, hint: str = "train first (atr train)"
) -> tuple[Path, RunRecord]:
    """The named run, or the succeeded one that finished last, for a command that needs a trained
    model (`use`: "evaluate", "push")."""
    if run_id is None:
        run_id = latest_succeeded(project_dir)
        if run_id is None:
            raise ConfigError(f"{project_dir}: no succeeded run to {use}; {hint}")
    run_dir = find_run(project_dir, run_id)
    record = read_run(run_dir)
    if record is not None and record.status == Status.DAMAGED:
        raise ConfigError(f"{record.error}; the record is damaged, so run {run_id} cannot be used to {use}")
    if record is None or record.status != Status.SUCCEEDED:
        status = record.status if record else None
        raise ConfigError(f"run {run_id} is {status}: only a succeeded run can be used to {use}")
    return run_dir, record


def find_run(project_dir: Path, run_id: str) -> Path:
    run_dir = project_dir / RUNS_DIR / check_run_id(run_id, "--run")
    if not (run_dir / RUN_JSON).is_file():
        known = ", ".join(r.id for r in list_runs(project_dir)) or "none yet"
        raise ConfigError(f"{project_dir / RUNS_DIR}: no run {run_id!r} (runs: {known})")
    return run_dir

"""What lies on disk: every folder and file name the commands write and read, in one place.

    PROJECT_DIR/
      runs/<run-id>/         run.json (what was asked, what happened), train.log, train_log.jsonl, params.json,
                             the staged data/, AutoTrain's output folder, and eval/ (atr eval)
      eval/base-<model>/     the base model's evaluation (atr eval --base / --compare-base)
      sweeps/<sweep-id>/     sweep.json, base/, trials/<trial>/ (each trial's evaluation),
                             leaderboard.csv, leaderboard.md, outputs.md, heatmap-*.png
      report.html            atr report
    datasets/<dataset-id>/   .atr-dataset, manifest.json, the train file, valid.jsonl, test.jsonl (atr data)

An evaluation folder holds metrics.json, predictions.jsonl and report.md, and prompts/ (the same
three for the listed prompts). Records are written atomically, a run's first with
`status: running`, so a crashed runner leaves a record a later command can recognise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from autotrain_runner.errors import ConfigError
from autotrain_runner.layout.records import Manifest, Metrics, RecordError, RunRecord, Status, SweepRecord

R = TypeVar("R", Metrics, SweepRecord, Manifest)

RUNS_DIR = "runs"
RUN_JSON = "run.json"
TRAIN_LOG = "train.log"
STAGED_DATA_DIR = "data"  # inside the run folder, which is AutoTrain's working directory
PARAMS_JSON = "params.json"  # the LLMTrainingParams fields the engine gets (never the token)
TRAIN_METRICS_JSON = "train_metrics.json"  # steps, seconds, tokens/s, peak memory (training.measure)
TRAIN_LOG_JSONL = "train_log.jsonl"  # every dict the trainer logged, one JSON line each (training.measure)
EVAL_DIR = "eval"
PROMPTS_DIR = "prompts"  # inside an evaluation folder: the listed prompts' evaluation
METRICS_JSON = "metrics.json"
PREDICTIONS_JSONL = "predictions.jsonl"
EVAL_REPORT_MD = "report.md"
COMPARE_MD = "compare.md"
SWEEPS_DIR = "sweeps"
SWEEP_JSON = "sweep.json"
TRIALS_DIR = "trials"
SWEEP_BASE_DIR = "base"  # the base model's evaluation, inside the sweep folder
SWEEP_LOCK = ".lock"  # held by the `atr sweep` that works on the folder
LEADERBOARD_CSV = "leaderboard.csv"
LEADERBOARD_MD = "leaderboard.md"
OUTPUTS_MD = "outputs.md"
MANIFEST_JSON = "manifest.json"
DATASET_MARKER = ".atr-dataset"  # in every dataset folder `atr data` made
VALID_JSONL = "valid.jsonl"
TEST_JSONL = "test.jsonl"
TRAIN_EVAL_JSONL = "train-eval.jsonl"  # the training split in valid/test's shape, for `atr eval --split train`
DATASET_FILES = frozenset(
    {DATASET_MARKER, MANIFEST_JSON, "train.csv", "train.jsonl", VALID_JSONL, TEST_JSONL, TRAIN_EVAL_JSONL, "pairs.json"}
)
REPORT_HTML = "report.html"


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temp file beside `path` to write; renamed onto `path` when the block ends without an
    error, removed otherwise. A reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_file_beside(path)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _new_file_beside(path: Path) -> str:
    """A new, empty file with a name of its own beside `path`, made with mode 0666 less the umask, as
    any new file is (mkstemp's 0600 would keep a report from the people it is for)."""
    while True:
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def number(value: Any) -> str:
    """The one way a measured figure reads in a table, the report and the card: 4 significant
    digits; a missing figure is blank, a flag that is set reads "yes"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def sha256_file(path: Path) -> str:
    """A file's sha256, read in 1 MiB chunks (training files and corpora run to hundreds of MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def config_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:6]


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


def read_json(path: Path) -> dict[str, Any] | None:
    """A record written by write_json_atomic, or None when there is none (or it is not JSON)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


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


def write_run(run_dir: Path, record: dict[str, Any]) -> None:
    write_json_atomic(run_dir / RUN_JSON, RunRecord.checked(record))


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


def run_eval_dir(run_dir: Path) -> Path:
    return run_dir / EVAL_DIR


def base_eval_dir(project_dir: Path, model_spec: str) -> Path:
    return project_dir / EVAL_DIR / ("base-" + re.sub(r"[^A-Za-z0-9._-]+", "-", model_spec).strip("-"))


def sweep_dir(project_dir: Path, sweep_id: str) -> Path:
    return project_dir / SWEEPS_DIR / sweep_id


def trial_eval_dir(folder: Path, trial: str) -> Path:
    """A trial's evaluation lives in the sweep, so a later `atr eval --run` cannot replace it."""
    return folder / TRIALS_DIR / trial


def _read(path: Path, record: type[R]) -> R | None:
    """The typed record in the file; None where there is none, or it is not that record."""
    data = read_json(path)
    try:
        return record.from_json(data) if data is not None else None
    except RecordError:
        return None


def read_metrics(eval_dir: Path) -> Metrics | None:
    """An evaluation's figures; None where there is none, or the file is not a metrics record."""
    return _read(eval_dir / METRICS_JSON, Metrics)


def write_metrics(eval_dir: Path, figures: dict[str, Any]) -> None:
    write_json_atomic(eval_dir / METRICS_JSON, Metrics.checked(figures))


def read_sweep(folder: Path) -> SweepRecord | None:
    return _read(folder / SWEEP_JSON, SweepRecord)


def write_sweep(folder: Path, record: dict[str, Any]) -> None:
    write_json_atomic(folder / SWEEP_JSON, SweepRecord.checked(record))


def read_sweeps(project_dir: Path) -> list[SweepRecord]:
    root = project_dir / SWEEPS_DIR
    if not root.is_dir():
        return []
    found = [read_sweep(p) for p in sorted(root.iterdir()) if p.is_dir()]
    return [r for r in found if r]


def read_manifest(dataset_dir: Path) -> Manifest | None:
    return _read(dataset_dir / MANIFEST_JSON, Manifest)


def write_manifest(dataset_dir: Path, manifest: dict[str, Any]) -> None:
    write_json_atomic(dataset_dir / MANIFEST_JSON, Manifest.checked(manifest))


def trial_evaluation(project_dir: Path, run_id: str) -> Path | None:
    """Where a sweep evaluated the run, when a sweep trained it (`sweeps/<id>/trials/<trial>/`)."""
    for record in read_sweeps(project_dir):
        for entry in record.entries():
            if entry.run_id == run_id and entry.status == Status.SUCCEEDED:
                return trial_eval_dir(sweep_dir(project_dir, record.id), entry.trial)
    return None


def run_evaluation(run_dir: Path) -> Path | None:
    """The run's own evaluation (`atr eval`), else the one its sweep made, else None."""
    if (run_eval_dir(run_dir) / METRICS_JSON).is_file():
        return run_eval_dir(run_dir)
    return trial_evaluation(run_dir.parent.parent, run_dir.name)

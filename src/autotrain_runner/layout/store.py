"""The typed records of metrics.json, sweep.json and manifest.json, read and written, and where a
run's evaluation is."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from autotrain_runner.layout.checkpoints import EPOCH_DIR
from autotrain_runner.layout.files import read_json, write_json_atomic
from autotrain_runner.layout.names import (
    MANIFEST_JSON,
    METRICS_JSON,
    SWEEP_JSON,
    SWEEPS_DIR,
    run_eval_dir,
    sweep_dir,
    trial_eval_dir,
)
from autotrain_runner.layout.records import Manifest, Metrics, RecordError, Status, SweepRecord

R = TypeVar("R", Metrics, SweepRecord, Manifest)


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


def write_sweep(folder: Path, record: SweepRecord) -> None:
    write_json_atomic(folder / SWEEP_JSON, SweepRecord.checked(record.to_json()))


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


def trial_evaluation(project_dir: Path, run_id: str, epoch: int | None = None) -> Path | None:
    """Where a sweep evaluated the run (`sweeps/<id>/trials/<trial>/`), when a sweep trained it: its
    final adapter, or with `epoch` the adapter it kept then (a checkpoint trial, SWEEP_EPOCHS_FROM)."""
    for record in read_sweeps(project_dir):
        for entry in record.entries():
            kept = entry.schedule is not None  # a checkpoint trial: the run at one of its epochs
            if entry.run_id != run_id or entry.status != Status.SUCCEEDED or kept != (epoch is not None):
                continue
            if epoch is None or entry.epochs == epoch:
                return trial_eval_dir(sweep_dir(project_dir, record.id), entry.trial)
    return None


def run_evaluation(run_dir: Path, epoch: int | None = None) -> Path | None:
    """The run's own evaluation (`atr eval`, with `epoch`: `atr eval --epoch`), else the one its sweep
    made, else None."""
    own = run_eval_dir(run_dir) / (EPOCH_DIR.format(epoch) if epoch is not None else "")
    if (own / METRICS_JSON).is_file():
        return own
    return trial_evaluation(run_dir.parent.parent, run_dir.name, epoch)

"""`atr report`: one self-contained `report.html` for a project.

Reads what the other commands left on disk (run.json, eval folders, sweep.json and its plots),
never recomputes a metric, and embeds every image as a data URI, so the file can be mailed or
copied off a rented GPU alone. No script runs in it. Written atomically.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autotrain_runner import layout, plots
from autotrain_runner.config.files import find_env_file
from autotrain_runner.config.load import load_config
from autotrain_runner.layout import figures as figure_table
from autotrain_runner.layout import outputs
from autotrain_runner.layout.records import RunRecord, SweepRecord
from autotrain_runner.redact import Redactor
from autotrain_runner.sweep.results import (
    CHECKPOINT_NOTE,
    leaderboard,
    read_evals,
    score_rule,
    shown_metrics,
    trial_evals,
)

PAIR_FIGURES = figure_table.pair_figures()  # shown where an eval has one
EVAL_FIGURES = ("n", *figure_table.names(figure_table.REPORT))
SIDE_BY_SIDE = 20


def report(project: Path | str, out: Path | None = None) -> Path:
    env_file = find_env_file(Path(project))
    config = load_config(env_file)
    project_dir = config.project_dir
    default = project_dir / layout.REPORT_HTML
    if out is not None:
        outputs.check_output(out, "an HTML report", outputs.html_report, default=default)
    target = out or default
    run_records = layout.list_runs(project_dir)
    page = {
        "project": config.display_name,
        "env_file": str(env_file),
        "model": config.model.spec,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": [_run_row(r) for r in run_records],
        "loss_chart": _loss_chart(project_dir, run_records, target.parent),
        "sweeps": [  # the latest first
            _sweep(project_dir, r)
            for r in sorted(layout.read_sweeps(project_dir), key=lambda r: r.updated_at or "")[::-1]
        ],
        "evaluations": _evaluations(project_dir),
        "font_note": plots.font_note(),
    }
    page["eval_columns"] = [
        k
        for k in EVAL_FIGURES
        if k not in PAIR_FIGURES or any(e["figures"][k] is not None for e in page["evaluations"])
    ]
    page["comparison"] = _comparison(project_dir, page["evaluations"])
    page["short"] = {  # per column: models beside models, adapters beside adapters
        key: short_paths([e["signature"].get(key) for e in page["evaluations"]]) for key in ("model", "adapter")
    }
    # run.json, predictions and sweeps are shown as written: no token shape or configured secret
    # in them reaches the page
    layout.write_text_atomic(target, _render(_masked(page, Redactor(config.secrets()))))
    return target


# --- what is shown


def _run_row(record: RunRecord) -> dict[str, Any]:
    params = record.params
    return {
        "id": record.id,
        "status": record.status,
        "started": record.started_at,
        "duration_s": record.duration_s,
        "epochs": params.get("epochs"),
        "lora_r": params.get("lora_r"),
        "lora_alpha": params.get("lora_alpha"),
        "lr": params.get("lr"),
        "train_loss": record.train_loss,
        "eval_loss": record.eval_loss,
        "error": (record.error or "")[-300:],
    }


def loss_curves(records: list[RunRecord]) -> dict[str, tuple[list[float], list[float]]]:
    """Label -> (epochs, losses): each run's training loss, and its held-out loss when it has one."""
    curves = {}
    for record in records:
        train = _points(record.loss_epochs, record.loss_history)
        if train[1]:
            curves[f"{record.id} train"] = train
        held_out = _points(record.eval_loss_epochs, record.eval_loss_history)  # once an epoch
        if held_out[1]:
            curves[f"{record.id} eval"] = held_out
    return curves


def _points(xs: list[Any], ys: list[Any]) -> tuple[list[float], list[float]]:
    """The finite (x, y) pairs of a run.json history; x counts from 1 when the xs do not match the
    ys. A hand-edited or damaged history draws what is left of it, and never stops the report."""
    if len(xs) != len(ys):
        xs = list(range(1, len(ys) + 1))
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if _finite(x) and _finite(y)]
    return [float(x) for x, _ in pairs], [float(y) for _, y in pairs]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _loss_chart(project_dir: Path, records: list[RunRecord], scratch: Path) -> str | None:
    relogged = [
        dataclasses.replace(r, **_relogged(project_dir / layout.RUNS_DIR / r.id))
        if r.loss_history and not r.loss_epochs
        else r
        for r in records
    ]
    curves = loss_curves(relogged)
    if not curves:
        return None
    path = plots.lines(
        scratch / f".{layout.REPORT_HTML}.loss.png",
        f"training and eval loss of every run: {project_dir.name}",
        curves,
        "epoch",
        "loss",
    )
    try:
        return _data_uri(path)
    finally:
        path.unlink(missing_ok=True)


def _relogged(run_dir: Path) -> dict[str, Any]:
    """Loss by epoch for a run recorded before run.json kept the epochs: read again from its log."""
    from autotrain_runner.training.train import losses_from_log

    log = run_dir / layout.TRAIN_LOG
    return losses_from_log(log.read_text(encoding="utf-8", errors="replace")) if log.is_file() else {}


def _sweep(project_dir: Path, record: SweepRecord) -> dict[str, Any]:
    folder = layout.sweep_dir(project_dir, record.id)
    evals = {e.trial: trial_evals(project_dir, folder, record, e) for e in record.entries()}
    base = read_evals(folder / layout.SWEEP_BASE_DIR, record) if record.base.get("eval_key") else {}
    rows = leaderboard(record, evals)
    columns = [("base", base)] + [(row["trial"], evals.get(row["trial"], {})) for row in rows]
    return {
        "id": record.id,
        "status": record.status,
        "grid": record.grid,
        "timing": record.timing,
        "rule": score_rule(record),
        "rows": rows,
        "columns": shown_metrics(record),
        "checkpoint_note": CHECKPOINT_NOTE if any(row.get("schedule") for row in rows) else None,
        "base": base["split"].to_json() if base.get("split") else {},
        "images": [(p.stem, _data_uri(p)) for p in sorted(folder.glob("[!.]*.png"))],
        "outputs": _side_by_side(columns, "prompts_predictions", None)
        + _side_by_side(columns, "split_predictions", SIDE_BY_SIDE),
        "names": [name for name, _ in columns],
    }


def _side_by_side(columns: list[tuple[str, dict[str, Any]]], kind: str, limit: int | None) -> list[dict[str, Any]]:
    by_model = {name: {p["id"]: p for p in found.get(kind, [])} for name, found in columns}
    ids = list(dict.fromkeys(i for predictions in by_model.values() for i in predictions))
    items = []
    for sample_id in ids[:limit] if limit else ids:
        first = next(p[sample_id] for p in by_model.values() if sample_id in p)
        items.append(
            {
                "id": sample_id,
                "request": first.get("request") or first.get("prompt", ""),
                "reference": first.get("reference"),
                "answers": [(name, by_model[name].get(sample_id)) for name, _ in columns],
            }
        )
    return items


def _evaluations(project_dir: Path) -> list[dict[str, Any]]:
    """Every metrics.json under the project: runs' evals, base evals, sweeps' base evals."""
    found = []
    for metrics_file in sorted(project_dir.glob(f"**/{layout.METRICS_JSON}")):
        folder = metrics_file.parent
        figures = layout.read_metrics(folder)
        if not figures or not figures.signature:
            continue
        found.append(
            {
                "where": str(folder.relative_to(project_dir)),
                "figures": {k: figures.figure(k) for k in EVAL_FIGURES},
                "cosine_method": figures.cosine_method,
                "signature": figures.signature,
                "predictions": folder / layout.PREDICTIONS_JSONL,
            }
        )
    return found


def _comparison(project_dir: Path, evaluations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The latest run's test-split answers beside its base model's (`atr eval --compare-base`)."""
    latest = layout.latest_succeeded(project_dir)
    record = layout.read_run(project_dir / layout.RUNS_DIR / latest) if latest else None
    if not record:
        return None
    by_folder = {e["where"]: e for e in evaluations}
    run_eval = by_folder.get(str(layout.run_eval_dir(Path(layout.RUNS_DIR) / latest)))
    base_dir = layout.base_eval_dir(project_dir, record.model_spec)
    base_eval = by_folder.get(str(base_dir.relative_to(project_dir)))
    if run_eval is None or base_eval is None:
        return None
    columns = [(base_eval["where"], _predictions(base_eval)), (run_eval["where"], _predictions(run_eval))]
    return {
        "names": [name for name, _ in columns],
        "items": _side_by_side(columns, "split_predictions", SIDE_BY_SIDE),
    }


def _predictions(evaluation: dict[str, Any]) -> dict[str, Any]:
    path: Path = evaluation["predictions"]
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines()
    return {"split_predictions": [json.loads(line) for line in lines if line.strip()]}


def short_paths(values: list[Any]) -> dict[str, str]:
    """Each absolute path among `values`, cut to what tells it from the others: the components from
    the first one in which they differ (the last component at least), after an ellipsis. A cache
    folder shared by every model and a project folder shared by every adapter are not repeated in
    each cell; the page shows the whole path on hover."""
    paths = sorted({v for v in values if isinstance(v, str) and v.startswith("/")})
    if not paths:
        return {}
    parts = [Path(p).parts for p in paths]
    shared = len(Path(os.path.commonpath(paths)).parts) if len(paths) > 1 else len(parts[0])
    shown = {}
    for path, pieces in zip(paths, parts, strict=True):
        start = min(shared, len(pieces) - 1)
        shown[path] = ("…/" if start > 0 else "") + "/".join(pieces[start:]).removeprefix("//")
    return shown


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


# --- the page


def _masked(value: Any, redact: Redactor) -> Any:
    if isinstance(value, str):
        return value if value.startswith("data:image/") else redact(value)
    if isinstance(value, dict):
        return {key: _masked(item, redact) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item, redact) for item in value]
    return value


def _render(page: dict[str, Any]) -> str:
    import jinja2

    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True)
    environment.filters["num"] = layout.number
    environment.filters["flags"] = lambda p: ", ".join(k for k, on in (p or {}).get("flags", {}).items() if on)
    template = (Path(__file__).parent / "report.html.j2").read_text(encoding="utf-8")
    return environment.from_string(template).render(**page)

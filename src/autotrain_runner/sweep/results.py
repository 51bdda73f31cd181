"""What a sweep leaves to read: the leaderboard, every output side by side, and the plots.

The score (documented in `SCORE_RULE`): the trials that succeeded are ranked by `SWEEP_METRIC` on
the test split (chrF by default, higher is better; `valid_loss` lower is better). A trial whose
template-leak or repetition rate, on the test split or the prompt list, is above
`SWEEP_FLAG_LIMIT` is *flagged* and ranks below every clean trial, whatever its score. Trials
that did not succeed are listed last, with what is missing and why. The first row is the best.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from autotrain_runner import layout, plots
from autotrain_runner.config.records import Config
from autotrain_runner.evaluation.evaluate import md_cell
from autotrain_runner.layout import figures as figure_table
from autotrain_runner.layout.records import Metrics, Status, SweepRecord, TrialEntry

SCORE_RULE = (
    "Ranked by {metric} on the test split ({direction}). A trial whose template-leak or repetition rate "
    "(test split or prompt list) is above {limit:g} is flagged and ranks below every clean trial. "
    "Trials that did not succeed come last. ★ marks the best."
)
CHECKPOINT_NOTE = (
    "‡ epoch k of a K-epoch schedule (SWEEP_EPOCHS_FROM=checkpoints): the adapter of the K-epoch trial's run "
    "at epoch k, evaluated as its own row; its learning rate had not decayed as a k-epoch run's would."
)
METRICS = {
    f.name: (f.label, f.lower_is_better) for f in figure_table.shown_in(figure_table.LEADERBOARD)
}  # ranked or flagged by
COLUMNS = (
    "rank",
    "best",
    "trial",
    "epochs",
    "schedule",
    "lora_r",
    "lora_alpha",
    "lr",
    "status",
    "score",
    *figure_table.names(figure_table.LEADERBOARD),
    "eos_rate",
    "prompt_leak_rate",
    "prompt_repetition_rate",
    "flagged",
    "train_loss",
    "train_s",
    "eval_s",
    "run_id",
    "error",
)
SIDE_BY_SIDE_SPLIT_SAMPLES = 20


def write_results(config: Config, folder: Path, record: SweepRecord) -> list[Path]:
    """Leaderboard (csv, md), outputs side by side (md) and the plots, from what is on disk."""
    evals = {entry.trial: trial_evals(config.project_dir, folder, record, entry) for entry in record.entries()}
    base = read_evals(folder / layout.SWEEP_BASE_DIR, record) if record.base.get("eval_key") else {}
    rows = leaderboard(record, evals)
    written = [
        _write(folder / layout.LEADERBOARD_CSV, leaderboard_csv(rows)),
        _write(folder / layout.LEADERBOARD_MD, leaderboard_md(record, rows, base)),
        _write(folder / layout.OUTPUTS_MD, outputs_md(record, rows, evals, base)),
    ]
    written += _plots(config, folder, record, rows, base)
    return written


# --- reading the evaluations


def read_evals(eval_dir: Path, record: SweepRecord) -> dict[str, Any]:
    """{"split": Metrics, "prompts": Metrics, "split_predictions": [...], "prompt_predictions": [...]}."""
    split_dir = eval_dir if record.evaluation.get("split") else None
    prompts_dir = (
        (eval_dir / layout.PROMPTS_DIR if split_dir else eval_dir) if record.evaluation.get("prompts") else None
    )
    found: dict[str, Any] = {}
    for kind, where in (("split", split_dir), ("prompts", prompts_dir)):
        if where is None:
            continue
        found[kind] = layout.read_metrics(where)
        predictions = where / layout.PREDICTIONS_JSONL
        if predictions.is_file():
            found[f"{kind}_predictions"] = [
                json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines() if line.strip()
            ]
    return found


def trial_evals(project_dir: Path, folder: Path, record: SweepRecord, entry: TrialEntry) -> dict[str, Any]:
    """A trial's evaluation, when it was made with the sweep's current settings, and its run."""
    if entry.status != Status.SUCCEEDED or not entry.run_id or entry.eval_key != record.eval_key:
        return {}
    run_dir = project_dir / layout.RUNS_DIR / entry.run_id
    return {**read_evals(layout.trial_eval_dir(folder, entry.trial), record), "run": layout.read_run(run_dir)}


def figure(metrics: Metrics | None, name: str) -> Any:
    return metrics.figure(name) if metrics else None


# --- the leaderboard


def leaderboard(record: SweepRecord, evals: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    metric, limit = record.metric or "chrf", record.flag_limit or 0.0
    lower_is_better = METRICS[metric][1]
    rows = []
    for entry in record.entries():
        found = evals.get(entry.trial, {})
        split, listed, run = found.get("split"), found.get("prompts"), found.get("run")
        shown = ("trial", "epochs", "schedule", "lora_r", "lora_alpha", "lr", "status", "run_id", "error")
        row: dict[str, Any] = {
            **{k: getattr(entry, k) for k in shown},
            **{k: figure(split, k) for k in METRICS},  # every metric a sweep can rank by
            "eos_rate": figure(split, "eos_rate") if split else figure(listed, "eos_rate"),
            "prompt_leak_rate": figure(listed, "leak_rate"),
            "prompt_repetition_rate": figure(listed, "repetition_rate"),
            "train_loss": run.train_loss if run and not entry.schedule else None,  # a checkpoint: not its run's
            "train_s": entry.train_s,
            "eval_s": entry.eval_s,
        }
        done = entry.status == Status.SUCCEEDED
        if not split and not listed and done:
            row.update(status="not evaluated", error="no evaluation with the current settings; rerun the sweep")
            done = False
        rates = [row[k] for k in ("leak_rate", "repetition_rate", "prompt_leak_rate", "prompt_repetition_rate")]
        row["flagged"] = done and any(r is not None and r > limit for r in rates)
        score = row.get(metric) if done else None
        row["score"] = None if score is None or math.isnan(score) else score  # a diverged run scores nothing
        rows.append(row)

    def order(row: dict[str, Any]) -> tuple:
        missing = row["status"] != Status.SUCCEEDED
        score = row["score"]
        value = (score if lower_is_better else -score) if score is not None else float("inf")
        return (missing, row["flagged"], score is None, value, row["trial"])

    rows.sort(key=order)
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank if row["status"] == Status.SUCCEEDED else None
        row["best"] = rank == 1 and row["score"] is not None  # no score (a prompt list only): no winner
    return rows


def score_rule(record: SweepRecord) -> str:
    limit = record.flag_limit or 0.0
    if not record.evaluation.get("split"):
        return (
            "No test split: a prompt list gives outputs and flags, no score. Trials whose template-leak or "
            f"repetition rate is above {limit:g} are flagged and listed last; no trial is marked best."
        )
    label, lower = METRICS[record.metric or "chrf"]
    direction = "lower is better" if lower else "higher is better"
    return SCORE_RULE.format(metric=label, direction=direction, limit=limit)


def shown_metrics(record: SweepRecord) -> list[str]:
    """The metric columns of a sweep's tables: the preference figures only where they rank the trials."""
    preference = figure_table.pair_figures()
    return [m for m in METRICS if m not in preference or record.metric in preference]


def leaderboard_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in COLUMNS})
    return buffer.getvalue()


def leaderboard_md(record: SweepRecord, rows: list[dict[str, Any]], base: dict[str, Any]) -> str:
    shown = ("rank", "trial", "score", *shown_metrics(record))
    grid = record.grid
    out = [
        f"# Sweep {record.id}: {record.project}",
        "",
        f"Model `{record.model}`; grid: epochs {_list(grid['epochs'])}, LoRA rank "
        f"{_list(grid['lora_r'])}, alpha {grid['alpha']}, lr {_list(grid['lr'])}.",
        "",
        score_rule(record),
        "",
        "| " + " | ".join(shown) + " | flags |",
        "|" + "---|" * (len(shown) + 1),
    ]
    for row in rows:
        cells = [layout.number(row.get(k)) for k in shown]
        cells[1] = (f"★ **{row['trial']}**" if row["best"] else row["trial"]) + ("‡" if row.get("schedule") else "")
        out.append("| " + " | ".join(cells) + f" | {_flags(row)} |")
    if base.get("split") or base.get("prompts"):
        reference = base.get("split")
        cells = ["", "base (reference)", "", *[layout.number(figure(reference, k)) for k in shown[3:]]]
        out.append("| " + " | ".join(cells) + " |  |")
    if any(row.get("schedule") for row in rows):
        out += ["", CHECKPOINT_NOTE]
    missing = [row for row in rows if row["status"] != Status.SUCCEEDED]
    if missing:
        out += ["", "## Missing", ""]
        out += [f"- `{row['trial']}`: {row['status']}: {row.get('error') or 'not run yet'}" for row in missing]
    timing = record.timing
    if timing.get("overhead_s") is not None:
        out += [
            "",
            f"Sweep time {timing['total_s']:.1f} s, of which trials and evaluations {timing['work_s']:.1f} s; "
            f"overhead {timing['overhead_s']:.1f} s ({timing['overhead_pct']:.1f}%).",
        ]
    return "\n".join(out) + "\n"


def _flags(row: dict[str, Any]) -> str:
    if row["status"] != Status.SUCCEEDED:
        return f"missing ({row['status']})"
    names = {
        "leak_rate": "leak",
        "repetition_rate": "repetition",
        "prompt_leak_rate": "prompt leak",
        "prompt_repetition_rate": "prompt repetition",
    }
    found = [f"{label} {row[k]:.2f}" for k, label in names.items() if row.get(k)]
    return ("FLAGGED: " if row["flagged"] else "") + ", ".join(found)


# --- outputs side by side


def outputs_md(
    record: SweepRecord, rows: list[dict[str, Any]], evals: dict[str, dict[str, Any]], base: dict[str, Any]
) -> str:
    """Every prompt of the prompt list, and the first test samples, with each model's answer."""
    columns = [("base", base)] + [(row["trial"], evals.get(row["trial"], {})) for row in rows]
    out = [f"# Outputs side by side: sweep {record.id}", ""]
    for kind, title, limit in (
        ("prompts_predictions", "Prompt list", None),
        ("split_predictions", "Test split", SIDE_BY_SIDE_SPLIT_SAMPLES),
    ):
        samples = _samples(columns, kind)
        if not samples:
            continue
        shown = samples[:limit] if limit else samples
        more = f" (the first {len(shown)} of {len(samples)})" if len(shown) < len(samples) else ""
        out += [f"## {title}{more}", ""]
        for sample_id, sample in shown:
            out += [f"### {sample_id}", "", f"**Prompt:** {md_cell(_request(sample))}", ""]
            if sample.get("reference"):
                out += [f"**Reference:** {md_cell(sample['reference'])}", ""]
            out += ["| model | output | flags |", "|---|---|---|"]
            for name, found in columns:
                prediction = {p["id"]: p for p in found.get(kind, [])}.get(sample_id)
                if prediction is None:
                    out.append(f"| {name} | (none) | |")
                    continue
                raised = ", ".join(k for k, on in prediction["flags"].items() if on)
                out.append(f"| {name} | {md_cell(prediction['output'])} | {raised} |")
            out.append("")
    return "\n".join(out) + "\n"


def _samples(columns: list[tuple[str, dict[str, Any]]], kind: str) -> list[tuple[str, dict[str, Any]]]:
    seen: dict[str, dict[str, Any]] = {}
    for _, found in columns:
        for prediction in found.get(kind, []):
            seen.setdefault(prediction["id"], prediction)
    return list(seen.items())


def _request(prediction: dict[str, Any]) -> str:
    return prediction.get("request") or prediction.get("prompt", "")


# --- plots


def _plots(
    config: Config, folder: Path, record: SweepRecord, rows: list[dict[str, Any]], base: dict[str, Any]
) -> list[Path]:
    for old in [*folder.glob("heatmap-*.png"), folder / "valid-loss.png", folder / "train-loss.png"]:
        old.unlink(missing_ok=True)  # a chart for a metric no longer measured must not linger
    written = []
    grid = record.grid
    epochs = grid["epochs"]
    pairs = list(dict.fromkeys((t.lora_r, t.lora_alpha) for t in record.entries()))
    lrs = grid["lr"]
    by_cell = {(row["epochs"], row["lora_r"], row["lora_alpha"], row["lr"]): row for row in rows}
    title = f"{record.project} · sweep {record.id}"
    for metric, (label, lower) in METRICS.items():
        if all(row.get(metric) is None for row in rows):
            continue
        panels = {
            (f"lr {lr:g}" if len(lrs) > 1 else ""): [
                [_value(by_cell.get((e, r, a, lr)), metric) for r, a in pairs] for e in epochs
            ]
            for lr in lrs
        }
        written.append(
            plots.heatmap(
                folder / f"heatmap-{metric.replace('_', '-')}.png",
                f"{label}: {title}",
                [str(e) for e in epochs],
                [f"r{r}/a{a}" for r, a in pairs],
                panels,
                "epochs",
                "LoRA rank / alpha",
                lower_is_better=lower,
            )
        )
    valid = {}
    for r, a in pairs:
        for lr in lrs:
            points = [(e, by_cell.get((e, r, a, lr), {}).get("valid_loss")) for e in epochs]
            points = [(e, v) for e, v in points if v is not None]
            if points:
                name = f"r{r}/a{a}" + (f" lr {lr:g}" if len(lrs) > 1 else "")
                valid[name] = ([e for e, _ in points], [v for _, v in points])
    if valid:
        base_loss = figure(base.get("split"), "valid_loss")
        written.append(
            plots.lines(
                folder / "valid-loss.png",
                f"held-out loss by epochs (rising = overfitting): {title}",
                valid,
                "epochs",
                "held-out loss (answer tokens)",
                reference=("base model", base_loss) if base_loss is not None else None,
            )
        )
    curves = {}
    for row in rows:
        run = layout.read_run(config.project_dir / layout.RUNS_DIR / str(row["run_id"])) if row["run_id"] else None
        if run and run.loss_history:
            xs = run.loss_epochs or list(range(1, len(run.loss_history) + 1))
            curves[row["trial"]] = (xs, run.loss_history)
    if curves:
        written.append(plots.lines(folder / "train-loss.png", f"training loss: {title}", curves, "epoch", "loss"))
    return written


def _value(row: dict[str, Any] | None, metric: str) -> float | None:
    if row is None or row["status"] != Status.SUCCEEDED:
        return None
    return row.get(metric)


# --- formatting


def _list(values: list[Any]) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def _write(path: Path, text: str) -> Path:
    layout.write_text_atomic(path, text)
    return path

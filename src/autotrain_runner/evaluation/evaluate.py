"""`atr eval`: base or fine-tuned, on a held-out split or a prompt list, with Korean-fit metrics.

Reads top to bottom: what to evaluate (a run's adapter and recorded template, or the base model
with the project's template: `targets`) -> the engine that generates (`engines`) -> the samples
-> batched generation -> per-sample metrics and flags -> corpus metrics with a signature ->
held-out loss on the valid split -> files written atomically (`predictions.jsonl`,
`metrics.json`, `report.md`; `compare.md` with --compare-base).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from autotrain_runner import layout, progress, versions
from autotrain_runner.config.load import load_config
from autotrain_runner.config.records import Config
from autotrain_runner.data import secret_values
from autotrain_runner.errors import ConfigError
from autotrain_runner.evaluation import metrics, preference
from autotrain_runner.evaluation.prompts import read_prompts
from autotrain_runner.evaluation.targets import (
    base_target,
    generation_settings,
    leak_markers,
    openai_markers,
    prompts_path,
    render_prompt,
    run_target,
)
from autotrain_runner.generation.engine import Engine, openai_backend
from autotrain_runner.generation.generate import Generated, Settings
from autotrain_runner.generation.openai_backend import OpenAIBackend
from autotrain_runner.generation.target import Target
from autotrain_runner.layout import figures as figure_table


def evaluate(
    project: Path | str,
    overrides: Sequence[str] = (),
    run_id: str | None = None,
    base: bool = False,
    split: str = "test",
    prompts_file: Path | None = None,
    limit: int | None = None,
    out: Path | None = None,
    compare_base: bool = False,
    backend: str = "hf",
    engine: str | None = None,
    echo: Callable[[str], None] = print,
    epoch: int | None = None,
) -> list[dict[str, Any]]:
    config = load_config(project, overrides)
    if backend == "openai":
        openai_backend(config)  # the URL is checked before anything is loaded
    try:  # fail before loading a model when the BLEU tokenizer cannot work here
        from sacrebleu.metrics import BLEU

        BLEU(tokenize=config.get("BLEU_TOKENIZE"))
    except Exception as exc:  # sacrebleu raises several kinds for an unknown or uninstalled tokenizer
        raise ConfigError(
            f"{config.env_file}: BLEU_TOKENIZE={config.get('BLEU_TOKENIZE')}: {exc} "
            "(ko-mecab needs: pip install 'sacrebleu[ko]')"
        ) from None
    targets = [base_target(config, out)] if base else [run_target(config, run_id, out, epoch)]
    # every input read and checked before a model or an engine starts
    samples = _samples(config, split, prompts_file, limit)
    if targets[0].trainer == "reward":  # scores held-out pairs; nothing to generate, no base to compare
        if not preference.pairs_of(samples):
            raise ConfigError(f"{split} split: no preference pairs to score the reward model on (build with atr data)")
        return [preference.evaluate_reward(config, targets[0], samples, echo)]
    if prompts_file is None and prompts_path(config) is not None:
        _samples(config, split, prompts_path(config), limit)
    if compare_base and not base:
        targets.append(base_target(config, None))
    with Engine(config, targets, backend, engine, echo) as generators:
        results = evaluate_targets(config, targets, generators, split, prompts_file, limit, echo)
    if len(results) == 2:
        for kind in ("split", "prompts"):
            if all(r[kind] is not None for r in results):
                shown = [
                    t if kind == "split" else dataclasses.replace(t, out_dir=t.out_dir / layout.PROMPTS_DIR)
                    for t in targets
                ]
                _write_comparison(shown, [r[kind] for r in results])
                echo(f"wrote {shown[0].out_dir / layout.COMPARE_MD}")
    return [r["split"] for r in results]


# --- generation and metrics


def evaluate_targets(
    config: Config,
    targets: Sequence[Target],
    engine: Engine,
    split: str = "test",
    prompts_file: Path | None = None,
    limit: int | None = None,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Each target on the split (with the held-out loss on the valid split), then on EVAL_PROMPTS;
    one `Engine` for all of them (with vLLM: one base-model load). Per target: {"split": figures,
    "prompts": figures or None}."""
    samples = _samples(config, split, prompts_file, limit)
    valid = _samples(config, "valid", None, limit) if prompts_file is None and split != "valid" else []
    settings = generation_settings(config)
    listed = prompts_path(config) if prompts_file is None else None
    listed_samples = _samples(config, split, listed, limit) if listed is not None else []
    results = []
    for target in targets:
        backend = engine.backend(target)
        echo(f"evaluating {target.label} on {len(samples)} samples ({prompts_file or split}; engine {engine.kind})")
        result = {"split": _evaluate_one(config, target, samples, valid, settings, backend, echo), "prompts": None}
        echo(f"wrote {target.out_dir}")
        if listed is not None:  # the qualitative list, beside the split
            listed_target = dataclasses.replace(target, out_dir=target.out_dir / layout.PROMPTS_DIR)
            echo(f"evaluating {target.label} on {len(listed_samples)} samples ({listed}; engine {engine.kind})")
            result["prompts"] = _evaluate_one(config, listed_target, listed_samples, [], settings, backend, echo)
            echo(f"wrote {listed_target.out_dir}")
        results.append(result)
        engine.release(backend)
    return results


def _samples(config: Config, split: str, prompts_file: Path | None, limit: int | None) -> list[dict[str, Any]]:
    """The held-out split (id, messages, reference) or a prompt list (no reference)."""
    if prompts_file is not None:
        return evenly(read_prompts(Path(prompts_file), secret_values(config)), limit)
    name = layout.TRAIN_EVAL_JSONL if split == "train" else f"{split}.jsonl"
    path = config.dataset_dir / name
    if not path.is_file():
        rebuild = " (a dataset built before this file existed: `atr data --force`)" if split == "train" else ""
        raise ConfigError(
            f"{path}: no {split} split{rebuild}; build it with `atr data` (DATA_BUILDER) or pass --prompts"
        )
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return evenly(items, limit)


def evenly(items: list[Any], limit: int | None) -> list[Any]:
    """`limit` items spread evenly over the list (first, last and between), in their order; all without one."""
    if not limit or limit >= len(items):
        return items
    if limit == 1:
        return items[:1]
    step = (len(items) - 1) / (limit - 1)
    return [items[round(i * step)] for i in range(limit)]


def _evaluate_one(
    config: Config,
    target: Target,
    samples: list[dict[str, Any]],
    valid: list[dict[str, Any]],
    settings: Settings,
    backend,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    if isinstance(backend, OpenAIBackend):
        # the server renders the template: the prompt shown is the conversation itself
        prompts = [json.dumps(s["messages"], ensure_ascii=False) for s in samples]
        started = time.perf_counter()
        with progress.meter(len(samples), target.label, "samples", echo) as meter:
            outputs = backend.generate_messages([s["messages"] for s in samples], settings, progress=meter)
        markers = openai_markers(target.template)
    else:
        prompts = [render_prompt(backend, s["messages"]) for s in samples]
        started = time.perf_counter()
        with progress.meter(len(samples), target.label, "samples", echo) as meter:
            outputs = backend.generate(prompts, settings, backend.stop_strings(), progress=meter)
        markers = leak_markers(backend, target.template)
    seconds = time.perf_counter() - started
    predictions = [_per_sample(s, p, o, markers) for s, p, o in zip(samples, prompts, outputs, strict=True)]
    scored = [p for p in predictions if p["reference"] is not None]
    figures: dict[str, Any] = {
        "n": len(predictions),
        "seconds": round(seconds, 2),
        "samples_per_s": round(len(predictions) / seconds, 3) if seconds else None,
    }
    if scored:
        hyps, refs = [p["output"] for p in scored], [p["reference"] for p in scored]
        figures.update(metrics.corpus_scores(hyps, refs, config.get("BLEU_TOKENIZE")))
        cosines, method = _cosine(hyps, refs, config.get("EMBEDDING_MODEL"))
        for p, c in zip(scored, cosines, strict=True):
            p["metrics"]["cosine"] = c
        figures.update({"cosine": metrics.mean(cosines), "cosine_method": method})
    outs = [p["output"] for p in predictions]
    figures.update(
        {
            "rep_2": metrics.mean([p["metrics"]["rep_2"] for p in predictions]),
            "rep_4": metrics.mean([p["metrics"]["rep_4"] for p in predictions]),
            "distinct_2": metrics.distinct_n(outs, 2),
            **{
                f"{flag}_rate": metrics.mean([float(p["flags"][flag]) for p in predictions])
                for flag in ("leak", "repetition", "empty", "echo")
            },
            "eos_rate": metrics.mean([float(not p["flags"]["no_eos"]) for p in predictions]),
            "mean_chars": metrics.mean([len(o) for o in outs]),
        }
    )
    if valid and not isinstance(backend, OpenAIBackend):
        figures.update(_held_out_loss(backend, valid))
    pairs = preference.pairs_of(samples)
    if pairs and not isinstance(backend, OpenAIBackend):
        margins = preference.log_prob_margins(backend, pairs)
        figures.update(preference.figures(margins.values(), "pref"))
        for row in predictions:
            if row["id"] in margins:
                row["metrics"]["pref_margin"] = margins[row["id"]]
    figures["signature"] = {
        **backend.description,
        "template": target.template.describe(),
        "generation": settings.describe(),
        "scales": {"chrf": "0-100 (sacrebleu)", "bleu": "0-100 (sacrebleu)", "cosine": "-1..1", "rates": "0-1"},
        "versions": versions.of(("autotrain-runner", "sacrebleu", "transformers", "peft", "torch")),
    }
    _write_outputs(target.out_dir, predictions, figures, target)
    return figures


def _per_sample(sample: dict[str, Any], prompt: str, output: Generated, markers: list[str]) -> dict[str, Any]:
    text = output.text
    request = sample["messages"][-1]["content"] if sample["messages"] else ""
    leaked = metrics.leaks(text, markers)
    row = {
        "id": sample["id"],
        "prompt": prompt,
        "request": request,
        "reference": sample.get("reference"),
        "output": text,
        "metrics": {
            "rep_2": metrics.rep_n(text, 2),
            "rep_4": metrics.rep_n(text, 4),
            "chars": len(text),
            "new_tokens": output.new_tokens,
        },
        "flags": {
            "leak": bool(leaked),
            "repetition": metrics.repeats(text),
            "empty": not text.strip(),
            "no_eos": not output.finished,
            "echo": metrics.echoes(text, request),
        },
    }
    if leaked:
        row["leaked"] = leaked
    if sample.get("reference") is not None:
        row["metrics"]["chrf"] = metrics.sentence_chrf(text, sample["reference"])
    return row


def _cosine(hyps: list[str], refs: list[str], model_name: str | None) -> tuple[list[float], str]:
    reason = "EMBEDDING_MODEL not set"
    if model_name:
        try:
            from sentence_transformers import SentenceTransformer

            encoder = SentenceTransformer(model_name, device="cpu")
            a = encoder.encode(hyps, normalize_embeddings=True, convert_to_numpy=True)
            b = encoder.encode(refs, normalize_embeddings=True, convert_to_numpy=True)
            return [round(float(x @ y), 4) for x, y in zip(a, b, strict=True)], f"embedding:{model_name}"
        except Exception as exc:  # offline, missing, or not a sentence-transformers model
            reason = f"{model_name} could not be loaded offline ({type(exc).__name__})"
    return metrics.tfidf_cosine(hyps, refs), f"tfidf-char-2-4 ({reason})"


def _held_out_loss(backend, valid: list[dict[str, Any]]) -> dict[str, Any]:
    """Teacher-forced loss of the reference answers only: the overfitting signal AutoTrain drops."""
    spans = [backend.answer_ids(s["messages"], s["reference"]) for s in valid]
    total, count = backend.answer_loss([span for span in spans if span is not None])
    if not count:
        return {}
    mean_loss = total / count
    return {"valid_loss": round(mean_loss, 4), "perplexity": round(math.exp(mean_loss), 3), "valid_n": len(valid)}


# --- files


def _write_outputs(out_dir: Path, predictions: list[dict[str, Any]], figures: dict[str, Any], target: Target) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    layout.write_text_atomic(
        out_dir / layout.PREDICTIONS_JSONL, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions)
    )
    layout.write_metrics(out_dir, figures)
    layout.write_text_atomic(out_dir / layout.EVAL_REPORT_MD, _report(target, predictions, figures))


_FIGURES = (*figure_table.names(figure_table.COMPARE), "n", "samples_per_s")  # the comparison's rows


def _report(target: Target, predictions: list[dict[str, Any]], figures: dict[str, Any]) -> str:
    lines = [
        f"# Evaluation: {target.label}",
        "",
        f"chrF and BLEU on sacrebleu's 0-100 scale (BLEU tokenize: {figures.get('bleu_tokenize', '-')}); "
        f"cosine: {figures.get('cosine_method', '-')}; rates are 0-1.",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {key} | {figures[key]} |" for key in _FIGURES if key in figures]

    def badness(p: dict[str, Any]) -> tuple[int, float]:
        return (sum(p["flags"].values()), -p["metrics"].get("chrf", 0.0))

    lines += ["", "## Worst samples", ""]
    for p in sorted(predictions, key=badness, reverse=True)[:5]:
        flags = ", ".join(k for k, v in p["flags"].items() if v) or "none"
        lines += [
            f"### {p['id']} (flags: {flags}; chrF {p['metrics'].get('chrf', '-')})",
            "",
            f"**prompt** {_quote(p['prompt'])}",
            "",
            f"**output** {_quote(p['output'])}",
            "",
        ]
        if p["reference"] is not None:
            lines += [f"**reference** {_quote(p['reference'])}", ""]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return "`" + text.replace("`", "'").replace("\n", " ⏎ ")[:400] + "`"


def _write_comparison(targets: list[Target], results: list[dict[str, Any]]) -> None:
    tuned, base = results
    out_dir = targets[0].out_dir
    lines = ["# Base vs fine-tuned", "", "| metric | base | fine-tuned | delta |", "|---|---|---|---|"]
    for key in _FIGURES:
        if isinstance(tuned.get(key), int | float) and isinstance(base.get(key), int | float):
            lines.append(f"| {key} | {base[key]} | {tuned[key]} | {round(tuned[key] - base[key], 4):+} |")
    tuned_rows = _read_predictions(out_dir)
    base_rows = {p["id"]: p for p in _read_predictions(targets[1].out_dir)}
    lines += ["", "## Outputs", "", "| id | base | fine-tuned | reference |", "|---|---|---|---|"]
    for p in tuned_rows:
        b = base_rows.get(p["id"], {})
        lines.append(
            f"| {p['id']} | {md_cell(b.get('output', ''))} | {md_cell(p['output'])} | "
            f"{md_cell(p.get('reference') or '')} |"
        )
    layout.write_text_atomic(out_dir / layout.COMPARE_MD, "\n".join(lines) + "\n")


def _read_predictions(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / layout.PREDICTIONS_JSONL).read_text(encoding="utf-8").splitlines()]


def md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ⏎ ")[:200]

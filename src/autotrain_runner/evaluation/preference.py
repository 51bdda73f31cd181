"""What preference training did, on held-out pairs (a split built for dpo, orpo or reward keeps
each sample's rejected answer beside its reference, the chosen one).

- A model that generates (dpo, orpo, or any base): for each pair, the log-probability of the
  chosen answer and of the rejected one after the same prompt, each summed over the answer's
  tokens and its end, teacher-forced and tokenized exactly as training tokenized them
  (`Backend.answer_ids`). `pref_accuracy` is how often the chosen answer is the likelier one,
  `pref_margin` the mean difference (nats). DPO's implicit reward is this margin against the
  reference's, scaled by beta: base against tuned shows what training moved.
- A reward model (TRAINER=reward) does not generate: its score head rates prompt + chosen and
  prompt + rejected; `reward_accuracy` is how often chosen scores higher, `reward_margin` the mean
  difference of the scores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from autotrain_runner import layout
from autotrain_runner.evaluation import metrics


def pairs_of(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The samples that are preference pairs (a reference and a rejected answer)."""
    return [s for s in samples if s.get("reference") is not None and s.get("rejected") is not None]


def log_prob_margins(backend, pairs: list[dict[str, Any]]) -> dict[str, float]:
    """Sample id -> log p(chosen | prompt) - log p(rejected | prompt), with a generating backend."""
    scored = []
    for sample in pairs:
        chosen = backend.answer_ids(sample["messages"], sample["reference"])
        rejected = backend.answer_ids(sample["messages"], sample["rejected"])
        if chosen is not None and rejected is not None:
            scored.append((sample["id"], chosen, rejected))
    # one call for every span: vLLM scores them a chunk a request
    losses = backend.answer_losses([span for _, chosen, rejected in scored for span in (chosen, rejected)])
    return {sample_id: round(losses[2 * i + 1] - losses[2 * i], 4) for i, (sample_id, _, _) in enumerate(scored)}


def figures(margins: Iterable[float], prefix: str) -> dict[str, Any]:
    """`{prefix}_accuracy`, `{prefix}_margin` and `{prefix}_n` of the margins (none without pairs)."""
    values = list(margins)
    if not values:
        return {}
    return {
        f"{prefix}_accuracy": metrics.mean([float(v > 0) for v in values]),
        f"{prefix}_margin": metrics.mean(values),
        f"{prefix}_n": len(values),
    }


# --- reward models


def evaluate_reward(config, target, samples: list[dict[str, Any]], echo: Callable[[str], None]) -> dict[str, Any]:
    """A reward run on the split's pairs: each pair's two scores, the accuracy and mean margin."""
    pairs = pairs_of(samples)
    echo(f"scoring {target.label} on {len(pairs)} held-out pairs (a reward model: no generation)")
    scorer = RewardScorer(target)
    started = time.perf_counter()
    predictions = []
    for sample in pairs:
        chosen, rejected = scorer.score(sample["messages"], sample["reference"], sample["rejected"])
        predictions.append(
            {
                "id": sample["id"],
                "request": sample["messages"][-1]["content"] if sample["messages"] else "",
                "chosen": sample["reference"],
                "rejected": sample["rejected"],
                "metrics": {
                    "reward_chosen": chosen,
                    "reward_rejected": rejected,
                    "reward_margin": round(chosen - rejected, 4),
                },
            }
        )
    seconds = time.perf_counter() - started
    found = {
        "n": len(predictions),
        "seconds": round(seconds, 2),
        "samples_per_s": round(len(predictions) / seconds, 3) if seconds else None,
        **figures((p["metrics"]["reward_margin"] for p in predictions), "reward"),
        "signature": {"model": target.model, "adapter": str(target.adapter), "template": target.template.describe()},
    }
    _write(target.out_dir, predictions, found, target.label)
    echo(f"wrote {target.out_dir}")
    return found


class RewardScorer:
    """The run's sequence-classification head on its base, rating rendered conversations."""

    def __init__(self, target):
        import torch
        from peft import PeftModel
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from autotrain_runner.rendering import Renderer, generation_eos_ids

        self.tokenizer = AutoTokenizer.from_pretrained(target.adapter or target.model)
        base = AutoModelForSequenceClassification.from_pretrained(target.model, num_labels=1, dtype=torch.float32)
        base.config.pad_token_id = self.tokenizer.pad_token_id
        model = PeftModel.from_pretrained(base, target.adapter) if target.adapter else base
        self.model = model.eval()
        self.renderer = Renderer(self.tokenizer, target.template, target.thinking, generation_eos_ids(target.model))

    def score(self, messages: list[dict[str, str]], chosen: str, rejected: str) -> tuple[float, float]:
        import torch

        pair = self.renderer.pair(messages, chosen, rejected)
        scores = []
        for answer in (pair.chosen, pair.rejected):
            with torch.no_grad():
                logits = self.model(input_ids=torch.tensor([pair.prompt + answer])).logits
            scores.append(round(float(logits[0, 0]), 4))
        return scores[0], scores[1]


def _write(out_dir: Path, predictions: list[dict[str, Any]], found: dict[str, Any], label: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions)
    layout.write_text_atomic(out_dir / layout.PREDICTIONS_JSONL, lines)
    layout.write_metrics(out_dir, found)
    report = [
        f"# {label}: a reward model on {found['n']} held-out pairs",
        "",
        f"Chosen scored above rejected: {found.get('reward_accuracy')} (reward_accuracy); "
        f"mean score margin {found.get('reward_margin')} (reward_margin).",
        "",
    ]
    layout.write_text_atomic(out_dir / layout.EVAL_REPORT_MD, "\n".join(report))

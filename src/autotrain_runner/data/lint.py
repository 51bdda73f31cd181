"""Dataset lint: what would silently hurt training, counted and explained.

Run by `atr data` on what it built and by `atr check` when the dataset exists. Token counts use
the model's own `tokenizer.json` when it is on disk (the `tokenizers` library, no torch), and
otherwise an estimate that says it is one.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path
from typing import Any

from autotrain_runner import layout
from autotrain_runner.config.models import ModelRef, converted_folder
from autotrain_runner.config.records import Config
from autotrain_runner.data.base import conversation_problem
from autotrain_runner.data.summary import MASK_TOKEN

ESTIMATE = "estimate: UTF-8 bytes / 3 (no local tokenizer.json)"


def token_counter(model: ModelRef):
    """(count function, description): the model's tokenizer when it is on disk, else an estimate."""
    folder = model.path if model.kind == "folder" else converted_folder(model) if model.kind != "hub" else None
    if folder is not None and (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))

        def count(texts: list[str]) -> list[int]:
            return [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]

        return count, f"tokenizer {folder / 'tokenizer.json'}"
    return (lambda texts: [len(t.encode("utf-8")) // 3 + 1 for t in texts]), ESTIMATE


def lint(records: list[tuple[list[dict[str, str]] | None, str]], config: Config) -> dict[str, Any]:
    """records: (messages or None when only the rendered text is known, rendered text)."""
    block = config.get("BLOCK_SIZE")
    limit = max(block) if isinstance(block, list) else block
    count, counter = token_counter(config.model)
    texts = [text for _, text in records]
    tokens = count(texts) if texts else []
    empty = sum(
        1
        for messages, text in records
        if not text.strip()
        or (messages is not None and any(not m.get("content", "").strip() for m in messages if isinstance(m, dict)))
    )
    broken = sum(1 for messages, _ in records if messages is not None and conversation_problem(messages))
    duplicates = len(texts) - len(set(texts))
    too_long = sum(1 for n in tokens if limit and limit > 0 and n > limit)
    masks = [len(MASK_TOKEN.findall(text)) for text in texts]
    masked = sum(1 for m in masks if m)
    n = len(records)
    report: dict[str, Any] = {
        "samples": n,
        "empty": empty,
        "broken_role_order": broken,
        "duplicates": duplicates,
        "block_size": limit,
        "too_long": too_long,
        "too_long_share": round(too_long / n, 4) if n else 0.0,
        "token_counter": counter,
        "tokens": _stats(tokens),
        "masked_samples": masked,
        "mask_tokens_per_sample": round(sum(masks) / n, 3) if n else 0.0,
    }
    messages = []
    if empty:
        messages.append(f"{empty} sample(s) with an empty prompt or answer")
    if broken:
        messages.append(f"{broken} sample(s) with a broken role order")
    if duplicates:
        messages.append(f"{duplicates} duplicate sample(s)")
    if too_long:
        messages.append(
            f"{too_long} of {n} samples ({too_long / n:.1%}) are longer than BLOCK_SIZE={limit} tokens ({counter}); "
            "packing splits them across blocks"
        )
    if masked:
        messages.append(
            f"{masked} sample(s) contain masking tokens (#@...#), {report['mask_tokens_per_sample']} per sample"
        )
    report["messages"] = messages or [f"{n} samples, no problems found (token counts: {counter})"]
    return report


def _stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    return {"min": min(values), "mean": round(statistics.fmean(values), 1), "max": max(values)}


def _conversation(record: dict[str, Any], config: Config) -> list[dict[str, Any]]:
    """A training file's record as the conversation it trains: its messages, or a preference pair's
    prompt messages and chosen answer."""
    value = record.get(config.get("TEXT_COLUMN"))
    if isinstance(value, list):
        return [m for m in value if isinstance(m, dict)]
    prompt = record.get(config.get("PROMPT_TEXT_COLUMN"))
    messages = [m for m in prompt if isinstance(m, dict)] if isinstance(prompt, list) else []
    return [*messages, {"role": "assistant", "content": str(value or "")}]


def lint_built(config: Config) -> dict[str, Any] | None:
    """Lint the dataset already on disk (for `atr check`), or None when there is none."""
    train = config.data_file
    folder = config.dataset_dir
    if train is None or not train.is_file() or not (folder / layout.MANIFEST_JSON).is_file():
        return None
    records: list[tuple[list[dict[str, str]] | None, str]] = []
    column = config.get("TEXT_COLUMN")
    with train.open(encoding="utf-8", newline="") as handle:
        if train.suffix == ".jsonl":
            for line in handle:
                messages = _conversation(json.loads(line), config)
                records.append((messages, "\n".join(str(m.get("content", "")) for m in messages)))
        else:
            records += [(None, row.get(column, "")) for row in csv.DictReader(handle)]
    for split in ("valid.jsonl", "test.jsonl"):
        path: Path = folder / split
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                item = json.loads(line)
                messages = [*item["messages"], {"role": "assistant", "content": item["reference"]}]
                records.append((messages, "\n".join(m["content"] for m in messages)))
    return lint(records, config)

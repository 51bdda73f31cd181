"""The fixes for AutoTrain's other trainers: `default` (a causal LM on whole texts), `reward`, `dpo`
and `orpo`, on transformers 5 and TRL 1.x. `engine.FIXES` lists them beside the sft ones.

Their data goes through the one renderer, as sft's does: a preference pair is the prompt's ids
exactly as generation encodes it, then the chosen and the rejected answer each with its end
(`Renderer.pair`). AutoTrain rendered the pairs with the tokenizer's chat template and let TRL
tokenize the text with the tokenizer's special tokens on top; here TRL is given ids.

- default: each text is one document of ids (`Renderer.document`), concatenated and cut into
  BLOCK_SIZE blocks by AutoTrain's own `group_texts`; loss on every token.
- dpo: TRL 1.x's `DPOTrainer`, given `prompt_ids`/`chosen_ids`/`rejected_ids`; with PEFT the
  reference is the base with the adapter off.
- orpo: TRL 1.x keeps ORPO in `trl.experimental.orpo` (maintained there by the TRL team, with its
  tests), not in `trl`: AutoTrain's import is pointed there.
- reward: TRL 1.x's `RewardTrainer` on a sequence-classification head, given `chosen_ids`/`rejected_ids`
  (prompt and answer), which it takes as already tokenized.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

PAIR_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")
PREFERENCE_TRAINERS = ("dpo", "orpo", "reward")


def renderer_for(config, tokenizer):
    """The run's renderer (`engine.OPTIONS` carries the template and THINKING) for this tokenizer."""
    from autotrain_runner.rendering import Renderer, generation_eos_ids
    from autotrain_runner.training.options import OPTIONS

    return Renderer(tokenizer, OPTIONS.prompt_template(), OPTIONS.thinking, generation_eos_ids(config.model))


# --- preference pairs


def pair_ids(example: dict[str, Any], renderer, prompt_column: str | None, trainer: str) -> dict[str, list[int]]:
    """One stored pair (prompt: messages or text; chosen, rejected: answers) as the trainer's ids."""
    from autotrain_runner.rendering import prompt_messages

    prompt = prompt_messages(example[prompt_column]) if prompt_column else []
    try:
        pair = renderer.pair(prompt, str(example["chosen"]), str(example["rejected"]))
    except ValueError as exc:
        shown = str(example[prompt_column])[:80] if prompt_column else ""
        raise ValueError(f"TRAINER={trainer}: {exc}: {shown!r}") from None
    if trainer == "reward":  # a reward model scores the whole conversation
        return {"chosen_ids": pair.prompt + pair.chosen, "rejected_ids": pair.prompt + pair.rejected}
    return {"prompt_ids": pair.prompt, "chosen_ids": pair.chosen, "rejected_ids": pair.rejected}


def rendered_pairs(config, tokenizer, dataset):
    """A split of prompt/chosen/rejected rows (AutoTrain named the prompt `prompt` in some splits and
    kept `autotrain_prompt` in others) as ids; nothing else is kept."""
    if dataset is None:
        return None
    columns = dataset.column_names
    prompt = next((c for c in ("prompt", config.prompt_text_column) if c and c in columns), None)
    convert = functools.partial(
        pair_ids, renderer=renderer_for(config, tokenizer), prompt_column=prompt, trainer=config.trainer
    )
    return dataset.map(convert, remove_columns=columns)


def dpo_config(original):
    """`DPOConfig(max_prompt_length=, max_target_length=)`: TRL 1.x cuts sequences at max_length only.
    AutoTrain passes no loss type; DPO_LOSS reaches `loss_type` here."""
    from autotrain_runner.training.options import OPTIONS

    @functools.wraps(original, updated=())
    def make(**kwargs):
        kwargs.pop("max_prompt_length", None)
        kwargs.pop("max_target_length", None)
        if OPTIONS.dpo_loss:
            kwargs["loss_type"] = list(OPTIONS.dpo_loss)
        return original(**kwargs)

    return make


def dpo_trainer(original):
    """A DPOTrainer that takes the rendered ids as they are: TRL would tokenize a text prompt with the
    tokenizer's BOS in front of the template's. Pairs whose prompt fills BLOCK_SIZE are dropped, as
    TRL drops them, and counted."""

    class DPOTrainer(original):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if "prompt_ids" not in dataset.column_names:
                return super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            if args.max_length is None:
                return dataset
            kept = dataset.filter(lambda example: len(example["prompt_ids"]) < args.max_length)
            _say_dropped(len(dataset) - len(kept), dataset_name, "its prompt fills BLOCK_SIZE")
            return kept

    DPOTrainer.__qualname__ = original.__qualname__
    return DPOTrainer


def orpo_config(_missing):
    """`from trl import ORPOConfig` fails on TRL 1.x: ORPO lives in `trl.experimental.orpo`."""
    from trl.experimental.orpo import ORPOConfig

    @functools.wraps(ORPOConfig, updated=())
    def make(**kwargs):
        kwargs.pop("max_prompt_length", None)  # TRL 1.x's ORPO cuts answers at max_length only
        return ORPOConfig(**kwargs)

    return make


def orpo_trainer(_missing):
    """TRL 1.x's experimental ORPOTrainer, given the rendered ids (`tokenize_row`): its own tokenizing
    adds a BOS to a prompt that has one and an EOS after the template's end marker."""
    from trl.experimental.orpo import ORPOTrainer

    class RenderedORPOTrainer(ORPOTrainer):
        def tokenize_row(self, feature, model=None):
            if "prompt_ids" not in feature:
                return super().tokenize_row(feature, model)
            return orpo_row(feature, self.max_length)

    RenderedORPOTrainer.__qualname__ = RenderedORPOTrainer.__name__ = "ORPOTrainer"
    return RenderedORPOTrainer


def orpo_row(feature: dict[str, list[int]], max_length: int) -> dict[str, list[int]]:
    """ORPO's columns from rendered ids; an answer that does not fit after the prompt is cut, as TRL cuts it."""
    prompt = list(feature["prompt_ids"])
    row = {"prompt_input_ids": prompt, "prompt_attention_mask": [1] * len(prompt)}
    for side in ("chosen", "rejected"):
        answer = list(feature[f"{side}_ids"])[: max(0, max_length - len(prompt))]
        ids = prompt + answer
        row[f"{side}_input_ids"] = ids
        row[f"{side}_attention_mask"] = [1] * len(ids)
        row[f"{side}_labels"] = [-100] * len(prompt) + answer
    return row


def reward_data(original):
    """AutoTrain's reward preprocessing tokenized `chosen`/`rejected` text with the tokenizer's
    special tokens: the pairs are already the renderer's ids; its length filter reads its own names."""

    @functools.wraps(original)
    def preprocess(examples, tokenizer):
        if "chosen_ids" not in examples:
            return original(examples, tokenizer)
        return {"input_ids_chosen": examples["chosen_ids"], "input_ids_rejected": examples["rejected_ids"]}

    return preprocess


# --- default: a causal LM on whole texts


def default_data(original):
    """Each text as the renderer's ids (one BOS, the end), where AutoTrain appended the EOS as text
    and let the tokenizer add its BOS on top of a template's; stored messages are rendered whole."""

    @functools.wraps(original)
    def process(data, tokenizer, config):
        renderer = renderer_for(config, tokenizer)
        column = config.text_column
        return data.map(lambda e: {column: renderer.document(e[column])}, remove_columns=data.column_names)

    return process


def default_tokenize(original):
    """AutoTrain's `tokenize` for the default trainer, given ids already (`default_data`)."""

    @functools.wraps(original)
    def tokenize(examples, tokenizer, config):
        ids = examples[config.text_column]
        if not ids or not isinstance(ids[0], list):
            return original(examples, tokenizer, config)
        return {"input_ids": ids, "attention_mask": [[1] * len(row) for row in ids]}

    return tokenize


def processing_class(original):
    """`Trainer(tokenizer=...)`: transformers 5 renamed it `processing_class`."""

    class Trainer(original):
        def __init__(self, *args, tokenizer=None, **kwargs):
            if tokenizer is not None:
                kwargs.setdefault("processing_class", tokenizer)
            super().__init__(*args, **kwargs)

    Trainer.__qualname__ = original.__qualname__
    return Trainer


def _say_dropped(count: int, split: str, why: str) -> None:
    if count:
        print(f"autotrain-runner: {count} pair(s) of the {split} split left out: {why}", file=sys.stderr)

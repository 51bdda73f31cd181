"""AutoTrain's own fields as env-file keys: their types from AutoTrain's schema (`autotrain_fields`),
the ranges and choices its trainers accept on top, and the fields the runner sets itself."""

from __future__ import annotations

from typing import Any

from autotrain_runner.config import autotrain_fields
from autotrain_runner.config.value_checks import MAX_CONTEXT, between, block_size, within
from autotrain_runner.config.values import Key

# What AutoTrain 0.8.36 accepts beyond the field types (read from its trainers, not guessed):
# trainer dispatch in trainers/clm/__main__.py, chat templates in trainers/clm/utils.py,
# quantization in get_model, mixed precision in configure_training_args and the accelerate launch.
RULES: dict[str, dict[str, Any]] = {
    "lr": {"check": between(0, 1, lo_open=True)},
    "epochs": {"check": between(1, 1000)},
    "batch_size": {"check": between(1, 65536)},
    "gradient_accumulation": {"check": between(1, 65536)},
    "warmup_ratio": {"check": within(0, 1, hi_inclusive=True)},
    "weight_decay": {"check": between(0, 10)},
    "lora_dropout": {"check": within(0, 1, hi_inclusive=False)},
    "lora_r": {"check": between(1, 65536)},
    "lora_alpha": {"check": between(1, 1 << 20)},
    "max_grad_norm": {"check": between(0, 1e6, lo_open=True)},
    "model_max_length": {"check": between(1, MAX_CONTEXT)},
    "save_total_limit": {"check": between(1, 10000)},
    "block_size": {"check": block_size},
    "dpo_beta": {"check": between(0, 1000, lo_open=True)},
    "max_prompt_length": {"check": between(1, MAX_CONTEXT)},
    "max_completion_length": {"check": between(1, MAX_CONTEXT)},
    # AutoTrain's default trainer is `default` (a causal LM on the whole text); the runner's is sft
    "trainer": {"choices": ("default", "sft", "reward", "dpo", "orpo"), "default": "sft"},
    "mixed_precision": {"choices": ("fp16", "bf16", "none")},
    "quantization": {"choices": ("int4", "int8", "none")},
    "chat_template": {"choices": ("none", "zephyr", "chatml", "tokenizer")},
    "padding": {"choices": ("left", "right")},
    "log": {"choices": ("none", "wandb", "tensorboard")},
    "distributed_backend": {"choices": ("ddp", "deepspeed")},
    "scheduler": {
        "choices": (
            "linear",
            "cosine",
            "cosine_with_restarts",
            "polynomial",
            "constant",
            "constant_with_warmup",
            "inverse_sqrt",
            "reduce_lr_on_plateau",
            "cosine_with_min_lr",
            "warmup_stable_decay",
        )
    },
    "eval_strategy": {"choices": ("no", "steps", "epoch")},
}

# The trainers that train preference pairs (prompt, chosen, rejected): `atr data` builds pairs for them
PAIR_TRAINERS = ("dpo", "orpo", "reward")

# Fields the runner sets itself: the user's value is read, but the runner decides what AutoTrain gets.
RUNNER_OWNED_FIELDS = {"token", "push_to_hub", "data_path", "train_split", "project_name"}


def autotrain_keys() -> dict[str, Key]:
    keys = {}
    for field, spec in autotrain_fields.fields().items():
        types = spec["types"]
        if "array" in types:
            kind = "block_size"
        elif "boolean" in types:
            kind = "bool"
        elif "integer" in types:
            kind = "int"
        elif "number" in types:
            kind = "float"
        else:
            kind = "str"
        rules = RULES.get(field, {})
        name = field.upper()
        keys[name] = Key(
            name=name,
            kind=kind,
            help=spec["help"],
            field=field,
            default=rules.get("default", spec["default"]),
            nullable="null" in types,
            choices=rules.get("choices"),
            check=rules.get("check"),
            group="autotrain",
        )
    return keys

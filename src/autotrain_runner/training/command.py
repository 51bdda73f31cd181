"""Config -> AutoTrain argv. The only place that knows how AutoTrain spells its flags.

AutoTrain 0.8.36 generates its flags from `LLMTrainingParams`: `--{field with - for _}`, booleans
as store_true, and `--block_size` only with the underscore. The runner owns four of them:
`--project-name` (sanitized), `--data-path`/`--train-split` (the staged copy, since AutoTrain only
reads a local file named `train.*`), and the token and push flags, which it never passes: the
token would land in argv and in `training_params.json`.
"""

from __future__ import annotations

import shlex
from typing import Any

from autotrain_runner import layout
from autotrain_runner.config import models
from autotrain_runner.config.records import Config
from autotrain_runner.config.value_checks import dpo_losses
from autotrain_runner.errors import ConfigError, Level, Problem
from autotrain_runner.training import autotrain_schema

STAGED_SPLIT = "train"
STAGED_VALID_SPLIT = "valid"  # staged beside train.* when the dataset has a held-out split
# Flags about the data's columns come last, after the training hyperparameters.
_DATA_FIELDS = ("text_column", "prompt_text_column", "rejected_text_column", "chat_template")
# Choice fields where AutoTrain needs an explicit "none" to turn its default off.
_EXPLICIT_NONE = ("mixed_precision", "quantization", "chat_template")


def flag(field: str) -> str:
    return "--block_size" if field == "block_size" else "--" + field.replace("_", "-")


def _format(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def autotrain_fields(config: Config) -> dict[str, Any]:
    """Field -> value for everything AutoTrain will be given (what `LLMTrainingParams` validates)."""
    fields: dict[str, Any] = {
        "project_name": config.project_name,
        "data_path": layout.STAGED_DATA_DIR if config.data_file else str(config.get("DATA_PATH")),
        "train_split": STAGED_SPLIT if config.data_file else config.get("TRAIN_SPLIT"),
        "model": models.training_path(config.model),
    }
    params = config.autotrain_params()
    params.pop("model", None)
    params.setdefault("trainer", config.get("TRAINER"))  # the runner's default (sft), not AutoTrain's
    fields.update({k: v for k, v in params.items() if k not in _DATA_FIELDS})
    fields.update({k: v for k, v in params.items() if k in _DATA_FIELDS})
    return fields


def build_argv(config: Config) -> list[str]:
    argv = ["autotrain", "llm", "--train"]
    for field, value in autotrain_fields(config).items():
        if isinstance(value, bool):
            if value:
                argv.append(flag(field))
        elif value is None:
            if field in _EXPLICIT_NONE:
                argv += [flag(field), "none"]
        else:
            argv += [flag(field), _format(value)]
    if config.get("BACKEND") != "local":
        argv += ["--backend", config.get("BACKEND")]
    return argv


def validate_with_autotrain(config: Config) -> None:
    """The final object through AutoTrain's own LLMTrainingParams (imports torch: not in `check`)."""
    fields = {k: ("none" if v is None and k in _EXPLICIT_NONE else v) for k, v in autotrain_fields(config).items()}
    try:
        autotrain_schema.validate_live(fields)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigError(
            [
                Problem(Level.ERROR, str(config.env_file), "", f"AutoTrain rejects the config: {line}")
                for line in str(exc).splitlines()
                if line.strip()
            ]
        ) from exc


def shell_line(argv: list[str]) -> str:
    return shlex.join(argv)


def engine_options(config: Config) -> dict[str, Any]:
    """What the trainer is asked beyond AutoTrain's fields (`options.Options`)."""
    options = {"loss_on": _loss_on(config), "template": config.template.describe(), "thinking": config.get("THINKING")}
    losses = dpo_losses(config.get("DPO_LOSS") or "sigmoid")
    if config.get("TRAINER") == "dpo" and losses != ["sigmoid"]:  # as LIGER_KERNEL: only where it changes something
        options["dpo_loss"] = losses
    if config.get("LIGER_KERNEL"):  # only when on: a sweep's identity (which includes these) is unchanged otherwise
        options["liger_kernel"] = True
    return options


def checkpoint_options(config: Config) -> dict[str, Any]:
    """When the trainer saves checkpoints and stops early (`options.Options`); not part of a sweep's identity."""
    from autotrain_runner.config.value_checks import checkpoint_interval

    return {
        "checkpoint_every": checkpoint_interval(config.get("CHECKPOINT_EVERY") or "no"),
        "early_stopping": config.get("EARLY_STOPPING"),
        "keep_epochs": sorted(config.get("KEEP_EPOCHS") or []),
    }


def _loss_on(config: Config) -> str:
    if config.get("TRAINER") not in ("sft", None):
        return "all"
    return config.get("LOSS_ON") or "answer"


def describe_weights(config: Config) -> str:
    """The dtypes the run trains in on this machine (`precision.describe`): check, run.json, the card."""
    from autotrain_runner import hardware
    from autotrain_runner.training import precision

    return precision.describe(
        config.get("MIXED_PRECISION"), bool(config.get("PEFT")), config.quantization, config.cuda, hardware.cpu_bf16()
    )


def describe_prompts(config: Config) -> str:
    """How prompts are rendered, the same for training, eval, chat and serve (`rendering.Renderer`)."""
    template = config.template
    how = "the model's chat template" if template.is_chat else "a text layout"
    return (
        f"{template.name} ({how}); THINKING={config.get('THINKING')}; one BOS; answers end at the template's end or EOS"
    )


TRAINED_ON = {
    "sft": "supervised fine-tuning on conversations; LOSS_ON says which tokens carry loss",
    "default": "a causal LM on the whole text, concatenated and cut into BLOCK_SIZE blocks (continued pretraining)",
    "dpo": "preference pairs: TRL's DPOTrainer raises the chosen answer's likelihood over the rejected one's, "
    "against a reference",
    "orpo": "preference pairs: TRL's ORPOTrainer (trl.experimental.orpo), NLL on the chosen answer plus an "
    "odds-ratio term against the rejected one; no reference model",
    "reward": "preference pairs: TRL's RewardTrainer fits a score head that ranks the chosen answer over the "
    "rejected one; the result scores texts, it does not generate",
}


# What carries loss under the trainers that have a loss of their own (LOSS_ON is sft's)
OWN_LOSS = {
    "default": "all (every token of the texts, concatenated into BLOCK_SIZE blocks)",
    "dpo": "the answers (the prompt is masked): the chosen and the rejected answer after the same prompt",
    "orpo": "the answers (the prompt is masked): the chosen and the rejected answer after the same prompt",
    "reward": "a score for each whole conversation (prompt and answer), chosen against rejected",
}


def describe_trainer(config: Config) -> str:
    """`dpo (preference pairs: ...)`: the trainer in effect, what it trains on, and why it is the one."""
    trainer = config.get("TRAINER")
    line = f"{trainer} ({TRAINED_ON[trainer]}"
    if trainer == "dpo":
        reference = "the base with the adapter off" if config.get("PEFT") else (config.get("MODEL_REF") or "the base")
        line += f"; beta {config.get('DPO_BETA')}; loss {','.join(dpo_losses(config.get('DPO_LOSS') or 'sigmoid'))}"
        line += f"; reference: {reference}"
    if "TRAINER" not in config.values:
        line += "; TRAINER is not set: sft is the default, TRAINER=default is AutoTrain's continued pretraining"
    return line + ")"


def describe_loss(config: Config) -> str:
    """`answer (...)` or `all (...)`: the LOSS_ON a run trained with, as run.json and the model card say it."""
    trainer = config.get("TRAINER")
    if trainer in OWN_LOSS:
        return OWN_LOSS[trainer] + ("; LOSS_ON applies to the sft trainer only" if "LOSS_ON" in config.values else "")
    if _loss_on(config) == "all":
        return "all (the whole text: prompt, role markers and answer)"
    how = "the chat template's generation prompt" if config.template.is_chat else "the template's answer marker"
    return f"answer (prompt and role markers masked up to {how}; loss on the final answer and its end marker)"

"""The training process: AutoTrain 0.8.36's own trainer, with the fixes today's stack needs.

AutoTrain's last release (2025-01) was written for transformers 4.48 and TRL 0.13. On the pinned
stack its `llm --trainer sft` path fails in four places and misbehaves in three more. Every fix
lives here, and only here: `apply_fixes()` replaces attributes of AutoTrain's own modules inside
the training process, so nothing changes for any other code. Each `Fix` names what it repairs
and why in one line; `describe(trainer)` is what `atr check`, `atr command` and `run.json` show.

`python -m autotrain_runner.training.engine PARAMS.json` is what `atr train` starts, in the run folder:
1. `llm_munge_data` (AutoTrain's own local-data preparation) copies the staged files into
   `{project}/autotrain-data`, with the validation split kept (AutoTrain drops it);
2. `training_params.json` is written by AutoTrain's own `params.save` (the runner never puts the
   token into the params: the Hub reads it from the environment);
3. AutoTrain's trainer for `params.trainer` runs, and an exception exits 1 with its traceback
   (AutoTrain's `monitor` wrapper would log it and exit 0).

One Python process does what `autotrain llm` did in three (its CLI, `accelerate launch`, the
trainer). Several CUDA devices go through `accelerate launch`, as AutoTrain sets it up (`launch_argv`).
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from autotrain_runner import settings, versions
from autotrain_runner.training import trainer_fixes
from autotrain_runner.training.options import OPTIONS

AUTOTRAIN = "0.8.36"  # the release the fixes are written for (requirements/lock.txt); another is refused
VALIDATION_SPLIT = "validation"  # the split name AutoTrain's preprocessor saves a validation file under
OPTIONS_JSON = "engine.json"  # beside params.json: what the runner asks of the trainer beyond AutoTrain's fields


@dataclass(frozen=True)
class Fix:
    name: str
    reason: str
    targets: tuple[str, ...]  # "module:attribute": each attribute replaced (AutoTrain's modules, or trl's)
    wrap: Callable[[Any], Any]  # original (None where TRL 1.x dropped the name) -> replacement
    trainers: tuple[str, ...] = ()  # the trainers whose runs it concerns (what check and run.json name); () all


def _from_pretrained(original):
    """`use_flash_attention_2=x` -> `attn_implementation="flash_attention_2"` or nothing; the base's dtype.

    transformers 5 loads in the checkpoint's dtype (bf16 for most models) where 4.48 loaded fp32, and
    AutoTrain asks for none. The base loads in the run's dtype (`precision.base_dtype`): 16-bit for a
    LoRA run under bf16/fp16 on CUDA, fp32 otherwise, unless the caller asks for a dtype itself.
    """

    class Loader:
        @staticmethod
        def from_pretrained(*args, **kwargs):
            if kwargs.pop("use_flash_attention_2", False):
                kwargs["attn_implementation"] = "flash_attention_2"
            if "dtype" not in kwargs and "torch_dtype" not in kwargs:
                import torch

                kwargs["dtype"] = getattr(torch, OPTIONS.base_dtype)
            return original.from_pretrained(*args, **kwargs)

        def __getattr__(self, name):  # pragma: no cover - anything else AutoTrain may use
            return getattr(original, name)

    return Loader()


def _quantization_config(original):
    """QLoRA's int4 matmuls in the run's dtype: AutoTrain hard-codes `bnb_4bit_compute_dtype=float16`,
    so a bf16 run computed its int4 layers in fp16 (and a CPU run in emulated fp16)."""

    @functools.wraps(original, updated=())
    def make(**kwargs):
        if kwargs.get("load_in_4bit"):
            import torch

            kwargs["bnb_4bit_compute_dtype"] = getattr(torch, OPTIONS.base_dtype)
        return original(**kwargs)

    return make


def _sft_config(original):
    """`SFTConfig(max_seq_length=n)` -> `max_length=n`; packing that keeps every token.

    TRL >= 0.19 packs best-fit (`bfd`) and cuts each sample at `max_length`: an answer longer than
    the block lost its ending and its EOS. `bfd_split` packs the same way and carries the overflow
    into another sequence, so every token of every sample is trained on, as under TRL 0.13.
    """

    @functools.wraps(original, updated=())
    def make(**kwargs):
        if "max_seq_length" in kwargs:
            kwargs["max_length"] = kwargs.pop("max_seq_length")
        if kwargs.get("packing"):
            kwargs.setdefault("packing_strategy", "bfd_split")
        # the samples arrive as ids with a completion mask (`render`): the mask applies with LOSS_ON=answer
        kwargs.setdefault("completion_only_loss", OPTIONS.loss_on == "answer")
        if OPTIONS.liger_kernel:
            kwargs["use_liger_kernel"] = True
        return original(**kwargs)

    return make


def _training_args(original):
    """Warmup as a ratio in `warmup_steps`, and mixed precision exactly as asked."""

    @functools.wraps(original)
    def configure(config, logging_steps):
        args = original(config, logging_steps)
        ratio = args.pop("warmup_ratio", None)
        if ratio:  # transformers >= 5.0 reads a float below 1 in warmup_steps as a ratio
            args["warmup_steps"] = float(ratio)
        import torch

        cuda = torch.cuda.is_available()
        # TRL >= 0.19 turns bf16 on unless told otherwise; fp16/bf16 without CUDA train in fp32.
        args["bf16"] = cuda and config.mixed_precision == "bf16"
        args["fp16"] = cuda and config.mixed_precision == "fp16"
        return args

    return configure


def _rendered_data(original):
    """Every trainer's samples tokenized by the one renderer (`rendering.Renderer`), as token ids.

    AutoTrain renders chat samples to text and TRL tokenizes that text with the tokenizer's special
    tokens: a template that writes its BOS on a tokenizer that adds one (Llama 3, Gemma, Mistral)
    trained on two. Here each sample is the renderer's ids (the prompt exactly as generation
    encodes it, then the answer and its end markers), and with `loss_on=answer` a completion mask
    from where the answer starts, which TRL turns into labels. Validation samples likewise (AutoTrain's
    own rendering crashed on a validation split, and dropped it for every other trainer).

    dpo, orpo and reward pairs become the renderer's ids here (`trainer_fixes.rendered_pairs`); the
    default trainer's texts are rendered by its own data step (`trainer_fixes.default_data`).
    """

    @functools.wraps(original)
    def process(config, tokenizer, train_data, valid_data):

        if config.trainer == "default":
            return train_data, valid_data
        if config.trainer in trainer_fixes.PREFERENCE_TRAINERS:
            return (
                trainer_fixes.rendered_pairs(config, tokenizer, train_data),
                trainer_fixes.rendered_pairs(config, tokenizer, valid_data),
            )
        renderer = trainer_fixes.renderer_for(config, tokenizer)
        tokenize = functools.partial(
            tokenized, renderer=renderer, column=config.text_column, answer_only=OPTIONS.loss_on == "answer"
        )
        train_data = train_data.map(tokenize, remove_columns=train_data.column_names)
        if valid_data is not None:
            valid_data = valid_data.map(tokenize, remove_columns=valid_data.column_names)
        return train_data, valid_data

    return process


def tokenized(example, renderer, column: str, answer_only: bool) -> dict[str, list[int]]:
    """One stored sample (messages, or a text layout's rendered text) as TRL's processed columns."""
    value = example[column]
    try:
        if not answer_only:
            return {"input_ids": renderer.whole(value)}
        sample = renderer.stored_sample(value)
    except ValueError as exc:
        raise ValueError(f"LOSS_ON={'answer' if answer_only else 'all'}: {exc}: {str(value)[:80]!r}") from None
    mask = [0] * sample.answer_start + [1] * (len(sample.ids) - sample.answer_start)
    return {"input_ids": sample.ids, "completion_mask": mask}


def _callbacks(original):
    """Drop `LoadBestPeftModelCallback`: it looks for `adapter_model.bin`, PEFT writes safetensors."""

    @functools.wraps(original)
    def callbacks(config):
        from autotrain.trainers.clm.callbacks import LoadBestPeftModelCallback

        return [c for c in original(config) if c is not LoadBestPeftModelCallback]

    return callbacks


def _measured(original):
    """Add `measure.StepClock` (steps, seconds, tokens and peak memory in the run folder's
    `train_metrics.json`) and `measure.LogLines` (every logged dict in `train_log.jsonl`)."""

    @functools.wraps(original)
    def callbacks(config):
        from autotrain_runner.training.measure import LogLines, StepClock

        return [*original(config), StepClock(), LogLines()]

    return callbacks


def _lazy(module: str, name: str) -> Callable[[Any], Any]:
    """A wrap from `training.<module>`, imported in the trainer process only (it imports transformers)."""

    def wrap(original):
        return getattr(importlib.import_module(f"autotrain_runner.training.{module}"), name)(original)

    return wrap


U = "autotrain.trainers.clm.utils"
SFT = "autotrain.trainers.clm.train_clm_sft"
DPO = "autotrain.trainers.clm.train_clm_dpo"
REWARD = "autotrain.trainers.clm.train_clm_reward"
DEFAULT = "autotrain.trainers.clm.train_clm_default"

FIXES = (
    Fix(
        "from-pretrained",
        "transformers 4.53 removed from_pretrained(use_flash_attention_2=...); the base loads in the run's dtype "
        "(16-bit for LoRA under bf16/fp16), not the checkpoint's",
        (f"{U}:AutoModelForCausalLM", f"{DPO}:AutoModelForCausalLM", f"{REWARD}:AutoModelForSequenceClassification"),
        _from_pretrained,
    ),
    Fix(
        "qlora-dtype",
        "AutoTrain computes int4 layers in fp16 whatever MIXED_PRECISION says: they compute in the run's dtype",
        (f"{U}:BitsAndBytesConfig", f"{DPO}:BitsAndBytesConfig", f"{REWARD}:BitsAndBytesConfig"),
        _quantization_config,
    ),
    Fix(
        "sft-config",
        "trl 0.20 removed SFTConfig(max_seq_length=...); trl 0.19 packing cuts every sample at the block size",
        (f"{SFT}:SFTConfig",),
        _sft_config,
        trainers=("sft",),
    ),
    Fix(
        "training-args",
        "transformers 5.15 removed warmup_ratio; trl 0.19 trains in bf16 unless fp16 is set",
        (f"{U}:configure_training_args",),
        _training_args,
    ),
    Fix(
        "render",
        "TRL tokenizes a rendered prompt with the tokenizer's BOS on top of the template's; AutoTrain's chat "
        "rendering dropped the validation split: every trainer's samples are the one renderer's ids",
        (f"{U}:process_data_with_chat_template",),
        _rendered_data,
    ),
    Fix(
        "loss-record",
        "which tokens carry loss is recorded from the prepared training data (loss_tokens.json)",
        (f"{SFT}:SFTTrainer",),
        _lazy("measure", "recording_trainer"),
        trainers=("sft",),
    ),
    Fix(
        "valid-callback",
        "LoadBestPeftModelCallback expects adapter_model.bin, PEFT writes adapter_model.safetensors",
        (f"{U}:get_callbacks",),
        _callbacks,
    ),
    Fix(
        "train-metrics",
        "AutoTrain records no step time, tokens or peak memory: train_metrics.json has them",
        (f"{U}:get_callbacks",),
        _measured,
    ),
    Fix(
        "checkpoints",
        "AutoTrain saves no checkpoint without a validation split, and loads the 'best' epoch with one: "
        "resumable checkpoints as CHECKPOINT_EVERY says, and the last epoch's model kept",
        (f"{U}:configure_training_args",),
        _lazy("checkpointing", "training_args"),
    ),
    Fix(
        "checkpoint-callbacks",
        "AutoTrain's SavePeftModelCallback writes an empty pytorch_model.bin into each checkpoint, so resuming "
        "loaded no adapter: the Trainer saves the adapter; timed saves and EARLY_STOPPING are added",
        (f"{U}:get_callbacks",),
        _lazy("checkpointing", "callbacks"),
    ),
    Fix(
        "default-data",
        "the default trainer appended the EOS as text and tokenized with a BOS on top of the template's: "
        "each text is the renderer's ids",
        (f"{DEFAULT}:process_data",),
        trainer_fixes.default_data,
        trainers=("default",),
    ),
    Fix(
        "default-tokenize",
        "the default trainer's tokenize step takes the renderer's ids as they are",
        (f"{U}:tokenize",),
        trainer_fixes.default_tokenize,
        trainers=("default",),
    ),
    Fix(
        "processing-class",
        "transformers 5 removed Trainer(tokenizer=...): it is processing_class",
        (f"{DEFAULT}:Trainer",),
        trainer_fixes.processing_class,
        trainers=("default",),
    ),
    Fix(
        "dpo-config",
        "trl 0.20 removed DPOConfig(max_prompt_length=, max_target_length=): sequences are cut at BLOCK_SIZE",
        (f"{DPO}:DPOConfig",),
        trainer_fixes.dpo_config,
        trainers=("dpo",),
    ),
    Fix(
        "dpo-ids",
        "TRL tokenizes a text prompt with the tokenizer's BOS on top of the template's: DPO takes the renderer's ids",
        (f"{DPO}:DPOTrainer",),
        trainer_fixes.dpo_trainer,
        trainers=("dpo",),
    ),
    Fix(
        "orpo-config",
        "trl 0.20 moved ORPOConfig to trl.experimental.orpo, without max_prompt_length",
        ("trl:ORPOConfig",),
        trainer_fixes.orpo_config,
        trainers=("orpo",),
    ),
    Fix(
        "orpo-ids",
        "trl 0.20 moved ORPOTrainer to trl.experimental.orpo; it adds a BOS and an EOS around the template's: "
        "ORPO takes the renderer's ids",
        ("trl:ORPOTrainer",),
        trainer_fixes.orpo_trainer,
        trainers=("orpo",),
    ),
    Fix(
        "reward-ids",
        "AutoTrain tokenized reward pairs as text with the tokenizer's special tokens: they are the renderer's ids",
        (f"{U}:preprocess_reward",),
        trainer_fixes.reward_data,
        trainers=("reward",),
    ),
    Fix(
        "resume",
        "AutoTrain calls trainer.train() with no checkpoint: atr train --resume continues from one (last: it "
        "subclasses each trainer as the fixes above left it)",
        (f"{SFT}:SFTTrainer", f"{DEFAULT}:Trainer", f"{DPO}:DPOTrainer", "trl:ORPOTrainer", f"{REWARD}:RewardTrainer"),
        _lazy("checkpointing", "resuming"),
    ),
)
FIX_NAMES = tuple(fix.name for fix in FIXES)


def describe(trainer: str = "sft") -> str:
    """`autotrain-advanced 0.8.36 + fixes [...]`: the engine, as check, command and run.json name it,
    with the fixes a run of `trainer` goes through (every fix is applied; the others concern other trainers)."""
    version = versions.installed("autotrain-advanced") or "(not installed)"
    names = [fix.name for fix in FIXES if not fix.trainers or trainer in fix.trainers]
    return f"autotrain-advanced {version} + fixes [{', '.join(names)}]"


_applied = False


def apply_fixes() -> None:
    """Replace each attribute in AutoTrain's modules; once per process, and only in the release they
    were written for: another one's functions may have moved or changed, and a fix on them would
    break a run quietly."""
    global _applied
    if _applied:
        return
    installed = metadata.version("autotrain-advanced")
    if installed != AUTOTRAIN:
        raise RuntimeError(
            f"autotrain-advanced {installed} is installed; the engine's fixes are written for {AUTOTRAIN} "
            "(requirements/lock.txt): reinstall with ./run.sh"
        )
    for fix in FIXES:
        for target in fix.targets:
            name, attribute = target.split(":")
            module = importlib.import_module(name)
            setattr(module, attribute, fix.wrap(getattr(module, attribute, None)))
    _applied = True


def run(fields: dict[str, Any]) -> None:
    """Prepare the data and train, in the current directory (the run folder), as AutoTrain's CLI would."""
    apply_fixes()
    from autotrain.project import llm_munge_data
    from autotrain.trainers.clm.params import LLMTrainingParams

    params = LLMTrainingParams(**fields)
    OPTIONS.base_dtype = _base_dtype(params)
    keep_valid = params.valid_split is not None
    if settings.world_size() > 1:  # several GPUs: the main process prepares, once
        from accelerate import PartialState

        state = PartialState()
        with state.main_process_first():
            params = llm_munge_data(params, local=True) if state.is_main_process else _munged(params)
    else:
        params = llm_munge_data(params, local=True)
    if keep_valid:  # AutoTrain saved the validation file and then forgot it (valid_split=None)
        params.valid_split = VALIDATION_SPLIT
    params.save(output_dir=params.project_name)
    trainer = importlib.import_module(f"autotrain.trainers.clm.train_clm_{params.trainer}")
    trainer.train(params)


def _base_dtype(params) -> str:
    import torch

    from autotrain_runner import hardware
    from autotrain_runner.training.precision import base_dtype

    return base_dtype(params.mixed_precision, params.peft, torch.cuda.is_available(), hardware.cpu_bf16())


def _munged(params):
    """The params `llm_munge_data` returns once the main process has written `autotrain-data`."""
    params.data_path = f"{params.project_name}/autotrain-data"
    params.valid_split = None
    params.text_column = "autotrain_text"
    params.rejected_text_column = "autotrain_rejected_text"
    params.prompt_text_column = "autotrain_prompt"
    return params


def launch_argv(params_file: Path, cuda_devices: int, fields: dict[str, Any]) -> list[str]:
    """One process on a CPU or one GPU; on several, AutoTrain's own `accelerate launch` arguments."""
    if cuda_devices <= 1:
        return [sys.executable, "-m", __name__, str(params_file)]
    from autotrain.commands import get_accelerate_command

    accelerate = get_accelerate_command(
        cuda_devices, fields.get("gradient_accumulation") or 1, fields.get("distributed_backend")
    )
    precision = {"fp16": "fp16", "bf16": "bf16"}.get(str(fields.get("mixed_precision")), "no")
    # AutoTrain's list starts with `accelerate launch`: the same launcher, from this interpreter
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        *accelerate[2:],
        "--mixed_precision",
        precision,
        "-m",
        __name__,
        str(params_file),
    ]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(f"usage: python -m {__name__} PARAMS.json", file=sys.stderr)
        return 2
    params_file = Path(argv[0])
    fields = json.loads(params_file.read_text(encoding="utf-8"))
    options_file = params_file.with_name(OPTIONS_JSON)
    if options_file.is_file():
        OPTIONS.update(json.loads(options_file.read_text(encoding="utf-8")))
    os.environ.setdefault("PAUSE_ON_FAILURE", "0")
    run(fields)  # an exception prints its traceback and exits 1: the runner reads both
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

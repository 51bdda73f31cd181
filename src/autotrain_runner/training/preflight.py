"""Memory preflight: does this config train, and serve, on the GPU it is meant for?

The model's shape comes from its `config.json` (a local folder, the converted GGUF folder, or the
Hugging Face cache), else from `MODEL_PARAMS` (the nearest standard Llama-family shape, its depth
scaled to that size), else it is unknown. `training.memory` turns the shape and the settings
AutoTrain will apply into bytes; this module compares them with the GPU (`GPU_MEMORY_GB`, else the
detected one) and says what to change. Nothing imports torch, so `atr check` stays fast.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from autotrain_runner import hardware
from autotrain_runner.config import models
from autotrain_runner.config.autotrain_keys import PAIR_TRAINERS
from autotrain_runner.config.envfile import display_path
from autotrain_runner.config.value_checks import parse_param_count
from autotrain_runner.errors import Level, Problem
from autotrain_runner.training.memory import (
    GB,
    LLAMA_LINEARS,
    Architecture,
    Training,
    checkpoint_bytes,
    estimate_inference,
    estimate_training,
    from_config_json,
    from_param_count,
    gb,
    inference_fixes,
    short_count,
    training_fixes,
)

if TYPE_CHECKING:
    from autotrain_runner.config.records import Config

# PEFT's own choice for Llama when no target modules are given (AutoTrain passes None for an empty value)
PEFT_DEFAULT_TARGETS = ("q_proj", "v_proj")
AUTOTRAIN_DEFAULT_BLOCK = 1024  # BLOCK_SIZE=-1: AutoTrain uses the tokenizer's maximum, at most 1024
TIGHT = 0.9  # above this share of the GPU, say the fit is tight: fragmentation and peaks vary


def find_architecture(config: Config) -> tuple[Architecture | None, str]:
    """(shape, note): config.json on disk first, then MODEL_PARAMS; the note says why when unknown."""
    ref = config.model
    found = _local_config_json(ref)
    reason = ""
    if found is not None:
        try:
            data = json.loads(found.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            data, reason = None, f"{found} is unreadable ({exc})"
        if isinstance(data, dict):
            shape = from_config_json(data, f"config.json ({found})")
            if isinstance(shape, Architecture):
                return shape, _disagreement(shape, config)
            reason = shape
    if config.get("MODEL_PARAMS"):
        params = parse_param_count(config.get("MODEL_PARAMS"))
        assert params is not None  # checked when the config was loaded
        shape = from_param_count(params, f"MODEL_PARAMS={config.get('MODEL_PARAMS')}")
        return shape, reason
    if not reason:
        reason = {
            "hub": f"{ref.spec} is not in the local Hugging Face cache",
            "gguf": "the GGUF model is converted on first train",
            "bundled": "the bundled model is converted on first train",
        }.get(ref.kind, "no config.json")
    return None, f"{reason}; set MODEL_PARAMS (like 13B) for an estimate"


def _local_config_json(ref: models.ModelRef) -> Path | None:
    if ref.kind == "folder" and ref.path is not None:
        return ref.path / "config.json"
    if ref.kind in ("gguf", "bundled"):
        path = models.converted_folder(ref) / "config.json"
        return path if path.is_file() else None
    if ref.kind == "hub" and ref.spec:
        return _hub_cached_config(ref.spec)
    return None


def _hub_cached_config(repo_id: str) -> Path | None:
    # The constants module is cheap; the cache helper pulls in requests (~0.2 s), so it is only
    # imported when this model has a cache folder at all: `atr check` stays fast.
    from huggingface_hub import constants

    if not (Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}").is_dir():
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json")
    return Path(found) if isinstance(found, str) else None


def _disagreement(shape: Architecture, config: Config) -> str:
    stated = parse_param_count(config.get("MODEL_PARAMS") or "")
    if stated and abs(math.log(shape.params / stated)) > math.log(1.25):
        return f"MODEL_PARAMS={config.get('MODEL_PARAMS')} ignored: config.json gives {short_count(shape.params)}"
    return ""


# --------------------------------------------------------------------------------------------------
# The report `atr check` prints


@dataclass(frozen=True)
class Capacity:
    bytes: float
    where: str  # the env file line that set GPU_MEMORY_GB, or "detected GPU"

    def describe(self) -> str:
        return "detected GPU" if self.where == DETECTED else f"GPU_MEMORY_GB, {self.where}"


DETECTED = "detected GPU"


def gpu_capacity(config: Config) -> Capacity | None:
    """GPU_MEMORY_GB, else the detected GPU, else None.

    A card sold as "24 GB" holds 24 GiB; reading that number as 10^9 bytes leaves about 7% for
    the driver and fragmentation, which no estimate here models."""
    if config.get("GPU_MEMORY_GB"):
        return Capacity(float(config.get("GPU_MEMORY_GB")) * GB, str(config.source("GPU_MEMORY_GB")))
    detected = hardware.cuda_memory_gib() if config.cuda else None
    return Capacity(detected * GB, DETECTED) if detected else None


@dataclass
class Preflight:
    lines: list[str]
    warnings: list[Problem]


def training_settings(config: Config, arch: Architecture | None = None) -> Training:
    block = config.get("BLOCK_SIZE")
    if not isinstance(block, int) or block <= 0:
        block = AUTOTRAIN_DEFAULT_BLOCK
        if arch is not None and arch.max_positions:
            block = min(block, arch.max_positions)
    trainer = config.get("TRAINER")
    # dpo, orpo and reward run the chosen and the rejected answer of each pair in one batch
    pairs = 2 if trainer in PAIR_TRAINERS else 1
    return Training(
        batch_size=pairs * int(config.get("BATCH_SIZE")),
        block_size=block,
        peft=bool(config.get("PEFT")),
        quantization=config.quantization,
        mixed_precision=str(config.get("MIXED_PRECISION") or "none"),
        checkpointing=not config.get("DISABLE_GRADIENT_CHECKPOINTING"),
        lora_r=max([int(config.get("LORA_R")), *(config.get("SWEEP_LORA_R") or [])]),  # a sweep's largest rank
        lora_dropout=float(config.get("LORA_DROPOUT")),
        targets=resolve_targets(config.get("TARGET_MODULES")),
        fused_lm_head=trainer == "sft",  # the other trainers take the full logits (TRL's DPO/ORPO, Trainer)
    )


def resolve_targets(value: str | None) -> tuple[str, ...]:
    """TARGET_MODULES as PEFT reads it for a Llama-style model; names it does not know add nothing."""
    if value is None or not str(value).strip():
        return PEFT_DEFAULT_TARGETS
    if str(value).strip().lower() == "all-linear":
        return LLAMA_LINEARS  # every linear layer but the output layer
    names = {n.strip().rsplit(".", 1)[-1] for n in str(value).split(",")}
    return tuple(n for n in LLAMA_LINEARS if n in names)


def _disk_warnings(config: Config, needed: float) -> list[Problem]:
    """Checkpoints that would not fit on the project's disk (SAVE_TOTAL_LIMIT of them, and one more
    while the next is written): a warning before hours of training end in a full disk."""
    if config.get("CHECKPOINT_EVERY") in (None, "no"):
        return []
    try:
        free = shutil.disk_usage(config.project_dir).free
    except OSError:
        return []
    if needed <= free:
        return []
    return [
        Problem(
            Level.WARNING,
            str(config.source("CHECKPOINT_EVERY")),
            "CHECKPOINT_EVERY",
            f"checkpoints need about {gb(needed)} GB while the next is written, and {gb(free)} GB are free on "
            f"{display_path(config.project_dir)}'s disk; free space, lower SAVE_TOTAL_LIMIT or set CHECKPOINT_EVERY=no",
        )
    ]


def preflight(config: Config, capacity: Capacity | None) -> Preflight:
    """The `memory:` lines of `atr check`, and a warning for each estimate over `capacity`
    (None: no GPU known)."""
    arch, note = find_architecture(config)
    if arch is None:
        return Preflight([f"unknown: {note}"], [])
    t = training_settings(config, arch)
    train = estimate_training(arch, t)
    batch = int(config.get("EVAL_BATCH_SIZE"))
    int4 = config.quantization == "int4"
    serve = estimate_inference(arch, batch, t.block_size, int4)
    lines = [f"model: {arch.describe()}; from {arch.source}", f"train: {train.describe()}"]
    lines.append(f"inference: {serve.describe()}")
    size, what = checkpoint_bytes(arch, t)
    kept = config.get("SAVE_TOTAL_LIMIT") or 1
    lines.append(
        f"checkpoint: {gb(size)} GB each on disk ({what}, plus the tokenizer); CHECKPOINT_EVERY="
        f"{config.get('CHECKPOINT_EVERY')}, SAVE_TOTAL_LIMIT={kept} keeps {gb(size * kept)} GB at most"
    )
    if note:
        lines.append(note)
    warnings: list[Problem] = _disk_warnings(config, size * (kept + 1))
    if capacity is None:
        lines.append("GPU: none here; set GPU_MEMORY_GB to the card you will use to check the fit")
        return Preflight(lines, warnings)
    size = capacity.bytes
    verdicts = []
    for what, estimate, fixes in (
        ("train", train, lambda: training_fixes(arch, t, int(config.get("GRADIENT_ACCUMULATION")), size)),
        ("inference", serve, lambda: inference_fixes(arch, batch, t.block_size, int4, size)),
    ):
        share = estimate.total / size
        if share <= 1:
            verdicts.append(f"{what} fits ({share:.0%}{', tight' if share > TIGHT else ''})")
            continue
        verdicts.append(f"{what} does not fit")
        message = f"{what} needs about {gb(estimate.total)} GB, more than {gb(size)} GB"
        warnings.append(Problem(Level.WARNING, capacity.where, "GPU_MEMORY_GB", "; ".join([message, *fixes()])))
    lines.append(f"GPU: {gb(size)} GB ({capacity.describe()}): {', '.join(verdicts)}")
    return Preflight(lines, warnings)

"""What `atr bench train` trains: real model shapes (random weights), configurations, tools, settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autotrain_runner import hardware
from autotrain_runner.training import precision

BUNDLED = "smollm2"


@dataclass(frozen=True)
class Shape:
    family: str  # the tiny family whose tokenizer and chat template it gets (`families.catalog`)
    sizes: dict[str, Any]  # config fields of the real model
    source: str


SHAPES: dict[str, Shape] = {
    "tiny": Shape("llama3", {}, "families.catalog.TINY_SIZES: 2 layers, hidden 32"),
    "llama-3.1-8b": Shape(
        "llama3",
        {
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "vocab_size": 128256,
            "max_position_embeddings": 131072,
            "tie_word_embeddings": False,
        },
        "https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct/blob/main/config.json",
    ),
    "qwen3-8b": Shape(
        "qwen3",
        {
            "hidden_size": 4096,
            "intermediate_size": 12288,
            "num_hidden_layers": 36,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "vocab_size": 151936,
            "max_position_embeddings": 40960,
            "tie_word_embeddings": False,
        },
        "https://huggingface.co/Qwen/Qwen3-8B/blob/main/config.json",
    ),
    "smollm2-135m": Shape(
        "llama3",
        {
            "hidden_size": 576,
            "intermediate_size": 1536,
            "num_hidden_layers": 30,
            "num_attention_heads": 9,
            "num_key_value_heads": 3,
            "vocab_size": 49152,
            "max_position_embeddings": 8192,
            "tie_word_embeddings": True,
        },
        "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct/blob/main/config.json (random weights)",
    ),
    "eeve-10.8b": Shape(
        "llama3",
        {
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 48,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "vocab_size": 40960,
            "max_position_embeddings": 4096,
            "tie_word_embeddings": False,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        },
        "https://huggingface.co/yanolja/EEVE-Korean-Instruct-10.8B-v1.0/blob/main/config.json "
        "(Llama architecture; Llama 3's tokenizer and template here)",
    ),
}

# name -> the env keys it sets (on top of the shared hyperparameters)
CONFIGS: dict[str, dict[str, str]] = {
    "fp32": {"MIXED_PRECISION": "none", "QUANTIZATION": "none"},
    "bf16": {"MIXED_PRECISION": "bf16", "QUANTIZATION": "none"},
    "fp16": {"MIXED_PRECISION": "fp16", "QUANTIZATION": "none"},
    "int4": {"MIXED_PRECISION": "bf16", "QUANTIZATION": "int4"},
    "liger": {"MIXED_PRECISION": "bf16", "QUANTIZATION": "none", "LIGER_KERNEL": "true"},
}
TOOLS = ("atr", "trl", "llamafactory")


@dataclass
class Settings:
    shape: str = "tiny"
    configs: tuple[str, ...] = ("fp32",)
    tools: tuple[str, ...] = ("atr", "trl")
    batch_size: int = 2
    block_size: int = 256
    steps: int = 8  # optimizer steps the data is sized for (one epoch, packed)
    lora_r: int = 16
    lr: float = 2e-4
    seed: int = 42
    deadline_s: float | None = None  # rows not started this many seconds after the start are skipped


@dataclass
class Row:
    tool: str
    config: str
    status: str = "not run"
    wall_s: float | None = None  # the whole child process: start, load, data, training, save
    metrics: dict[str, Any] = field(default_factory=dict)  # StepClock's
    estimate_gb: float | None = None


def cannot_run(config: str, cuda: bool) -> str | None:
    """Why a configuration cannot run on this machine, or None."""
    if config == "liger" and not cuda:
        return "Liger's kernels need CUDA"
    if config == "liger":
        import importlib.util

        if importlib.util.find_spec("liger_kernel") is None:
            return "liger-kernel is not installed"
    if (
        config in ("bf16", "fp16")
        and not cuda
        and precision.base_dtype(config, True, False, hardware.cpu_bf16()) == "float32"
    ):
        return f"{config} without CUDA on this CPU trains as fp32 (precision.base_dtype): the fp32 row"
    return None


def settings(
    shape: str,
    configs: str,
    tools: str,
    steps: int,
    batch_size: int,
    block_size: int,
    lora_r: int,
    deadline_s: float | None = None,
) -> Settings:
    """`atr bench train`'s flags, checked: a ValueError names the one that is wrong."""
    if shape not in SHAPES and shape != BUNDLED:
        raise ValueError(f"--shape: unknown shape {shape!r}; one of {', '.join([*SHAPES, BUNDLED])}")
    chosen = tuple(c.strip() for c in configs.split(",") if c.strip())
    unknown = [c for c in chosen if c not in CONFIGS]
    if unknown or not chosen:
        raise ValueError(f"--configs: unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(CONFIGS)}")
    used = tuple(t.strip() for t in tools.split(",") if t.strip())
    if not used or any(t not in TOOLS for t in used):
        raise ValueError(f"--tools: {tools!r}; choose from {', '.join(TOOLS)}")
    for flag, value in (
        ("--steps", steps),
        ("--batch-size", batch_size),
        ("--block-size", block_size),
        ("--lora-r", lora_r),
    ):
        if value < 1:
            raise ValueError(f"{flag}: must be at least 1, not {value}")
    return Settings(shape, chosen, used, batch_size, block_size, steps, lora_r, deadline_s=deadline_s)

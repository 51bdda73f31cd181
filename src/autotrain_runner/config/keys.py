"""Every key an env file may set: AutoTrain's own fields, the runner's keys, and the legacy names.

One table answers "what does this key mean, what type is it, what values are allowed":
AutoTrain fields come from the `LLMTrainingParams` schema (upper-cased), with the ranges and
enumerations AutoTrain accepts (`autotrain_keys.py`); runner keys are declared below with a help
string; `LEGACY` maps the names of older AutoTrain notebooks to the current key.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from autotrain_runner.config import autotrain_fields
from autotrain_runner.config.autotrain_keys import autotrain_keys
from autotrain_runner.config.value_checks import (
    MAX_CONTEXT,
    Check,
    above,
    between,
    check_checkpoint_interval,
    check_dpo_loss,
    check_param_count,
    encoding,
    repo_id,
    within,
)
from autotrain_runner.config.values import Key
from autotrain_runner.layout import figures as figure_table

_RUNNER_KEYS = [
    Key(
        "EXTENDS", "str", "Preset env files this file builds on, comma-separated, relative to this file", group="runner"
    ),
    Key("DATA_FILE", "str", "The training file (csv or jsonl); staged as train.* for AutoTrain", group="data"),
    Key("HF_TOKEN", "str", "Hugging Face token; keep it in project.local.env or the environment", group="hub"),
    Key("HUB_REPO", "str", "Hub repository (owner/name) to push to", check=repo_id, group="hub"),
    Key(
        "BACKEND",
        "str",
        "AutoTrain's --backend: local, or one of its hosted backends",
        default="local",
        choices=tuple(autotrain_fields.backends()),
        group="runner",
    ),
    Key(
        "LOSS_ON",
        "str",
        "answer: loss on each sample's final answer and its end marker only (prompt, system and role "
        "markers masked); all: on the whole text, as AutoTrain does",
        default="answer",
        choices=("answer", "all"),
    ),
    Key(
        "THINKING",
        "str",
        "Thinking templates (Qwen3, EXAONE 4, HyperCLOVA X SEED Think, Gemma 4): off renders every prompt "
        "with enable_thinking=False (an empty think block, in training and generation alike); on with "
        "enable_thinking=True; template passes nothing (the template's own default)",
        default="off",
        choices=("off", "on", "template"),
    ),
    Key(
        "LIGER_KERNEL",
        "bool",
        "Liger's fused Triton kernels (RMSNorm, RoPE, SwiGLU) through TRL's use_liger_kernel: CUDA and the "
        "liger-kernel package only",
        default=False,
    ),
    Key(
        "DPO_LOSS",
        "str",
        "TRAINER=dpo: TRL's DPO loss_type, comma-separated and summed: sigmoid is DPO; sigmoid,sft adds the "
        "chosen answers' NLL (RPO), which keeps a model that does not yet write the chosen answers generating",
        default="sigmoid",
        check=check_dpo_loss,
    ),
    Key(
        "CHECKPOINT_EVERY",
        "str",
        "When a run saves a resumable checkpoint (adapter, optimizer, scheduler, RNG, data position): epoch, a "
        "step count (200), a time (30m, 2h), several (epoch,30m), or no; atr train --resume continues from it",
        default="epoch,30m",
        check=check_checkpoint_interval,
    ),
    Key("EARLY_STOPPING", "int", "Stop after N evaluations without a better held-out loss", check=between(1, 1000)),
    Key(
        "TRUST_REMOTE_CODE",
        "bool",
        "Allow the model's own Python code (trust_remote_code)",
        default=False,
        group="runner",
    ),
]


def _split(v: Any) -> str | None:
    try:
        parts = [float(x) for x in str(v).split(",")]
    except ValueError:
        return f"must be three fractions like 0.7,0.15,0.15, got {v!r}"
    if len(parts) != 3 or not all(0 <= p <= 1 for p in parts) or abs(sum(parts) - 1) > 1e-6 or parts[0] <= 0:
        return f"must be three fractions train,valid,test that sum to 1 (train > 0), got {v!r}"
    return None


_DATA_KEYS = [
    Key(
        "DATA_BUILDER",
        "str",
        "Builds the dataset from RAW_DATA (atr data)",
        group="data",
        choices=("table", "txt", "alpaca", "sharegpt", "messages", "emotion_dialogue", "dialogue_summary"),
    ),
    Key("RAW_DATA", "str", "The builder's input: a file, a folder or a glob", group="data"),
    Key("DATASET_DIR", "str", "Where atr data writes (default datasets/<project>)", group="data"),
    Key("PROMPT_TEMPLATE", "str", "instruct-ko, instruct-en, tokenizer, chatml, zephyr, or a .json file", group="data"),
    Key("SYSTEM_PROMPT", "str", "System message for every sample", group="data"),
    Key("PROMPT_COLUMN", "str", "table: the prompt column", default="prompt", group="data"),
    Key("RESPONSE_COLUMN", "str", "table: the response column", default="response", group="data"),
    Key("SYSTEM_COLUMN", "str", "table: a per-row system message column", group="data"),
    Key(
        "CHOSEN_COLUMN", "str", "table, for dpo/orpo/reward: the chosen answer's column", default="chosen", group="data"
    ),
    Key(
        "REJECTED_COLUMN",
        "str",
        "table, for dpo/orpo/reward: the rejected answer's column",
        default="rejected",
        group="data",
    ),
    Key(
        "SPLIT",
        "str",
        "train,valid,test fractions where the source has no splits",
        default="0.7,0.15,0.15",
        check=_split,
        group="data",
    ),
    Key(
        "ON_BAD_ROWS",
        "str",
        "error: stop and list bad rows; skip: drop and count them",
        default="error",
        choices=("error", "skip"),
        group="data",
    ),
    Key(
        "ENCODING",
        "str",
        "raw text files' encoding (utf-8, utf-16, cp949, shift_jis, ...); default: detected per file",
        check=encoding,
        group="data",
    ),
    Key(
        "PREFERENCE",
        "str",
        "preference data (chosen/rejected) trained by sft: chosen trains on the chosen answer (dpo, orpo and "
        "reward train the pairs)",
        choices=("chosen",),
        group="data",
    ),
    Key(
        "TXT_FORMAT",
        "str",
        "txt: qa blocks, tsv pairs, or styled lines",
        default="qa",
        choices=("qa", "tsv", "lines"),
        group="data",
    ),
    Key("TXT_Q_MARKER", "str", "txt qa: the question marker", default="Q:", group="data"),
    Key("TXT_A_MARKER", "str", "txt qa: the answer marker", default="A:", group="data"),
    Key("TXT_INSTRUCTION", "str", "txt lines: the request each styled line answers", group="data"),
    Key("SUMMARY_INSTRUCTION", "str", "dialogue_summary: the instruction before the dialogue", group="data"),
    Key(
        "MASKING",
        "str",
        "dialogue_summary: keep masking tokens (#@이름#) or map them",
        default="keep",
        choices=("keep", "map"),
        group="data",
    ),
    Key("MASK_MAP", "str", "dialogue_summary: TOKEN=VALUE,... replacements with MASKING=map", group="data"),
    Key(
        "SHEET",
        "str",
        "xlsx: the sheets to read, comma-separated (default: every sheet with the first sheet's header)",
        group="data",
    ),
]

_EVAL_KEYS = [
    Key(
        "MAX_NEW_TOKENS",
        "int",
        "Generation: most new tokens per answer",
        default=128,
        check=between(1, MAX_CONTEXT),
        group="eval",
    ),
    Key("TEMPERATURE", "float", "Generation: 0 is greedy", default=0.0, check=between(0, 2), group="eval"),
    Key(
        "TOP_P",
        "float",
        "Generation: nucleus sampling (with TEMPERATURE > 0)",
        default=1.0,
        check=within(0, 1, hi_inclusive=True),
        group="eval",
    ),
    Key(
        "REPETITION_PENALTY",
        "float",
        "Generation: 1.0 is none",
        default=1.0,
        check=between(0, 10, lo_open=True),
        group="eval",
    ),
    Key("EVAL_BATCH_SIZE", "int", "Generation: prompts per batch", default=16, check=between(1, 4096), group="eval"),
    Key(
        "GENERATION_ENGINE",
        "str",
        "Generation for eval, chat, serve, sweep: auto (vLLM when installed and it supports the model), hf or vllm",
        default="auto",
        choices=("auto", "hf", "vllm"),
        group="eval",
    ),
    Key("EMBEDDING_MODEL", "str", "sentence-transformers model (Hub id or folder) for cosine similarity", group="eval"),
    Key(
        "BLEU_TOKENIZE",
        "str",
        "sacrebleu tokenizer for BLEU: char, 13a, ko-mecab (with sacrebleu[ko])",
        default="char",
        group="eval",
    ),
    Key("EVAL_PROMPTS", "str", "A prompt list (one per line, or JSONL) for qualitative checks", group="eval"),
    Key("OPENAI_BASE_URL", "str", "--backend openai: the server, e.g. http://127.0.0.1:8000/v1", group="eval"),
    Key("OPENAI_MODEL", "str", "--backend openai: the model (or LoRA module) name the server knows", group="eval"),
    Key(
        "EVAL_CONCURRENCY", "int", "--backend openai: requests at once", default=4, check=between(1, 1024), group="eval"
    ),
    Key(
        "EVAL_TIMEOUT",
        "float",
        "--backend openai: seconds per request",
        default=120.0,
        check=between(0, 86400, lo_open=True),
        group="eval",
    ),
]


def _each(check: Check) -> Check:
    def each(values: list[Any]) -> str | None:
        if not values:
            return "must list at least one value"
        return next((m for m in map(check, values) if m), None)

    return each


_SWEEP_KEYS = [
    Key(
        "KEEP_EPOCHS",
        "int_list",
        "Keep the adapter of these epochs in epoch-K/ (atr eval --epoch K)",
        check=_each(between(1, 1000)),
    ),
    Key("SWEEP_EPOCHS", "int_list", "Sweep: epochs to try, e.g. 1,2,3,5", check=_each(between(1, 1000)), group="sweep"),
    Key(
        "SWEEP_LORA_R", "int_list", "Sweep: LoRA ranks to try, e.g. 8,16", check=_each(between(1, 65536)), group="sweep"
    ),
    Key(
        "SWEEP_LORA_ALPHA",
        "int_list",
        "Sweep: LoRA alphas, one per rank of SWEEP_LORA_R (same length)",
        check=_each(between(1, 1 << 20)),
        group="sweep",
    ),
    Key(
        "SWEEP_ALPHA_RATIO",
        "float",
        "Sweep: alpha = ratio x rank when SWEEP_LORA_ALPHA is not set",
        default=2.0,
        check=above(0),
        group="sweep",
    ),
    Key(
        "SWEEP_LR",
        "float_list",
        "Sweep: learning rates to try, e.g. 1e-4,2e-4",
        check=_each(between(0, 1, lo_open=True)),
        group="sweep",
    ),
    Key(
        "SWEEP_PARALLEL",
        "int",
        "Sweep: trials at once (default: one per CUDA device, else 1); on CPU the cores are split",
        check=between(1, 1024),
        group="sweep",
    ),
    Key(
        "SWEEP_EXECUTOR",
        "str",
        "Sweep: local (this machine's CPUs or GPUs) or ray (each trial a Ray task on a cluster)",
        default="local",
        choices=("local", "ray"),
        group="sweep",
    ),
    Key(
        "SWEEP_RAY_ADDRESS",
        "str",
        "Sweep on Ray: the cluster (auto, ray://HOST:10001, HOST:6379), or local to start one for the sweep",
        default="local",
        group="sweep",
    ),
    Key(
        "SWEEP_GPUS_PER_TRIAL",
        "float",
        "Sweep on Ray: GPUs a trial asks for (default 1 where the cluster has GPUs, else 0)",
        check=above(0, True),
        group="sweep",
    ),
    Key(
        "SWEEP_CPUS_PER_TRIAL",
        "float",
        "Sweep on Ray: CPUs a trial asks for",
        default=1.0,
        check=above(0),
        group="sweep",
    ),
    Key(
        "SWEEP_EPOCHS_FROM",
        "str",
        "Sweep: trainings trains every epoch count on its own; checkpoints trains each (rank, lr) once to the "
        "largest and evaluates its checkpoint at each epoch of SWEEP_EPOCHS",
        default="trainings",
        choices=("trainings", "checkpoints"),
        group="sweep",
    ),
    Key(
        "SWEEP_METRIC",
        "str",
        "Sweep: what ranks the trials (higher is better; valid_loss: lower is better; pref_accuracy and "
        "pref_margin rank dpo/orpo trials on held-out pairs)",
        default="chrf",
        choices=figure_table.names(figure_table.RANK),
        group="sweep",
    ),
    Key(
        "SWEEP_FLAG_LIMIT",
        "float",
        "Sweep: a trial whose template-leak or repetition rate exceeds this ranks below every clean trial",
        default=0.05,
        check=within(0, 1, hi_inclusive=True),
        group="sweep",
    ),
]

_PREFLIGHT_KEYS = [
    Key(
        "MODEL_PARAMS",
        "str",
        "Model size for the memory preflight when its config.json is not on disk: 13B, 10.8B, 135M, 7e9",
        check=check_param_count,
        group="hardware",
    ),
    Key(
        "GPU_MEMORY_GB",
        "float",
        "Memory of the GPU this config is meant for, in GB; atr check says whether it fits (default: the detected GPU)",
        check=between(0, 1e6, lo_open=True),
        group="hardware",
    ),
]

# Old key -> (current key, how the old value becomes the current one).
LEGACY: dict[str, tuple[str, Callable[[Any], Any] | None]] = {
    "LEARNING_RATE": ("LR", None),
    "NUM_EPOCHS": ("EPOCHS", None),
    "USE_FP16": ("MIXED_PRECISION", lambda on: "fp16" if on else "none"),
    "USE_BF16": ("MIXED_PRECISION", lambda on: "bf16" if on else "none"),
    "USE_PEFT": ("PEFT", None),
    "USE_INT4": ("QUANTIZATION", lambda on: "int4" if on else "none"),
    "USE_INT8": ("QUANTIZATION", lambda on: "int8" if on else "none"),
    "MODEL_NAME": ("MODEL", None),
    "AUTOTRAIN_PROJECT_NAME": ("PROJECT_NAME", None),
    "TEXT_COLUMM": ("TEXT_COLUMN", None),
    "REPO_ID": ("HUB_REPO", None),
    "TOKEN": ("HF_TOKEN", None),
}
# The kind a legacy value is parsed as, when it differs from the current key's kind.
LEGACY_KIND = {"USE_FP16": "bool", "USE_BF16": "bool", "USE_INT4": "bool", "USE_INT8": "bool"}

# Names that only carry a value into other values (`${PROJECT_ID}`), never a setting of their own.
VARIABLES = {"PROJECT_ID"}

KEYS: dict[str, Key] = {
    **autotrain_keys(),
    **{k.name: k for k in _RUNNER_KEYS + _DATA_KEYS + _EVAL_KEYS + _SWEEP_KEYS + _PREFLIGHT_KEYS},
}
del KEYS["TOKEN"]  # the token is HF_TOKEN; TOKEN is accepted as a legacy spelling


def suggest(name: str) -> str | None:
    """The closest known key, for a did-you-mean."""
    candidates = [*KEYS, *LEGACY, *VARIABLES]
    match = difflib.get_close_matches(name.upper(), candidates, n=1, cutoff=0.75)
    return match[0] if match else None


def is_known(name: str) -> bool:
    return name in KEYS or name in LEGACY or name in VARIABLES

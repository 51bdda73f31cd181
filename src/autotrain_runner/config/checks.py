"""Checks across settings: what one value means for another (int4 needs PEFT, a hosted backend
needs a Hub token and PUSH_TO_HUB), what a setting means on a machine without CUDA, and the
dataset folder a data builder writes.

They read the typed `Config`; each finding is a `Problem` at the line that can fix it.
"""

from __future__ import annotations

import importlib.util

from autotrain_runner.config.dataset_dir import dataset_dir_problems
from autotrain_runner.config.files import local_env_file
from autotrain_runner.config.inputs import input_problems
from autotrain_runner.config.keys import KEYS
from autotrain_runner.config.records import Config
from autotrain_runner.errors import Level, Problem
from autotrain_runner.redact import is_secret_key


def cross_checks(config: Config, problems: list[Problem]) -> None:
    get, where = config.get, lambda key: str(config.source(key))

    def written(key: str) -> str:
        return config.values[key].written_as if key in config.values else key

    explicit_quant = config.values.get("QUANTIZATION")
    if explicit_quant and explicit_quant.value in ("int4", "int8") and not get("PEFT"):
        problems.append(
            Problem(
                Level.ERROR,
                str(explicit_quant.source),
                explicit_quant.written_as,
                f"{explicit_quant.value} quantization trains LoRA adapters only; set PEFT=true "
                "(or USE_PEFT=True), or QUANTIZATION=none for full fine-tuning",
            )
        )
    if config.quantization in ("int4", "int8") and not config.cuda:
        problems.append(
            Problem(
                Level.NOTE,
                where("QUANTIZATION"),
                written("QUANTIZATION"),
                f"{config.quantization} without CUDA: bitsandbytes quantizes on the CPU, which trains slowly",
            )
        )
    if get("MIXED_PRECISION") in ("fp16", "bf16") and not config.cuda:
        problems.append(
            Problem(
                Level.NOTE,
                where("MIXED_PRECISION"),
                written("MIXED_PRECISION"),
                f"{get('MIXED_PRECISION')} needs CUDA; without it training runs in fp32",
            )
        )
    problems.extend(_kernel_problems(config))
    needs_hub = config.push or get("BACKEND") != "local"
    if needs_hub:
        reason = "PUSH_TO_HUB=true" if config.push else f"BACKEND={get('BACKEND')}"
        hosted = get("BACKEND") != "local"
        # `atr push` also takes the token `huggingface-cli login` stored; a hosted backend needs HF_TOKEN
        if not get("HF_TOKEN") and (hosted or not _login_token()):
            problems.append(
                Problem(
                    Level.ERROR,
                    where("PUSH_TO_HUB" if config.push else "BACKEND"),
                    "HF_TOKEN",
                    f"{reason} needs a token: put HF_TOKEN=... in "
                    f"{local_env_file(config.env_file).name} or the environment"
                    + ("" if hosted else ", or run `huggingface-cli login`"),
                )
            )
        if not get("USERNAME") and not get("HUB_REPO"):
            problems.append(
                Problem(
                    Level.ERROR,
                    where("PUSH_TO_HUB" if config.push else "BACKEND"),
                    "USERNAME",
                    f"{reason} needs a Hub user or organisation: set USERNAME or HUB_REPO=owner/name",
                )
            )
    if get("BACKEND") != "local" and not config.push:
        problems.append(
            Problem(
                Level.ERROR,
                where("BACKEND"),
                "BACKEND",
                f"AutoTrain's hosted backend {get('BACKEND')} needs PUSH_TO_HUB=true",
            )
        )
    for name, given in config.values.items():
        if given.source.kind == "--set" and is_secret_key(name) and KEYS[name].kind == "str":
            problems.append(
                Problem(
                    Level.WARNING,
                    "--set",
                    name,
                    "a secret on the command line stays in shell history and is visible to `ps`; put it in "
                    f"{local_env_file(config.env_file).name} or the environment",
                )
            )
    token = config.values.get("HF_TOKEN")
    if token and token.source.kind in ("file", "preset"):
        problems.append(
            Problem(
                Level.WARNING,
                str(token.source),
                token.written_as,
                f"a token in a tracked env file; move it to {local_env_file(config.env_file).name} "
                "(git-ignored) or the environment",
            )
        )
    if "VALID_SPLIT" in config.values:
        problems.append(
            Problem(
                Level.NOTE,
                where("VALID_SPLIT"),
                "VALID_SPLIT",
                "AutoTrain drops the validation split of local data; held-out evaluation is atr's job",
            )
        )
    if get("DISTRIBUTED_BACKEND") and not config.cuda:
        problems.append(
            Problem(
                Level.NOTE,
                where("DISTRIBUTED_BACKEND"),
                "DISTRIBUTED_BACKEND",
                "takes effect only with several CUDA devices",
            )
        )
    if "DATA_BUILDER" in config.values:  # `atr data` replaces DATASET_DIR: never a folder it did not make
        problems.extend(dataset_dir_problems(config))
    problems.extend(input_problems(config))


# Keys whose kernels exist only on CUDA, with the module that provides them and its PyPI package.
_CUDA_KERNELS = (
    ("LIGER_KERNEL", "liger_kernel", "liger-kernel"),
    ("USE_FLASH_ATTENTION_2", "flash_attn", "flash-attn"),
)


def _kernel_problems(config: Config) -> list[Problem]:
    """Triton/CUDA kernels refused where they cannot run, rather than failing inside the trainer."""
    problems = []
    for key, module, package in _CUDA_KERNELS:
        if not config.get(key):
            continue
        if not config.cuda:
            why = f"{key}=true needs a CUDA GPU (none here): its kernels do not run on a CPU"
        elif importlib.util.find_spec(module) is None:
            why = f"{key}=true needs the {package} package: .venv/bin/pip install {package}"
        else:
            continue
        problems.append(Problem(Level.ERROR, str(config.source(key)), key, why))
    return problems


def _login_token() -> bool:
    """Whether `huggingface-cli login` stored a token (read from its file; no network)."""
    from huggingface_hub import get_token

    return bool(get_token())

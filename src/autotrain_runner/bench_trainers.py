"""`atr bench trainers`: each AutoTrain trainer through `atr train` on one tiny model and one set of
preference pairs, side by side: wall time, seconds per step, final loss, and the ratio to sft.

The model is a tiny random model of a family (`families.harness.build`: Llama 3 by default); the
data are the same pairs for every trainer (sft and default train the chosen answers, as
`PREFERENCE=chosen`), with the same hyperparameters. One fresh project per trainer, in a temporary
folder; `atr train` is timed as a user runs it, from the start of the process to its exit.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autotrain_runner.bench_resume import run_atr

TRAINERS = ("sft", "default", "dpo", "orpo", "reward")

PROJECT_ENV = """\
MODEL={model}
DATA_BUILDER=alpaca
RAW_DATA=pairs.json
PROMPT_TEMPLATE=tokenizer
TRAINER={trainer}
PREFERENCE=chosen
SPLIT=0.8,0.2,0
EPOCHS=1
BATCH_SIZE=2
BLOCK_SIZE=64
LR=1e-3
PEFT=true
QUANTIZATION=none
LORA_R=4
LORA_ALPHA=8
GRADIENT_ACCUMULATION=1
"""


def pairs(n: int) -> list[dict[str, str]]:
    """n alpaca preference records: a question, a styled answer (chosen) and a plain one (rejected)."""
    return [
        {
            "instruction": f"오늘 날씨 어때? {i}",
            "chosen": f"맑아여~* 산책 가여 {i}",
            "rejected": f"The weather is fine. {i}",
        }
        for i in range(n)
    ]


def run(trainers: list[str], family: str, n: int, repeat: int, echo: Callable[[str], None] = print) -> dict[str, Any]:
    from autotrain_runner import hardware
    from autotrain_runner.families.harness import build

    unknown = [t for t in trainers if t not in TRAINERS]
    if unknown:
        raise ValueError(f"--trainers: unknown {', '.join(unknown)} (use {', '.join(TRAINERS)})")
    rows = []
    with tempfile.TemporaryDirectory(prefix="atr-bench-trainers-") as tmp:
        root = Path(tmp)
        model = build(family, root / "model")
        for trainer in trainers:
            times, record = [], None
            for attempt in range(repeat):
                project = root / "projects" / f"{trainer}-{attempt}"
                project.mkdir(parents=True)
                (project / "pairs.json").write_text(json.dumps(pairs(n), ensure_ascii=False), encoding="utf-8")
                (project / "project.env").write_text(PROJECT_ENV.format(model=model, trainer=trainer), encoding="utf-8")
                run_atr("data", str(project))  # built before the clock starts: the same data for every trainer
                started = time.perf_counter()
                run_atr("train", str(project), "--run-id", "r")
                times.append(time.perf_counter() - started)
                record = project / "runs" / "r"
            assert record is not None
            figures = json.loads((record / "train_metrics.json").read_text(encoding="utf-8"))
            run_record = json.loads((record / "run.json").read_text(encoding="utf-8"))
            rows.append(
                {
                    "trainer": trainer,
                    "wall_s": round(sorted(times)[len(times) // 2], 2),
                    "steps": figures.get("steps"),
                    "s_per_step": figures.get("step_s"),  # the median (`measure.StepClock`)
                    "tokens_per_s": figures.get("tokens_per_s"),
                    "train_loss": run_record.get("train_loss"),
                }
            )
            echo(f"{trainer}: {rows[-1]['wall_s']} s (median of {repeat})")
    sft = next((r["wall_s"] for r in rows if r["trainer"] == "sft"), None)
    sft_step = next((r["s_per_step"] for r in rows if r["trainer"] == "sft"), None)
    for row in rows:
        row["wall_vs_sft"] = round(row["wall_s"] / sft, 2) if sft else None
        row["step_vs_sft"] = round(row["s_per_step"] / sft_step, 2) if sft_step and row["s_per_step"] else None
    return {
        "settings": {"family": family, "pairs": n, "repeat": repeat, "epochs": 1, "batch_size": 2, "block_size": 64},
        "cpu": hardware.cpu_features(),
        "rows": rows,
    }

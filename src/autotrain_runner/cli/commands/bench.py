"""`atr bench BENCH`: the benchmarks, each a subcommand with its arguments and its run (JSON on
stdout, progress on stderr)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from autotrain_runner.cli.arguments import overrides_flag
from autotrain_runner.cli.printing import print_json, to_stderr
from autotrain_runner.errors import ConfigError
from autotrain_runner.layout import outputs


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="build a synthetic dialogue-summary corpus of the real size")
    p.add_argument("--dialogues", type=int, default=71_139, help="corpus size (default: the real one's)")


def _data(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import bench

    return print_json(bench.bench_data(args.dialogues))


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="sequential loop vs HF batched vs vLLM, same prompts")
    p.add_argument("--model", required=True, help="model folder, Hub id or bundled:smollm2-135m-instruct")
    p.add_argument("--adapter", type=Path, help="a PEFT adapter folder (a run's output)")
    p.add_argument("--n", type=int, default=64, help="prompts (default 64)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--template", help="prompt template (default: the model's chat template if any)")
    p.add_argument(
        "--engines", default="sequential,hf,vllm", help="comma-separated: sequential, hf, vllm (default: all three)"
    )


def _generate(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import bench

    engines = bench.parse_engines(args.engines)
    model = bench.model_path(args.model, echo=to_stderr)
    figures = bench.bench_generate(
        model, args.adapter, args.n, args.batch_size, args.max_new_tokens, args.template, engines, echo=to_stderr
    )
    return print_json(figures)


def _add_memory(sub) -> None:
    p = sub.add_parser("memory", help="memory preflight estimate vs one measured LoRA step on CPU")
    p.add_argument("--model", required=True, help="model folder or bundled:smollm2-135m-instruct")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--gradient-checkpointing", action="store_true")


def _memory(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import bench

    model = bench.model_path(args.model, echo=to_stderr)
    return print_json(
        bench.bench_memory(model, args.batch_size, args.block_size, args.lora_r, args.gradient_checkpointing)
    )


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train", help="atr train vs plain TRL: tokens/s, s/step, peak memory, loss and the preflight's estimate"
    )
    p.add_argument(
        "--shape",
        default="tiny",
        help="tiny, smollm2 (the bundled model), llama-3.1-8b, qwen3-8b, eeve-10.8b, smollm2-135m",
    )
    p.add_argument("--configs", default="fp32,int4", help="comma-separated: fp32, bf16, fp16, int4, liger")
    p.add_argument(
        "--tools", default="atr,trl", help="comma-separated: atr, trl, llamafactory (its own venv, installed once)"
    )
    p.add_argument("--steps", type=int, default=8, help="optimizer steps the data fills (default 8)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--block-size", type=int, default=256)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--generate", type=int, default=0, metavar="N", help="also N prompts of HF batched generation")
    p.add_argument("--deadline", type=float, metavar="S", help="skip the rows not started S seconds in")
    p.add_argument("--out", type=Path, help="write the JSON here too, after every row")


def _train(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import bench_train as bench

    try:
        settings = bench.settings(
            args.shape,
            args.configs,
            args.tools,
            args.steps,
            args.batch_size,
            args.block_size,
            args.lora_r,
            args.deadline,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.out is not None:
        outputs.check_output(args.out, "a bench train JSON", outputs.json_with("rows", "settings"))
    return print_json(bench.run(settings, args.generate, args.out, echo=to_stderr))


def _add_resume(sub) -> None:
    p = sub.add_parser("resume", help="a run killed at 30/60/90%% of its epochs and resumed, against one never stopped")
    p.add_argument("project", type=Path, help="project folder holding project.env, or an .env file")
    p.add_argument("--at", default="0.3,0.6,0.9", help="fractions of the epochs to kill at")
    overrides_flag(p)


def _resume(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import bench_resume as bench

    try:
        fractions = [float(x) for x in args.at.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--at: {args.at!r} is not a list of fractions, e.g. 0.3,0.6,0.9") from None
    if not fractions or any(not 0 < f < 1 for f in fractions):
        raise ConfigError(f"--at: each fraction must be between 0 and 1, got {args.at!r}")
    return print_json(bench.run(args.project, fractions, args.overrides, echo=to_stderr))


def _add_sweep_epochs(sub) -> None:
    p = sub.add_parser(
        "sweep-epochs", help="a sweep's epochs trained separately against taken from checkpoints: time, chrF, loss"
    )
    p.add_argument("project", type=Path, help="project folder with a sweep grid (SWEEP_EPOCHS)")
    overrides_flag(p)


def _sweep_epochs(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import bench_sweep_epochs as bench

    return print_json(bench.run(args.project, args.overrides, echo=to_stderr))


def _add_trainers(sub) -> None:
    p = sub.add_parser(
        "trainers", help="sft, default, dpo, orpo and reward through atr train on one tiny model: wall time"
    )
    p.add_argument("--trainers", default="sft,default,dpo,orpo,reward", help="comma-separated")
    p.add_argument("--family", default="llama3", help="the tiny model's family (default llama3)")
    p.add_argument("--pairs", type=int, default=40, help="preference pairs (default 40)")
    p.add_argument("--repeat", type=int, default=1, help="trainings per trainer; the median counts")


def _trainers(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import bench_trainers as bench

    trainers = [t.strip() for t in args.trainers.split(",") if t.strip()]
    try:
        return print_json(bench.run(trainers, args.family, args.pairs, args.repeat, echo=to_stderr))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _add_families(sub) -> None:
    p = sub.add_parser("families", help="train and evaluate a tiny random model of each LLM family; a Markdown table")
    p.add_argument("--only", help="comma-separated families (default: all)")
    p.add_argument("--out", type=Path, help="also write the table to this file")
    p.add_argument(
        "--real",
        action="store_true",
        help="the families' real chat templates and tokenizer settings (tests/fixtures/templates) on tiny models",
    )
    p.add_argument("--quick", action="store_true", help="with --real: the renderer's checks only, no training")


def _families(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner.families import harness, real

    if args.out is not None:
        outputs.check_output(args.out, "a families table", outputs.text_starting("| "))
    if args.real:
        only = [n.strip() for n in args.only.split(",")] if args.only else None
        return real.main(only, args.out, args.quick, echo=to_stderr)
    try:
        return harness.run(args.only, args.out)
    except ValueError as exc:
        raise ConfigError(f"--only: {exc}") from None


def _add_sweep_eval(sub) -> None:
    p = sub.add_parser(
        "sweep-eval", help="a finished sweep's evaluation phase again, with hf (a load per trial) and vllm (one load)"
    )
    p.add_argument("project", type=Path)
    overrides_flag(p)


def _sweep_eval(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import bench

    return print_json(bench.bench_sweep_eval(args.project, args.overrides, echo=to_stderr))


def _add_loss_on(sub) -> None:
    p = sub.add_parser(
        "loss-on", help="a project's sweep with LOSS_ON=answer and with LOSS_ON=all: leak and repetition per trial"
    )
    p.add_argument("project", type=Path, help="a project that sets a sweep grid (SWEEP_EPOCHS, say)")
    overrides_flag(p)


def _loss_on(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import bench

    return print_json(bench.bench_loss_on(args.project, args.overrides, echo=to_stderr))


Run = Callable[[argparse.Namespace, Console], int]

# name -> (its arguments, its run), in the order `atr bench --help` lists them
BENCHMARKS: dict[str, tuple[Callable[[object], None], Run]] = {
    "data": (_add_data, _data),
    "generate": (_add_generate, _generate),
    "memory": (_add_memory, _memory),
    "train": (_add_train, _train),
    "resume": (_add_resume, _resume),
    "sweep-epochs": (_add_sweep_epochs, _sweep_epochs),
    "trainers": (_add_trainers, _trainers),
    "families": (_add_families, _families),
    "sweep-eval": (_add_sweep_eval, _sweep_eval),
    "loss-on": (_add_loss_on, _loss_on),
}


def add(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks (JSON on stdout)")
    benchmarks = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    for add_arguments, _ in BENCHMARKS.values():
        add_arguments(benchmarks)


def run(args: argparse.Namespace, out: Console) -> int:
    return BENCHMARKS[args.bench][1](args, out)

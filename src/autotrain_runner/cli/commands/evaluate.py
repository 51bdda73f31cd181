"""`atr eval PROJECT`: evaluate a run (or the base model) on a held-out split or a prompt list."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from autotrain_runner.cli import show
from autotrain_runner.cli.arguments import engine_flag, model_command
from autotrain_runner.cli.printing import lines
from autotrain_runner.errors import EXIT_OK, ConfigError
from autotrain_runner.layout import outputs


def add(sub) -> None:
    p = model_command(sub, "eval", "evaluate a run (or the base model) on a held-out split or a prompt list")
    p.add_argument("--split", default="test", choices=("test", "valid", "train"))
    p.add_argument("--prompts", type=Path, help="a prompt list (one per line, or JSONL): outputs and flags only")
    p.add_argument("--limit", type=int, help="only the first N samples")
    p.add_argument("--epoch", type=int, metavar="K", help="the run's adapter at epoch K (kept with KEEP_EPOCHS)")
    p.add_argument("--out", type=Path, help="output folder (default: <run>/eval, or eval/base-<model>)")
    p.add_argument("--compare-base", action="store_true", help="also evaluate the base model; write compare.md")
    p.add_argument(
        "--backend",
        choices=("hf", "openai"),
        default="hf",
        help="hf: in process; openai: an OpenAI-compatible server at OPENAI_BASE_URL",
    )
    engine_flag(p)


def run(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner.evaluation.evaluate import evaluate

    if args.epoch is not None and args.base:
        raise ConfigError("--epoch K picks a run's adapter at epoch K; the base model has none")
    if args.out is not None:
        outputs.check_output(args.out, "an evaluation", outputs.eval_folder, folder=True)
    results = evaluate(
        args.project,
        args.overrides,
        run_id=args.run_id,
        base=args.base,
        split=args.split,
        prompts_file=args.prompts,
        limit=args.limit,
        out=args.out,
        compare_base=args.compare_base,
        backend=args.backend,
        echo=lines(out),
        epoch=args.epoch,
    )
    for result in results:
        out.print(show.headline_figures(result), markup=False)
    return EXIT_OK

"""`atr train PROJECT`: run AutoTrain in a new run folder (or continue one) and verify that it worked."""

from __future__ import annotations

import argparse

from rich.console import Console

from autotrain_runner.cli.arguments import project_command
from autotrain_runner.cli.printing import exit_code, lines
from autotrain_runner.errors import ConfigError


def add(sub) -> None:
    p = project_command(sub, "train", "run AutoTrain in a new run folder and verify that it worked")
    p.add_argument("--run-id", help="name of the run folder (default: time and config hash)")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even where CUDA is present")
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN_ID",
        help="continue a run from its last checkpoint, in its folder (default: the latest that did not succeed)",
    )
    p.add_argument("--force", action="store_true", help="with --resume: resume even though the config changed")


def run(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner.training.train import train

    if args.resume and args.run_id:
        raise ConfigError("--run-id names a new run; --resume RUN_ID names the run to continue")
    if args.force and not args.resume:
        raise ConfigError("--force goes with --resume (a new run never reuses a folder)")
    result = train(
        args.project,
        args.overrides,
        run_id=args.run_id,
        cpu=args.cpu,
        echo=lines(out),
        resume=args.resume,
        force=args.force,
    )
    out.print(f"{result.status}: run folder {result.run_dir}", markup=False)
    return exit_code(result.status)

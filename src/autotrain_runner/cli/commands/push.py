"""`atr push PROJECT`: upload a run's adapter (or merged weights) and a model card to the Hub."""

from __future__ import annotations

import argparse

from rich.console import Console

from autotrain_runner.cli import show
from autotrain_runner.cli.arguments import project_command
from autotrain_runner.cli.printing import lines
from autotrain_runner.errors import EXIT_OK


def add(sub) -> None:
    p = project_command(sub, "push", "upload a run's adapter (or merged weights) and a model card to the Hub")
    p.add_argument("--run", dest="run_id", help="the run (default: the succeeded run that finished last)")
    p.add_argument("--merged", action="store_true", help="merge the adapter into the base weights first")
    p.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), help="merged weights' precision (default: the base's)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--repo", metavar="OWNER/NAME", help="the repo (default: HUB_REPO, else USERNAME/project)")
    p.add_argument("--dry-run", action="store_true", help="print the repo, the files and the card; upload nothing")
    p.add_argument("--if-enabled", action="store_true", help="do nothing unless PUSH_TO_HUB=true (for run.sh)")
    p.add_argument(
        "--epoch", type=int, metavar="K", help="the adapter the run kept at epoch K (KEEP_EPOCHS), with its own card"
    )


def run(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner.hub.push import push

    plan = push(
        args.project,
        args.overrides,
        run_id=args.run_id,
        merged=args.merged,
        dtype=args.dtype,
        private=args.private,
        repo=args.repo,
        dry_run=args.dry_run,
        if_enabled=args.if_enabled,
        epoch=args.epoch,
        echo=lines(out),
        warn=lambda line: show.console(stderr=True).print(f"warning: {line}", markup=False),
    )
    if plan is not None:
        show.push_plan(plan, args.dry_run, out)
    return EXIT_OK

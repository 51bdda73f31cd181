"""`atr data PROJECT`: build the dataset from RAW_DATA with DATA_BUILDER."""

from __future__ import annotations

import argparse

from rich.console import Console

from autotrain_runner.cli.arguments import project_command
from autotrain_runner.errors import EXIT_OK


def add(sub) -> None:
    p = project_command(sub, "data", "build the dataset from RAW_DATA with DATA_BUILDER (skipped when up to date)")
    p.add_argument("--force", action="store_true", help="rebuild even when inputs and options are unchanged")


def run(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner.data import build_data, summarize

    for line in summarize(build_data(args.project, args.overrides, force=args.force)):
        out.print(line, markup=False)
    return EXIT_OK

"""`atr check PROJECT`: validate the env file and show every resolved key with its source."""

from __future__ import annotations

import argparse

from rich.console import Console

from autotrain_runner.cli import show
from autotrain_runner.cli.arguments import project_command
from autotrain_runner.errors import EXIT_OK


def add(sub) -> None:
    p = project_command(sub, "check", "validate the env file and show every resolved key with its source")
    p.add_argument("--cpu", action="store_true", help="check as `train --cpu` would run")


def run(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import hardware
    from autotrain_runner.config.load import load_config

    show.check_report(load_config(args.project, args.overrides, cuda=hardware.use_cuda(args.cpu)), out)
    return EXIT_OK

"""`atr keys`: every key an env file may set."""

from __future__ import annotations

import argparse

from rich.console import Console

from autotrain_runner.cli import show
from autotrain_runner.errors import EXIT_OK


def add(sub) -> None:
    sub.add_parser("keys", help="list every key an env file may set")


def run(args: argparse.Namespace, out: Console) -> int:
    show.keys_table(out)
    return EXIT_OK

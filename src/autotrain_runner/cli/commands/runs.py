"""`atr runs PROJECT`: a table of the project's runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from autotrain_runner.cli import show
from autotrain_runner.errors import EXIT_OK


def add(sub) -> None:
    p = sub.add_parser("runs", help="table of a project's runs")
    p.add_argument("project", type=Path)


def run(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner.config.files import find_env_file
    from autotrain_runner.layout import list_runs

    project_dir = find_env_file(args.project).parent
    show.runs_table(list_runs(project_dir), out, project_dir)
    return EXIT_OK

"""`atr report PROJECT`: one self-contained report.html."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from autotrain_runner.errors import EXIT_OK


def add(sub) -> None:
    p = sub.add_parser("report", help="write one self-contained report.html: runs, sweeps, evaluations, outputs")
    p.add_argument("project", type=Path)
    p.add_argument("--out", type=Path, help="where to write it (default: PROJECT/report.html)")


def run(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner.report.report import report

    out.print(f"wrote {report(args.project, args.out)}", markup=False)
    return EXIT_OK

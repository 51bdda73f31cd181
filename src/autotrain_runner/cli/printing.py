"""How a command's result reaches the terminal: lines, JSON, and the exit code of a status."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from rich.console import Console

from autotrain_runner import settings
from autotrain_runner.errors import EXIT_OK, EXIT_WORK_FAILED
from autotrain_runner.layout.records import Status
from autotrain_runner.progress import Meter

EXIT_INTERRUPTED = 130


def exit_code(status: str) -> int:
    if status == Status.INTERRUPTED:
        return EXIT_INTERRUPTED
    return EXIT_OK if status == Status.SUCCEEDED else EXIT_WORK_FAILED


def lines(out: Console) -> Callable[[str], None]:
    """Print a line on `out`; on a terminal, long work (`progress.meter`, `progress.waiting`) draws a
    bar or a spinner there instead of its periodic lines."""

    def echo(line: str) -> None:
        out.print(line, markup=False)

    if out.is_terminal and not settings.plain_output():
        echo.bar = lambda total, label, unit: Bar(total, label, unit, out)  # type: ignore[attr-defined]
        echo.spinner = lambda label: out.status(f"{label} ...", spinner="dots")  # type: ignore[attr-defined]
    return echo


class Bar(Meter):
    """A `Meter` shown as a rich progress bar on the command's console (a terminal), gone when the
    work is done; what the command prints meanwhile goes above it."""

    def __init__(self, total: int, label: str, unit: str, console: Console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        super().__init__(total, label, unit, echo=console.print)
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit, markup=False),
            TextColumn("{task.fields[rates]}", markup=False),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task(label, total=total, rates="")

    def __enter__(self) -> Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def show(self, now: float) -> None:
        self.progress.update(self.task, completed=self.done, rates=self.rates(now))


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def print_json(figures: object) -> int:
    print(json.dumps(figures, indent=2))
    return EXIT_OK

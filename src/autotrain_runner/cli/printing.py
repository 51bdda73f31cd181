"""How a command's result reaches the terminal: lines, JSON, and the exit code of a status."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from rich.console import Console

from autotrain_runner.errors import EXIT_OK, EXIT_WORK_FAILED
from autotrain_runner.layout.records import Status

EXIT_INTERRUPTED = 130


def exit_code(status: str) -> int:
    if status == Status.INTERRUPTED:
        return EXIT_INTERRUPTED
    return EXIT_OK if status == Status.SUCCEEDED else EXIT_WORK_FAILED


def lines(out: Console) -> Callable[[str], None]:
    return lambda line: out.print(line, markup=False)


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def print_json(figures: object) -> int:
    print(json.dumps(figures, indent=2))
    return EXIT_OK

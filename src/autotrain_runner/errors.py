"""Exception classes, grouped by what went wrong and by exit code.

`ConfigError` (exit 2) is bad input: the message names the file, line and key and says what
would fix it. `WorkError` (exit 1) is a failure of the work itself (training crashed, a child
process could not start). The CLI is the one place that turns them into exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

EXIT_OK = 0
EXIT_WORK_FAILED = 1
EXIT_BAD_INPUT = 2


class Level(StrEnum):
    """How much a finding matters: an error stops the command (exit 2), a warning and a note are shown."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True)
class Problem:
    """One finding about the configuration, located where the user can fix it."""

    level: Level
    where: str  # "project.env:12", "environment", "--set", "default"
    key: str
    message: str

    def __str__(self) -> str:
        return ": ".join(part for part in (self.where, self.key, self.message) if part)


class RunnerError(Exception):
    """Base class of every error autotrain-runner reports without a traceback."""

    exit_code = EXIT_WORK_FAILED


class ConfigError(RunnerError, ValueError):
    """Invalid configuration or input: one line per problem, exit 2."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, problems: list[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem(Level.ERROR, "", "", problems)]
        self.problems = [p for p in problems if p.level == Level.ERROR] or problems
        super().__init__("\n".join(str(p) for p in self.problems))


class WorkError(RunnerError, RuntimeError):
    """The work itself failed (training crashed, a server is down): exit 1."""

    exit_code = EXIT_WORK_FAILED


class HubError(WorkError):
    """A Hugging Face Hub call failed (offline, network, authentication, permissions): exit 1.
    The message says what to do next."""


class SecretFoundError(WorkError):
    """A file about to be published holds a token-shaped string or a configured secret: exit 1,
    nothing uploaded. The message names the file and line, never the secret."""

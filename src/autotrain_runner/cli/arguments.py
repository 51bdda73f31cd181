"""The arguments several commands share: the project, `--set`, which model (`--run`/`--base`) and
`--engine`. A command module adds its own beside them."""

from __future__ import annotations

import argparse
from pathlib import Path

from autotrain_runner.config.keys import KEYS


def project_command(sub, name: str, help: str) -> argparse.ArgumentParser:
    """A command on a project: its folder (or env file), and `--set KEY=VALUE`."""
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument("project", type=Path, help="project folder holding project.env, or an .env file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key (highest precedence; repeatable)",
    )
    return p


def model_command(sub, name: str, help: str) -> argparse.ArgumentParser:
    """A command that loads a run's model (default: the latest succeeded run) or the base model."""
    p = project_command(sub, name, help)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--run", dest="run_id", help="the run (default: the latest succeeded run)")
    which.add_argument("--base", action="store_true", help="the base model, with the project's template")
    return p


def engine_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=KEYS["GENERATION_ENGINE"].choices,
        help="what generates (GENERATION_ENGINE; default auto: vLLM when installed and it supports the model)",
    )


def overrides_flag(p: argparse.ArgumentParser) -> None:
    """`--set` for a benchmark that runs a project's commands."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

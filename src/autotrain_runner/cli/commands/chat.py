"""`atr chat PROJECT`: chat in the terminal with a run (or the base model), in its own template."""

from __future__ import annotations

import argparse

from rich.console import Console

from autotrain_runner.cli.arguments import engine_flag, model_command
from autotrain_runner.errors import EXIT_OK


def add(sub) -> None:
    p = model_command(sub, "chat", "chat in the terminal with a run (or the base model), in its own template")
    p.add_argument(
        "--backend",
        choices=("hf", "openai"),
        default="hf",
        help="hf: load the model here; openai: talk to the server at OPENAI_BASE_URL (e.g. vLLM)",
    )
    engine_flag(p)


def run(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner.chat import chat

    chat(args.project, args.overrides, run_id=args.run_id, base=args.base, backend=args.backend)
    return EXIT_OK

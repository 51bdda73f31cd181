"""`atr serve PROJECT`: a run as an OpenAI-compatible /v1/chat/completions, with a chat page."""

from __future__ import annotations

import argparse

from rich.console import Console

from autotrain_runner.cli.arguments import engine_flag, model_command
from autotrain_runner.errors import EXIT_OK


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def add(sub) -> None:
    p = model_command(sub, "serve", "serve a run as an OpenAI-compatible /v1/chat/completions")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed)")
    p.add_argument(
        "--max-waiting",
        type=_positive,
        default=8,
        metavar="N",
        help="requests that may wait for the model (hf); more get 429 with Retry-After (default 8)",
    )
    engine_flag(p)


def run(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner.serve.server import serve

    # serve() names --host/--port itself when it cannot listen, before the model loads
    serve(
        args.project,
        args.overrides,
        run_id=args.run_id,
        base=args.base,
        host=args.host,
        port=args.port,
        max_waiting=args.max_waiting,
        echo=lambda line: print(line, flush=True),
    )
    return EXIT_OK

"""`atr command PROJECT`: the exact AutoTrain argv, shell-quoted, secrets masked."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from autotrain_runner.cli.arguments import project_command
from autotrain_runner.errors import EXIT_OK


def add(sub) -> None:
    p = project_command(sub, "command", "print the exact AutoTrain argv, shell-quoted, secrets masked")
    p.add_argument("--json", action="store_true", help="print a JSON list instead")
    p.add_argument("--cpu", action="store_true", help="as `train --cpu` would run")


def run(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import hardware
    from autotrain_runner.config.load import load_config
    from autotrain_runner.redact import Redactor
    from autotrain_runner.training.command import build_argv, shell_line, validate_with_autotrain
    from autotrain_runner.training.engine import describe

    config = load_config(args.project, args.overrides, cuda=hardware.use_cuda(args.cpu))
    validate_with_autotrain(config)
    redact = Redactor(config.secrets())
    argv = [redact(a) for a in build_argv(config)]
    print(json.dumps(argv, ensure_ascii=False) if args.json else shell_line(argv))
    print(
        f"note: `atr train` runs {describe(config.get('TRAINER'))}; a bare `autotrain llm` on this stack lacks "
        "those fixes and fails (use_flash_attention_2, max_seq_length, warmup_ratio)",
        file=sys.stderr,
    )
    return EXIT_OK

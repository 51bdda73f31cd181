"""`atr sweep PROJECT`: train and evaluate every trial of a grid, and rank them."""

from __future__ import annotations

import argparse

from rich.console import Console

from autotrain_runner.cli.arguments import engine_flag, project_command
from autotrain_runner.cli.printing import exit_code, lines


def add(sub) -> None:
    p = project_command(sub, "sweep", "train and evaluate every trial of an epochs x LoRA-rank grid; rank them")
    p.add_argument("--epochs", metavar="LIST", help="epochs to try, e.g. 1,2,3,5 (SWEEP_EPOCHS)")
    p.add_argument("--lora-r", metavar="LIST", help="LoRA ranks to try, e.g. 8,16 (SWEEP_LORA_R)")
    alpha = p.add_mutually_exclusive_group()
    alpha.add_argument("--lora-alpha", metavar="LIST", help="one alpha per rank, e.g. 16,32 (SWEEP_LORA_ALPHA)")
    alpha.add_argument("--alpha-ratio", metavar="X", help="alpha = X x rank (SWEEP_ALPHA_RATIO; default 2)")
    p.add_argument("--lr", metavar="LIST", help="learning rates to try, e.g. 1e-4,2e-4 (SWEEP_LR)")
    p.add_argument(
        "--parallel", metavar="N", help="trials at once (SWEEP_PARALLEL; default: one per CUDA device, else 1)"
    )
    p.add_argument("--executor", choices=("local", "ray"), help="where trials run (SWEEP_EXECUTOR; default local)")
    p.add_argument(
        "--ray-address", metavar="ADDRESS", help="Ray cluster: auto, ray://HOST:10001, or local (SWEEP_RAY_ADDRESS)"
    )
    p.add_argument("--force", action="store_true", help="retrain and re-evaluate every trial")
    p.add_argument("--cpu", action="store_true", help="train without CUDA, as `train --cpu`")
    p.add_argument("--name", help="sweep id (default: a digest of the grid, the training config and the data)")
    engine_flag(p)


def run(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner.sweep.grid import cli_overrides
    from autotrain_runner.sweep.run import sweep

    grid = cli_overrides(
        args.epochs,
        args.lora_r,
        args.lora_alpha,
        args.alpha_ratio,
        args.lr,
        args.parallel,
        args.executor,
        args.ray_address,
    )
    result = sweep(
        args.project, [*args.overrides, *grid], force=args.force, cpu=args.cpu, name=args.name, echo=lines(out)
    )
    out.print(f"{result.status}: sweep folder {result.folder}", markup=False)
    return exit_code(result.status)

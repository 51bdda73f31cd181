"""One handler per command: call the library function, print what it returns. The table at the
end is the dispatch; `main` looks a command up there and nothing else."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from rich.console import Console

from autotrain_runner.cli import show
from autotrain_runner.errors import EXIT_OK, EXIT_WORK_FAILED, ConfigError
from autotrain_runner.layout import outputs
from autotrain_runner.layout.records import Status

EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace, Console], int]


def _exit_code(status: str) -> int:
    if status == Status.INTERRUPTED:
        return EXIT_INTERRUPTED
    return EXIT_OK if status == Status.SUCCEEDED else EXIT_WORK_FAILED


def _lines(out: Console) -> Callable[[str], None]:
    return lambda line: out.print(line, markup=False)


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def keys(args: argparse.Namespace, out: Console) -> int:
    show.keys_table(out)
    return EXIT_OK


def check(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import hardware
    from autotrain_runner.config.load import load_config

    show.check_report(load_config(args.project, args.overrides, cuda=hardware.use_cuda(args.cpu)), out)
    return EXIT_OK


def command(args: argparse.Namespace, out: Console) -> int:
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


def train(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner.training.train import train

    if args.resume and args.run_id:
        raise ConfigError("--run-id names a new run; --resume RUN_ID names the run to continue")
    if args.force and not args.resume:
        raise ConfigError("--force goes with --resume (a new run never reuses a folder)")
    result = train(
        args.project,
        args.overrides,
        run_id=args.run_id,
        cpu=args.cpu,
        echo=_lines(out),
        resume=args.resume,
        force=args.force,
    )
    out.print(f"{result.status}: run folder {result.run_dir}", markup=False)
    return _exit_code(result.status)


def data(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner.data import build_data, summarize

    for line in summarize(build_data(args.project, args.overrides, force=args.force)):
        out.print(line, markup=False)
    return EXIT_OK


def evaluate(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner.evaluation.evaluate import evaluate

    if args.epoch is not None and args.base:
        raise ConfigError("--epoch K picks a run's adapter at epoch K; the base model has none")
    if args.out is not None:
        outputs.check_output(args.out, "an evaluation", outputs.eval_folder, folder=True)
    results = evaluate(
        args.project,
        args.overrides,
        run_id=args.run_id,
        base=args.base,
        split=args.split,
        prompts_file=args.prompts,
        limit=args.limit,
        out=args.out,
        compare_base=args.compare_base,
        backend=args.backend,
        echo=_lines(out),
        epoch=args.epoch,
    )
    for result in results:
        out.print(show.headline_figures(result), markup=False)
    return EXIT_OK


def sweep(args: argparse.Namespace, out: Console) -> int:
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
        args.project, [*args.overrides, *grid], force=args.force, cpu=args.cpu, name=args.name, echo=_lines(out)
    )
    out.print(f"{result.status}: sweep folder {result.folder}", markup=False)
    return _exit_code(result.status)


def chat(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner.chat import chat

    chat(args.project, args.overrides, run_id=args.run_id, base=args.base, backend=args.backend)
    return EXIT_OK


def serve(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner.serve.server import serve

    # serve() names --host/--port itself when it cannot listen, before the model loads
    serve(
        args.project,
        args.overrides,
        run_id=args.run_id,
        base=args.base,
        host=args.host,
        port=args.port,
        echo=lambda line: print(line, flush=True),
    )
    return EXIT_OK


def push(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner.hub.push import push

    plan = push(
        args.project,
        args.overrides,
        run_id=args.run_id,
        merged=args.merged,
        dtype=args.dtype,
        private=args.private,
        repo=args.repo,
        dry_run=args.dry_run,
        if_enabled=args.if_enabled,
        echo=_lines(out),
        warn=lambda line: show.console(stderr=True).print(f"warning: {line}", markup=False),
    )
    if plan is not None:
        show.push_plan(plan, args.dry_run, out)
    return EXIT_OK


def report(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner.report.report import report

    out.print(f"wrote {report(args.project, args.out)}", markup=False)
    return EXIT_OK


def runs(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner.config.files import find_env_file
    from autotrain_runner.layout import list_runs

    project_dir = find_env_file(args.project).parent
    show.runs_table(list_runs(project_dir), out, project_dir)
    return EXIT_OK


def _print_json(figures: object) -> int:
    print(json.dumps(figures, indent=2))
    return EXIT_OK


def bench_data(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import bench

    return _print_json(bench.bench_data(args.dialogues))


def bench_generate(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import bench

    engines = bench.parse_engines(args.engines)
    model = bench.model_path(args.model, echo=_to_stderr)
    figures = bench.bench_generate(
        model, args.adapter, args.n, args.batch_size, args.max_new_tokens, args.template, engines, echo=_to_stderr
    )
    return _print_json(figures)


def bench_memory(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import bench

    model = bench.model_path(args.model, echo=_to_stderr)
    return _print_json(
        bench.bench_memory(model, args.batch_size, args.block_size, args.lora_r, args.gradient_checkpointing)
    )


def bench_train(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import bench_train as bench

    try:
        settings = bench.settings(
            args.shape,
            args.configs,
            args.tools,
            args.steps,
            args.batch_size,
            args.block_size,
            args.lora_r,
            args.deadline,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.out is not None:
        outputs.check_output(args.out, "a bench train JSON", outputs.json_with("rows", "settings"))
    return _print_json(bench.run(settings, args.generate, args.out, echo=_to_stderr))


def bench_trainers(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import bench_trainers as bench

    trainers = [t.strip() for t in args.trainers.split(",") if t.strip()]
    try:
        return _print_json(bench.run(trainers, args.family, args.pairs, args.repeat, echo=_to_stderr))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def bench_resume(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import bench_resume as bench

    try:
        fractions = [float(x) for x in args.at.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--at: {args.at!r} is not a list of fractions, e.g. 0.3,0.6,0.9") from None
    if not fractions or any(not 0 < f < 1 for f in fractions):
        raise ConfigError(f"--at: each fraction must be between 0 and 1, got {args.at!r}")
    return _print_json(bench.run(args.project, fractions, args.overrides, echo=_to_stderr))


def bench_sweep_epochs(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import bench_sweep_epochs as bench

    return _print_json(bench.run(args.project, args.overrides, echo=_to_stderr))


def bench_families(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner.families import harness, real

    if args.out is not None:
        outputs.check_output(args.out, "a families table", outputs.text_starting("| "))
    if args.real:
        only = [n.strip() for n in args.only.split(",")] if args.only else None
        return real.main(only, args.out, args.quick, echo=_to_stderr)
    return harness.main(
        [*(["--only", args.only] if args.only else []), *(["--out", str(args.out)] if args.out else [])]
    )


def bench_sweep_eval(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import bench

    return _print_json(bench.bench_sweep_eval(args.project, args.overrides, echo=_to_stderr))


def bench_loss_on(args: argparse.Namespace, out: Console) -> int:
    from autotrain_runner import bench

    return _print_json(bench.bench_loss_on(args.project, args.overrides, echo=_to_stderr))


COMMANDS: dict[str, Handler] = {
    "check": check,
    "keys": keys,
    "command": command,
    "data": data,
    "train": train,
    "eval": evaluate,
    "sweep": sweep,
    "chat": chat,
    "serve": serve,
    "push": push,
    "report": report,
    "runs": runs,
}

BENCHMARKS: dict[str, Handler] = {
    "data": bench_data,
    "generate": bench_generate,
    "memory": bench_memory,
    "train": bench_train,
    "trainers": bench_trainers,
    "resume": bench_resume,
    "sweep-epochs": bench_sweep_epochs,
    "families": bench_families,
    "sweep-eval": bench_sweep_eval,
    "loss-on": bench_loss_on,
}


def handler(args: argparse.Namespace) -> Handler:
    return BENCHMARKS[args.bench] if args.cmd == "bench" else COMMANDS[args.cmd]

"""The `atr` command line: the parser, and the one place that turns errors into exit codes and
one-line messages. What each command does is its handler in `cli.commands`."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback
from pathlib import Path

from autotrain_runner import __version__
from autotrain_runner.cli.commands import EXIT_INTERRUPTED, handler
from autotrain_runner.config.keys import KEYS
from autotrain_runner.errors import EXIT_WORK_FAILED, RunnerError
from autotrain_runner.redact import Redactor


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atr", description="Env-file projects to verified AutoTrain runs.")
    parser.add_argument("--version", action="version", version=f"autotrain-runner {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def project_command(name: str, help: str) -> argparse.ArgumentParser:
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

    check = project_command("check", "validate the env file and show every resolved key with its source")
    check.add_argument("--cpu", action="store_true", help="check as `train --cpu` would run")
    sub.add_parser("keys", help="list every key an env file may set")
    cmd = project_command("command", "print the exact AutoTrain argv, shell-quoted, secrets masked")
    cmd.add_argument("--json", action="store_true", help="print a JSON list instead")
    cmd.add_argument("--cpu", action="store_true", help="as `train --cpu` would run")
    train = project_command("train", "run AutoTrain in a new run folder and verify that it worked")
    train.add_argument("--run-id", help="name of the run folder (default: time and config hash)")
    train.add_argument("--cpu", action="store_true", help="train on the CPU even where CUDA is present")
    train.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN_ID",
        help="continue a run from its last checkpoint, in its folder (default: the latest that did not succeed)",
    )
    train.add_argument("--force", action="store_true", help="with --resume: resume even though the config changed")
    data = project_command("data", "build the dataset from RAW_DATA with DATA_BUILDER (skipped when up to date)")
    data.add_argument("--force", action="store_true", help="rebuild even when inputs and options are unchanged")

    def model_command(name: str, help: str) -> argparse.ArgumentParser:
        """A command that loads a run's model (default: the latest succeeded run) or the base model."""
        p = project_command(name, help)
        which = p.add_mutually_exclusive_group()
        which.add_argument("--run", dest="run_id", help="the run (default: the latest succeeded run)")
        which.add_argument("--base", action="store_true", help="the base model, with the project's template")
        return p

    ev = model_command("eval", "evaluate a run (or the base model) on a held-out split or a prompt list")
    ev.add_argument("--split", default="test", choices=("test", "valid", "train"))
    ev.add_argument("--prompts", type=Path, help="a prompt list (one per line, or JSONL): outputs and flags only")
    ev.add_argument("--limit", type=int, help="only the first N samples")
    ev.add_argument("--epoch", type=int, metavar="K", help="the run's adapter at epoch K (kept with KEEP_EPOCHS)")
    ev.add_argument("--out", type=Path, help="output folder (default: <run>/eval, or eval/base-<model>)")
    ev.add_argument("--compare-base", action="store_true", help="also evaluate the base model; write compare.md")
    ev.add_argument(
        "--backend",
        choices=("hf", "openai"),
        default="hf",
        help="hf: in process; openai: an OpenAI-compatible server at OPENAI_BASE_URL",
    )

    def engine_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--engine",
            choices=KEYS["GENERATION_ENGINE"].choices,
            help="what generates (GENERATION_ENGINE; default auto: vLLM when installed and it supports the model)",
        )

    engine_flag(ev)
    sw = project_command("sweep", "train and evaluate every trial of an epochs x LoRA-rank grid; rank them")
    sw.add_argument("--epochs", metavar="LIST", help="epochs to try, e.g. 1,2,3,5 (SWEEP_EPOCHS)")
    sw.add_argument("--lora-r", metavar="LIST", help="LoRA ranks to try, e.g. 8,16 (SWEEP_LORA_R)")
    alpha = sw.add_mutually_exclusive_group()
    alpha.add_argument("--lora-alpha", metavar="LIST", help="one alpha per rank, e.g. 16,32 (SWEEP_LORA_ALPHA)")
    alpha.add_argument("--alpha-ratio", metavar="X", help="alpha = X x rank (SWEEP_ALPHA_RATIO; default 2)")
    sw.add_argument("--lr", metavar="LIST", help="learning rates to try, e.g. 1e-4,2e-4 (SWEEP_LR)")
    sw.add_argument(
        "--parallel", metavar="N", help="trials at once (SWEEP_PARALLEL; default: one per CUDA device, else 1)"
    )
    sw.add_argument("--executor", choices=("local", "ray"), help="where trials run (SWEEP_EXECUTOR; default local)")
    sw.add_argument(
        "--ray-address", metavar="ADDRESS", help="Ray cluster: auto, ray://HOST:10001, or local (SWEEP_RAY_ADDRESS)"
    )
    sw.add_argument("--force", action="store_true", help="retrain and re-evaluate every trial")
    sw.add_argument("--cpu", action="store_true", help="train without CUDA, as `train --cpu`")
    sw.add_argument("--name", help="sweep id (default: a digest of the grid, the training config and the data)")
    engine_flag(sw)
    ch = model_command("chat", "chat in the terminal with a run (or the base model), in its own template")
    ch.add_argument(
        "--backend",
        choices=("hf", "openai"),
        default="hf",
        help="hf: load the model here; openai: talk to the server at OPENAI_BASE_URL (e.g. vLLM)",
    )
    engine_flag(ch)
    srv = model_command("serve", "serve a run as an OpenAI-compatible /v1/chat/completions")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed)")
    engine_flag(srv)
    bench = sub.add_parser("bench", help="benchmarks (JSON on stdout)")
    bench_sub = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    bench_data = bench_sub.add_parser("data", help="build a synthetic dialogue-summary corpus of the real size")
    bench_data.add_argument("--dialogues", type=int, default=71_139, help="corpus size (default: the real one's)")
    bench_gen = bench_sub.add_parser("generate", help="sequential loop vs HF batched vs vLLM, same prompts")
    bench_gen.add_argument("--model", required=True, help="model folder, Hub id or bundled:smollm2-135m-instruct")
    bench_gen.add_argument("--adapter", type=Path, help="a PEFT adapter folder (a run's output)")
    bench_gen.add_argument("--n", type=int, default=64, help="prompts (default 64)")
    bench_gen.add_argument("--batch-size", type=int, default=16)
    bench_gen.add_argument("--max-new-tokens", type=int, default=32)
    bench_gen.add_argument("--template", help="prompt template (default: the model's chat template if any)")
    bench_gen.add_argument(
        "--engines", default="sequential,hf,vllm", help="comma-separated: sequential, hf, vllm (default: all three)"
    )
    bench_mem = bench_sub.add_parser("memory", help="memory preflight estimate vs one measured LoRA step on CPU")
    bench_mem.add_argument("--model", required=True, help="model folder or bundled:smollm2-135m-instruct")
    bench_mem.add_argument("--batch-size", type=int, default=2)
    bench_mem.add_argument("--block-size", type=int, default=128)
    bench_mem.add_argument("--lora-r", type=int, default=16)
    bench_mem.add_argument("--gradient-checkpointing", action="store_true")
    bench_tr = bench_sub.add_parser(
        "train", help="atr train vs plain TRL: tokens/s, s/step, peak memory, loss and the preflight's estimate"
    )
    bench_tr.add_argument(
        "--shape",
        default="tiny",
        help="tiny, smollm2 (the bundled model), llama-3.1-8b, qwen3-8b, eeve-10.8b, smollm2-135m",
    )
    bench_tr.add_argument("--configs", default="fp32,int4", help="comma-separated: fp32, bf16, fp16, int4, liger")
    bench_tr.add_argument(
        "--tools", default="atr,trl", help="comma-separated: atr, trl, llamafactory (its own venv, installed once)"
    )
    bench_tr.add_argument("--steps", type=int, default=8, help="optimizer steps the data fills (default 8)")
    bench_tr.add_argument("--batch-size", type=int, default=2)
    bench_tr.add_argument("--block-size", type=int, default=256)
    bench_tr.add_argument("--lora-r", type=int, default=16)
    bench_tr.add_argument(
        "--generate", type=int, default=0, metavar="N", help="also N prompts of HF batched generation"
    )
    bench_tr.add_argument("--deadline", type=float, metavar="S", help="skip the rows not started S seconds in")
    bench_tr.add_argument("--out", type=Path, help="write the JSON here too, after every row")
    bench_resume = bench_sub.add_parser(
        "resume", help="a run killed at 30/60/90%% of its epochs and resumed, against one never stopped"
    )
    bench_resume.add_argument("project", type=Path, help="project folder holding project.env, or an .env file")
    bench_resume.add_argument("--at", default="0.3,0.6,0.9", help="fractions of the epochs to kill at")
    bench_resume.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    bench_epochs = bench_sub.add_parser(
        "sweep-epochs", help="a sweep's epochs trained separately against taken from checkpoints: time, chrF, loss"
    )
    bench_epochs.add_argument("project", type=Path, help="project folder with a sweep grid (SWEEP_EPOCHS)")
    bench_epochs.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    bench_trainers = bench_sub.add_parser(
        "trainers", help="sft, default, dpo, orpo and reward through atr train on one tiny model: wall time"
    )
    bench_trainers.add_argument("--trainers", default="sft,default,dpo,orpo,reward", help="comma-separated")
    bench_trainers.add_argument("--family", default="llama3", help="the tiny model's family (default llama3)")
    bench_trainers.add_argument("--pairs", type=int, default=40, help="preference pairs (default 40)")
    bench_trainers.add_argument("--repeat", type=int, default=1, help="trainings per trainer; the median counts")
    bench_fam = bench_sub.add_parser(
        "families", help="train and evaluate a tiny random model of each LLM family; a Markdown table"
    )
    bench_fam.add_argument("--only", help="comma-separated families (default: all)")
    bench_fam.add_argument("--out", type=Path, help="also write the table to this file")
    bench_fam.add_argument(
        "--real",
        action="store_true",
        help="the families' real chat templates and tokenizer settings (tests/fixtures/templates) on tiny models",
    )
    bench_fam.add_argument("--quick", action="store_true", help="with --real: the renderer's checks only, no training")
    bench_sweep = bench_sub.add_parser(
        "sweep-eval", help="a finished sweep's evaluation phase again, with hf (a load per trial) and vllm (one load)"
    )
    bench_sweep.add_argument("project", type=Path)
    bench_sweep.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    bench_loss = bench_sub.add_parser(
        "loss-on", help="a project's sweep with LOSS_ON=answer and with LOSS_ON=all: leak and repetition per trial"
    )
    bench_loss.add_argument("project", type=Path, help="a project that sets a sweep grid (SWEEP_EPOCHS, say)")
    bench_loss.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    hub = project_command("push", "upload a run's adapter (or merged weights) and a model card to the Hub")
    hub.add_argument("--run", dest="run_id", help="the run (default: the succeeded run that finished last)")
    hub.add_argument("--merged", action="store_true", help="merge the adapter into the base weights first")
    hub.add_argument(
        "--dtype", choices=("fp16", "bf16", "fp32"), help="merged weights' precision (default: the base's)"
    )
    hub.add_argument("--private", action="store_true", help="create the repo private")
    hub.add_argument("--repo", metavar="OWNER/NAME", help="the repo (default: HUB_REPO, else USERNAME/project)")
    hub.add_argument("--dry-run", action="store_true", help="print the repo, the files and the card; upload nothing")
    hub.add_argument("--if-enabled", action="store_true", help="do nothing unless PUSH_TO_HUB=true (for run.sh)")
    rep = sub.add_parser("report", help="write one self-contained report.html: runs, sweeps, evaluations, outputs")
    rep.add_argument("project", type=Path)
    rep.add_argument("--out", type=Path, help="where to write it (default: PROJECT/report.html)")
    runs = sub.add_parser("runs", help="table of a project's runs")
    runs.add_argument("project", type=Path)
    _debug_anywhere(parser)
    return parser


def _debug_anywhere(parser: argparse.ArgumentParser) -> None:
    """`--debug` after the command as well as before it (`atr eval P --debug`, as every error's hint
    says): each subcommand takes it too, without a default of its own that would hide the top one."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                if "--debug" not in child._option_string_actions:
                    child.add_argument(
                        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
                    )
                _debug_anywhere(child)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "engine", None):  # a flag that sets a key: one way in for both
        args.overrides = [*args.overrides, f"GENERATION_ENGINE={args.engine}"]
    from autotrain_runner.cli.show import console

    out, err = console(), console(stderr=True)
    try:
        return handler(args)(args, out)
    except RunnerError as exc:
        problems = getattr(exc, "problems", None)
        lines = [str(p) for p in problems] if problems else str(exc).splitlines()
        # an error may quote a malformed line or a file's content: no token shape, no secret the
        # environment holds, reaches the terminal
        redact = Redactor.of_environment(os.environ)
        for line in lines:
            err.print(f"error: {redact(line)}", markup=False)
        if args.debug:
            traceback.print_exc()
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        if args.cmd == "chat":
            # Everything is closed by now. Leaving through the interpreter's teardown after a stopped
            # generation sometimes aborted the process ("terminate called without an active exception"
            # from a native thread of the torch stack): SIGABRT instead of 130. Leave without it.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except OSError as exc:  # the disk said no: name the path and what it means, not the exception class
        if args.debug:
            traceback.print_exc()
        err.print(f"error: {Redactor.of_environment(os.environ)(_os_error(exc))}", markup=False)
        return EXIT_WORK_FAILED
    except Exception as exc:  # a bug or an unforeseen failure: one line, the traceback on request
        if args.debug:
            traceback.print_exc()
        message = Redactor.of_environment(os.environ)(str(exc))
        err.print(f"error: {type(exc).__name__}: {message} (rerun with --debug for the traceback)", markup=False)
        return EXIT_WORK_FAILED


_OS_HINTS = {
    errno.ENOSPC: "the disk is full; free space there (or point ATR_CACHE_DIR elsewhere)",
    errno.EDQUOT: "the disk quota is used up; free space there",
    errno.EROFS: "the file system is read-only; run from a writable copy of the project",
    errno.EACCES: "permission denied; the project folder and its outputs must be writable by you",
    errno.EPERM: "operation not permitted; the project folder and its outputs must be writable by you",
    errno.EISDIR: "a folder where a file was expected; name a file",
    errno.ENOTDIR: "a file where a folder was expected",
}


def _os_error(exc: OSError) -> str:
    where = " -> ".join(str(name) for name in (exc.filename, exc.filename2) if name)
    what = _OS_HINTS.get(exc.errno or 0) or exc.strerror or str(exc)
    return f"{where}: {what} (rerun with --debug for the traceback)" if where else f"{what} (rerun with --debug)"


if __name__ == "__main__":
    sys.exit(main())

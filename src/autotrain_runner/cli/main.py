"""The `atr` command line: the parser assembled from the command modules, and the one place that
turns errors into exit codes and one-line messages. What each command takes and does is its module
in `cli.commands`."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback

from autotrain_runner import __version__
from autotrain_runner.cli.commands import COMMANDS
from autotrain_runner.cli.printing import EXIT_INTERRUPTED
from autotrain_runner.errors import EXIT_WORK_FAILED, RunnerError
from autotrain_runner.redact import Redactor


def _parser() -> argparse.ArgumentParser:
    """The parser, assembled from the command modules (`cli.commands`), each adding its own arguments."""
    parser = argparse.ArgumentParser(prog="atr", description="Env-file projects to verified AutoTrain runs.")
    parser.add_argument("--version", action="version", version=f"autotrain-runner {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        module.add(sub)
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
        return COMMANDS[args.cmd].run(args, out)
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

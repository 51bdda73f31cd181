"""The trainer as a child process: its own process group, its output streamed to the terminal and
`train.log` with secrets masked, and Ctrl-C (or SIGTERM to the runner) stopping the whole group."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from autotrain_runner import layout
from autotrain_runner.errors import WorkError
from autotrain_runner.redact import Redactor


def supervise(
    argv: list[str],
    run_dir: Path,
    env: dict[str, str],
    redact: Redactor,
    echo: Callable[[str], None],
    on_start: Callable[[int], None],
    append: bool = False,
) -> tuple[int, bool]:
    """Run the trainer in its own process group; stream its output; Ctrl-C stops the whole group."""
    log_path = run_dir / layout.TRAIN_LOG
    with _ctrl_c_deferred() as deferred:  # a Ctrl-C inside Popen would leave its trainer unknown, running
        try:
            child = subprocess.Popen(
                argv,
                cwd=run_dir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise WorkError(f"cannot start {argv[0]}: {exc}") from exc
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    interrupted = False
    try:
        if deferred:
            raise KeyboardInterrupt
        with log_path.open("a" if append else "w", encoding="utf-8") as log:  # first: a Ctrl-C from here on finds a log
            on_start(child.pid)
            assert child.stdout is not None
            pending = b""
            while chunk := os.read(child.stdout.fileno(), 65536):
                pending += chunk
                # tqdm redraws with \r: a line ends at either, so progress shows as it happens.
                *lines, pending = re.split(rb"(?<=\n)|(?<=\r)(?!\n)", pending)
                for raw in lines:
                    _emit(raw, log, redact, echo)
            if pending:
                _emit(pending, log, redact, echo)
        child.wait()
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM to the runner, wherever it lands
        interrupted = True
        _stop_group_quietly(child)
    except BaseException:
        _stop_group_quietly(child)  # never leave training running behind a crashed runner
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return child.returncode, interrupted


@contextlib.contextmanager
def _ctrl_c_deferred() -> Iterator[list[int]]:
    """A Ctrl-C within the block is held back and listed, for the code after it to act on; the
    handler is left alone where SIGINT is ignored, or off the main thread (which cannot set one)."""
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) in (
        signal.SIG_IGN,
        None,
    ):
        yield held
        return
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: held.append(signum))
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, previous)


def _emit(raw: bytes, log, redact: Redactor, echo: Callable[[str], None]) -> None:
    text = redact(raw.decode("utf-8", errors="replace"))
    log.write(text[:-1] + "\n" if text.endswith("\r") else text)
    log.flush()
    line = text.rstrip("\r\n")
    if line.strip():
        echo(line)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop_group_quietly(child: subprocess.Popen) -> None:
    """Stop the group with further Ctrl-C and TERM ignored, so a second Ctrl-C cannot cut it short."""
    handlers = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _stop_group(child)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _stop_group(child: subprocess.Popen) -> None:
    """SIGINT to the whole group (the trainer and any worker it started), then TERM, then KILL."""
    for sig, grace in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            break
        try:
            child.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):  # a worker may outlive the trainer's main process
        os.killpg(child.pid, signal.SIGKILL)

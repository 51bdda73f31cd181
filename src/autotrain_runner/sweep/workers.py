"""Local trials N at once (SWEEP_PARALLEL): one worker process per trial, each on its own CUDA
device or its own share of the CPU cores.

A worker is `python -m autotrain_runner.sweep.workers`: it reads its trial's spec on stdin (by
pipe: `--set` values may hold secrets, never a file), runs `run_trial`, and prints the outcome as
its last stdout line. Workers start in their own session, so the terminal's Ctrl-C reaches this
process only, and this process forwards it to each worker exactly once; a worker that gets it
stops its trial and reports it interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from autotrain_runner import hardware, settings
from autotrain_runner.config.records import Config
from autotrain_runner.errors import ConfigError
from autotrain_runner.layout.records import Status
from autotrain_runner.sweep.trial import Outcome, TrialSpec, run_trial

WORKER_MODULE = "autotrain_runner.sweep.workers"
_OUTCOME = "\x1eatr-trial-outcome "  # the worker's last stdout line; never part of a log line


def worker_slots(config: Config) -> list[dict[str, str]]:
    """Environment of each concurrent trial: one CUDA device each, or a share of the CPU cores.
    `[{}]`: one trial at a time, in this process, as it is."""
    devices = hardware.cuda_device_count()
    count = config.get("SWEEP_PARALLEL") or max(1, devices)
    if count == 1:
        return [{}]
    if devices:  # the devices this process may use, as CUDA_VISIBLE_DEVICES names them
        visible = settings.visible_cuda_devices()
        ids = visible[:devices] if visible else [str(i) for i in range(devices)]
        return [{"CUDA_VISIBLE_DEVICES": ids[i % len(ids)]} for i in range(count)]
    cores = sorted(os.sched_getaffinity(0))
    if count > len(cores):
        raise ConfigError(
            f"{config.source('SWEEP_PARALLEL')}: SWEEP_PARALLEL: {count} trials at once, and this machine has "
            f"{len(cores)} cores for CPU trials"
        )
    shares = [cores[i::count] for i in range(count)]
    return [
        {
            settings.ATR_CPU_CORES.name: ",".join(map(str, share)),
            **dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS"), str(len(share))),
        }
        for share in shares
    ]


def execute_in_workers(
    specs: list[TrialSpec],
    slots: list[dict[str, str]],
    mark_running: Callable[[TrialSpec], None],
    echo: Callable[[str], None],
) -> Iterator[tuple[TrialSpec, Outcome]]:
    """Yield (spec, outcome) as the workers finish, one worker per slot at a time. Ctrl-C stops
    every worker's trial and still yields their outcomes (interrupted) before it goes on up."""
    free = list(range(len(slots)))
    lock = threading.Lock()
    children: dict[str, subprocess.Popen] = {}
    stopping = threading.Event()

    def work(spec: TrialSpec) -> Outcome:
        with lock:
            if stopping.is_set():
                return Outcome(Status.PENDING)
            slot = free.pop()
            mark_running(spec)
            child = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE],
                env={**os.environ, **slots[slot]},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                encoding="utf-8",
                errors="replace",
                start_new_session=True,  # not the terminal's Ctrl-C: this process forwards it, exactly once
            )
            children[spec.trial] = child
        outcome = None
        try:
            assert child.stdin is not None and child.stdout is not None
            with contextlib.suppress(BrokenPipeError):  # a worker stopped before it read its spec
                child.stdin.write(json.dumps(spec.to_json()))  # by pipe: --set values may hold secrets, never a file
                child.stdin.close()
            for line in child.stdout:
                if _OUTCOME in line:
                    before, _, found = line.partition(_OUTCOME)
                    outcome = Outcome.from_json(json.loads(found))
                    line = before
                if line.strip():
                    echo(f"[{spec.trial}] {line.rstrip()}")
            child.wait()
        finally:
            with lock:
                free.append(slot)
                children.pop(spec.trial, None)
        if outcome is None and stopping.is_set():
            return Outcome(Status.INTERRUPTED, error="interrupted by the user (Ctrl-C) as the trial started")
        return outcome or Outcome(Status.FAILED, error=f"the trial's worker exited with code {child.returncode}")

    def stop_children() -> None:
        stopping.set()
        with lock:
            for child in children.values():
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGINT)

    pool = ThreadPoolExecutor(max_workers=len(slots))
    pending = {pool.submit(work, spec): spec for spec in specs}
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                spec = pending.pop(future)
                outcome = future.result()
                if outcome.status != Status.PENDING:
                    yield spec, outcome
    except KeyboardInterrupt:
        stop_children()
        handlers = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:  # the workers stop their trials and report them interrupted
            for future, spec in pending.items():
                outcome = future.result()
                if outcome.status != Status.PENDING:
                    yield spec, outcome
            pending = {}
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        raise
    finally:  # whatever ended the loop, no worker goes on training behind it
        if pending:
            stop_children()
        pool.shutdown(wait=True, cancel_futures=True)


def raise_interrupt(signum, frame) -> None:
    """A signal handler: TERM (or HUP) stops a trial as Ctrl-C does."""
    raise KeyboardInterrupt


def main() -> int:
    """One trial in a worker process: the spec on stdin, the outcome as the last stdout line."""
    signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        if cores := settings.pinned_cores():
            os.sched_setaffinity(0, cores)
        spec = TrialSpec.from_json(json.loads(sys.stdin.read()))
        outcome = run_trial(spec, lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        outcome = Outcome(Status.INTERRUPTED, error="interrupted by the user (Ctrl-C)")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the outcome line must get out
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(_OUTCOME + json.dumps(outcome.to_json()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

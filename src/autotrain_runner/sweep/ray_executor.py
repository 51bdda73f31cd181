"""`SWEEP_EXECUTOR=ray`: each trial (its training and its evaluation) is one Ray task.

Ray schedules; this module only hands it the trials and reads their outcomes. A task runs
the same `run_trial` (`sweep.trial`) as a local sweep, so a trial on a Ray node trains,
evaluates and records exactly as it does here.

What the nodes share: the project folder, its dataset and a local base model are read where
they lie, so every node must see them at the same absolute path (a shared filesystem such as
NFS, mounted alike everywhere). Each task checks that first; a node that cannot see them fails
its trial with a message that says so, and the sweep goes on with the others. A bundled or Hub
model is converted or downloaded by each node into its own cache.

Secrets travel by no Ray channel: a task's arguments are the trial spec (no token in it), and no
runtime environment is set. A node has the token only if its own environment has it (the
environment `ray start` ran in, or the project's `project.local.env` on the shared folder), and
the trial passes it on only to a trainer that downloads from the Hub, as `atr train` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from autotrain_runner.config.records import Config
from autotrain_runner.errors import ConfigError, WorkError
from autotrain_runner.layout.records import Status
from autotrain_runner.sweep.trial import Outcome, TrialSpec, run_trial

CANCEL_WAIT_S = 90  # how long a cancelled task may take to stop its trainer and mark its run interrupted


def executor(config: Config) -> str:
    return config.get("SWEEP_EXECUTOR") or "local"


def connect(config: Config, echo: Callable[[str], None]) -> dict[str, Any]:
    """Join the cluster SWEEP_RAY_ADDRESS names, or start a local Ray instance (`local`).

    Returns what sweep.json records about it: the address (a `ray://` URL's password hidden),
    whether this sweep started it, Ray's version, the nodes and their CPUs and GPUs.
    """
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"{config.source('SWEEP_EXECUTOR')}: SWEEP_EXECUTOR=ray needs Ray on this machine and on every node: "
            "pip install 'ray==2.60.0'"
        ) from None
    from autotrain_runner.redact import hide_credentials

    address = config.get("SWEEP_RAY_ADDRESS") or "local"
    started = address == "local"
    _check_listening(address, hide_credentials(address))
    try:
        ray.init(
            address=address,  # "local" starts a new instance even where another one runs
            include_dashboard=False if started else None,
            log_to_driver=True,
            configure_logging=False,
        )
    except Exception as exc:  # unreachable, refused, another Ray version: what Ray says, in one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WorkError(f"cannot reach the Ray cluster at {hide_credentials(address)}: {reason[:300]}") from None
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    resources = ray.cluster_resources()
    shown = {
        "address": hide_credentials(address),
        "started_here": started,
        "ray": ray.__version__,
        "nodes": len(nodes),
        "cpus": resources.get("CPU", 0),
        "gpus": resources.get("GPU", 0),
    }
    what = "a local Ray instance" if started else f"the Ray cluster at {shown['address']}"
    echo(f"ray: {what}: {shown['nodes']} node(s), {shown['cpus']:g} CPU(s), {shown['gpus']:g} GPU(s)")
    return shown


def _check_listening(address: str, shown: str) -> None:
    """A `HOST:PORT` or `ray://HOST:PORT` where nothing listens fails now, not after Ray's own
    retries (which wait minutes)."""
    target = address.removeprefix("ray://").rsplit("@", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return  # "local", "auto": Ray finds or starts the cluster itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        raise WorkError(
            f"cannot reach the Ray cluster at {shown}: {exc.strerror or exc}; is `ray start --head` running there, "
            "and is the port open to this machine?"
        ) from None


def disconnect() -> None:
    """Leave the cluster; a local instance that `connect` started stops with it."""
    import ray

    with contextlib.suppress(Exception):
        ray.shutdown()


def task_resources(config: Config, cluster: dict[str, Any]) -> dict[str, float]:
    """What one trial asks of Ray: SWEEP_GPUS_PER_TRIAL GPUs (default 1 where the cluster has GPUs)."""
    gpus = config.get("SWEEP_GPUS_PER_TRIAL")
    if gpus is None:
        gpus = 1 if cluster.get("gpus") else 0
    if gpus > (cluster.get("gpus") or 0):
        raise ConfigError(
            f"{config.source('SWEEP_GPUS_PER_TRIAL')}: SWEEP_GPUS_PER_TRIAL: {gpus:g} GPU(s) a trial, and the "
            f"cluster has {cluster.get('gpus') or 0:g}"
        )
    return {"num_cpus": float(config.get("SWEEP_CPUS_PER_TRIAL")), "num_gpus": float(gpus)}


def capacity(cluster: dict[str, Any], resources: dict[str, float]) -> int:
    """How many trials the cluster runs at once, by its CPUs and GPUs (Ray's own scheduling)."""
    fits = [cluster.get("cpus", 0) // resources["num_cpus"]] if resources["num_cpus"] else []
    if resources["num_gpus"]:
        fits.append(cluster.get("gpus", 0) // resources["num_gpus"])
    return max(1, int(min(fits))) if fits else 1


def shared_paths(config: Config) -> list[str]:
    """What a node must see to run a trial: the project folder, the dataset, a local base model."""
    paths = [config.project_dir]
    if config.data_file is not None:
        paths.append(config.data_file)
    if config.model.kind in ("folder", "gguf") and config.model.path is not None:
        paths.append(config.model.path)
    return [str(Path(p).resolve()) for p in paths]


def execute(
    specs: list[TrialSpec],
    resources: dict[str, float],
    needs: list[str],
    mark_running: Callable[[TrialSpec], None],
    echo: Callable[[str], None],
) -> Iterator[tuple[TrialSpec, Outcome]]:
    """Submit every trial as a task; yield (spec, outcome) as they finish. Ctrl-C cancels the tasks:
    each stops its trial, which marks its run interrupted."""
    import ray

    remote = ray.remote(max_retries=0, **resources)(run_task)
    pending = {}
    for spec in specs:
        mark_running(spec)
        pending[remote.remote(spec.to_json(), needs)] = spec
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for ref in done:
                spec = pending.pop(ref)
                yield spec, _outcome(ray, ref, spec, echo)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=False)
        for ref, spec in pending.items():
            yield spec, _outcome(ray, ref, spec, echo, cancelled=True)
        pending = {}
        raise
    finally:
        for ref in pending:  # whatever ended the loop, no task goes on training behind it
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)


def _outcome(ray, ref, spec: TrialSpec, echo: Callable[[str], None], cancelled: bool = False) -> Outcome:
    try:
        outcome = Outcome.from_json(ray.get(ref, timeout=CANCEL_WAIT_S if cancelled else None))
    except ray.exceptions.TaskCancelledError:
        outcome = Outcome(Status.INTERRUPTED, error="interrupted by the user (Ctrl-C): its Ray task was cancelled")
    except ray.exceptions.GetTimeoutError:
        outcome = Outcome(Status.INTERRUPTED, error="interrupted by the user (Ctrl-C); its Ray task did not stop")
    except ray.exceptions.RayError as exc:  # the node died, the worker crashed, Ray itself failed
        outcome = Outcome(Status.FAILED, error=f"its Ray task failed: {str(exc).strip().splitlines()[-1][:300]}")
    if outcome.node:
        echo(f"[{spec.trial}] ran on {outcome.node}")
    return outcome


def run_task(data: dict[str, Any], needs: list[str]) -> dict[str, Any]:
    """On a Ray node: check that what the trial needs is visible here, then run it, in this worker.

    In the worker rather than a process of its own: Ray keeps a worker for the next task of
    the same shape, so torch, transformers and AutoTrain (about 10 s to import) load once per
    worker, not once per trial. A cancelled task gets a KeyboardInterrupt (what `ray.cancel`
    delivers), which stops the trial exactly as Ctrl-C stops a local one: its trainer's process
    group is stopped and its run marked interrupted.
    """
    node = _node()
    missing = [path for path in needs if not os.path.exists(path)]
    if missing:
        error = (
            f"node {node} cannot see {missing[0]}: SWEEP_EXECUTOR=ray reads the project, its dataset and a local "
            "model where they lie, so every node must mount them at the same path (a shared filesystem)"
        )
        return Outcome(Status.FAILED, error=error, node=node).to_json()
    # Ray's workers block SIGINT and SIGTERM, and the trainer a trial starts would inherit that
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    # `ray.cancel` interrupts the task as a SIGINT would (`_thread.interrupt_main`), which does nothing
    # where SIGINT is ignored: a node started from a background shell inherits that. Python's own
    # handler for the task, the node's after it.
    previous = _python_sigint()
    spec = TrialSpec.from_json(data)
    try:
        outcome = run_trial(spec, lambda line: print(f"[{spec.trial}] {line}", flush=True))
    except KeyboardInterrupt:
        outcome = Outcome(Status.INTERRUPTED, error="interrupted by the user (Ctrl-C): its Ray task was cancelled")
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return dataclasses.replace(outcome, node=node).to_json()


def _python_sigint():
    """Python's SIGINT handler in this (main) thread, where SIGINT was ignored or left to the system;
    the handler it replaced, or None where it replaced none."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    current = signal.getsignal(signal.SIGINT)
    if current not in (signal.SIG_IGN, signal.SIG_DFL, None):
        return None
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return current if current is not None else signal.SIG_DFL


def _node() -> str:
    """`host (ip, node 1a2b3c4d)`: Ray's node id tells apart two nodes on one host."""
    ray = sys.modules.get("ray")  # inside a task Ray is running; outside, asking would start one
    if ray is None or not ray.is_initialized():
        return socket.gethostname()
    try:
        ip, node_id = ray.util.get_node_ip_address(), ray.get_runtime_context().get_node_id()[:8]
    except Exception:
        return socket.gethostname()
    return f"{socket.gethostname()} ({ip}, node {node_id})"

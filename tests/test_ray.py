"""`atr sweep --executor ray`: a real Ray cluster on 127.0.0.1 (a head and one worker node, CPU
only), the real trials of the tiny model as Ray tasks, the same record as a local sweep."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from helpers import CANARY, atr, start_atr
from test_sweep import HOOKS, make_project, sweep_json

pytest.importorskip("ray")
RAY = str(Path(sys.executable).with_name("ray"))
FAILING_RANK = "6"  # the test hook makes a trainer with this LoRA rank die at start, on any node


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """`ray start --head` and a second `ray start --address` on this machine: two nodes of one CPU
    each, started in an environment that holds the canary token (as a node's own environment may)."""
    temp = tempfile.mkdtemp(prefix="atr-ray-", dir="/tmp")  # Ray's socket paths must stay short
    port = _free_port()
    env = {
        **os.environ,
        "HF_TOKEN": CANARY,
        "PYTHONPATH": str(HOOKS),
        "ATR_TEST_FAIL_LORA_R": FAILING_RANK,
        "RAY_USAGE_STATS_ENABLED": "0",
        # a suite under load (two trainers on two cores) delays heartbeats: not a dead node
        "RAY_health_check_period_ms": "5000",
        "RAY_health_check_timeout_ms": "60000",
        "RAY_health_check_failure_threshold": "30",
        # token authentication off, whatever ~/.ray holds: this cluster listens on this machine only
        "RAY_AUTH_MODE": "disabled",
    }
    common = ["--num-cpus", "1", "--num-gpus", "0", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    address = f"127.0.0.1:{port}"
    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # the `atr sweep` processes join it the same way
    head = ["start", "--head", "--port", str(port), "--temp-dir", temp, "--include-dashboard", "false"]
    try:
        _ray(*head, *common, env=env)
        _ray("start", "--address", address, *common, env=env)
        yield address, Path(temp)
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120, check=False)
        shutil.rmtree(temp, ignore_errors=True)
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved


def _ray(*argv: str, env: dict[str, str]) -> None:
    done = subprocess.run([RAY, *argv], env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, f"ray {' '.join(argv[:2])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


@pytest.fixture(scope="module")
def ray_swept(cluster, tmp_path_factory, tiny_model):
    """The same 2 x 1 grid swept locally and through Ray, each in its own project copy."""
    address, _ = cluster
    grid = ("--epochs", "1", "--lora-r", "4,8")
    local = make_project(tmp_path_factory.mktemp("local"), tiny_model)
    on_ray = make_project(tmp_path_factory.mktemp("ray"), tiny_model)
    local_result = atr("sweep", str(local), *grid)
    ray_result = atr("sweep", str(on_ray), *grid, "--executor", "ray", "--ray-address", address)
    return local, local_result, on_ray, ray_result


def _rows(project: Path) -> list[dict]:
    record = sweep_json(project)
    with (project / "sweeps" / record["id"] / "leaderboard.csv").open(encoding="utf-8") as handle:
        import csv

        return list(csv.DictReader(handle))


def test_a_ray_sweep_gives_the_local_leaderboard_and_says_where_each_trial_ran(ray_swept):
    local, local_result, on_ray, ray_result = ray_swept
    assert local_result.code == 0, local_result.text[-2000:]
    assert ray_result.code == 0, ray_result.text[-3000:]
    assert "ray: the Ray cluster at 127.0.0.1:" in ray_result.out and "2 node(s), 2 CPU(s)" in ray_result.out
    record = sweep_json(on_ray)
    assert record["executor"]["kind"] == "ray" and record["executor"]["nodes"] == 2
    assert record["executor"]["num_cpus"] == 1.0 and record["executor"]["num_gpus"] == 0.0
    assert record["parallel"] == 2  # one trial on each node at once
    assert sweep_json(local)["executor"] == {"kind": "local"}
    assert all(t["status"] == "succeeded" and t["node"].startswith(socket.gethostname()) for t in record["trials"])
    assert len({t["node"] for t in record["trials"]}) == 2  # Ray put one on each node
    # the same trials, ranked the same way, with the same figures (the tiny model trains the same
    # on one thread as on two, to the printed digits)
    keep = ("trial", "rank", "status", "epochs", "lora_r", "lora_alpha", "chrf", "bleu", "leak_rate", "eos_rate")
    assert [{k: r[k] for k in keep} for r in _rows(on_ray)] == [{k: r[k] for k in keep} for r in _rows(local)]


def test_a_ray_sweep_resumes_with_both_trials_reused(ray_swept, cluster):
    _, _, on_ray, _ = ray_swept
    address, _ = cluster
    again = atr("sweep", str(on_ray), "--epochs", "1", "--lora-r", "4,8", "--executor", "ray", "--ray-address", address)
    assert again.code == 0, again.text[-2000:]
    assert "0 to train, 0 to evaluate, 2 done" in again.out


def test_a_trial_that_fails_on_a_node_is_missing_with_its_error_and_the_token_is_nowhere(cluster, tmp_path, tiny_model):
    """A trainer that dies on its node fails that trial only; the canary token, which the nodes'
    environment and the sweep's hold, appears in no output, no project file and no Ray log."""
    address, temp = cluster
    project = make_project(tmp_path, tiny_model)
    grid = ("--epochs", "1", "--lora-r", f"4,{FAILING_RANK}", "--executor", "ray", "--ray-address", address)
    result = atr("sweep", str(project), *grid, env={"HF_TOKEN": CANARY})
    assert result.code == 1, result.text[-3000:]
    record = sweep_json(project)
    ok, failed = record["trials"]
    assert ok["status"] == "succeeded" and failed["status"] == "failed"
    assert f"lora_r={FAILING_RANK} rejected" in failed["error"] and failed["node"]
    board = (project / "sweeps" / record["id"] / "leaderboard.md").read_text(encoding="utf-8")
    assert "## Missing" in board and f"`{failed['trial']}`: failed" in board
    assert CANARY not in result.text
    for root in (project, temp):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert CANARY.encode() not in path.read_bytes(), path


def test_a_node_that_cannot_see_the_project_fails_its_trial_and_says_why(tmp_path):
    """What each Ray task checks first, run as a node runs it: a path it cannot see is the trial's failure."""
    from autotrain_runner.sweep.ray_executor import run_task

    missing = tmp_path / "not-mounted-here" / "project"
    outcome = run_task({"trial": "e1-r4-a8", "project": str(missing)}, [str(missing)])
    assert outcome["status"] == "failed"
    assert f"cannot see {missing}" in outcome["error"] and "same path (a shared filesystem)" in outcome["error"]


def test_ctrl_c_cancels_the_ray_tasks_and_marks_the_trials_interrupted(cluster, tmp_path, tiny_model):
    address, _ = cluster
    project = make_project(tmp_path, tiny_model)
    child = start_atr(
        "sweep", str(project), "--epochs", "40", "--lora-r", "4,8", "--executor", "ray", "--ray-address", address
    )
    deadline = time.monotonic() + 300
    training = []
    while time.monotonic() < deadline and len(training) < 2:  # both trials training, one on each node
        time.sleep(0.3)
        logs = list((project / "runs").glob("*/train.log")) if (project / "runs").is_dir() else []
        training = [log for log in logs if "'loss'" in log.read_text(encoding="utf-8", errors="replace")]
    assert len(training) == 2, "the trials never started training"
    child.send_signal(signal.SIGINT)
    code, output = child.finish(timeout=180)
    assert code == 130, output[-3000:]
    record = sweep_json(project)
    assert record["status"] == "interrupted"
    assert [t["status"] for t in record["trials"]] == ["interrupted", "interrupted"], output[-4000:]
    for log in training:
        assert json.loads((log.parent / "run.json").read_text(encoding="utf-8"))["status"] == "interrupted"
    assert _trainers_under(project) == []  # no trainer goes on training behind the sweep


def _trainers_under(folder: Path) -> list[int]:
    """Trainer processes (`python -m autotrain_runner.training.engine`) whose working directory lies in `folder`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
        except (OSError, ValueError):
            continue
        if "autotrain_runner.training.engine" in cmdline and cwd.startswith(str(folder)):
            found.append(int(proc.name))
    return found


def test_an_unreachable_cluster_is_one_line_at_once(tmp_path, tiny_model):
    project = make_project(tmp_path, tiny_model)
    port = _free_port()  # nothing listens there
    result = atr("sweep", str(project), "--epochs", "1", "--executor", "ray", "--ray-address", f"127.0.0.1:{port}")
    assert result.code == 1, result.text
    assert f"error: cannot reach the Ray cluster at 127.0.0.1:{port}: Connection refused" in result.err
    assert "Traceback" not in result.text and not (project / "runs").exists()

"""A run's status as every command reads it: a run left "running" by a process that is gone (kill -9,
the machine taken back) is interrupted, on the host that ran it."""

import json

from helpers import atr, write


def test_a_run_whose_processes_are_gone_is_interrupted_wherever_it_is_read(tmp_path):
    import socket
    import subprocess

    from autotrain_runner import layout

    gone = subprocess.Popen(["true"])
    gone.wait()
    alive = subprocess.Popen(["sleep", "60"])
    project = tmp_path / "p"
    write(project / "project.env", "MODEL=org/model\n")
    cases = {
        "killed": {"pid": gone.pid, "host": socket.gethostname()},
        "training": {"pid": alive.pid, "host": socket.gethostname()},
        "elsewhere": {"pid": gone.pid, "host": "another-node"},
        "old": {},
    }
    try:
        for run_id, runner in cases.items():
            run = project / "runs" / run_id
            run.mkdir(parents=True)
            record = {"id": run_id, "status": "running", "output_dir": "out", "pid": gone.pid, "runner": runner}
            (run / "run.json").write_text(json.dumps(record), encoding="utf-8")
        status = {r.id: r.status for r in layout.list_runs(project)}
        assert status == {"killed": "interrupted", "training": "running", "elsewhere": "running", "old": "running"}
        listed = atr("runs", str(project))
        assert listed.code == 0 and "interrupted" in listed.out
    finally:
        alive.kill()
        alive.wait()

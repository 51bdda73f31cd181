"""Checkpoints and `atr train --resume`: a run killed in any of the ways a rented GPU dies continues
from its last whole checkpoint and ends with the losses of a run that was never stopped."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from autotrain_runner.layout import checkpoints
from helpers import Background, atr, start_atr, style_txt, write

RESUME_ENV = """\
MODEL={model}
DATA_BUILDER=txt
RAW_DATA=style.txt
PROMPT_TEMPLATE=instruct-ko
PEFT=true
QUANTIZATION=none
LORA_R=4
LORA_ALPHA=8
LORA_DROPOUT=0.1
BLOCK_SIZE=64
BATCH_SIZE=2
GRADIENT_ACCUMULATION=1
LR=1e-3
EPOCHS=4
LOGGING_STEPS=1
CHECKPOINT_EVERY=5
SAVE_TOTAL_LIMIT=2
"""


@pytest.fixture
def resume_project(tmp_path, tiny_model) -> Path:
    project = tmp_path / "projects" / "style"
    write(project / "style.txt", style_txt())
    write(project / "project.env", RESUME_ENV.format(model=tiny_model))
    assert atr("data", str(project)).code == 0
    return project


def _run(project: Path, run_id: str) -> dict:
    return json.loads((project / "runs" / run_id / "run.json").read_text())


def _start(project: Path, *args: str) -> Background:
    """`atr train` in its own session, as a job scheduler would start it, with SIGINT at its default."""
    return start_atr("train", str(project), *args, new_session=True)


def _when_saved(project: Path, run_id: str, step: int, runner: Background) -> None:
    state = project / "runs" / run_id / "style" / f"checkpoint-{step}" / checkpoints.STATE
    deadline = time.monotonic() + 600
    while checkpoints.read_checkpoint(state.parent) is None:
        assert runner.poll() is None, f"the run ended before checkpoint-{step}: {runner.finish(10)[1][-3000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _saved(project: Path) -> int:
    found = checkpoints.latest(project / "runs" / "cut" / "style")
    assert found is not None
    return found.step


@pytest.mark.slow
def test_a_run_killed_three_ways_resumes_to_the_losses_of_one_never_stopped(resume_project):
    """kill -9 of the whole process group (the machine taken back), Ctrl-C, kill -9 of the trainer
    alone with its newest checkpoint cut short mid-save, each resumed: the same loss at every step,
    the same held-out loss, as an uninterrupted run of the same seed."""
    project = resume_project
    whole = atr("train", str(project), "--run-id", "whole")
    assert whole.code == 0, whole.text[-3000:]

    # 1. the machine taken back: the runner and the trainer die at once, without a word
    runner = _start(project, "--run-id", "cut")
    _when_saved(project, "cut", 10, runner)
    os.killpg(_run(project, "cut")["pid"], signal.SIGKILL)
    os.killpg(runner.pid, signal.SIGKILL)
    runner.finish(60)
    saved = [_saved(project)]  # 10, or later where the kill came after another save
    assert _run(project, "cut")["status"] == "running"  # as the dead process left it
    listed = atr("runs", str(project))
    assert "interrupted" in listed.out and f"step {saved[0]}/56" in listed.out, listed.out  # read as interrupted

    changed = atr("train", str(project), "--resume", "--set", "LR=5e-4")
    assert changed.code == 2 and "Traceback" not in changed.text
    assert "run cut: LR changed since it started" in changed.err and "--force" in changed.err

    # 2. Ctrl-C: the runner stops its trainer's group and records the run as interrupted
    runner = _start(project, "--resume")
    _when_saved(project, "cut", saved[0] + 10, runner)
    runner.send_signal(signal.SIGINT)
    code, out = runner.finish(120)
    assert code == 130 and f"resuming from step {saved[0]} of 56" in out, out[-3000:]
    assert _run(project, "cut")["status"] == "interrupted"
    saved.append(_saved(project))

    # 3. the trainer killed alone while it saves: its newest checkpoint is cut short
    runner = _start(project, "--resume", "cut")
    _when_saved(project, "cut", saved[1] + 10, runner)
    os.killpg(_run(project, "cut")["pid"], signal.SIGKILL)
    code, out = runner.finish(120)
    assert code == 1 and _run(project, "cut")["status"] == "failed", out[-3000:]
    newest = checkpoints.latest(project / "runs" / "cut" / "style")
    assert newest is not None and newest.step >= saved[1] + 10
    state = newest.path / checkpoints.STATE
    state.write_text(state.read_text()[:100])  # what a kill while writing it leaves

    final = atr("train", str(project), "--resume")
    assert final.code == 0, final.text[-3000:]
    assert f"removing {newest.path.name}: its save did not finish" in final.out
    assert f"resuming from step {newest.step - 5} of 56" in final.out

    a, b = _run(project, "whole"), _run(project, "cut")
    assert len(b["loss_history"]) == len(a["loss_history"]) == 56
    assert b["loss_history"] == pytest.approx(a["loss_history"], abs=1e-4)
    assert b["eval_loss_history"] == pytest.approx(a["eval_loss_history"], abs=1e-4)
    assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-3)
    segments = b["segments"]
    assert [s["status"] for s in segments] == ["interrupted", "interrupted", "failed", "succeeded"]
    assert [s["from_step"] for s in segments] == [0, *saved, newest.step - 5]
    assert "processes are gone" in segments[0]["why"] and "Ctrl-C" in segments[1]["why"]
    assert not list((project / "runs" / "cut" / "style").glob("checkpoint-*"))  # done: no optimizer states left

    card = atr("push", str(project), "--run", "cut", "--repo", "me/cut", "--dry-run")  # prints the card
    assert card.code == 0, card.text[-2000:]
    assert f"Resumed 3 times (from steps {saved[0]}, {saved[1]}, {newest.step - 5})" in card.out


def test_check_warns_when_checkpoints_would_fill_the_disk(legacy_project):
    """A full fine-tune of a 700B model: each checkpoint is every weight and its AdamW moments."""
    huge = atr(
        "check", str(legacy_project), "--set", "MODEL_PARAMS=700B", "--set", "USE_PEFT=false", "--set", "USE_INT4=false"
    )
    assert "CHECKPOINT_EVERY: checkpoints need about" in huge.err + huge.out, huge.text
    assert "GB are free on" in huge.text and "set CHECKPOINT_EVERY=no" in huge.text
    off = atr(
        "check",
        str(legacy_project),
        "--set",
        "MODEL_PARAMS=700B",
        "--set",
        "USE_PEFT=false",
        "--set",
        "CHECKPOINT_EVERY=no",
    )
    assert "checkpoints need about" not in off.text


def test_resume_refuses_what_it_cannot_continue(trained_copy):
    done = atr("train", str(trained_copy), "--resume")
    assert done.code == 2 and "no interrupted or failed run to resume" in done.err
    named = atr("train", str(trained_copy), "--resume", "r1")
    assert named.code == 2 and "run r1 succeeded: there is nothing to resume" in named.err
    both = atr("train", str(trained_copy), "--resume", "r1", "--run-id", "x")
    assert both.code == 2 and "--resume RUN_ID names the run to continue" in both.err
    assert "Traceback" not in done.text + named.text + both.text


def test_checkpoint_every_is_checked_and_early_stopping_needs_a_held_out_split(tiny_project):
    shown = atr("check", str(tiny_project), "--set", "SAVE_TOTAL_LIMIT=2")
    assert shown.code == 0, shown.text
    assert re.search(r"checkpoint: [0-9.]+ GB each on disk \(LoRA [0-9.]+[KM]? \+ AdamW states", shown.out), shown.out
    assert "CHECKPOINT_EVERY=epoch,30m, SAVE_TOTAL_LIMIT=2 keeps" in shown.out
    bad = atr("check", str(tiny_project), "--set", "CHECKPOINT_EVERY=epoch,soon")
    assert bad.code == 2 and "CHECKPOINT_EVERY" in bad.err and "'soon' is not epoch" in bad.err
    early = atr("train", str(tiny_project), "--set", "EARLY_STOPPING=2")
    assert early.code == 2 and "EARLY_STOPPING=2: it watches the held-out loss" in early.err
    assert not (tiny_project / "runs").exists() or not any((tiny_project / "runs").iterdir())


@pytest.mark.slow
def test_early_stopping_ends_a_run_whose_held_out_loss_stops_improving(resume_project):
    # a learning rate too small to move a weight in fp32: the held-out loss is the same at every evaluation,
    # which is no improvement, on any CPU (a loss that bounces under a huge rate depends on the machine's kernels)
    frozen = ("LR=1e-30", "SCHEDULER=constant", "WARMUP_RATIO=0", "EARLY_STOPPING=1")
    result = atr("train", str(resume_project), "--run-id", "early", *(f"--set={s}" for s in frozen))
    assert result.code == 0, result.text[-3000:]
    run = _run(resume_project, "early")
    assert run["stopped"].startswith("early stopping: the held-out loss did not improve for 1 evaluations")
    assert run["stopped"].endswith("stopped at step 28 of 56")  # two epochs of 14 steps: the second did not improve
    assert len(run["loss_history"]) == 28
    assert run["segments"][-1]["why"] == run["stopped"]


@pytest.mark.slow
def test_a_sweep_resumes_its_interrupted_trial_from_the_checkpoint(resume_project):
    project = resume_project
    args = ("sweep", str(project), "--epochs", "4", "--set", "MAX_NEW_TOKENS=4", "--set", "EVAL_BATCH_SIZE=8")
    sweeper = start_atr(*args, new_session=True)
    deadline = time.monotonic() + 600
    while not list((project / "runs").glob("sweep-*/style/checkpoint-10/" + checkpoints.STATE)):
        assert sweeper.poll() is None and time.monotonic() < deadline, sweeper.finish(10)[1][-3000:]
        time.sleep(0.02)
    (run_dir,) = (project / "runs").iterdir()
    os.killpg(_run(project, run_dir.name)["pid"], signal.SIGKILL)  # the machine taken back
    os.killpg(sweeper.pid, signal.SIGKILL)
    sweeper.finish(60)
    saved = checkpoints.latest(run_dir / "style")
    assert saved is not None

    again = atr(*args)
    assert again.code == 0, again.text[-3000:]
    assert "1 trials (1 to train (1 resumed from a checkpoint)" in again.out
    assert [p.name for p in (project / "runs").iterdir()] == [run_dir.name]  # the same run, continued
    run = _run(project, run_dir.name)
    assert run["status"] == "succeeded" and [s["from_step"] for s in run["segments"]] == [0, saved.step]
    assert len(run["loss_history"]) == 56


@pytest.mark.slow
def test_a_sweep_takes_its_shorter_epochs_from_the_longest_runs_checkpoints(resume_project):
    project = resume_project
    swept = atr(
        "sweep", str(project), "--epochs", "1,2", "--set", "SWEEP_EPOCHS_FROM=checkpoints", "--set", "MAX_NEW_TOKENS=4"
    )
    assert swept.code == 0, swept.text[-3000:]
    assert "2 trials (1 to train, 1 to evaluate (1 from checkpoints), 0 done)" in swept.out
    (run_dir,) = (project / "runs").iterdir()  # one training, to the most epochs
    run = _run(project, run_dir.name)
    assert run["params"]["epochs"] == 2 and (run_dir / "style" / "epoch-1" / "adapter_model.safetensors").is_file()
    (folder,) = (project / "sweeps").iterdir()
    record = json.loads((folder / "sweep.json").read_text())
    assert [(t["trial"], t.get("schedule"), t["run_id"]) for t in record["trials"]] == [
        ("e1of2-r4-a8", 2, run_dir.name),
        ("e2-r4-a8", None, run_dir.name),
    ]
    # the checkpoint row is that run at epoch 1: its held-out loss is the one the run logged there
    metrics = json.loads((folder / "trials" / "e1of2-r4-a8" / "metrics.json").read_text())
    assert metrics["valid_loss"] == pytest.approx(run["eval_loss_history"][0], abs=1e-3)
    assert metrics["signature"]["adapter"].endswith("/epoch-1")
    board = (folder / "leaderboard.md").read_text()
    assert re.search(r"\| (★ \*\*)?e1of2-r4-a8(\*\*)?‡ \|", board) and "‡ epoch k of a K-epoch schedule" in board

    # each row has its card: the epoch's adapter says what it is, and carries that row's evaluation
    # (before `atr eval --epoch` below: a run's own evaluation of an epoch comes first)
    final_metrics = json.loads((folder / "trials" / "e2-r4-a8" / "metrics.json").read_text())
    pushed = {}
    for epoch in (None, "1"):
        flags = ["--epoch", epoch] if epoch else []
        shown = atr("push", str(project), "--run", run_dir.name, "--dry-run", "--repo", "me/style", *flags)
        assert shown.code == 0, shown.text[-2000:]
        pushed[epoch] = shown.out
    assert "This is the adapter at epoch 1 of a 2-epoch schedule" in pushed["1"]
    assert "epoch 1 of a 2-epoch schedule" not in pushed[None]
    assert f"| valid_loss | {metrics['valid_loss']} |" in pushed["1"]
    assert f"| valid_loss | {final_metrics['valid_loss']} |" in pushed[None]  # the final adapter's row, not epoch 1's
    assert metrics["valid_loss"] != final_metrics["valid_loss"]
    merged = atr("push", str(project), "--run", run_dir.name, "--dry-run", "--repo", "me/s", "--epoch", "1", "--merged")
    assert merged.code == 2 and "--epoch 1 pushes the adapter the run kept at that epoch; drop --merged" in merged.err

    kept = atr("eval", str(project), "--run", run_dir.name, "--epoch", "1", "--limit", "2", "--set", "MAX_NEW_TOKENS=4")
    assert kept.code == 0, kept.text[-2000:]
    assert (run_dir / "eval" / "epoch-1" / "metrics.json").is_file()
    missing = atr("eval", str(project), "--run", run_dir.name, "--epoch", "5")
    assert missing.code == 2 and f"run {run_dir.name} kept no adapter for epoch 5" in missing.err

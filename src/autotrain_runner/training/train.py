"""`atr train`: stage the data, run AutoTrain, decide whether it really worked, record the run.

Reads top to bottom: setup (config, refusals, model, run folder, staged data) -> train (AutoTrain's
trainer through `engine`, a child process in its own process group, output to the terminal and
`train.log`) -> verify (errors in the log, expected artifacts) -> record (`run.json`, token
scrubbed from `training_params.json`).
"""

from __future__ import annotations

import ast
import contextlib
import csv
import functools
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autotrain_runner import data, gguf, hardware, layout, versions
from autotrain_runner.config import models
from autotrain_runner.config.envfile import display_path
from autotrain_runner.config.load import load_config
from autotrain_runner.config.records import Config
from autotrain_runner.errors import ConfigError, WorkError
from autotrain_runner.layout import checkpoints
from autotrain_runner.layout.history import read_log_history
from autotrain_runner.layout.records import RunRecord, Status
from autotrain_runner.redact import HUB_TOKEN_VARIABLES, MASK, Redactor, is_secret_key
from autotrain_runner.rendering import answer_start
from autotrain_runner.training import command, engine
from autotrain_runner.training.resume import reopen
from autotrain_runner.training.supervise import supervise

VERSIONED = ("autotrain-runner", "autotrain-advanced", "transformers", "peft", "trl", "accelerate", "torch")
# What AutoTrain's trainer prints when it fails (AutoTrain's own CLI then exits 0).
_ERROR_LINE = re.compile(
    r"^ERROR\s+\||has failed due to an exception|^Traceback \(most recent call last\)"
    r"|^\s*[A-Za-z_][\w.]*(Error|Exception): |CUDA is required but not available"
)
_TRAIN_LOSS = re.compile(r"'train_loss':\s*([0-9.eE+-]+)")
# transformers prints each log dict, and AutoTrain's on_log callback logs it again: read the
# callback's copy (full-precision epoch), or the printed one when a version logs no callback line.
_ON_LOG = re.compile(r"on_log:\d+ - (\{'(?:eval_)?loss':[^}]*\})")
_PRINTED = re.compile(r"^(\{'(?:eval_)?loss':[^}]*\})", re.MULTILINE)


@dataclass
class RunResult:
    run_dir: Path
    status: str
    record: RunRecord


def train(
    target: Path | str,
    overrides: Sequence[str] = (),
    run_id: str | None = None,
    cpu: bool = False,
    echo: Callable[[str], None] = print,
    resume: bool | str = False,
    force: bool = False,
) -> RunResult:
    """Train in a new run folder; with `resume` (True: the latest run that did not succeed, or a run
    id), continue that run from its newest whole checkpoint, in its folder."""
    # --- setup
    config = load_config(target, overrides, cuda=hardware.use_cuda(cpu))
    if config.get("DATA_BUILDER") and data.ensure_built(target, overrides, echo=echo).status == "built":
        config = load_config(target, overrides, cuda=hardware.use_cuda(cpu))  # DATA_FILE exists now
    for problem in config.problems:
        echo(f"{problem.level}: {problem}")
    refuse_what_cannot_run_here(config)
    command.validate_with_autotrain(config)
    gguf.ensure_converted(config.model, log=echo)
    argv = command.build_argv(config)
    redact = Redactor(config.secrets())
    if resume:
        fresh = functools.partial(_initial_record, config, argv=argv, redact=redact)
        run_dir, record, resume_from = reopen(config, None if resume is True else resume, force, fresh, echo)
    else:
        digest = layout.config_hash({"argv": argv, "config": config.resolved_table()})
        run_dir = layout.create_run_dir(config.project_dir, run_id, digest)
        record, resume_from = _initial_record(config, run_dir, argv, redact), None
        record.open_segment(str(record.started_at))

    def started_child(pid: int) -> None:  # recorded so that a stale "running" run can be recognised
        record.pid = pid
        layout.write_run(run_dir, record)

    try:
        layout.write_run(run_dir, record)
        launch = _prepare(config, run_dir, record, resume_from)
        echo(f"run {run_dir.name}: {record.engine}")
        echo(f"  as `autotrain llm`: {redact(command.shell_line(argv))}")
        # --- train
        started = time.monotonic()
        env = _child_env(config)
        returncode, interrupted = supervise(launch, run_dir, env, redact, echo, started_child, append=bool(resume))
    except KeyboardInterrupt:  # Ctrl-C before the trainer started: the run is still recorded as such
        _finish(record, run_dir, Status.INTERRUPTED, error="interrupted by the user (Ctrl-C) before training started")
        return RunResult(run_dir, Status.INTERRUPTED, record)
    record.segments[-1]["duration_s"] = round(time.monotonic() - started, 1)
    record.duration_s = round(sum(s.get("duration_s") or 0 for s in record.segments), 1)

    # --- verify and record
    _scrub_training_params(run_dir / config.project_name, config.secrets())
    log = run_dir / layout.TRAIN_LOG  # none when a Ctrl-C came before the trainer said anything
    log_text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
    measured = layout.read_json(run_dir / layout.TRAIN_METRICS_JSON) or {}
    # what the trainer's callback recorded; the printed log only where the trainer died before it existed
    history = read_log_history(run_dir / layout.TRAIN_LOG_JSONL)
    resumed = len(record.segments) > 1
    losses = losses_from_log(log_text) if history is None else losses_from_history(history, resumed)
    for name, value in losses.items():
        setattr(record, name, value)
    record.stopped = _stopped_early(config, measured)
    artifacts = _artifacts(run_dir / config.project_name)
    record.artifacts = sorted(artifacts)
    if interrupted:
        _finish(record, run_dir, Status.INTERRUPTED, error="interrupted by the user (Ctrl-C)")
        return RunResult(run_dir, Status.INTERRUPTED, record)
    error = _failure(config, returncode, log_text, artifacts)
    if error:
        _finish(record, run_dir, Status.FAILED, error=error)
        raise WorkError(f"training failed (run {run_dir}):\n{error}")
    _finish(record, run_dir, Status.SUCCEEDED)
    checkpoints.remove_all(run_dir / config.project_name)  # for resuming; the run is done, its model saved
    return RunResult(run_dir, Status.SUCCEEDED, record)


def _stopped_early(config: Config, measured: dict[str, Any]) -> str | None:
    """Why a run ended before its last step (EARLY_STOPPING), from the trainer's own count."""
    steps, planned = measured.get("steps"), measured.get("max_steps")
    if not config.get("EARLY_STOPPING") or not steps or not planned or steps >= planned:
        return None
    best = measured.get("best_metric")
    return (
        f"early stopping: the held-out loss did not improve for {config.get('EARLY_STOPPING')} evaluations "
        f"(best {best:.4f} at step {measured.get('best_step')}); stopped at step {steps} of {planned}"
        if isinstance(best, float)
        else f"early stopping at step {steps} of {planned}"
    )


def _prepare(config: Config, run_dir: Path, record: RunRecord, resume_from: str | None = None) -> list[str]:
    """Stage the data (a resumed run keeps what it staged) and write params.json; the trainer's argv."""
    try:
        if not record.data or not (run_dir / layout.STAGED_DATA_DIR).is_dir():
            record.data = _stage_data(config, run_dir)
    except OSError as exc:
        _finish(record, run_dir, Status.FAILED, error=f"could not stage the data: {exc}")
        raise WorkError(f"could not stage {config.data_file}: {exc}") from exc
    fields = command.autotrain_fields(config)
    if record.data.get("valid"):
        fields["valid_split"] = command.STAGED_VALID_SPLIT
    record.params = fields
    options = {**command.engine_options(config), **command.checkpoint_options(config), "resume_from": resume_from}
    record.trainer = command.describe_trainer(config)
    record.loss_on = command.describe_loss(config)
    record.weights = command.describe_weights(config)
    layout.write_json_atomic(run_dir / layout.PARAMS_JSON, fields)
    layout.write_json_atomic(run_dir / engine.OPTIONS_JSON, options)
    layout.write_run(run_dir, record)
    return engine.launch_argv(run_dir / layout.PARAMS_JSON, _cuda_devices(config), fields)


def refuse_what_cannot_run_here(config: Config) -> None:
    if config.data_file is None and config.get("DATA_PATH") is None:
        raise ConfigError("no training data: set DATA_FILE")
    if config.get("EARLY_STOPPING") and not data.validation_samples(config):
        raise ConfigError(
            f"EARLY_STOPPING={config.get('EARLY_STOPPING')}: it watches the held-out loss, and "
            f"{display_path(config.data_file) if config.data_file else 'DATA_PATH'} has no validation split; "
            "build the data with atr data (SPLIT holds one out)"
        )
    _check_answers_found(config)


def _check_answers_found(config: Config) -> None:
    """LOSS_ON=answer must find where each sample's final answer begins; say which row it cannot."""
    path = config.data_file
    if command.engine_options(config)["loss_on"] != "answer" or path is None or not path.is_file():
        return
    column, template = config.get("TEXT_COLUMN"), config.template
    marker = template.assistant_prefix.strip()
    bad = [where for where, value in _column_values(path, column) if not _answer_found(value, template, marker)]
    if not bad:
        return
    problem = (
        "does not end with an assistant message"
        if template.is_chat
        else f"has no answer marker {marker!r} (template {template.name})"
    )
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    raise ConfigError(
        f"{display_path(path)}:{bad[0]}{more}: {column}: LOSS_ON=answer: the sample {problem}, so its answer "
        "cannot be told from its prompt; set PROMPT_TEMPLATE to the layout the text uses, or LOSS_ON=all"
    )


def _column_values(path: Path, column: str) -> Iterator[tuple[str, Any]]:
    """(`row N` or `line N`, the column's value) for each sample of a CSV or JSONL training file."""
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix.lower() == ".jsonl":
            for number, line in enumerate(handle, 1):
                if line.strip():
                    with contextlib.suppress(ValueError):
                        yield f"line {number}", json.loads(line).get(column)
            return
        reader = csv.DictReader(handle)
        if column not in (reader.fieldnames or []):
            return  # AutoTrain's own column check names it
        for number, row in enumerate(reader, 2):  # the header is row 1, as `atr data` counts
            yield f"row {number}", row.get(column)


def _answer_found(value: Any, template, marker: str) -> bool:
    if template.is_chat:
        if isinstance(value, str):
            with contextlib.suppress(ValueError, SyntaxError):
                value = ast.literal_eval(value)
        last = value[-1] if isinstance(value, list) and value else None
        return isinstance(last, dict) and last.get("role") == "assistant"
    return isinstance(value, str) and answer_start(value, marker) is not None


def _stage_data(config: Config, run_dir: Path) -> dict[str, Any]:
    """AutoTrain reads only `{data_path}/train.csv|jsonl` for local data: copy the file there.

    A dataset built by `atr data` also has a held-out `valid.jsonl`; it is staged beside, in the
    training file's own format, so that the trainer reports an eval loss every epoch.
    """
    if config.data_file is None:
        return {"source": str(config.get("DATA_PATH")), "staged": None, "kind": "hub"}
    staged_dir = run_dir / layout.STAGED_DATA_DIR
    staged_dir.mkdir()
    suffix = config.data_file.suffix.lower()
    staged = staged_dir / f"{command.STAGED_SPLIT}{suffix}"
    shutil.copyfile(config.data_file, staged)
    found = {
        "source": str(config.data_file),
        "staged": str(staged.relative_to(run_dir)),
        "sha256": layout.sha256_file(staged),
    }
    held_out = data.validation_samples(config)
    if held_out:
        valid = staged_dir / f"{command.STAGED_VALID_SPLIT}{suffix}"
        data.write_training_file(valid, [c for c, _ in held_out], config, [r for _, r in held_out])
        found["valid"] = {"staged": str(valid.relative_to(run_dir)), "samples": len(held_out)}
    return found


def _cuda_devices(config: Config) -> int:
    if not config.cuda:
        return 0
    import torch

    return torch.cuda.device_count()


def _child_env(config: Config) -> dict[str, str]:
    secrets = set(config.secrets())
    # No secret-shaped variable (OPENAI_API_KEY, AWS_SECRET_ACCESS_KEY, ...) and no secret value.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in HUB_TOKEN_VARIABLES and not is_secret_key(k) and v not in secrets
    }
    if not config.cuda:  # `--cpu`, or no CUDA: the trainer must not find a GPU either
        env["CUDA_VISIBLE_DEVICES"] = ""
    env["ALLOW_REMOTE_CODE"] = "true" if config.get("TRUST_REMOTE_CODE") else "false"
    env["PAUSE_ON_FAILURE"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    # The token only when the Hub is used (a gated base model, a Hub dataset); never in argv or a file.
    uses_hub = config.model.kind == "hub" or config.data_file is None or config.get("BACKEND") != "local"
    if config.get("HF_TOKEN") and uses_hub:
        env["HF_TOKEN"] = str(config.get("HF_TOKEN"))
    return env


def _scrub_training_params(output_dir: Path, secrets: list[str]) -> None:
    """AutoTrain writes the token into training_params.json; remove it whatever happened."""
    path = output_dir / "training_params.json"
    if not path.is_file():
        return
    try:
        params = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        path.unlink()
        return
    params["token"] = None
    text = json.dumps(params, indent=4)
    for secret in secrets:
        text = text.replace(secret, MASK)
    layout.write_text_atomic(path, text)


def _artifacts(output_dir: Path) -> set[str]:
    if not output_dir.is_dir():
        return set()
    return {p.name for p in output_dir.iterdir() if p.suffix in (".safetensors", ".bin", ".json", ".model")}


def _failure(config: Config, returncode: int, log_text: str, artifacts: set[str]) -> str | None:
    """Why the run failed, or None. AutoTrain's exit code alone says nothing: it is 0 on failure."""
    error_lines = [line.strip() for line in log_text.splitlines() if _ERROR_LINE.search(line)]
    merged = config.get("MERGE_ADAPTER") and config.get("PEFT")
    if config.get("PEFT") and not merged:
        expected = "adapter_model.safetensors"
        have = expected in artifacts
    else:
        expected = "model.safetensors (or model-*-of-*.safetensors)"
        have = any(re.match(r"^(model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)$", a) for a in artifacts)
    if not error_lines and have and returncode == 0:
        return None
    reasons = []
    if returncode != 0:
        reasons.append(f"the trainer exited with code {returncode}")
    if not have:
        reasons.append(f"no {expected} in {config.project_name}/")
    excerpt = _dedupe(error_lines)[-8:] or log_text.strip().splitlines()[-10:]
    return "; ".join(reasons or ["errors in train.log"]) + "\n" + "\n".join(f"  {line[:400]}" for line in excerpt)


def _dedupe(lines: list[str]) -> list[str]:
    seen, out = set(), []
    for line in lines:
        if line not in seen:
            seen.add(line)
            out.append(line)
    return out


def losses_from_log(log_text: str) -> dict[str, Any]:
    """The loss the trainer printed, step by step with its epoch, and the final mean: for a trainer
    that died before its `LogLines` callback was added, and for runs recorded before it existed."""
    train_loss = _TRAIN_LOSS.findall(log_text)
    logged = _ON_LOG.findall(log_text) or _PRINTED.findall(log_text)
    points: dict[str, list[tuple[float, float]]] = {"loss": [], "eval_loss": []}
    for text in logged:
        with contextlib.suppress(ValueError, SyntaxError, KeyError):
            entry = ast.literal_eval(text)
            name = "eval_loss" if "eval_loss" in entry else "loss"
            points[name].append((float(entry[name]), float(entry.get("epoch", 0.0))))
    train, held_out = points["loss"], points["eval_loss"]
    return {
        "train_loss": float(train_loss[-1]) if train_loss else None,
        "last_step_loss": train[-1][0] if train else None,
        "loss_history": [loss for loss, _ in train],
        "loss_epochs": [round(epoch, 4) for _, epoch in train],
        # the held-out split's loss, once an epoch (a dataset built by `atr data` has one)
        "eval_loss": held_out[-1][0] if held_out else None,
        "eval_loss_history": [loss for loss, _ in held_out],
        "eval_loss_epochs": [round(epoch, 4) for _, epoch in held_out],
    }


def losses_from_history(history: list[dict[str, Any]], resumed: bool = False) -> dict[str, Any]:
    """`losses_from_log`'s figures from what the trainer logged (`layout.history.read_log_history`). The mean
    training loss is the Trainer's own; a resumed run's is the logged losses weighted by the steps each
    covers (the Trainer's own mean covers only the last segment's steps)."""
    train = [e for e in history if "loss" in e and "step" in e]
    held_out = [e for e in history if "eval_loss" in e]
    covered, previous = 0.0, 0
    for entry in train:
        covered += float(entry["loss"]) * (int(entry["step"]) - previous)
        previous = int(entry["step"])
    summary = next((float(e["train_loss"]) for e in reversed(history) if "train_loss" in e), None)
    return {
        "train_loss": (covered / previous if previous else None) if resumed else summary,
        "last_step_loss": float(train[-1]["loss"]) if train else None,
        "loss_history": [float(e["loss"]) for e in train],
        "loss_epochs": [round(float(e.get("epoch", 0.0)), 4) for e in train],
        "eval_loss": float(held_out[-1]["eval_loss"]) if held_out else None,
        "eval_loss_history": [float(e["eval_loss"]) for e in held_out],
        "eval_loss_epochs": [round(float(e.get("epoch", 0.0)), 4) for e in held_out],
    }


def _initial_record(config: Config, run_dir: Path, argv: list[str], redact: Redactor) -> RunRecord:
    return RunRecord(
        id=run_dir.name,
        status=Status.RUNNING,
        project=config.display_name,
        project_name=config.project_name,
        env_file=str(config.env_file),
        started_at=_now(),
        ended_at=None,
        runner={"pid": os.getpid(), "host": socket.gethostname()},  # a run whose processes are gone is over
        config=[{"key": k, "value": v, "source": s} for k, v, s in config.resolved_table()],
        engine=engine.describe(config.get("TRAINER")),
        params=command.autotrain_fields(config),
        model={"spec": config.model.spec, "kind": config.model.kind, "path": models.training_path(config.model)},
        argv=[redact(a) for a in argv],  # the equivalent `autotrain llm` command, for people who run it by hand
        output_dir=config.project_name,
        # what evaluation and chat must render prompts with, to match training
        template={
            **config.template.describe(),
            "chat_template": config.get("CHAT_TEMPLATE"),
            "thinking": config.get("THINKING"),
        },
        versions=_versions(),
        git=_git_revision(config.project_dir),
        cuda=config.cuda,
        notes=[str(p) for p in config.problems],
    )


def _finish(record: RunRecord, run_dir: Path, status: str, error: str | None = None) -> None:
    record.status = status
    record.ended_at = _now()
    record.error = error
    if record.segments:
        last = checkpoints.latest(run_dir / record.output_dir) if status != Status.SUCCEEDED else None
        why = error.splitlines()[0] if error else record.stopped
        record.close_segment(status, why, last.step if last else None, record.ended_at)
    layout.write_run(run_dir, record)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _versions() -> dict[str, str | None]:
    return versions.of(VERSIONED)


def _git_revision(folder: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        if done.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
        return done.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None

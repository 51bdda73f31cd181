"""Rendering for the terminal: rich tables on a TTY, plain text in CI and pipes."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from autotrain_runner import layout, settings
from autotrain_runner.config import models
from autotrain_runner.config.envfile import display_path as _display
from autotrain_runner.config.keys import KEYS
from autotrain_runner.config.records import Config
from autotrain_runner.errors import Level
from autotrain_runner.layout import checkpoints
from autotrain_runner.layout import figures as figure_table
from autotrain_runner.layout.records import RunRecord, Status
from autotrain_runner.redact import Redactor
from autotrain_runner.training import command, engine, preflight


def console(stderr: bool = False) -> Console:
    plain = settings.plain_output() or not sys.stdout.isatty()
    # emoji off: a path or value with `:x:` in it is text, not a picture
    return Console(
        stderr=stderr, no_color=plain, highlight=False, emoji=False, soft_wrap=plain, width=1000 if plain else None
    )


def check_report(config: Config, out: Console) -> None:
    redact = Redactor(config.secrets())  # the one matcher: no token shape, secret or URL password in clear

    def say(text: str) -> None:
        out.print(redact(text), markup=False)

    name = config.display_name
    shown = name if name == config.project_name else f"{name} (runs as {config.project_name})"
    say(f"env file: {_display(config.env_file)}")
    say(f"project:  {shown}")
    say(f"model:    {_model_line(config.model)}")
    if config.data_file is not None:
        say(
            f"data:     {_display(config.data_file)} -> staged as "
            f"{layout.STAGED_DATA_DIR}/{command.STAGED_SPLIT}{config.data_file.suffix.lower()}"
        )
    if config.get("DATA_BUILDER"):
        from autotrain_runner.data.build import built_shape

        say(f"builds:   {built_shape(config)}")
    say(f"engine:   {engine.describe(config.get('TRAINER'))}")
    say(f"trainer:  {command.describe_trainer(config)}")
    say(f"loss on:  {command.describe_loss(config)}")
    say(f"prompts:  {command.describe_prompts(config)}")
    say(
        f"device:   {'CUDA' if config.cuda else 'CPU only (no CUDA device)'}; "
        f"quantization in effect: {config.quantization}"
    )
    say(f"weights:  {command.describe_weights(config)}")
    table = Table("key", "value", "source", box=None, pad_edge=False)
    for key, value, source in config.resolved_table():
        table.add_row(Text(key), Text(redact(value)), Text(redact(source)))
    out.print(table)
    for problem in config.problems:
        say(f"{problem.level}: {problem}")
    if config.get("DATA_BUILDER"):
        from autotrain_runner.data.lint import lint_built

        checks = lint_built(config)
        for line in checks["messages"] if checks else []:
            say(f"lint: {_display(config.dataset_dir)}: {line}")
    memory = preflight.preflight(config, preflight.gpu_capacity(config))
    for line in memory.lines:
        say(f"memory:   {line}")
    for problem in memory.warnings:
        say(f"{problem.level}: {problem}")
    warnings = sum(p.level == Level.WARNING for p in config.problems) + len(memory.warnings)
    say(f"ok: no errors, {warnings} warning(s)")


def _model_line(ref: models.ModelRef) -> str:
    if ref.kind == "hub":
        return f"{ref.spec} (Hub id; not downloaded by check, unverified offline)"
    if ref.kind == "folder":
        return f"{_display(ref.path)} (local folder)"
    converted = models.converted_folder(ref)
    state = "converted" if (converted / "config.json").is_file() else "converted on first train"
    return f"{ref.spec} (GGUF {ref.path.name}; {state}: {converted})"


def keys_table(out: Console) -> None:
    table = Table("key", "type", "default", "help", box=None, pad_edge=False)
    for key in sorted(KEYS.values(), key=lambda k: (k.group, k.name)):
        kind = "|".join(key.choices) if key.choices else key.kind
        table.add_row(*(Text(x) for x in (key.name, kind, "" if key.default is None else str(key.default), key.help)))
    out.print(table)


def runs_table(records: list[RunRecord], out: Console, project_dir: Path | None = None) -> None:
    """Every run; one that did not succeed shows the step `atr train --resume` would continue from."""
    table = Table(
        "id",
        "status",
        "model",
        "epochs",
        "lr",
        "lora r/alpha",
        "train loss",
        "eval loss",
        "duration",
        "resume from",
        box=None,
        pad_edge=False,
    )
    for r in records:
        params = r.params
        loss, eval_loss = r.train_loss, r.eval_loss
        table.add_row(
            *map(
                _from_record,
                (
                    r.id,
                    r.status,
                    r.model_spec,
                    str(params.get("epochs", "")),
                    str(params.get("lr", "")),
                    f"{params.get('lora_r', '')}/{params.get('lora_alpha', '')}" if params.get("peft") else "full",
                    layout.number(loss),
                    layout.number(eval_loss),
                    "" if r.duration_s is None else f"{r.duration_s:.0f} s",
                    _resume_point(project_dir, r),
                ),
            )
        )
    out.print(table)
    for r in records:
        if r.status == Status.DAMAGED:
            out.print(_from_record(f"damaged: {r.error}"))


def _resume_point(project_dir: Path | None, record: RunRecord) -> str:
    if project_dir is None or record.status not in (Status.INTERRUPTED, Status.FAILED) or not record.output_dir:
        return ""
    found = checkpoints.latest(project_dir / layout.RUNS_DIR / record.id / record.output_dir)
    return f"step {found.step}/{found.max_steps}" if found else "step 0"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SHAPES = Redactor()


def _from_record(text: str) -> Text:
    """Text from a run.json, which anyone may have edited: no terminal escape sequence (a control
    character prints as `?`) and no token shape reaches the terminal."""
    return Text(_SHAPES(_CONTROL.sub("?", str(text))))


HEADLINE_FIGURES = ("n", *figure_table.names(figure_table.HEADLINE))


def headline_figures(metrics: dict[str, Any]) -> str:
    """An evaluation's main figures, one JSON line (what `atr eval` prints per model)."""
    return json.dumps({k: metrics[k] for k in HEADLINE_FIGURES if k in metrics}, ensure_ascii=False)


def push_plan(plan: Any, dry_run: bool, out: Console) -> None:
    from autotrain_runner.hub.push import describe

    for line in describe(plan):
        out.print(line, markup=False)
    if dry_run:
        out.print(f"dry run: nothing uploaded. The model card ({len(plan.card.encode())} bytes):", markup=False)
        out.print(plan.card, markup=False, emoji=False)
    else:
        out.print(f"uploaded to https://huggingface.co/{plan.repo.value}: {plan.url}", markup=False)

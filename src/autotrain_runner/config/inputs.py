"""What `atr check` can verify about a project's inputs without downloading anything: the model's
context against BLOCK_SIZE and MAX_NEW_TOKENS (a local config.json says it), the prompt list named
by EVAL_PROMPTS, the columns a preference trainer needs, and the shape of HUB_REPO. What cannot be
checked offline (a Hub model's context) is left to the run, and `check` says so in its notes."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from autotrain_runner.config.envfile import display_path
from autotrain_runner.config.records import Config
from autotrain_runner.errors import Level, Problem

# Where a model's config.json states its context, in the order transformers' families use them.
_CONTEXT_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
# What each preference trainer reads besides TEXT_COLUMN (the chosen answer), as AutoTrain names it.
PREFERENCE_COLUMNS = {
    "dpo": ("PROMPT_TEXT_COLUMN", "REJECTED_TEXT_COLUMN"),
    "orpo": ("PROMPT_TEXT_COLUMN", "REJECTED_TEXT_COLUMN"),
    "reward": ("REJECTED_TEXT_COLUMN",),
}


def input_problems(config: Config) -> list[Problem]:
    return [
        *_context_problems(config),
        *_prompt_list_problems(config),
        *_preference_problems(config),
        *_trainer_key_problems(config),
    ]


def model_context(config: Config) -> int | None:
    """The model's context in tokens from its local config.json; None when it is not on disk."""
    if config.model.kind != "folder" or config.model.path is None:
        return None
    try:
        data = json.loads((config.model.path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for section in (data, data.get("text_config") or {}):
        for field in _CONTEXT_FIELDS:
            value = section.get(field) if isinstance(section, dict) else None
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


# BLOCK_SIZE past the context trains positions the model never saw (RoPE extends, quality falls):
# a warning up to this many times the context, beyond it a typo (1,000,000 on an 8k model).
BLOCK_SIZE_SLACK = 8


def _context_problems(config: Config) -> list[Problem]:
    context = model_context(config)
    if context is None:
        return []
    problems = []
    for key in ("BLOCK_SIZE", "MAX_NEW_TOKENS"):
        value = config.get(key)
        if not (isinstance(value, int) and value > context and key in config.values):
            continue
        said = f"{value:,} tokens is more than the model's context of {context:,} (its config.json)"
        if key == "BLOCK_SIZE" and value <= BLOCK_SIZE_SLACK * context:
            level, said = Level.WARNING, f"{said}: positions past it were never trained, and quality may fall"
        else:
            level = Level.ERROR
        problems.append(Problem(level, str(config.source(key)), key, said))
    return problems


def _prompt_list_problems(config: Config) -> list[Problem]:
    listed = config.get("EVAL_PROMPTS")
    if not listed:
        return []
    source = config.values["EVAL_PROMPTS"].source
    path = (source.path.parent if source.path else Path.cwd()) / str(listed)
    if path.is_file():
        return []
    return [Problem(Level.ERROR, str(source), "EVAL_PROMPTS", f"{display_path(path)}: no such prompt list")]


def _preference_problems(config: Config) -> list[Problem]:
    trainer = config.get("TRAINER")
    needed = PREFERENCE_COLUMNS.get(trainer)
    if not needed:
        return []
    problems = []
    for key in needed:
        if not config.get(key):
            problems.append(
                Problem(
                    Level.ERROR,
                    str(config.source("TRAINER")),
                    key,
                    f"TRAINER={trainer} needs it: the column of the "
                    f"{'prompt' if key.startswith('PROMPT') else 'rejected answer'} (TEXT_COLUMN is the chosen one)",
                )
            )
    columns = _columns(config.data_file) if config.data_file is not None else None
    if columns is None:
        return problems
    for key in ("TEXT_COLUMN", *needed):
        name = config.get(key)
        if name and name not in columns:
            found = ", ".join(sorted(columns)[:12]) or "none"
            problems.append(
                Problem(
                    Level.ERROR,
                    str(config.source(key)),
                    key,
                    f"{display_path(config.data_file)} has no column {name!r} (columns found: {found})",
                )
            )
    return problems


def _trainer_key_problems(config: Config) -> list[Problem]:
    """Keys that only some trainers read, set where they do nothing: said, not silently ignored."""
    trainer, problems = config.get("TRAINER"), []

    def warn(key: str, message: str) -> None:
        problems.append(Problem(Level.WARNING, str(config.source(key)), key, message))

    if "DPO_BETA" in config.values and trainer != "dpo":
        warn("DPO_BETA", f"only the dpo trainer reads it (AutoTrain passes it to no other); TRAINER={trainer}")
    if "DPO_LOSS" in config.values and trainer != "dpo":
        warn("DPO_LOSS", f"only the dpo trainer reads it; TRAINER={trainer}")
    if config.get("MODEL_REF"):
        if trainer != "dpo":
            warn("MODEL_REF", f"only the dpo trainer reads it; TRAINER={trainer}")
        elif config.get("PEFT"):
            warn("MODEL_REF", "ignored with PEFT: the reference is the base model with the adapter off")
    for key in ("MAX_PROMPT_LENGTH", "MAX_COMPLETION_LENGTH"):
        if key in config.values:
            warn(
                key,
                "TRL 1.x's trainers have no prompt or completion limit: a pair is cut at BLOCK_SIZE (the answers "
                "first), and a pair whose prompt fills BLOCK_SIZE is left out",
            )
    if config.get("PREFERENCE") == "chosen" and trainer in PREFERENCE_COLUMNS:
        warn("PREFERENCE", f"ignored: TRAINER={trainer} trains the pairs (chosen against rejected)")
    return problems


def _columns(path: Path) -> set[str] | None:
    """The columns of a csv (its header) or a jsonl (its first record's keys); None when unknown."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            if path.suffix.lower() == ".csv":
                return {name.strip() for name in next(csv.reader(handle), [])}
            if path.suffix.lower() == ".jsonl":
                first: Any = json.loads(next((line for line in handle if line.strip()), "{}"))
                return set(first) if isinstance(first, dict) else None
    except (OSError, ValueError, csv.Error):
        return None
    return None

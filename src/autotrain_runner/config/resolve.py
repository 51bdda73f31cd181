"""What the values name, found and checked: the prompt template (and what a data builder implies),
the model, and the training file with its header.

Only the header (or the first record) of a data file is read, and no model is downloaded, so
`atr check` stays fast and works offline.
"""

from __future__ import annotations

import csv
import difflib
import json
from pathlib import Path

from autotrain_runner.config import models, templates
from autotrain_runner.config.autotrain_keys import PAIR_TRAINERS
from autotrain_runner.config.envfile import display_path
from autotrain_runner.config.files import os_reason
from autotrain_runner.config.keys import KEYS
from autotrain_runner.config.records import Source, Value
from autotrain_runner.errors import ConfigError, Level, Problem


def resolve_template(
    values: dict[str, Value], env_dir: Path, dataset_dir: Path, problems: list[Problem]
) -> templates.PromptTemplate:
    """The prompt template, and what a data builder implies: CHAT_TEMPLATE, TEXT_COLUMN, DATA_FILE."""
    chat = values["CHAT_TEMPLATE"].value if "CHAT_TEMPLATE" in values else None
    spec = values.get("PROMPT_TEMPLATE")
    try:
        template = templates.resolve(spec.value if spec else None, chat, env_dir)
    except ConfigError as exc:
        problems.append(
            Problem(Level.ERROR, str(spec.source) if spec else "", "PROMPT_TEMPLATE", exc.problems[0].message)
        )
        template = templates.NAMED[templates.DEFAULT]
    where = str(spec.source) if spec else "default"
    if template.is_chat and chat not in (None, template.name):
        problems.append(
            Problem(
                Level.ERROR,
                where,
                "PROMPT_TEMPLATE",
                f"{template.name} conflicts with CHAT_TEMPLATE={chat}; set one of them",
            )
        )
    if not template.is_chat and chat in templates.CHAT_TEMPLATES:
        problems.append(
            Problem(
                Level.ERROR,
                where,
                "PROMPT_TEMPLATE",
                f"{template.name} renders text, but CHAT_TEMPLATE={chat} expects messages; use PROMPT_TEMPLATE={chat}",
            )
        )
    if "DATA_BUILDER" not in values:
        return template
    derived = Source("from DATA_BUILDER")
    if template.is_chat and chat is None:
        values["CHAT_TEMPLATE"] = Value("CHAT_TEMPLATE", "CHAT_TEMPLATE", template.name, template.name, derived)
    trainer = values["TRAINER"].value if "TRAINER" in values else None
    if trainer in PAIR_TRAINERS:  # `atr data` builds pairs: prompt messages, chosen and rejected answers
        columns = {"TEXT_COLUMN": "chosen", "PROMPT_TEXT_COLUMN": "prompt", "REJECTED_TEXT_COLUMN": "rejected"}
    else:
        columns = {"TEXT_COLUMN": template.dataset_column}
    for key, column in columns.items():
        values.setdefault(key, Value(key, key, column, column, derived))
    chat_file = template.is_chat or trainer in PAIR_TRAINERS
    train_file = dataset_dir / ("train.jsonl" if chat_file else "train.csv")
    values.setdefault("DATA_FILE", Value("DATA_FILE", "DATA_FILE", str(train_file), str(train_file), derived))
    if "RAW_DATA" not in values:
        problems.append(
            Problem(
                Level.ERROR,
                str(values["DATA_BUILDER"].source),
                "RAW_DATA",
                f"DATA_BUILDER={values['DATA_BUILDER'].value} needs RAW_DATA (a file, folder or glob)",
            )
        )
    return template


def resolve_model(values: dict[str, Value], env_file: Path, problems: list[Problem]) -> models.ModelRef:
    if "MODEL" not in values:
        problems.append(
            Problem(
                Level.ERROR, display_path(env_file), "MODEL", "no model set; add MODEL=<Hub id, folder or bundled:...>"
            )
        )
        return models.ModelRef("", "hub")
    value = values["MODEL"]
    if not str(value.value or "").strip():
        problems.append(Problem(Level.ERROR, str(value.source), value.written_as, "is empty; name a model"))
        return models.ModelRef("", "hub")
    base = value.source.path.parent if value.source.path else Path.cwd()
    try:
        ref = models.resolve(str(value.value), base)
    except ConfigError as exc:
        problems.append(Problem(Level.ERROR, str(value.source), value.written_as, exc.problems[0].message))
        return models.ModelRef(str(value.value), "hub")
    if ref.kind == "hub":
        problems.append(
            Problem(
                Level.NOTE,
                str(value.source),
                value.written_as,
                f"{ref.spec} is a Hub id: not downloaded by check, unverified offline",
            )
        )
    return ref


def resolve_data(values: dict[str, Value], env_file: Path, problems: list[Problem]) -> Path | None:
    """Find the training file: DATA_FILE, else {DATA_PATH}/{TRAIN_SPLIT}.csv|.jsonl when local."""
    if "DATA_FILE" in values:
        value = values["DATA_FILE"]
        try:
            found = _local_path(str(value.value), value.source)
            is_file = found is not None and found.is_file()
        except (OSError, ValueError, RuntimeError) as exc:  # a NUL, a name too long, a symlink loop
            problems.append(
                Problem(Level.ERROR, str(value.source), value.written_as, f"not a usable path ({os_reason(exc)})")
            )
            return None
        if found is not None and found.exists() and not is_file:
            kind = "a folder" if found.is_dir() else "not a regular file"
            problems.append(
                Problem(
                    Level.ERROR,
                    str(value.source),
                    value.written_as,
                    f"{display_path(found)} is {kind}; name the data file",
                )
            )
            return None
        if value.source.kind == "from DATA_BUILDER" and not is_file:
            problems.append(
                Problem(
                    Level.NOTE,
                    str(values["DATA_BUILDER"].source),
                    "DATA_BUILDER",
                    f"dataset not built yet ({display_path(Path(value.value))}); run `atr data`",
                )
            )
            return None
        if found is None or not is_file:
            problems.append(
                Problem(Level.ERROR, str(value.source), value.written_as, f"data file not found: {value.value}")
            )
            return None
        if value.source.kind == "from DATA_BUILDER":  # the build writes the columns it names (rebuilt when stale)
            return found.resolve()
        return _check_header(found, values, value, problems)
    if "DATA_PATH" in values:
        value = values["DATA_PATH"]
        folder = _local_path(str(value.value), value.source)
        split = values["TRAIN_SPLIT"].value if "TRAIN_SPLIT" in values else "train"
        if folder is not None and folder.is_dir():
            for suffix in (".csv", ".jsonl"):
                if (folder / f"{split}{suffix}").is_file():
                    return _check_header(folder / f"{split}{suffix}", values, value, problems)
            problems.append(
                Problem(
                    Level.ERROR,
                    str(value.source),
                    value.written_as,
                    f"no {split}.csv or {split}.jsonl in {value.value}",
                )
            )
            return None
        problems.append(
            Problem(
                Level.NOTE,
                str(value.source),
                value.written_as,
                f"{value.value} is not a local folder: passed to AutoTrain as a Hub dataset",
            )
        )
        return None
    problems.append(
        Problem(
            Level.ERROR,
            display_path(env_file),
            "DATA_FILE",
            "no training data; set DATA_FILE=path/to/train.csv (or DATA_BUILDER and RAW_DATA)",
        )
    )
    return None


def _local_path(text: str, source: Source) -> Path | None:
    """Relative paths are relative to the file that set them; the current folder is the fallback
    that scripts written for `autotrain` from a repository root rely on."""
    path = Path(text).expanduser()
    if path.is_absolute():
        return path
    candidates = [source.path.parent / path] if source.path else []
    candidates.append(Path.cwd() / path)
    return next((c for c in candidates if c.exists()), None)


def _check_header(path: Path, values: dict[str, Value], origin: Value, problems: list[Problem]) -> Path | None:
    """Only the header (or first record) is read, so check stays fast on large files."""
    column = values["TEXT_COLUMN"].value if "TEXT_COLUMN" in values else KEYS["TEXT_COLUMN"].default
    where = f"{display_path(path)}:1"
    if path.suffix.lower() not in (".csv", ".jsonl"):
        problems.append(
            Problem(
                Level.ERROR,
                str(origin.source),
                origin.written_as,
                f"{path.name}: AutoTrain reads local .csv or .jsonl; convert it first",
            )
        )
        return None
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            if path.suffix.lower() == ".csv":
                header = next(csv.reader(handle), [])
            else:
                first = json.loads(next((line for line in handle if line.strip()), "{}"))
                if not isinstance(first, dict):
                    problems.append(
                        Problem(
                            Level.ERROR,
                            where,
                            "",
                            f"first record is a JSON {type(first).__name__}, not an object with a text column",
                        )
                    )
                    return None
                header = list(first)
    except UnicodeDecodeError:
        problems.append(Problem(Level.ERROR, where, "", "is not UTF-8 text; save it as UTF-8"))
        return None
    except json.JSONDecodeError as exc:
        problems.append(Problem(Level.ERROR, where, "", f"first line is not a JSON object ({exc.msg})"))
        return None
    if column not in header:
        key = values["TEXT_COLUMN"].written_as if "TEXT_COLUMN" in values else "TEXT_COLUMN"
        found = ", ".join(header) if header else "none"
        close = difflib.get_close_matches(str(column), header, n=1)
        fix = (
            f"; did you mean TEXT_COLUMN={close[0]}?"
            if close
            else (f"; set TEXT_COLUMN={header[0]}" if len(header) == 1 else "")
        )
        problems.append(Problem(Level.ERROR, where, key, f"column {column!r} not in the header (found: {found}){fix}"))
    return path.resolve()

"""Env files -> one validated, typed configuration that remembers where every value came from.

Sources, lowest precedence first (their order in `load_config` *is* the precedence):

1. defaults (AutoTrain's own, or the runner's);
2. presets named by `EXTENDS=` (paths relative to the file naming them; later presets win);
3. the project's env file (`project.env`);
4. `project.local.env` beside it (git-ignored: secrets, machine-specific values);
5. the process environment (only keys this tool knows);
6. `--set KEY=VALUE` on the command line.

Every problem is collected before anything is reported, so one run of `atr check` lists them all.
"""

from __future__ import annotations

import csv
import difflib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotrain_runner import hardware
from autotrain_runner.config import keys, models, templates
from autotrain_runner.config.envfile import ExpansionError, expand, read_entries, references
from autotrain_runner.config.envfile import display_path as _display
from autotrain_runner.config.keys import KEYS, LEGACY, LEGACY_KIND, VARIABLES, Key
from autotrain_runner.errors import ConfigError, Problem
from autotrain_runner.redact import MASK, Redactor, SecretMatcher, is_secret_key

PROJECT_ENV = "project.env"
ENV_PREFIX = "ATR_"
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


@dataclass(frozen=True)
class Source:
    kind: str  # "default", "preset", "file", "local", "environment", "--set", "--cpu"
    path: Path | None = None
    line: int | None = None
    variable: str | None = None  # the environment variable it was read from

    def __str__(self) -> str:
        if self.path is not None:
            return f"{_display(self.path)}:{self.line}" if self.line else _display(self.path)
        if self.variable:
            return f"environment ({self.variable})"
        return self.kind


@dataclass(frozen=True)
class Value:
    key: str  # canonical key
    written_as: str  # the key as written (a legacy name, say)
    raw: str
    value: Any
    source: Source


@dataclass
class Config:
    env_file: Path
    project_dir: Path
    values: dict[str, Value]
    project_name: str
    display_name: str
    model: models.ModelRef
    data_file: Path | None
    cuda: bool
    template: templates.PromptTemplate
    dataset_dir: Path
    problems: list[Problem] = field(default_factory=list)

    def get(self, key: str) -> Any:
        if key in self.values:
            return self.values[key].value
        return KEYS[key].default

    def source(self, key: str) -> Source:
        return self.values[key].source if key in self.values else Source("default")

    @property
    def quantization(self) -> str:
        """What AutoTrain will really do: it quantizes only with PEFT, and defaults to int4."""
        if not self.get("PEFT"):
            return "none"
        return self.get("QUANTIZATION") or "none"

    @property
    def push(self) -> bool:
        return bool(self.get("PUSH_TO_HUB"))

    def hub_repo(self) -> str | None:
        if self.get("HUB_REPO"):
            return self.get("HUB_REPO")
        if self.get("USERNAME"):
            return f"{self.get('USERNAME')}/{self.project_name}"
        return None

    def secrets(self) -> list[str]:
        return [str(v.value) for k, v in self.values.items() if _secret(k) and v.value]

    def autotrain_params(self) -> dict[str, Any]:
        """The AutoTrain fields the user set, in the order they were first written."""
        params = {}
        for key, value in self.values.items():
            spec = KEYS[key]
            if spec.field and spec.field not in keys.RUNNER_OWNED_FIELDS:
                params[spec.field] = value.value
        return params

    def resolved_table(self) -> list[tuple[str, str, str]]:
        """(key, value, source) for every key set anywhere, secrets masked; for `check` and run.json."""
        rows, redact = [], Redactor(self.secrets())  # a token shape or URL password in any value, too
        for key, value in self.values.items():
            shown = MASK if _secret(key) and value.value else redact(_show(value.value))
            name = key if value.written_as == key else f"{key} (as {value.written_as})"
            rows.append((name, shown, str(value.source)))
        return rows


def _secret(key: str) -> bool:
    """Secret-shaped names holding text; a typed key (ADD_EOS_TOKEN is a boolean) is never secret."""
    return is_secret_key(key) and KEYS[key].kind == "str"


def _holds_secret(name: str) -> bool:
    """`_secret` for any name as written: a legacy key (TOKEN), or a variable (`${OPENAI_API_KEY}`)."""
    key = LEGACY[name][0] if name in LEGACY else name
    return is_secret_key(name) and (key not in KEYS or KEYS[key].kind == "str")


def _recording(lookup: Callable[[str], str | None], into: dict[str, str]) -> Callable[[str], str | None]:
    """`lookup`, noting the value of every secret-named variable it hands to an expansion."""

    def recorded(name: str) -> str | None:
        value = lookup(name)
        if value and _holds_secret(name):
            into[name] = value
        return value

    return recorded


def _mask_secrets(assignments: list[tuple[str, _Raw]], problems: list[Problem]) -> SecretMatcher:
    """A value holding a secret (interpolated, `proj-${HF_TOKEN}`, or pasted in: a token shape, a
    secret's value) holds `***` in its place from here on, so that no output, file, argv, dataset or
    training sees it. A project name holding one is refused: it becomes the output folder's name and
    reaches AutoTrain. Returns the matcher of the secrets configured."""
    known: dict[str, str] = {}
    for name, raw in assignments:
        if _holds_secret(name) and raw.text:
            known.setdefault(raw.text, f"the value of {name}")
        for variable, value in raw.secrets.items():
            known.setdefault(value, f"the value of {variable}")
    matcher = SecretMatcher(known, urls=False)  # a URL's password is masked when shown, but it must work
    for name, raw in assignments:
        if _holds_secret(name):
            continue
        held = [f"the value of {variable}" for variable in raw.secrets] + [f.what for f in matcher.find(raw.text)]
        if not held:
            continue
        for value in raw.secrets.values():  # interpolated: masked whatever its length
            raw.text = raw.text.replace(value, MASK)
        raw.text = matcher.mask(raw.text)
        if name not in KEYS and name not in LEGACY:
            continue  # only carries a value: the key it goes into is reported
        named = [what for what in held if what.startswith("the value of ")]  # the secret's name says most
        what = ", ".join(dict.fromkeys(named or held))
        if (LEGACY[name][0] if name in LEGACY else name) == "PROJECT_NAME":
            message = f"holds {what}: the project name becomes the output folder's name and reaches AutoTrain"
            problems.append(Problem("error", str(raw.source), name, f"{message}; take the secret out of it"))
        else:
            problems.append(
                Problem(
                    "warning",
                    str(raw.source),
                    name,
                    f"holds {what}: {MASK} is used in its place everywhere (check, command, runs, data, "
                    "training, the card); take the secret out of it",
                )
            )
    return matcher


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "none"
    return str(value)


def find_env_file(target: Path) -> Path:
    try:
        target = target.resolve()  # `atr check .` must know the folder's name
        is_dir, is_file, exists = target.is_dir(), target.is_file(), target.exists()
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL, a name too long, a symlink loop
        raise ConfigError(f"{str(target)[:200]}: not a usable path ({_why(exc)})") from None
    if is_dir:
        env = target / PROJECT_ENV
        if not env.is_file():
            raise ConfigError(f"{target}: no {PROJECT_ENV} in this folder; create one or give the path to an .env file")
        return env
    if is_file:
        return target
    if exists:
        raise ConfigError(f"{target}: not a regular file; give a project folder or the path to an .env file")
    raise ConfigError(f"{target}: no such project folder or env file")


def local_env_file(env_file: Path) -> Path:
    return env_file.with_name(f"{env_file.name.removesuffix('.env')}.local.env")


def sanitize_project_name(name: str) -> str:
    """AutoTrain wants letters, digits and hyphens, at most 50 characters (it is a directory)."""
    cleaned = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:50].strip("-")
    return cleaned or "run"


# --------------------------------------------------------------------------------------------------
# Loading


@dataclass
class _Raw:
    """One assignment, before typing: where it is, what it says."""

    written_as: str
    text: str
    source: Source
    secrets: dict[str, str] = field(default_factory=dict)  # secret-named variable -> the value it interpolated


def load_config(
    target: Path | str,
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    cpu: bool = False,
    needs_data: bool = True,
) -> Config:
    """Read, merge and validate; raises ConfigError listing every problem at once.

    `needs_data=False` (chat, serve: a model needs no training data) drops "no training data"."""
    environ = os.environ if environ is None else environ
    env_file = find_env_file(Path(target))
    problems: list[Problem] = []

    cli_values = _parse_overrides(overrides, problems)
    file_layers = _file_layers(env_file, problems)
    local = local_env_file(env_file)
    if local.is_file():
        file_layers.append((local, "local"))
        for entry in read_entries(local)[0]:
            if entry.key == "EXTENDS":
                problems.append(
                    Problem(
                        "error",
                        f"{_display(local)}:{entry.line}",
                        "EXTENDS",
                        f"presets are named in {env_file.name}, not in the local file",
                    )
                )

    lookup_chain: dict[str, str] = {}
    # Precedence order, lowest first: presets and files, then environment, then --set.
    assignments: list[tuple[str, _Raw]] = []
    referenced: set[str] = set()

    def lookup(name: str) -> str | None:
        # bash semantics: the environment (and --set) wins over assignments in the file
        if name in cli_values:
            return cli_values[name][0]
        if name in environ:
            return environ[name]
        return lookup_chain.get(name)

    for path, kind in file_layers:
        entries, file_problems = read_entries(path)
        problems.extend(file_problems)
        for entry in entries:
            if entry.key == "EXTENDS":
                continue
            source = Source(kind, path, entry.line)

            def assign(name: str, value: str, source: Source = source) -> None:
                lookup_chain[name] = value
                assignments.append((name, _Raw(name, value, source)))

            interpolated: dict[str, str] = {}
            if entry.expand:
                referenced |= references(entry.raw)
                try:
                    text = expand(entry.raw, _recording(lookup, interpolated), assign)
                except ExpansionError as exc:
                    problems.append(Problem("error", f"{_display(path)}:{entry.line}", entry.key, str(exc)))
                    continue
            else:
                text = entry.raw
            lookup_chain[entry.key] = text
            assignments.append((entry.key, _Raw(entry.key, text, source, interpolated)))
    for name in KEYS:
        # ATR_EPOCHS=3 sets EPOCHS; unprefixed, only HF_TOKEN: MODEL, LOG, SEED or USERNAME in a
        # shell mean other things too often to be read as settings.
        for variable in (f"{ENV_PREFIX}{name}", *(("HF_TOKEN",) if name == "HF_TOKEN" else ())):
            if variable in environ:
                assignments.append((name, _Raw(name, environ[variable], Source("environment", variable=variable))))
    for name, (text, source) in cli_values.items():
        assignments.append((name, _Raw(name, text, source)))

    secrets = _mask_secrets(assignments, problems)
    values = _canonical_values(assignments, referenced, problems)
    env_dir = env_file.parent

    display_name = (
        str(values["PROJECT_NAME"].value)
        if "PROJECT_NAME" in values
        else (env_dir.name if env_file.name == PROJECT_ENV else env_file.stem)
    )
    if "PROJECT_NAME" not in values and secrets.find(display_name):
        message = "the project is named after its folder (or env file), and that name holds a secret"
        problems.append(Problem("error", _display(env_file), "PROJECT_NAME", f"{message}; set PROJECT_NAME=..."))
        display_name = secrets.mask(display_name)
    project_name = sanitize_project_name(display_name)
    dataset_dir = _dataset_dir(values, env_file)
    template = _apply_template(values, env_dir, dataset_dir, problems)
    if project_name != display_name and "PROJECT_NAME" in values:
        problems.append(
            Problem(
                "note",
                str(values["PROJECT_NAME"].source),
                values["PROJECT_NAME"].written_as,
                f"AutoTrain needs letters, digits and hyphens: {display_name!r} runs as {project_name!r}",
            )
        )

    model = _resolve_model(values, env_file, problems)
    data_file = _resolve_data(values, env_file, problems if needs_data else [])
    cuda = not cpu and hardware.cuda_available()  # --cpu: check and train as a machine without CUDA
    config = Config(
        env_file, env_dir, values, project_name, display_name, model, data_file, cuda, template, dataset_dir
    )
    _cross_checks(config, problems)
    problems.sort(key=_position)
    config.problems = problems
    if any(p.level == "error" for p in problems):
        raise ConfigError(problems)
    return config


def _position(problem: Problem) -> tuple[int, str, int]:
    """Problems in file order: file lines first, by line; then environment, --set and the rest."""
    path, _, line = problem.where.rpartition(":")
    if path and line.isdigit():
        return (0, path, int(line))
    return (1, problem.where, 0)


def _parse_overrides(overrides: Sequence[str], problems: list[Problem]) -> dict[str, tuple[str, Source]]:
    values = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            problems.append(Problem("error", "--set", key, f"expected KEY=VALUE, got {item!r}"))
            continue
        values[key] = (text, Source("--set"))
    return values


MAX_PRESET_DEPTH = 16  # a preset of a preset of ...: real projects use one or two


def _file_layers(env_file: Path, problems: list[Problem]) -> list[tuple[Path, str]]:
    """The env file and its presets, lowest precedence first (a preset before the file extending it)."""
    layers: list[tuple[Path, str]] = []

    def visit(path: Path, kind: str, chain: tuple[Path, ...]) -> None:
        entries, _ = read_entries(path)  # problems of this file are reported when it is read as a layer
        for entry in entries:
            if entry.key != "EXTENDS":
                continue
            for name in filter(None, (p.strip() for p in entry.raw.split(","))):
                where = f"{_display(path)}:{entry.line}"
                try:
                    preset = (path.parent / name).resolve()
                    found = preset.is_file()
                except (OSError, ValueError, RuntimeError) as exc:  # a NUL, a name too long, a symlink loop
                    problems.append(Problem("error", where, "EXTENDS", f"{name[:80]!r} is not a usable path ({exc})"))
                    continue
                if preset in chain:
                    problems.append(Problem("error", where, "EXTENDS", f"{name} extends itself in a cycle"))
                elif len(chain) >= MAX_PRESET_DEPTH:
                    problems.append(
                        Problem("error", where, "EXTENDS", f"presets extend presets more than {MAX_PRESET_DEPTH} deep")
                    )
                elif not found:
                    problems.append(Problem("error", where, "EXTENDS", f"preset not found: {_display(preset)}"))
                else:
                    visit(preset, "preset", (*chain, preset))
        if all(p != path for p, _ in layers):
            layers.append((path, kind))

    visit(env_file.resolve(), "file", (env_file.resolve(),))
    return layers


def _canonical_values(
    assignments: list[tuple[str, _Raw]], referenced: set[str], problems: list[Problem]
) -> dict[str, Value]:
    """Map every assignment to its current key, type it, and keep the one of highest precedence."""
    values: dict[str, Value] = {}
    first_seen: dict[str, int] = {}
    noted: set[str] = set()
    for index, (name, raw) in enumerate(assignments):
        where = str(raw.source)
        if name in VARIABLES or (name not in KEYS and name not in LEGACY and name in referenced):
            continue  # only carries a value into other values
        if name in LEGACY:
            current, convert = LEGACY[name]
            if name not in noted and raw.source.kind != "environment":
                noted.add(name)
                problems.append(Problem("note", where, name, f"is an old AutoTrain name; the current key is {current}"))
            kind = LEGACY_KIND.get(name, KEYS[current].kind)
            typed = _typed(raw.text, kind, KEYS[current], where, name, problems)
            if typed is _INVALID:
                continue
            if convert is not None:
                typed = convert(typed)
            key = current
            first_seen.setdefault(key, index)
        elif name in KEYS:
            key = name
            first_seen.setdefault(key, index)
            typed = _typed(raw.text, KEYS[name].kind, KEYS[name], where, name, problems)
            if typed is _INVALID:
                continue
        else:
            hint = keys.suggest(name)
            fix = f"did you mean {hint}?" if hint else "remove it, or see `atr keys` for the keys"
            problems.append(Problem("error", where, name, f"unknown key; {fix}"))
            continue
        message = _check_value(KEYS[key], typed)
        if message:
            problems.append(Problem("error", where, name, message))
            continue
        values[key] = Value(key, name, raw.text, typed, raw.source)
    # Keys keep the order in which they were first written, so argv mirrors the env file.
    return dict(sorted(values.items(), key=lambda kv: first_seen[kv[0]]))


_INVALID = object()


def _typed(text: str, kind: str, spec: Key, where: str, name: str, problems: list[Problem]) -> Any:
    stripped = text.strip()
    if spec.nullable and stripped.lower() in ("", "none", "null") and kind != "bool":
        return None
    try:
        if kind == "bool":
            if stripped.lower() in _TRUE:
                return True
            if stripped.lower() in _FALSE:
                return False
            raise ValueError("write true or false")
        if kind == "int":
            return int(stripped)
        if kind == "float":
            return _finite(float(stripped))
        if kind == "block_size":
            sizes = [int(s) for s in stripped.split(",")]
            return sizes[0] if len(sizes) == 1 else sizes
        if kind in ("int_list", "float_list"):
            item = int if kind == "int_list" else (lambda s: _finite(float(s)))
            return [item(s) for s in stripped.split(",") if s.strip()]
    except ValueError as exc:
        expected = {
            "bool": "true or false",
            "int": "a whole number",
            "float": "a number",
            "block_size": "a whole number of tokens",
            "int_list": "a comma-separated list of whole numbers",
            "float_list": "a comma-separated list of numbers",
        }[kind]
        detail = "" if "invalid literal" in str(exc) or "could not convert" in str(exc) else f" ({exc})"
        problems.append(Problem("error", where, name, f"{text!r} is not {expected}{detail}"))
        return _INVALID
    if spec.choices is not None:
        if stripped.lower() not in spec.choices:
            problems.append(Problem("error", where, name, f"{text!r} is not one of: {', '.join(spec.choices)}"))
            return _INVALID
        stripped = stripped.lower()
        if stripped == "none" and spec.nullable:
            return None
    return stripped


def _check_value(spec: Key, value: Any) -> str | None:
    if value is None or spec.check is None:
        return None
    return spec.check(value)


def _finite(value: float) -> float:
    """inf, 1e999 and nan parse as floats; no setting means them."""
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return value


def dataset_id(env_file: Path) -> str:
    """`projects/demo/project.env` -> demo; `mymodel.env` -> mymodel."""
    return env_file.parent.name if env_file.name == PROJECT_ENV else env_file.name.removesuffix(".env")


def _dataset_dir(values: dict[str, Value], env_file: Path) -> Path:
    """DATASET_DIR, else `datasets/<project>` at the root that holds `projects/` (the layout)."""
    if "DATASET_DIR" in values:
        value = values["DATASET_DIR"]
        base = value.source.path.parent if value.source.path else Path.cwd()
        path = base / Path(str(value.value)).expanduser()
        try:
            return path.resolve()
        except (OSError, RuntimeError):  # a link loop, a name too long: the DATASET_DIR checks report it
            return Path(os.path.abspath(path))
    project_dir = env_file.parent.resolve()
    root = project_dir.parent.parent if project_dir.parent.name == "projects" else project_dir
    return root / "datasets" / dataset_id(env_file)


def _apply_template(
    values: dict[str, Value], env_dir: Path, dataset_dir: Path, problems: list[Problem]
) -> templates.PromptTemplate:
    """The prompt template, and what a data builder implies: CHAT_TEMPLATE, TEXT_COLUMN, DATA_FILE."""
    chat = values["CHAT_TEMPLATE"].value if "CHAT_TEMPLATE" in values else None
    spec = values.get("PROMPT_TEMPLATE")
    try:
        template = templates.resolve(spec.value if spec else None, chat, env_dir)
    except ConfigError as exc:
        problems.append(Problem("error", str(spec.source) if spec else "", "PROMPT_TEMPLATE", exc.problems[0].message))
        template = templates.NAMED[templates.DEFAULT]
    where = str(spec.source) if spec else "default"
    if template.kind == "chat" and chat not in (None, template.name):
        problems.append(
            Problem(
                "error",
                where,
                "PROMPT_TEMPLATE",
                f"{template.name} conflicts with CHAT_TEMPLATE={chat}; set one of them",
            )
        )
    if template.kind == "text" and chat in templates.CHAT_TEMPLATES:
        problems.append(
            Problem(
                "error",
                where,
                "PROMPT_TEMPLATE",
                f"{template.name} renders text, but CHAT_TEMPLATE={chat} expects messages; use PROMPT_TEMPLATE={chat}",
            )
        )
    if "DATA_BUILDER" not in values:
        return template
    derived = Source("from DATA_BUILDER")
    if template.kind == "chat" and chat is None:
        values["CHAT_TEMPLATE"] = Value("CHAT_TEMPLATE", "CHAT_TEMPLATE", template.name, template.name, derived)
    column = "messages" if template.kind == "chat" else "text"
    values.setdefault("TEXT_COLUMN", Value("TEXT_COLUMN", "TEXT_COLUMN", column, column, derived))
    train_file = dataset_dir / ("train.jsonl" if template.kind == "chat" else "train.csv")
    values.setdefault("DATA_FILE", Value("DATA_FILE", "DATA_FILE", str(train_file), str(train_file), derived))
    if "RAW_DATA" not in values:
        problems.append(
            Problem(
                "error",
                str(values["DATA_BUILDER"].source),
                "RAW_DATA",
                f"DATA_BUILDER={values['DATA_BUILDER'].value} needs RAW_DATA (a file, folder or glob)",
            )
        )
    return template


def _resolve_model(values: dict[str, Value], env_file: Path, problems: list[Problem]) -> models.ModelRef:
    if "MODEL" not in values:
        problems.append(
            Problem("error", _display(env_file), "MODEL", "no model set; add MODEL=<Hub id, folder or bundled:...>")
        )
        return models.ModelRef("", "hub")
    value = values["MODEL"]
    if not str(value.value or "").strip():
        problems.append(Problem("error", str(value.source), value.written_as, "is empty; name a model"))
        return models.ModelRef("", "hub")
    base = value.source.path.parent if value.source.path else Path.cwd()
    try:
        ref = models.resolve(str(value.value), base)
    except ConfigError as exc:
        problems.append(Problem("error", str(value.source), value.written_as, exc.problems[0].message))
        return models.ModelRef(str(value.value), "hub")
    if ref.kind == "hub":
        problems.append(
            Problem(
                "note",
                str(value.source),
                value.written_as,
                f"{ref.spec} is a Hub id: not downloaded by check, unverified offline",
            )
        )
    return ref


def _resolve_data(values: dict[str, Value], env_file: Path, problems: list[Problem]) -> Path | None:
    """Find the training file: DATA_FILE, else {DATA_PATH}/{TRAIN_SPLIT}.csv|.jsonl when local."""
    if "DATA_FILE" in values:
        value = values["DATA_FILE"]
        try:
            found = _local_path(str(value.value), value.source)
            is_file = found is not None and found.is_file()
        except (OSError, ValueError, RuntimeError) as exc:  # a NUL, a name too long, a symlink loop
            problems.append(Problem("error", str(value.source), value.written_as, f"not a usable path ({_why(exc)})"))
            return None
        if found is not None and found.exists() and not is_file:
            kind = "a folder" if found.is_dir() else "not a regular file"
            problems.append(
                Problem(
                    "error", str(value.source), value.written_as, f"{_display(found)} is {kind}; name the data file"
                )
            )
            return None
        if value.source.kind == "from DATA_BUILDER" and not is_file:
            problems.append(
                Problem(
                    "note",
                    str(values["DATA_BUILDER"].source),
                    "DATA_BUILDER",
                    f"dataset not built yet ({_display(Path(value.value))}); run `atr data`",
                )
            )
            return None
        if found is None or not is_file:
            problems.append(
                Problem("error", str(value.source), value.written_as, f"data file not found: {value.value}")
            )
            return None
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
                    "error", str(value.source), value.written_as, f"no {split}.csv or {split}.jsonl in {value.value}"
                )
            )
            return None
        problems.append(
            Problem(
                "note",
                str(value.source),
                value.written_as,
                f"{value.value} is not a local folder: passed to AutoTrain as a Hub dataset",
            )
        )
        return None
    problems.append(
        Problem(
            "error",
            _display(env_file),
            "DATA_FILE",
            "no training data; set DATA_FILE=path/to/train.csv (or DATA_BUILDER and RAW_DATA)",
        )
    )
    return None


def _why(exc: Exception) -> str:
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc))[:120]


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
    where = f"{_display(path)}:1"
    if path.suffix.lower() not in (".csv", ".jsonl"):
        problems.append(
            Problem(
                "error",
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
                            "error",
                            where,
                            "",
                            f"first record is a JSON {type(first).__name__}, not an object with a text column",
                        )
                    )
                    return None
                header = list(first)
    except UnicodeDecodeError:
        problems.append(Problem("error", where, "", "is not UTF-8 text; save it as UTF-8"))
        return None
    except json.JSONDecodeError as exc:
        problems.append(Problem("error", where, "", f"first line is not a JSON object ({exc.msg})"))
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
        problems.append(Problem("error", where, key, f"column {column!r} not in the header (found: {found}){fix}"))
    return path.resolve()


def _cross_checks(config: Config, problems: list[Problem]) -> None:
    get, where = config.get, lambda key: str(config.source(key))

    def written(key: str) -> str:
        return config.values[key].written_as if key in config.values else key

    explicit_quant = config.values.get("QUANTIZATION")
    if explicit_quant and explicit_quant.value in ("int4", "int8") and not get("PEFT"):
        problems.append(
            Problem(
                "error",
                str(explicit_quant.source),
                explicit_quant.written_as,
                f"{explicit_quant.value} quantization trains LoRA adapters only; set PEFT=true "
                "(or USE_PEFT=True), or QUANTIZATION=none for full fine-tuning",
            )
        )
    if config.quantization in ("int4", "int8") and not config.cuda:
        problems.append(
            Problem(
                "note",
                where("QUANTIZATION"),
                written("QUANTIZATION"),
                f"{config.quantization} without CUDA: bitsandbytes quantizes on the CPU, which trains slowly",
            )
        )
    if get("MIXED_PRECISION") in ("fp16", "bf16") and not config.cuda:
        problems.append(
            Problem(
                "note",
                where("MIXED_PRECISION"),
                written("MIXED_PRECISION"),
                f"{get('MIXED_PRECISION')} needs CUDA; without it training runs in fp32",
            )
        )
    needs_hub = config.push or get("BACKEND") != "local"
    if needs_hub:
        reason = "PUSH_TO_HUB=true" if config.push else f"BACKEND={get('BACKEND')}"
        hosted = get("BACKEND") != "local"
        # `atr push` also takes the token `huggingface-cli login` stored; a hosted backend needs HF_TOKEN
        if not get("HF_TOKEN") and (hosted or not _login_token()):
            problems.append(
                Problem(
                    "error",
                    where("PUSH_TO_HUB" if config.push else "BACKEND"),
                    "HF_TOKEN",
                    f"{reason} needs a token: put HF_TOKEN=... in "
                    f"{local_env_file(config.env_file).name} or the environment"
                    + ("" if hosted else ", or run `huggingface-cli login`"),
                )
            )
        if not get("USERNAME") and not get("HUB_REPO"):
            problems.append(
                Problem(
                    "error",
                    where("PUSH_TO_HUB" if config.push else "BACKEND"),
                    "USERNAME",
                    f"{reason} needs a Hub user or organisation: set USERNAME or HUB_REPO=owner/name",
                )
            )
    if get("BACKEND") != "local" and not config.push:
        problems.append(
            Problem(
                "error",
                where("BACKEND"),
                "BACKEND",
                f"AutoTrain's hosted backend {get('BACKEND')} needs PUSH_TO_HUB=true",
            )
        )
    token = config.values.get("HF_TOKEN")
    if token and token.source.kind in ("file", "preset"):
        problems.append(
            Problem(
                "warning",
                str(token.source),
                token.written_as,
                f"a token in a tracked env file; move it to {local_env_file(config.env_file).name} "
                "(git-ignored) or the environment",
            )
        )
    if "VALID_SPLIT" in config.values:
        problems.append(
            Problem(
                "note",
                where("VALID_SPLIT"),
                "VALID_SPLIT",
                "AutoTrain drops the validation split of local data; held-out evaluation is atr's job",
            )
        )
    if get("DISTRIBUTED_BACKEND") and not config.cuda:
        problems.append(
            Problem(
                "note",
                where("DISTRIBUTED_BACKEND"),
                "DISTRIBUTED_BACKEND",
                "takes effect only with several CUDA devices",
            )
        )
    if "DATA_BUILDER" in config.values:  # `atr data` replaces DATASET_DIR: never a folder it did not make
        from autotrain_runner.data.outputs import dataset_dir_problems  # here: the data package imports this module

        problems.extend(dataset_dir_problems(config))


def _login_token() -> bool:
    """Whether `huggingface-cli login` stored a token (read from its file; no network)."""
    from huggingface_hub import get_token

    return bool(get_token())

"""Env files -> one validated, typed configuration that remembers where every value came from.

Sources, lowest precedence first (`load_config` lists them in this order; the last assignment of
a key wins):

1. defaults (AutoTrain's own, or the runner's: `keys.KEYS`);
2. presets named by `EXTENDS=` (paths relative to the file naming them; later presets win);
3. the project's env file (`project.env`);
4. `project.local.env` beside it (git-ignored: secrets, machine-specific values);
5. the process environment (only keys this tool knows);
6. `--set KEY=VALUE` on the command line.

`${NAME}` in a file reads the environment and `--set` first, then what the files assigned before
it, as bash does. Every problem is collected before anything is reported, so one run of `atr
check` lists them all. Loading reads files and nothing else: whether the run has CUDA is the
caller's to say.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotrain_runner.config import keys
from autotrain_runner.config.checks import cross_checks
from autotrain_runner.config.dataset_dir import resolve_dataset_dir
from autotrain_runner.config.envfile import ExpansionError, display_path, expand, read_entries, references
from autotrain_runner.config.files import PROJECT_ENV, file_layers, find_env_file
from autotrain_runner.config.keys import KEYS, LEGACY, LEGACY_KIND, VARIABLES
from autotrain_runner.config.records import Config, Source, Value
from autotrain_runner.config.resolve import resolve_data, resolve_model, resolve_template
from autotrain_runner.config.values import INVALID, Key, typed
from autotrain_runner.errors import ConfigError, Level, Problem
from autotrain_runner.redact import MASK, SecretMatcher, is_secret_key

ENV_PREFIX = "ATR_"


@dataclass
class _Raw:
    """One assignment, before typing: where it is, what it says."""

    written_as: str
    text: str
    source: Source
    secrets: dict[str, str] = field(default_factory=dict)  # secret-named variable -> the value it interpolated


Assignments = list[tuple[str, _Raw]]


def load_config(
    target: Path | str,
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    *,
    cuda: bool = False,
    needs_data: bool = True,
) -> Config:
    """Read, merge and validate; raises ConfigError listing every problem at once.

    `cuda`: whether the run the config is loaded for has CUDA (the commands that check or train ask
    `hardware.use_cuda`, which `--cpu` turns off); it decides the notes on CUDA-only settings and
    whether `atr check` sizes the run against the detected GPU. `needs_data=False` (chat, serve: a
    model needs no training data) drops "no training data"."""
    environ = os.environ if environ is None else environ
    env_file = find_env_file(Path(target))
    problems: list[Problem] = []
    cli_values = _parse_overrides(overrides, problems)

    def outer(name: str) -> str | None:  # what `${NAME}` reads before the files' own assignments
        return cli_values[name] if name in cli_values else environ.get(name)

    from_files, referenced = _from_files(file_layers(env_file, problems), outer, problems)
    # The precedence, lowest first: the presets, the file, its local file; the environment; --set.
    assignments = [*from_files, *_from_environment(environ), *_from_overrides(cli_values)]

    secrets = _mask_secrets(assignments, problems)
    values = _canonical_values(assignments, referenced, problems)
    env_dir = env_file.parent
    display_name = _display_name(values, env_file, secrets, problems)
    project_name = sanitize_project_name(display_name)
    dataset_dir = resolve_dataset_dir(values, env_file)
    template = resolve_template(values, env_dir, dataset_dir, problems)
    if project_name != display_name and "PROJECT_NAME" in values:
        problems.append(
            Problem(
                Level.NOTE,
                str(values["PROJECT_NAME"].source),
                values["PROJECT_NAME"].written_as,
                f"AutoTrain needs letters, digits and hyphens: {display_name!r} runs as {project_name!r}",
            )
        )
    model = resolve_model(values, env_file, problems)
    data_file = resolve_data(values, env_file, problems if needs_data else [])
    config = Config(
        env_file, env_dir, values, project_name, display_name, model, data_file, cuda, template, dataset_dir
    )
    cross_checks(config, problems)
    # a message may quote what the user wrote (a malformed line, a path): no configured secret in it
    problems[:] = [Problem(p.level, *map(secrets.mask, (p.where, p.key, p.message))) for p in problems]
    problems.sort(key=_position)
    config.problems = problems
    if any(p.level == Level.ERROR for p in problems):
        raise ConfigError(problems)
    return config


def sanitize_project_name(name: str) -> str:
    """AutoTrain wants letters, digits and hyphens, at most 50 characters (it is a directory)."""
    cleaned = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:50].strip("-")
    return cleaned or "run"


# --------------------------------------------------------------------------------------------------
# The sources


def _parse_overrides(overrides: Sequence[str], problems: list[Problem]) -> dict[str, str]:
    values = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            # the value is never repeated: a key mistyped (`OPENAI API_KEY`) may carry a secret
            shown = f"a key {key[:40]!r}" if sep else "no '='"
            problems.append(
                Problem(
                    Level.ERROR, "--set", "", f"expected KEY=VALUE with a key of letters, digits and _; got {shown}"
                )
            )
            continue
        values[key] = text
    return values


def _from_files(
    layers: list[tuple[Path, str]], outer: Callable[[str], str | None], problems: list[Problem]
) -> tuple[Assignments, set[str]]:
    """Every assignment of the files, in order, `${NAME}` expanded; and the names referenced."""
    assigned: dict[str, str] = {}
    assignments: Assignments = []
    referenced: set[str] = set()

    def lookup(name: str) -> str | None:
        found = outer(name)  # bash semantics: the environment (and --set) wins over the files
        return assigned.get(name) if found is None else found

    for path, kind in layers:
        entries, file_problems = read_entries(path)
        problems.extend(file_problems)
        for entry in entries:
            if entry.key == "EXTENDS":
                continue
            source = Source(kind, path, entry.line)

            def assign(name: str, value: str, source: Source = source) -> None:  # `${NAME:=default}`
                assigned[name] = value
                assignments.append((name, _Raw(name, value, source)))

            interpolated: dict[str, str] = {}
            if entry.expand:
                referenced |= references(entry.raw)
                try:
                    text = expand(entry.raw, _recording(lookup, interpolated), assign)
                except ExpansionError as exc:
                    problems.append(Problem(Level.ERROR, f"{display_path(path)}:{entry.line}", entry.key, str(exc)))
                    continue
            else:
                text = entry.raw
            assigned[entry.key] = text
            assignments.append((entry.key, _Raw(entry.key, text, source, interpolated)))
    return assignments, referenced


def _from_environment(environ: Mapping[str, str]) -> Assignments:
    """ATR_EPOCHS=3 sets EPOCHS; unprefixed, only HF_TOKEN: MODEL, LOG, SEED or USERNAME in a
    shell mean other things too often to be read as settings."""
    found = []
    for name in KEYS:
        for variable in (f"{ENV_PREFIX}{name}", *(("HF_TOKEN",) if name == "HF_TOKEN" else ())):
            if variable in environ:
                found.append((name, _Raw(name, environ[variable], Source("environment", variable=variable))))
    return found


def _from_overrides(cli_values: dict[str, str]) -> Assignments:
    return [(name, _Raw(name, text, Source("--set"))) for name, text in cli_values.items()]


# --------------------------------------------------------------------------------------------------
# Assignments -> values


def _canonical_values(assignments: Assignments, referenced: set[str], problems: list[Problem]) -> dict[str, Value]:
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
                problems.append(
                    Problem(Level.NOTE, where, name, f"is an old AutoTrain name; the current key is {current}")
                )
            kind = LEGACY_KIND.get(name, KEYS[current].kind)
            value = typed(raw.text, kind, KEYS[current], where, name, problems)
            if value is INVALID:
                continue
            if convert is not None:
                value = convert(value)
            key = current
            first_seen.setdefault(key, index)
        elif name in KEYS:
            key = name
            first_seen.setdefault(key, index)
            value = typed(raw.text, KEYS[name].kind, KEYS[name], where, name, problems)
            if value is INVALID:
                continue
        else:
            hint = keys.suggest(name)
            fix = f"did you mean {hint}?" if hint else "remove it, or see `atr keys` for the keys"
            problems.append(Problem(Level.ERROR, where, name, f"unknown key; {fix}"))
            continue
        message = _check_value(KEYS[key], value)
        if message:
            problems.append(Problem(Level.ERROR, where, name, message))
            continue
        values[key] = Value(key, name, raw.text, value, raw.source)
    # Keys keep the order in which they were first written, so argv mirrors the env file.
    return dict(sorted(values.items(), key=lambda kv: first_seen[kv[0]]))


def _check_value(spec: Key, value: Any) -> str | None:
    if value is None or spec.check is None:
        return None
    return spec.check(value)


def _display_name(values: dict[str, Value], env_file: Path, secrets: SecretMatcher, problems: list[Problem]) -> str:
    """PROJECT_NAME, else the project folder's name (or the env file's)."""
    if "PROJECT_NAME" in values:
        return str(values["PROJECT_NAME"].value)
    name = env_file.parent.name if env_file.name == PROJECT_ENV else env_file.stem
    if secrets.find(name):
        message = "the project is named after its folder (or env file), and that name holds a secret"
        problems.append(
            Problem(Level.ERROR, display_path(env_file), "PROJECT_NAME", f"{message}; set PROJECT_NAME=...")
        )
        name = secrets.mask(name)
    return name


def _position(problem: Problem) -> tuple[int, str, int]:
    """Problems in file order: file lines first, by line; then environment, --set and the rest."""
    path, _, line = problem.where.rpartition(":")
    if path and line.isdigit():
        return (0, path, int(line))
    return (1, problem.where, 0)


# --------------------------------------------------------------------------------------------------
# Secrets


def _holds_secret(name: str) -> bool:
    """Whether a name as written holds a secret: a key (HF_TOKEN), a legacy key (TOKEN), or a
    variable (`${OPENAI_API_KEY}`); a typed key (ADD_EOS_TOKEN is a boolean) never does."""
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


def _mask_secrets(assignments: Assignments, problems: list[Problem]) -> SecretMatcher:
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
            problems.append(Problem(Level.ERROR, str(raw.source), name, f"{message}; take the secret out of it"))
        else:
            problems.append(
                Problem(
                    Level.WARNING,
                    str(raw.source),
                    name,
                    f"holds {what}: {MASK} is used in its place everywhere (check, command, runs, data, "
                    "training, the card); take the secret out of it",
                )
            )
    return matcher

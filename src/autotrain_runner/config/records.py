"""The typed configuration: `Config`, and the `Value` and `Source` of every setting in it.

`config.load` builds one; everything after it reads settings through `Config.get`, and `atr
check` shows `resolved_table`: each value beside the file line (or variable, or `--set`) it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotrain_runner.config import autotrain_keys, models, templates
from autotrain_runner.config.envfile import display_path
from autotrain_runner.config.keys import KEYS
from autotrain_runner.errors import Problem
from autotrain_runner.redact import MASK, Redactor, is_secret_key


@dataclass(frozen=True)
class Source:
    kind: str  # "default", "preset", "file", "local", "environment", "--set", "from DATA_BUILDER"
    path: Path | None = None
    line: int | None = None
    variable: str | None = None  # the environment variable it was read from

    def __str__(self) -> str:
        if self.path is not None:
            return f"{display_path(self.path)}:{self.line}" if self.line else display_path(self.path)
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
    cuda: bool  # whether the run it is loaded for has CUDA: the caller says (`hardware.use_cuda`)
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
            if spec.field and spec.field not in autotrain_keys.RUNNER_OWNED_FIELDS:
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


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "none"
    return str(value)

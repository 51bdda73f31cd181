"""The JSON records the commands leave on disk, as typed dataclasses.

`from_json` reads what a writer left (an older file lacks newer fields: they take their
defaults; a field of the wrong type is a `RecordError` naming it; a field no record declares is
kept in `extra`). The records are the values that travel: `atr train` and `atr sweep` change a
`RunRecord` or a `SweepRecord` of `TrialEntry`s and write it with `to_json`, and `checked` holds
that JSON against the dataclass before it is written, so a field of the wrong type, or one no
record declares (kept from an older file), fails at the write, not later in some reader. pydantic
checks the types (strict), from a schema made once per record class.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    import pydantic


class Status(StrEnum):
    """What became of a run or a trial, as run.json and sweep.json spell it (a member is that string)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # stopped from outside: Ctrl-C, TERM, a process that vanished
    DAMAGED = "damaged"  # run.json could not be read
    TRAINED = "trained"  # a sweep trial trained, its evaluation still to come (one engine for all)
    PENDING = "pending"  # a sweep worker's answer before its trial started


class RecordError(ValueError):
    """A record whose shape is not the declared one; the message names the field."""


class _Record:
    """from_json / to_json for a dataclass of JSON fields, its field types checked by pydantic (strict:
    no coercion, so an int is no str and a bool no int), through a schema made once from the dataclass."""

    LABEL = "record"  # how an error names the record

    @classmethod
    def from_json(cls, data: Any, strict: bool = False) -> Self:
        if not isinstance(data, dict):
            raise RecordError(f"not a {cls.LABEL} (a JSON {type(data).__name__})")
        import pydantic  # here, not at import: `atr --version` and the like never read a record

        try:
            checked = _schema(cls).model_validate(data)
        except pydantic.ValidationError as exc:
            raise RecordError(_said(cls, data, exc.errors()[0])) from None
        unknown = dict(checked.model_extra or {})
        if unknown and strict:
            raise RecordError(f"{', '.join(sorted(unknown))}: not a field of a {cls.LABEL}")
        values = {name: data[name] for name in _declared(cls) if name in data}  # as written: strict, nothing converted
        return cls(**values, extra=unknown)  # type: ignore[call-arg]

    def to_json(self) -> dict[str, Any]:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}  # type: ignore[arg-type]
        return {**fields, **self.extra}  # type: ignore[attr-defined]

    @classmethod
    def checked(cls, data: dict[str, Any]) -> dict[str, Any]:
        """A writer's dict, once it is known to be this record (every field of the right type, none
        unknown); written as it is, so a field the writer left out stays out of the file."""
        cls.from_json(data, strict=True)
        return data


def _declared(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.name != "extra")


@functools.cache
def _schema(cls: type) -> type[pydantic.BaseModel]:
    """The pydantic model of a record class's fields, made once (a sweep's every trial is read
    through it, and the report reads each sweep's trials several times). Fields it does not declare
    are kept (`model_extra`)."""
    import pydantic

    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {}
    for spec in dataclasses.fields(cls):
        if spec.name == "extra":
            continue
        if spec.default is not dataclasses.MISSING:
            default: Any = spec.default
        elif spec.default_factory is not dataclasses.MISSING:
            default = pydantic.Field(default_factory=spec.default_factory)
        else:
            default = ...
        fields[spec.name] = (hints[spec.name], default)
    config = pydantic.ConfigDict(strict=True, extra="allow", protected_namespaces=())
    return pydantic.create_model(f"{cls.__name__}Fields", __config__=config, **fields)


def _said(cls: type, data: dict[str, Any], error: Any) -> str:
    """A validation error as the record's reader says it: `status: int, not str`, `id: missing`."""
    name = str(error["loc"][0])
    if error["type"] == "missing":
        return f"{name}: missing"
    return f"{name}: {type(data[name]).__name__}, not {_name(typing.get_type_hints(cls)[name])}"


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


@dataclass
class RunRecord(_Record):
    """run.json: what a training run was asked and what happened (atr train; sweep trials too)."""

    LABEL = "run record"

    id: str
    status: str  # a Status
    output_dir: str  # the adapter's (or model's) folder inside the run folder
    project: str | None = None
    project_name: str | None = None
    env_file: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    config: list[Any] = field(default_factory=list)  # {key, value, source} as `atr check` shows them
    engine: str | None = None
    params: dict[str, Any] = field(default_factory=dict)  # AutoTrain's fields (never the token)
    model: dict[str, Any] = field(default_factory=dict)  # spec, kind, path
    argv: list[Any] = field(default_factory=list)
    template: dict[str, Any] = field(default_factory=dict)  # PromptTemplate.describe() + chat_template
    versions: dict[str, Any] = field(default_factory=dict)
    git: str | None = None
    cuda: bool | None = None
    notes: list[Any] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # the staged dataset: source, sha256, valid
    trainer: str | None = None  # the trainer and what it trains on (`command.describe_trainer`)
    loss_on: str | None = None
    weights: str | None = None  # the dtypes it trained in (`precision.describe`)
    pid: int | None = None  # the trainer's
    runner: dict[str, Any] = field(default_factory=dict)  # pid and host of the atr that started it
    duration_s: float | None = None
    train_loss: float | None = None
    last_step_loss: float | None = None
    loss_history: list[Any] = field(default_factory=list)
    loss_epochs: list[Any] = field(default_factory=list)
    eval_loss: float | None = None
    eval_loss_history: list[Any] = field(default_factory=list)
    eval_loss_epochs: list[Any] = field(default_factory=list)
    artifacts: list[Any] = field(default_factory=list)
    error: str | None = None
    # one per process that trained it: started_at, ended_at, status, why, from_step, saved_step
    segments: list[Any] = field(default_factory=list)
    stopped: str | None = None  # why it ended before its last step (early stopping)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def model_spec(self) -> str:
        return str(self.model.get("spec", ""))

    def open_segment(self, started_at: str, from_step: int = 0, changed: list[str] | None = None) -> None:
        """A process starts training this run (the first, or one that resumes it from `from_step`)."""
        segment: dict[str, Any] = {"started_at": started_at, "from_step": from_step}
        if self.segments:  # a resume: the keys that changed since it started (with --force)
            segment["changed"] = changed or None
        self.segments.append(segment)

    def close_segment(self, status: str, why: str | None, saved_step: int | None, ended: str) -> None:
        """End the open segment (the last one, when it has no end yet)."""
        if not self.segments:  # a run recorded before segments were
            self.segments.append({"started_at": self.started_at, "from_step": 0})
        last = self.segments[-1]
        if last.get("ended_at") is None:
            last.update(ended_at=ended, status=status, why=why, saved_step=saved_step)
        if last.get("duration_s") is None and last.get("started_at"):  # a process killed without a word
            with contextlib.suppress(ValueError, TypeError):
                seconds = datetime.fromisoformat(ended) - datetime.fromisoformat(last["started_at"])
                last["duration_s"] = round(seconds.total_seconds(), 1)


@dataclass
class TrialEntry(_Record):
    """One trial of a sweep, in sweep.json."""

    LABEL = "sweep trial"

    trial: str
    epochs: int
    lora_r: int
    lora_alpha: int
    status: str  # pending, running, trained, succeeded, failed, interrupted
    lr: float | None = None
    run_id: str | None = None
    attempts: list[Any] = field(default_factory=list)  # the run ids tried, the last one kept
    error: str | None = None
    eval_key: str | None = None
    train_s: float | None = None
    eval_s: float | None = None
    node: str | None = None  # the Ray node that ran it
    schedule: int | None = None  # SWEEP_EPOCHS_FROM=checkpoints: epoch `epochs` of a run trained for this many
    extra: dict[str, Any] = field(default_factory=dict)

    def start(self, run_id: str, trains: bool) -> None:
        """Its trial starts, in the run `run_id` (a new attempt when it trains)."""
        self.status, self.run_id, self.error = Status.RUNNING, run_id, None
        self.attempted(run_id, trains)

    def attempted(self, run_id: str, trains: bool) -> None:
        """`run_id` is one of the runs tried for it, when it trains there (each listed once)."""
        if trains and run_id not in self.attempts:
            self.attempts.append(run_id)


@dataclass
class SweepRecord(_Record):
    """sweep.json: a sweep's grid, its trials and where each stands (atr sweep)."""

    LABEL = "sweep record"

    id: str
    trials: list[Any]  # TrialEntry records (their JSON in sweep.json)
    project: str | None = None
    env_file: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    status: str | None = None
    base: dict[str, Any] = field(default_factory=dict)
    identity: str | None = None
    eval_key: str | None = None
    metric: str | None = None
    flag_limit: float | None = None
    model: str | None = None
    evaluation: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, Any] = field(default_factory=dict)
    parallel: int | None = None
    timing: dict[str, Any] = field(default_factory=dict)
    executor: dict[str, Any] = field(default_factory=dict)
    evaluation_engine: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any, strict: bool = False) -> Self:
        record = super().from_json(data, strict)
        record.trials = [TrialEntry.from_json(t, strict) for t in record.trials]
        return record

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "trials": [t.to_json() for t in self.trials]}

    def entries(self) -> list[TrialEntry]:
        return list(self.trials)

    def entry(self, trial: str) -> TrialEntry:
        return next(e for e in self.trials if e.trial == trial)


@dataclass
class Metrics(_Record):
    """metrics.json: one evaluation's figures and the signature that reproduces them (atr eval)."""

    LABEL = "metrics record"

    n: int
    signature: dict[str, Any] = field(default_factory=dict)  # model, adapter, template, generation, versions
    seconds: float | None = None
    samples_per_s: float | None = None
    chrf: float | None = None
    bleu: float | None = None
    bleu_tokenize: str | None = None
    signatures: dict[str, Any] = field(default_factory=dict)  # sacrebleu's
    cosine: float | None = None
    cosine_method: str | None = None
    rep_2: float | None = None
    rep_4: float | None = None
    distinct_2: float | None = None
    leak_rate: float | None = None
    repetition_rate: float | None = None
    empty_rate: float | None = None
    echo_rate: float | None = None
    eos_rate: float | None = None
    mean_chars: float | None = None
    valid_loss: float | None = None
    perplexity: float | None = None
    valid_n: int | None = None
    pref_accuracy: float | None = None  # held-out pairs: how often the chosen answer is the likelier
    pref_margin: float | None = None  # and by how much (log-probability, nats)
    pref_n: int | None = None
    reward_accuracy: float | None = None  # a reward model: how often chosen scores above rejected
    reward_margin: float | None = None
    reward_n: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def figure(self, name: str) -> Any:
        """A figure by its name in metrics.json (None when this evaluation has none)."""
        return getattr(self, name, None) if name != "extra" else None


@dataclass
class Manifest(_Record):
    """manifest.json: how a dataset folder was built, so a rebuild happens only when it must (atr data)."""

    LABEL = "dataset manifest"

    version: str
    fingerprint: str
    builder: str
    options: dict[str, Any] = field(default_factory=dict)
    inputs: list[Any] = field(default_factory=list)
    rows: dict[str, Any] = field(default_factory=dict)
    splits: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    template: dict[str, Any] = field(default_factory=dict)
    train_file: str | None = None
    text_column: str | None = None
    lint: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None
    env_file: str | None = None  # the env file that built it, relative to the folder: no other project replaces it
    extra: dict[str, Any] = field(default_factory=dict)

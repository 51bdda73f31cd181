"""The grid of a sweep: the SWEEP_* keys (or their command-line lists) -> the trials, their
names and overrides, and the sweep's identity.

The sweep id is a digest of what the trials train on (the grid, the other training parameters,
the model and the training file), so the same command finds the same sweep and resumes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autotrain_runner import layout
from autotrain_runner.config.records import Config
from autotrain_runner.errors import ConfigError
from autotrain_runner.training import command

SWEPT_FIELDS = ("epochs", "lora_r", "lora_alpha", "lr")


@dataclass(frozen=True)
class Trial:
    epochs: int
    lora_r: int
    lora_alpha: int
    lr: float | None  # None: the project's LR
    # SWEEP_EPOCHS_FROM=checkpoints: the epochs of the schedule this trial is a checkpoint of (None:
    # trained to its own epochs), and, for the trial that trains the schedule, the epochs it keeps
    schedule: int | None = None
    keep: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        epochs = f"e{self.epochs}" if self.schedule is None else f"e{self.epochs}of{self.schedule}"
        name = f"{epochs}-r{self.lora_r}-a{self.lora_alpha}"
        return name if self.lr is None else f"{name}-lr{self.lr:g}"

    @property
    def trained_by(self) -> str:
        """The trial whose run trains this one: itself, or the whole schedule it is a checkpoint of."""
        if self.schedule is None:
            return self.name
        return Trial(self.schedule, self.lora_r, self.lora_alpha, self.lr).name

    def overrides(self) -> list[str]:
        sets = [f"EPOCHS={self.schedule or self.epochs}", f"LORA_R={self.lora_r}", f"LORA_ALPHA={self.lora_alpha}"]
        if self.keep:
            sets.append(f"KEEP_EPOCHS={','.join(map(str, self.keep))}")
        return sets if self.lr is None else [*sets, f"LR={self.lr!r}"]


def cli_overrides(
    epochs: str | None,
    lora_r: str | None,
    lora_alpha: str | None,
    alpha_ratio: str | None,
    lr: str | None,
    parallel: str | None = None,
    executor: str | None = None,
    ray_address: str | None = None,
) -> list[str]:
    """Command-line lists become the SWEEP_* keys, so one validation serves the flags and the env file."""
    given = {
        "SWEEP_EPOCHS": epochs,
        "SWEEP_LORA_R": lora_r,
        "SWEEP_LORA_ALPHA": lora_alpha,
        "SWEEP_ALPHA_RATIO": alpha_ratio,
        "SWEEP_LR": lr,
        "SWEEP_PARALLEL": parallel,
        "SWEEP_EXECUTOR": executor,
        "SWEEP_RAY_ADDRESS": ray_address,
    }
    return [f"{key}={value}" for key, value in given.items() if value is not None]


def grid(config: Config) -> list[Trial]:
    """The trials, in the order they run: learning rate, then rank, then epochs."""
    if not any(config.get(k) for k in ("SWEEP_EPOCHS", "SWEEP_LORA_R", "SWEEP_LORA_ALPHA", "SWEEP_LR")):
        raise ConfigError(
            f"{config.env_file}: SWEEP_EPOCHS: nothing to sweep; pass --epochs 1,2,3 and/or --lora-r 8,16 "
            "(or set SWEEP_EPOCHS / SWEEP_LORA_R)"
        )
    epochs = unique(config.get("SWEEP_EPOCHS") or [config.get("EPOCHS")])
    ranks = unique(config.get("SWEEP_LORA_R") or [config.get("LORA_R")])
    alphas = config.get("SWEEP_LORA_ALPHA")
    if alphas is not None and "SWEEP_ALPHA_RATIO" in config.values:
        raise ConfigError(
            f"{config.source('SWEEP_ALPHA_RATIO')}: SWEEP_ALPHA_RATIO: SWEEP_LORA_ALPHA "
            f"({config.source('SWEEP_LORA_ALPHA')}) already gives the alphas; set one of the two"
        )
    if alphas is not None:
        if len(alphas) != len(ranks):
            raise ConfigError(
                f"{config.source('SWEEP_LORA_ALPHA')}: SWEEP_LORA_ALPHA: {len(alphas)} alphas for {len(ranks)} ranks "
                f"({','.join(map(str, ranks))}); give one alpha per rank, or use --alpha-ratio"
            )
        pairs = list(zip(ranks, alphas, strict=True))
    elif config.get("SWEEP_LORA_R") or "SWEEP_ALPHA_RATIO" in config.values:
        ratio = config.get("SWEEP_ALPHA_RATIO")
        pairs = [(r, max(1, round(ratio * r))) for r in ranks]
    else:  # the rank is not swept: the project's alpha stays as it is
        pairs = [(r, config.get("LORA_ALPHA")) for r in ranks]
    lrs: list[float | None] = unique(config.get("SWEEP_LR") or [None])
    if config.get("SWEEP_EPOCHS_FROM") == "checkpoints" and len(epochs) > 1:
        # each (rank, lr) trains once, to the most epochs; the others are its checkpoints
        most, fewer = max(epochs), tuple(sorted(e for e in epochs if e < max(epochs)))
        return [
            Trial(e, r, a, lr, keep=fewer) if e == most else Trial(e, r, a, lr, schedule=most)
            for lr in lrs
            for r, a in pairs
            for e in epochs
        ]
    return [Trial(e, r, a, lr) for lr in lrs for r, a in pairs for e in epochs]


def alpha_rule(config: Config) -> str:
    """How the grid's alphas were chosen, as sweep.json records it."""
    if config.get("SWEEP_LORA_ALPHA"):
        return "paired with the ranks"
    if config.get("SWEEP_LORA_R") or "SWEEP_ALPHA_RATIO" in config.values:
        return f"{config.get('SWEEP_ALPHA_RATIO'):g} x rank"
    return f"{config.get('LORA_ALPHA')} (LORA_ALPHA)"


def sweep_identity(config: Config, trials: list[Trial]) -> str:
    """What the trials train on: the grid, the other training parameters, the model, the data.
    The learning rate stays in it unless it is swept; the model is named by its spec, not the
    path it was converted to, so the same project on another machine is the same sweep."""
    swept = {"epochs", "lora_r", "lora_alpha", "model", *(("lr",) if config.get("SWEEP_LR") else ())}
    fields = {k: v for k, v in command.autotrain_fields(config).items() if k not in swept}
    payload = {"trials": sorted(t.name for t in trials), "fields": fields, "model": config.model.spec}
    payload["engine"] = command.engine_options(config)  # LOSS_ON: the same grid on another loss is another sweep
    if any(t.schedule for t in trials):  # epochs from checkpoints: another sweep than separate trainings
        payload["epochs_from"] = "checkpoints"
    if config.data_file is not None:
        payload["data"] = layout.sha256_file(config.data_file)
    return layout.config_hash(payload)


def unique(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))

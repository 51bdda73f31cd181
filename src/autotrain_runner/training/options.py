"""What the runner asks of the trainer process beyond AutoTrain's fields (`engine.json` in the run
folder, read by `engine.main`): one `OPTIONS` object that every fix in that process reads."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class Options:
    loss_on: str = "all"  # "answer": loss on the final answer and its end (completion mask); "all": the whole text
    template: dict[str, Any] | None = None  # the run's PromptTemplate, described (`PromptTemplate.describe`)
    thinking: str = "off"  # THINKING: how thinking templates are rendered
    base_dtype: str = "float32"  # the frozen base's dtype, set by `run` from the params (`precision.base_dtype`)
    dpo_loss: list[str] | None = None  # DPO_LOSS: DPOConfig.loss_type, where it is not TRL's default (sigmoid)
    liger_kernel: bool = False  # LIGER_KERNEL: TRL's use_liger_kernel (its layer kernels; TRL keeps its own LM head)
    # CHECKPOINT_EVERY, parsed (`value_checks.checkpoint_interval`): {"epoch", "steps", "minutes"}; None saves none
    checkpoint_every: dict[str, Any] | None = None
    early_stopping: int | None = None  # EARLY_STOPPING: evaluations without a better held-out loss
    resume_from: str | None = None  # `atr train --resume`: the checkpoint folder the trainer continues from
    keep_epochs: list[int] = field(default_factory=list)  # SWEEP_EPOCHS_FROM=checkpoints: adapters kept per epoch

    def update(self, values: dict[str, Any]) -> None:
        """Set the options `engine.json` names; a name that is not an option is an error, never ignored
        (a runner and an engine of different versions would otherwise disagree in silence)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"engine options: unknown {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        for name, value in values.items():
            setattr(self, name, value)

    def prompt_template(self):
        from autotrain_runner.config.templates import NAMED, PromptTemplate

        return PromptTemplate.from_record(self.template) if self.template else NAMED["tokenizer"]


OPTIONS = Options()

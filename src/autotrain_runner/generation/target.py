"""What a backend generates with: the model, the adapter on it (None for the base model), the
template that renders its prompts, and where its evaluation goes (`evaluation.targets` makes one
from a run or the base model)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autotrain_runner.config import templates
from autotrain_runner.errors import ConfigError
from autotrain_runner.rendering import DEFAULT_THINKING


@dataclass
class Target:
    """What is evaluated: the model, the adapter (None for the base), the template, a label."""

    label: str
    model: str
    adapter: Path | None
    template: templates.PromptTemplate
    out_dir: Path
    load_in_4bit: bool = False
    thinking: str = DEFAULT_THINKING  # THINKING, as the run trained with it
    trainer: str = "sft"  # the run's TRAINER: a reward model scores texts and does not generate

    def refuse_generating(self) -> None:
        """chat and serve: a reward model has no answers to give."""
        if self.trainer == "reward":
            raise ConfigError(
                f"{self.label} is a reward model (TRAINER=reward): it scores texts and does not generate; "
                "`atr eval` reports its accuracy on held-out pairs"
            )

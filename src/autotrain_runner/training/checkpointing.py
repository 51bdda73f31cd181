"""Checkpoints in the trainer process: when they are saved, what resumes from one, when a run stops early.

Used by `engine`'s fixes, inside the trainer process only:
- `save_args`: the Trainer's save strategy from CHECKPOINT_EVERY (AutoTrain saved none without a
  validation split, and one per evaluation with it, to load the "best" epoch at the end);
- `SaveClock`: the saves a strategy cannot express (every N minutes; each epoch besides every N steps);
- `EpochKeeper`: the adapter of each epoch in KEEP_EPOCHS (SWEEP_EPOCHS_FROM=checkpoints sets it),
  copied out of its checkpoint into `epoch-K/` before rotation deletes the checkpoint;
- `resuming`: the trainer classes' `train()` continues from `OPTIONS.resume_from` (AutoTrain calls
  `trainer.train()` with no argument);
- `callbacks`: AutoTrain's `SavePeftModelCallback` dropped (it wrote an empty `pytorch_model.bin` into
  each checkpoint, and the Trainer then resumed without loading the adapter), these added.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from transformers import EarlyStoppingCallback, TrainerCallback

from autotrain_runner.layout.checkpoints import EPOCH_DIR
from autotrain_runner.training.options import OPTIONS

_ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")


def save_args(args: dict[str, Any]) -> dict[str, Any]:
    """The Trainer's checkpoint arguments for CHECKPOINT_EVERY and EARLY_STOPPING."""
    every = OPTIONS.checkpoint_every
    if every is None:
        args["save_strategy"] = "no"
    elif every.get("steps"):
        args.update(save_strategy="steps", save_steps=every["steps"])
    elif every.get("epoch"):
        args["save_strategy"] = "epoch"
    else:  # minutes only: `SaveClock` decides
        args["save_strategy"] = "no"
    if OPTIONS.keep_epochs and args["save_strategy"] == "no":
        args["save_strategy"] = "epoch"  # the epochs a sweep evaluates are copied out of checkpoints
    args["save_only_model"] = False  # optimizer, scheduler, RNG: what resuming exactly needs
    # the last epoch's model is the one kept, as without early stopping: a sweep compares epochs
    args["load_best_model_at_end"] = False
    if OPTIONS.early_stopping:
        args.update(metric_for_best_model="eval_loss", greater_is_better=False)
    return args


class SaveClock(TrainerCallback):
    """Asks for a checkpoint every N minutes, and at each epoch's end when a step count sets the strategy."""

    def __init__(self, every: dict[str, Any], keep_epochs: list[int]):
        self.seconds = every["minutes"] * 60 if every.get("minutes") else None
        self.each_epoch = bool(every.get("epoch") and every.get("steps")) or bool(keep_epochs)
        self.last = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.seconds is not None and time.monotonic() - self.last >= self.seconds:
            control.should_save = True
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.each_epoch:
            control.should_save = True
        return control

    def on_save(self, args, state, control, **kwargs):
        self.last = time.monotonic()
        return control


class EpochKeeper(TrainerCallback):
    """Copies the adapter of each kept epoch out of the checkpoint just saved, into `epoch-K/`."""

    def __init__(self, epochs: list[int]):
        self.epochs = set(epochs)

    def on_save(self, args, state, control, **kwargs):
        epoch = round(state.epoch or 0)
        if not state.is_world_process_zero or epoch not in self.epochs or abs((state.epoch or 0) - epoch) > 1e-6:
            return control
        source = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        target = Path(args.output_dir) / EPOCH_DIR.format(epoch)
        staging = target.with_name(f".{target.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in _ADAPTER_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, staging / name)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)  # whole or absent: a kill leaves only the .partial folder
        return control


def callbacks(original):
    """AutoTrain's callbacks without `SavePeftModelCallback`, with the checkpoint clock and early stopping."""

    @functools.wraps(original)
    def make(config):
        from autotrain.trainers.clm.callbacks import SavePeftModelCallback

        found = [c for c in original(config) if c is not SavePeftModelCallback]
        if OPTIONS.checkpoint_every is not None or OPTIONS.keep_epochs:
            found.append(SaveClock(OPTIONS.checkpoint_every or {}, OPTIONS.keep_epochs))
        if OPTIONS.keep_epochs:
            found.append(EpochKeeper(OPTIONS.keep_epochs))
        if OPTIONS.early_stopping:
            found.append(EarlyStoppingCallback(early_stopping_patience=OPTIONS.early_stopping))
        return found

    return make


def training_args(original):
    @functools.wraps(original)
    def configure(config, logging_steps):
        return save_args(original(config, logging_steps))

    return configure


def resuming(original):
    """The trainer class, whose `train()` continues from `OPTIONS.resume_from` when it is set."""

    class Resuming(original):
        def train(self, resume_from_checkpoint=None, *args, **kwargs):
            if resume_from_checkpoint is None and OPTIONS.resume_from:
                resume_from_checkpoint = OPTIONS.resume_from
                print(f"autotrain-runner: resuming from {resume_from_checkpoint}", file=sys.stderr, flush=True)
            return super().train(resume_from_checkpoint, *args, **kwargs)

    Resuming.__name__ = Resuming.__qualname__ = original.__name__
    return Resuming

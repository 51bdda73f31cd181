"""What a training run cost: steps, seconds, tokens and peak memory, written by a `TrainerCallback`.

The engine adds `StepClock` to AutoTrain's callbacks, so every run folder gets `train_metrics.json`;
`atr bench train` adds the same callback to plain TRL, so both are measured by one clock:

- `train_s`: from the start of the first step to the end of the last (loading and data preparation
  are not in it); `step_s`: the median step after the first, which pays for kernel warm-up;
- `tokens`: the tokens of the prepared training dataset times the epochs (packing keeps every one);
- `peak_memory_gb`: `torch.cuda.max_memory_allocated()` on CUDA (what the preflight estimates), and
  the process's peak resident set on CPU (`ru_maxrss`), in GB (10^9 bytes);
- `last_loss`: the last logged training loss; `train_loss`: the Trainer's mean over the run.
"""

from __future__ import annotations

import itertools
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from autotrain_runner import layout
from autotrain_runner.training.options import OPTIONS

METRICS_JSON = layout.TRAIN_METRICS_JSON
LOSS_RECORD_JSON = "loss_tokens.json"  # written in the run folder: which tokens of the first sequences carry loss


def peak_memory_gb() -> tuple[float, str]:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 1e9, "cuda max_memory_allocated"
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib * 1024 / 1e9, "peak RSS"


# The columns a prepared preference dataset holds, by trainer: each pair runs the prompt with the
# chosen answer and the prompt with the rejected one (ORPO's and the reward model's columns hold
# the prompt already; DPO's hold it apart)
_PAIR_COLUMNS = (("chosen_input_ids", "rejected_input_ids", None), ("chosen_ids", "rejected_ids", "prompt_ids"))


def dataset_tokens(dataset: Any) -> int | None:
    """The tokens one epoch runs through the model: every sequence, or both sides of every pair."""
    try:
        columns = dataset.column_names
        if "input_ids" in columns:
            return sum(len(ids) for ids in dataset["input_ids"])
        for chosen, rejected, prompt in _PAIR_COLUMNS:
            if chosen in columns and rejected in columns:
                pairs = sum(len(a) + len(b) for a, b in zip(dataset[chosen], dataset[rejected], strict=True))
                shared = prompt in columns if prompt else False
                return pairs + (2 * sum(len(ids) for ids in dataset[prompt]) if shared else 0)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return None


class StepClock(TrainerCallback):
    def __init__(self, path: Path | str = METRICS_JSON):
        self.path = Path(path)
        self.ends: list[float] = []
        self.started: float | None = None
        self.tokens: int | None = None
        self.epochs = 0.0

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        import torch

        if torch.cuda.is_available():  # the peak of training, not of loading the checkpoint's shards
            torch.cuda.reset_peak_memory_stats()
        if train_dataloader is not None:
            self.tokens = dataset_tokens(getattr(train_dataloader, "dataset", None))
        self.epochs = float(args.num_train_epochs)

    def on_step_begin(self, args, state, control, **kwargs):
        if self.started is None:
            self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())

    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or self.started is None or not self.ends:
            return
        train_s = self.ends[-1] - self.started
        steps = [b - a for a, b in zip(self.ends, self.ends[1:], strict=False)]
        losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
        summary = next((entry for entry in reversed(state.log_history) if "train_loss" in entry), {})
        peak, how = peak_memory_gb()
        tokens = None if self.tokens is None else round(self.tokens * self.epochs)
        record = {
            "steps": state.global_step,
            "train_s": round(train_s, 3),
            "step_s": round(statistics.median(steps), 4) if steps else round(train_s, 4),
            "tokens": tokens,
            "tokens_per_s": round(tokens / train_s, 1) if tokens and train_s > 0 else None,
            "peak_memory_gb": round(peak, 3),
            "peak_memory": how,
            "last_loss": losses[-1] if losses else None,
            "train_loss": summary.get("train_loss"),
            "max_steps": state.max_steps,
            "best_metric": state.best_metric,  # with EARLY_STOPPING: the best held-out loss, and its step
            "best_step": state.best_global_step,
            "log_history": state.log_history,  # a resumed run's whole history, restored from its checkpoint
        }
        try:
            from autotrain_runner.layout import write_json_atomic

            write_json_atomic(self.path, record)
        except OSError as exc:  # a record, not the training
            print(f"autotrain-runner: could not write {self.path}: {exc}", file=sys.stderr)


class LogLines(TrainerCallback):
    """Every dict the trainer logs (losses, held-out losses, the final summary) as a JSON line with its
    step, in the run folder's `train_log.jsonl`, as it is logged: what `atr train` reads the losses from.
    Each start of training writes a `train_begin` line with the step it starts from, so a resumed run's
    steps after its checkpoint, logged twice, are read once (`layout.history.read_log_history`)."""

    def __init__(self, path: Path | str = layout.TRAIN_LOG_JSONL):
        self.path = Path(path)

    def _write(self, entry: dict[str, Any]) -> None:
        try:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
        except OSError as exc:  # a record, not the training
            print(f"autotrain-runner: could not write {self.path}: {exc}", file=sys.stderr)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self._write({"event": "train_begin", "step": state.global_step})

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self._write({**logs, "step": state.global_step})


def recording_trainer(original):
    """An SFTTrainer that writes, once its dataset is prepared, which tokens of the first packed
    sequences carry loss (`loss_tokens.json` in the run folder): what "loss on the answer" means,
    shown on the real training data rather than asserted."""

    class RecordingTrainer(original):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            try:
                write_loss_record(self.train_dataset, self.processing_class, Path(LOSS_RECORD_JSON))
            except Exception as exc:  # a record, not the training: never stop a run for it
                print(f"autotrain-runner: could not write {LOSS_RECORD_JSON}: {exc}", file=sys.stderr)

    RecordingTrainer.__name__ = RecordingTrainer.__qualname__ = original.__name__
    return RecordingTrainer


def write_loss_record(dataset, tokenizer, path: Path, sequences: int = 4) -> None:
    """Each sequence as runs of consecutive tokens that do or do not carry loss (label != -100)."""
    record = []
    for row in dataset.select(range(min(sequences, len(dataset)))):
        ids, labels = row["input_ids"], row.get("labels") or row["input_ids"]
        segments = []
        for loss, run in itertools.groupby(zip(ids, labels, strict=True), key=lambda pair: pair[1] != -100):
            tokens = [token for token, _ in run]
            text = tokenizer.decode(tokens, skip_special_tokens=False)
            segments.append({"loss": loss, "tokens": len(tokens), "text": text})
        record.append({"tokens": len(ids), "loss_tokens": sum(label != -100 for label in labels), "segments": segments})
    layout.write_json_atomic(path, {"loss_on": OPTIONS.loss_on, "sequences": record})

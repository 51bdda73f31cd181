"""Every folder and file name the commands write and read, and the paths made of them."""

from __future__ import annotations

import re
from pathlib import Path

RUNS_DIR = "runs"
RUN_JSON = "run.json"
TRAIN_LOG = "train.log"
STAGED_DATA_DIR = "data"  # inside the run folder, which is AutoTrain's working directory
PARAMS_JSON = "params.json"  # the LLMTrainingParams fields the engine gets (never the token)
TRAIN_METRICS_JSON = "train_metrics.json"  # steps, seconds, tokens/s, peak memory (training.measure)
TRAIN_LOG_JSONL = "train_log.jsonl"  # every dict the trainer logged, one JSON line each (training.measure)
EVAL_DIR = "eval"
PROMPTS_DIR = "prompts"  # inside an evaluation folder: the listed prompts' evaluation
METRICS_JSON = "metrics.json"
PREDICTIONS_JSONL = "predictions.jsonl"
EVAL_REPORT_MD = "report.md"
COMPARE_MD = "compare.md"
SWEEPS_DIR = "sweeps"
SWEEP_JSON = "sweep.json"
TRIALS_DIR = "trials"
SWEEP_BASE_DIR = "base"  # the base model's evaluation, inside the sweep folder
SWEEP_LOCK = ".lock"  # held by the `atr sweep` that works on the folder
LEADERBOARD_CSV = "leaderboard.csv"
LEADERBOARD_MD = "leaderboard.md"
OUTPUTS_MD = "outputs.md"
MANIFEST_JSON = "manifest.json"
DATASET_MARKER = ".atr-dataset"  # in every dataset folder `atr data` made
VALID_JSONL = "valid.jsonl"
TEST_JSONL = "test.jsonl"
TRAIN_EVAL_JSONL = "train-eval.jsonl"  # the training split in valid/test's shape, for `atr eval --split train`
DATASET_FILES = frozenset(
    {DATASET_MARKER, MANIFEST_JSON, "train.csv", "train.jsonl", VALID_JSONL, TEST_JSONL, TRAIN_EVAL_JSONL, "pairs.json"}
)
REPORT_HTML = "report.html"


def run_eval_dir(run_dir: Path) -> Path:
    return run_dir / EVAL_DIR


def base_eval_dir(project_dir: Path, model_spec: str) -> Path:
    return project_dir / EVAL_DIR / ("base-" + re.sub(r"[^A-Za-z0-9._-]+", "-", model_spec).strip("-"))


def sweep_dir(project_dir: Path, sweep_id: str) -> Path:
    return project_dir / SWEEPS_DIR / sweep_id


def trial_eval_dir(folder: Path, trial: str) -> Path:
    """A trial's evaluation lives in the sweep, so a later `atr eval --run` cannot replace it."""
    return folder / TRIALS_DIR / trial

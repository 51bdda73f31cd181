"""What lies on disk: every folder and file name the commands write and read, in one place.

    PROJECT_DIR/
      runs/<run-id>/         run.json (what was asked, what happened), train.log, train_log.jsonl, params.json,
                             the staged data/, AutoTrain's output folder, and eval/ (atr eval)
      eval/base-<model>/     the base model's evaluation (atr eval --base / --compare-base)
      sweeps/<sweep-id>/     sweep.json, base/, trials/<trial>/ (each trial's evaluation),
                             leaderboard.csv, leaderboard.md, outputs.md, heatmap-*.png
      report.html            atr report
    datasets/<dataset-id>/   .atr-dataset, manifest.json, the train file, valid.jsonl, test.jsonl (atr data)

An evaluation folder holds metrics.json, predictions.jsonl and report.md, and prompts/ (the same
three for the listed prompts). Records are written atomically, a run's first with
`status: running`, so a crashed runner leaves a record a later command can recognise.
"""

from __future__ import annotations

from autotrain_runner.layout.files import (
    atomic_path,
    config_hash,
    read_json,
    sha256_file,
    write_json_atomic,
    write_text_atomic,
)
from autotrain_runner.layout.format import (
    number,
)
from autotrain_runner.layout.names import (
    COMPARE_MD,
    DATASET_FILES,
    DATASET_MARKER,
    EVAL_DIR,
    EVAL_REPORT_MD,
    LEADERBOARD_CSV,
    LEADERBOARD_MD,
    MANIFEST_JSON,
    METRICS_JSON,
    OUTPUTS_MD,
    PARAMS_JSON,
    PREDICTIONS_JSONL,
    PROMPTS_DIR,
    REPORT_HTML,
    RUN_JSON,
    RUNS_DIR,
    STAGED_DATA_DIR,
    SWEEP_BASE_DIR,
    SWEEP_JSON,
    SWEEP_LOCK,
    SWEEPS_DIR,
    TEST_JSONL,
    TRAIN_EVAL_JSONL,
    TRAIN_LOG,
    TRAIN_LOG_JSONL,
    TRAIN_METRICS_JSON,
    TRIALS_DIR,
    VALID_JSONL,
    base_eval_dir,
    run_eval_dir,
    sweep_dir,
    trial_eval_dir,
)
from autotrain_runner.layout.runs import (
    GONE,
    check_run_id,
    create_run_dir,
    find_run,
    latest_succeeded,
    list_runs,
    new_run_id,
    process_alive,
    read_run,
    succeeded_run,
    write_run,
)
from autotrain_runner.layout.store import (
    read_manifest,
    read_metrics,
    read_sweep,
    read_sweeps,
    run_evaluation,
    trial_evaluation,
    write_manifest,
    write_metrics,
    write_sweep,
)

__all__ = [
    "COMPARE_MD",
    "DATASET_FILES",
    "DATASET_MARKER",
    "EVAL_DIR",
    "EVAL_REPORT_MD",
    "GONE",
    "LEADERBOARD_CSV",
    "LEADERBOARD_MD",
    "MANIFEST_JSON",
    "METRICS_JSON",
    "OUTPUTS_MD",
    "PARAMS_JSON",
    "PREDICTIONS_JSONL",
    "PROMPTS_DIR",
    "REPORT_HTML",
    "RUNS_DIR",
    "RUN_JSON",
    "STAGED_DATA_DIR",
    "SWEEPS_DIR",
    "SWEEP_BASE_DIR",
    "SWEEP_JSON",
    "SWEEP_LOCK",
    "TEST_JSONL",
    "TRAIN_EVAL_JSONL",
    "TRAIN_LOG",
    "TRAIN_LOG_JSONL",
    "TRAIN_METRICS_JSON",
    "TRIALS_DIR",
    "VALID_JSONL",
    "atomic_path",
    "base_eval_dir",
    "check_run_id",
    "config_hash",
    "create_run_dir",
    "find_run",
    "latest_succeeded",
    "list_runs",
    "new_run_id",
    "number",
    "process_alive",
    "read_json",
    "read_manifest",
    "read_metrics",
    "read_run",
    "read_sweep",
    "read_sweeps",
    "run_eval_dir",
    "run_evaluation",
    "sha256_file",
    "succeeded_run",
    "sweep_dir",
    "trial_eval_dir",
    "trial_evaluation",
    "write_json_atomic",
    "write_manifest",
    "write_metrics",
    "write_run",
    "write_sweep",
    "write_text_atomic",
]

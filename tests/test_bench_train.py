"""`atr bench train` and the GPU check's dry run: atr train and plain TRL on the same model and rows."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers import atr

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--shape", "llama-9b"], "--shape: unknown shape 'llama-9b'; one of tiny,"),
        (["--configs", "fp8"], "--configs: unknown fp8; choose from fp32, bf16, fp16, int4, liger"),
        (["--tools", "axolotl"], "--tools: 'axolotl'; choose from atr, trl, llamafactory"),
        (["--steps", "0"], "--steps: must be at least 1, not 0"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(flags, message):
    result = atr("bench", "train", *flags)
    assert result.code == 2, result.text
    assert message in result.err and "Traceback" not in result.text


@pytest.mark.slow
def test_the_gpu_check_dry_runs_on_a_cpu_and_atr_matches_plain_trl(tmp_path):
    """scripts/gpu-check.sh on the tiny shape: both tools train the same rows from the same seed, so
    their losses agree; each row has the clock's figures and the preflight's estimate."""
    out = tmp_path / "gpu-check.json"
    env = {
        **os.environ,
        "PYTHON": str(Path(os.sys.executable)),
        "GPU_CHECK_WHEELS": "none",
        "GPU_CHECK_SHAPE": "tiny",
        "GPU_CHECK_CONFIGS": "fp32,liger",
        "GPU_CHECK_STEPS": "4",
        "GPU_CHECK_BLOCK": "128",
        "GPU_CHECK_PROMPTS": "8",
        "GPU_CHECK_CPU_SHAPE": "none",
    }
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu-check.sh"), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    train = figures["train"]
    assert train["shape"] == "tiny" and train["machine"]["torch"]
    rows = {(r["tool"], r["config"]): r for r in train["rows"]}
    atr_row, trl_row = rows[("atr", "fp32")], rows[("trl", "fp32")]
    assert atr_row["status"] == trl_row["status"] == "ok", (atr_row, trl_row)
    for row in (atr_row, trl_row):
        m = row["metrics"]
        assert m["steps"] >= 4 and m["tokens"] >= 4 * 2 * 128 * 0.5
        assert m["peak_memory"] == "peak RSS" and m["peak_memory_gb"] > 0.1
        assert row["estimate_gb"] > 0
    assert atr_row["metrics"]["tokens"] == trl_row["metrics"]["tokens"]
    assert atr_row["metrics"]["last_loss"] == pytest.approx(trl_row["metrics"]["last_loss"], abs=1e-3)
    assert rows[("atr", "liger")]["status"] == "skipped: Liger's kernels need CUDA"
    assert set(train["ratios"]["fp32"]["trl"]) == {"tokens_per_s", "step_s", "peak_memory_gb"}
    assert train["generation"]["engines"]["hf"]["tokens_per_s"] > 0
    assert figures["cpu_bf16"] is None  # GPU_CHECK_CPU_SHAPE=none

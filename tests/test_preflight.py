"""The memory preflight of `atr check`, and the example projects it sizes."""

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from autotrain_runner.config.value_checks import parse_param_count
from autotrain_runner.training import memory, preflight
from autotrain_runner.training.memory import (
    GB,
    LLAMA_LINEARS,
    Training,
    estimate_inference,
    estimate_training,
    from_param_count,
    inference_fixes,
    training_fixes,
)
from helpers import atr, write, write_csv

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("style-13b", "empathy-8b", "diary-10.8b", "chat-70b")
# The estimate against one measured LoRA step on CPU (`atr bench memory`): the README states this.
TOLERANCE = 0.15

QLORA_13B = Training(  # envs/qlora-13b.env
    batch_size=2,
    block_size=1024,
    peft=True,
    quantization="int4",
    mixed_precision="fp16",
    checkpointing=True,
    lora_r=16,
    lora_dropout=0.05,
    targets=LLAMA_LINEARS,
)


def test_parameter_counts_parse_like_model_names():
    assert parse_param_count("13B") == 13e9
    assert parse_param_count("10.8b") == pytest.approx(10.8e9)
    assert parse_param_count("135M") == 135e6
    assert parse_param_count("7e9") == 7e9
    assert parse_param_count(" 70B ") == 70e9
    for bad in ("13GB", "thirteen", "", "0", "-7B", "B"):
        assert parse_param_count(bad) is None, bad


def test_model_params_names_the_standard_shapes():
    for size, name, layers in (
        (8e9, "Llama-3.1-8B", 32),
        (10.8e9, "SOLAR-10.7B", 48),
        (13e9, "Llama-2-13B", 40),
        (70e9, "Llama-3.1-70B", 80),
        (135e6, "SmolLM2-135M", 30),
    ):
        shape = from_param_count(size, "x")
        assert name in shape.source and shape.layers == layers, shape.source
    scaled = from_param_count(20e9, "MODEL_PARAMS=20B")
    assert "Llama-2-13B shape, 62 layers instead of 40" in scaled.source
    assert abs(scaled.params - 20e9) / 20e9 < 0.02


def test_70b_in_16_bit_does_not_fit_one_80gb_card():
    shape = from_param_count(70e9, "MODEL_PARAMS=70B")
    serve = estimate_inference(shape, batch=16, tokens=1024, int4=False)
    assert 138 * GB < serve.parts["weights"][0] < 145 * GB  # ~140 GB for the weights alone
    assert serve.total > 80 * GB
    fixes = inference_fixes(shape, 16, 1024, int4=False, capacity=80 * GB)
    assert fixes[0].startswith("int4 weights") and "-> 53.0 GB" in fixes[0]
    assert any("--tensor-parallel-size 2" in f for f in fixes)
    # training it: LoRA on a bf16 base (the engine loads it in the run's 16-bit type) vs QLoRA
    lora = replace(QLORA_13B, quantization="none", mixed_precision="bf16", batch_size=1)
    assert 138 * GB < estimate_training(shape, lora).parts["weights"][0] < 145 * GB
    assert "bf16 weight copies" not in estimate_training(shape, lora).parts  # nothing to autocast
    fp32 = replace(lora, mixed_precision="none")
    assert estimate_training(shape, fp32).parts["weights"][0] > 280 * GB
    fixes = training_fixes(shape, lora, gradient_accumulation=8, capacity=80 * GB)
    assert fixes[0].startswith("QUANTIZATION=int4 -> ")
    assert "GPUs with DISTRIBUTED_BACKEND=deepspeed" in fixes[-1]
    assert estimate_training(shape, replace(lora, quantization="int4")).total < 80 * GB


def test_13b_qlora_fits_a_24gb_card_only_with_checkpointing():
    shape = from_param_count(13e9, "MODEL_PARAMS=13B")
    train = estimate_training(shape, QLORA_13B)
    assert 10 * GB < train.total < 24 * GB
    assert 7 * GB < train.parts["weights"][0] < 9 * GB  # 0.5625 B a linear weight, fp32 embeddings
    no_checkpointing = replace(QLORA_13B, checkpointing=False)
    assert estimate_training(shape, no_checkpointing).total > 24 * GB
    fixes = training_fixes(shape, no_checkpointing, gradient_accumulation=4, capacity=24 * GB)
    assert fixes == [f"DISABLE_GRADIENT_CHECKPOINTING=false -> {memory.gb(train.total)} GB"]


def test_8b_batch_8_fits_24gb_because_trl_never_materialises_the_logits():
    shape = from_param_count(8e9, "MODEL_PARAMS=8B")
    empathy = replace(QLORA_13B, batch_size=8, mixed_precision="bf16")
    train = estimate_training(shape, empathy)
    assert 10 * GB < train.total < 24 * GB
    # a plain forward with labels would keep 128256 logits a token, 14 bytes each (bf16, its fp32
    # upcast, the shifted copy, log_softmax): that alone is over 14 GB at 8 x 1024 tokens
    whole = estimate_training(shape, replace(empathy, fused_lm_head=False))
    assert whole.parts["activations"][0] > 128256 * 14 * 8 * 1024 and whole.total > 24 * GB
    fixes = training_fixes(shape, replace(empathy, fused_lm_head=False), gradient_accumulation=1, capacity=24 * GB)
    assert fixes[-1].startswith("BATCH_SIZE=1 GRADIENT_ACCUMULATION=8 -> ")


# Peaks measured on an NVIDIA H200 on 2026-12-04 by scripts/gpu-check.sh (`atr bench train --shape
# llama-3.1-8b`, batch 2 x block 1024, LoRA r16 on every linear layer, checkpointing), in GB:
# torch.cuda.max_memory_allocated of atr train and of plain TRL (the same to 0.01 GB).
H200_PEAKS = {("none", "bf16"): 18.026, ("int4", "bf16"): 7.594}


@pytest.mark.parametrize(("quantization", "precision"), list(H200_PEAKS))
def test_the_8b_estimate_covers_the_peak_measured_on_an_h200(quantization, precision):
    from autotrain_runner.bench_train import SHAPES

    sizes = SHAPES["llama-3.1-8b"].sizes
    shape = memory.from_config_json({**sizes, "model_type": "llama"}, "llama-3.1-8b")
    assert isinstance(shape, memory.Architecture), shape
    settings = replace(QLORA_13B, quantization=quantization, mixed_precision=precision)
    estimate = estimate_training(shape, settings).total / GB
    ratio = estimate / H200_PEAKS[(quantization, precision)]
    assert 1.0 <= ratio <= 1.25, (estimate, ratio)


def test_10_8b_qlora_batch_1_fits_24gb():
    shape = from_param_count(10.8e9, "MODEL_PARAMS=10.8B")
    train = estimate_training(shape, replace(QLORA_13B, batch_size=1, mixed_precision="bf16"))
    assert 6 * GB < train.total < 16 * GB


def test_target_modules_decide_the_lora_size():
    shape = from_param_count(13e9, "x")
    all_linear = memory.lora_params(shape, QLORA_13B)
    assert all_linear == 40 * 16 * (4 * (5120 + 5120) + 3 * (5120 + 13824))
    assert preflight.resolve_targets("q_proj,v_proj") == ("q_proj", "v_proj")
    assert preflight.resolve_targets("all-linear") == LLAMA_LINEARS
    assert preflight.resolve_targets("") == preflight.PEFT_DEFAULT_TARGETS  # PEFT's own default
    qv = replace(QLORA_13B, targets=("q_proj", "v_proj"))
    assert memory.lora_params(shape, qv) == 40 * 16 * 2 * (5120 + 5120)
    assert estimate_training(shape, qv).total < estimate_training(shape, QLORA_13B).total


def _project(tmp_path: Path, env: str) -> Path:
    write(tmp_path / "project.env", env)
    write_csv(tmp_path / "train.csv", ["a"])
    return tmp_path


def test_check_reads_config_json_of_a_model_folder(tmp_path, tiny_model):
    p = _project(tmp_path, f"MODEL={tiny_model}\nDATA_FILE=train.csv\nPEFT=true\nQUANTIZATION=none\nMODEL_PARAMS=7B\n")
    result = atr("check", str(p))
    assert result.code == 0, result.text
    assert (
        "memory:   model: 2 layers, hidden 32, 4/2 heads, vocab 400, 44.2K parameters; from config.json" in result.out
    )
    assert "MODEL_PARAMS=7B ignored: config.json gives 44.2K" in result.out
    assert "memory:   train: " in result.out and "memory:   inference: " in result.out
    assert "GPU: none here; set GPU_MEMORY_GB" in result.out


def test_check_reads_config_json_from_the_hub_cache(tmp_path, tiny_model):
    cache = tmp_path / "hub"
    snapshot = cache / "models--some-org--tiny" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    shutil.copy(tiny_model / "config.json", snapshot / "config.json")
    write(cache / "models--some-org--tiny" / "refs" / "main", "a" * 40)
    p = _project(tmp_path / "p", "MODEL=some-org/tiny\nDATA_FILE=train.csv\n")
    result = atr("check", str(p), env={"HF_HUB_CACHE": str(cache)})
    assert result.code == 0, result.text
    assert "memory:   model: 2 layers, hidden 32" in result.out
    assert f"from config.json ({snapshot / 'config.json'})" in result.out


def test_model_params_fallback_and_unknown(tmp_path):
    p = _project(tmp_path, "MODEL=some-org/not-cached\nDATA_FILE=train.csv\n")
    result = atr("check", str(p))
    assert result.code == 0, result.text
    assert (
        "memory:   unknown: some-org/not-cached is not in the local Hugging Face cache; "
        "set MODEL_PARAMS (like 13B) for an estimate"
    ) in result.out
    # (no checkpoints: whether a 13B full fine-tune's would fit depends on this machine's free disk)
    no_disk = ("--set", "CHECKPOINT_EVERY=no")
    result = atr("check", str(p), "--set", "MODEL_PARAMS=13B", "--set", "GPU_MEMORY_GB=24", *no_disk)
    assert result.code == 0, result.text
    assert "from MODEL_PARAMS=13B (the Llama-2-13B shape)" in result.out
    # AutoTrain's defaults: PEFT off, so a full fine-tune in fp32; the fix names PEFT and int4
    assert "memory:   GPU: 24.0 GB (GPU_MEMORY_GB, --set): train does not fit" in result.out
    assert "warning: --set: GPU_MEMORY_GB: train needs about " in result.out
    assert "PEFT=true QUANTIZATION=int4 -> " in result.out
    # and 16-bit weights (26 GB) with a 16 x 1024 KV cache do not fit for inference either
    assert "warning: --set: GPU_MEMORY_GB: inference needs about 42.5 GB" in result.out
    assert result.out.rstrip().endswith("ok: no errors, 2 warning(s)")


def test_bad_preflight_keys_are_one_line_errors(tmp_path):
    p = _project(tmp_path, "MODEL=org/m\nDATA_FILE=train.csv\nMODEL_PARAMS=13GB\nGPU_MEMORY_GB=big\n")
    result = atr("check", str(p))
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 2, result.err
    assert "project.env:3: MODEL_PARAMS: must be a parameter count like 13B" in lines[0]
    assert "project.env:4: GPU_MEMORY_GB: 'big' is not a number" in lines[1]
    result = atr("check", str(p), "--set", "MODEL_PARAMS=13B", "--set", "GPU_MEMORY_GB=0")
    assert result.code == 2 and "--set: GPU_MEMORY_GB: must be in (0, 1e+06], got 0" in result.err


def test_check_never_imports_torch(tmp_path, tiny_model):
    p = _project(tmp_path, f"MODEL={tiny_model}\nDATA_FILE=train.csv\nGPU_MEMORY_GB=24\n")
    code = (
        "import sys; from autotrain_runner.cli.main import main; code = main(['check', sys.argv[1]]); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'peft')); "
        "print('HEAVY', heavy); sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout and "memory:   GPU: 24.0 GB" in done.stdout


def test_tiny_model_estimate_matches_its_measured_peak(tiny_model):
    """The formula against one measured LoRA step on CPU, in three shapes of batch and checkpointing."""
    from autotrain_runner.bench import bench_memory

    for batch, block, checkpointing in ((2, 128, False), (2, 128, True), (8, 256, False)):
        figures = bench_memory(str(tiny_model), batch, block, 16, checkpointing)
        ratio = figures["estimate_over_measured"]
        assert 1 - TOLERANCE <= ratio <= 1 + TOLERANCE, figures
    assert figures["measured_mb"]["step_peak"] > 20  # activations dominate at 8 x 256: the test is not trivial


def test_bench_memory_prints_json(tiny_model):
    result = atr("bench", "memory", "--model", str(tiny_model), "--batch-size", "2", "--block-size", "64")
    assert result.code == 0, result.text
    figures = json.loads(result.out)
    assert figures["block_size"] == 64 and figures["gradient_checkpointing"] is False
    assert set(figures["measured_mb"]) >= {"parameters", "adamw_state", "step_peak", "total"}
    # the estimate printed is the preflight formula's for this model at --batch-size 2 --block-size 64
    shape = memory.from_config_json(json.loads((tiny_model / "config.json").read_text()), "config.json")
    assert isinstance(shape, memory.Architecture), shape
    lora_on_cpu = replace(
        QLORA_13B,
        batch_size=2,
        block_size=64,
        quantization="none",
        mixed_precision="none",
        checkpointing=False,
        fused_lm_head=False,
    )
    expected = memory.estimate_training(shape, lora_on_cpu, device="cpu")
    assert figures["parameters"] == shape.params
    assert figures["estimate_mb"]["total"] == pytest.approx(expected.total / 1e6, abs=1e-3)
    assert figures["estimate_mb"]["activations"] == pytest.approx(expected.parts["activations"][0] / 1e6, abs=1e-3)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_project_passes_check_without_weights(name):
    result = atr("check", str(ROOT / "projects" / name))
    assert result.code == 0, result.text
    assert "Hub id; not downloaded by check, unverified offline" in result.out
    assert "memory:   model: " in result.out and "from MODEL_PARAMS=" in result.out
    assert "ok: no errors" in result.out


def test_example_projects_size_as_documented():
    out = {name: atr("check", str(ROOT / "projects" / name)).out for name in EXAMPLES}
    for name in ("style-13b", "empathy-8b", "diary-10.8b"):
        assert "train fits" in out[name] and "inference fits" in out[name], out[name]
    chat = out["chat-70b"]
    assert "weights 141 (16-bit)" in chat
    assert "GPU: 80.0 GB (GPU_MEMORY_GB, envs/gpu-80gb.env:2): train does not fit, inference does not fit" in chat
    assert "int4 weights (an AWQ or GPTQ build on vLLM" in chat and "vLLM --tensor-parallel-size 2" in chat
    assert "PEFT=true QUANTIZATION=int4 -> " in chat


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_project_builds_its_dataset(tmp_path, name):
    """In a copy, so that nothing is written into the repository."""
    shutil.copytree(ROOT / "envs", tmp_path / "envs")
    project = tmp_path / "projects" / name
    shutil.copytree(ROOT / "projects" / name, project, ignore=shutil.ignore_patterns("runs", "eval"))
    result = atr("data", str(project))
    assert result.code == 0, result.text
    manifest = json.loads((tmp_path / "datasets" / name / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["rows"]["kept"] >= 5 and manifest["rows"]["dropped"] == {}
    assert manifest["splits"]["test"] >= 1
    assert atr("check", str(project)).code == 0

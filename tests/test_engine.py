"""The fixes that let AutoTrain 0.8.36's trainer run on today's stack, one test each.

Each test shows AutoTrain's own function failing (or misbehaving) on the pinned stack, then the
same call through the fix working. Nothing is patched globally: the fix wraps the original here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autotrain_runner.training import engine


def _params(tmp_path, **fields):
    from autotrain.trainers.clm.params import LLMTrainingParams

    defaults = {"model": "m", "project_name": "p", "data_path": str(tmp_path), "train_split": "train"}
    return LLMTrainingParams(**{**defaults, **fields})


def _fix(name: str) -> engine.Fix:
    return next(f for f in engine.FIXES if f.name == name)


def test_every_fix_has_a_name_a_reason_and_a_real_target():
    import importlib

    assert len(set(engine.FIX_NAMES)) == len(engine.FIXES)
    dropped_by_trl = {"trl:ORPOConfig", "trl:ORPOTrainer"}  # TRL 1.x moved them: the fix puts them back
    for fix in engine.FIXES:
        assert fix.reason and "\n" not in fix.reason
        for target in fix.targets:
            module, attribute = target.split(":")
            present = hasattr(importlib.import_module(module), attribute)
            assert present != (target in dropped_by_trl), target
    assert engine.describe().startswith("autotrain-advanced 0.8.36 + fixes [from-pretrained, ")


def test_from_pretrained_takes_flash_attention_flag_and_loads_fp32(tiny_model, tmp_path):
    """transformers 4.53 removed use_flash_attention_2; transformers 5 loads the checkpoint's dtype."""
    import torch
    from transformers import AutoModelForCausalLM

    bf16 = tmp_path / "bf16"
    AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.bfloat16).save_pretrained(bf16)
    with pytest.raises(TypeError, match="use_flash_attention_2"):
        AutoModelForCausalLM.from_pretrained(bf16, use_flash_attention_2=False)
    assert AutoModelForCausalLM.from_pretrained(bf16).dtype == torch.bfloat16

    fixed = _fix("from-pretrained").wrap(AutoModelForCausalLM)
    assert fixed.from_pretrained(bf16, use_flash_attention_2=False).dtype == torch.float32
    assert fixed.from_pretrained(bf16, dtype=torch.bfloat16).dtype == torch.bfloat16  # an explicit dtype wins
    saved = engine.OPTIONS.base_dtype
    try:  # a LoRA run under bf16 on CUDA: the frozen base in bf16, from a checkpoint saved in fp32
        engine.OPTIONS.base_dtype = "bfloat16"
        assert fixed.from_pretrained(tiny_model).dtype == torch.bfloat16
    finally:
        engine.OPTIONS.base_dtype = saved


def test_the_base_dtype_follows_mixed_precision_for_lora_only():
    from autotrain_runner.training.precision import base_dtype, describe

    assert base_dtype("bf16", peft=True, cuda=True, cpu_bf16=False) == "bfloat16"
    assert base_dtype("fp16", peft=True, cuda=True, cpu_bf16=False) == "float16"
    assert base_dtype("none", peft=True, cuda=True, cpu_bf16=False) == "float32"
    assert base_dtype("bf16", peft=False, cuda=True, cpu_bf16=False) == "float32"  # full fine-tuning: fp32 masters
    # no CUDA: bf16 only where the CPU multiplies it natively; fp16 never
    assert base_dtype("bf16", peft=True, cuda=False, cpu_bf16=True) == "bfloat16"
    assert base_dtype("bf16", peft=True, cuda=False, cpu_bf16=False) == "float32"
    assert base_dtype("fp16", peft=True, cuda=False, cpu_bf16=True) == "float32"
    assert describe("bf16", True, "none", cuda=True, cpu_bf16=False) == "bf16 base, LoRA fp32, autocast bf16"
    assert describe("bf16", True, "int4", cuda=True, cpu_bf16=False) == (
        "int4 base, bf16 compute and other layers, LoRA bf16 (TRL's QLoRA rule), autocast bf16"
    )
    assert describe("bf16", True, "none", cuda=False, cpu_bf16=False).endswith(
        "(no CUDA; bf16 is emulated on this CPU)"
    )


def test_qlora_computes_in_the_runs_dtype_not_autotrains_fp16(tmp_path):
    """AutoTrain's get_model builds BitsAndBytesConfig(bnb_4bit_compute_dtype=torch.float16) always."""
    import torch
    from autotrain.trainers.clm import utils
    from transformers import BitsAndBytesConfig

    asked = dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float16)
    assert BitsAndBytesConfig(**asked).bnb_4bit_compute_dtype == torch.float16  # what AutoTrain asks for
    assert "bnb_4bit_compute_dtype=torch.float16" in Path(utils.__file__).read_text()
    fixed = _fix("qlora-dtype").wrap(BitsAndBytesConfig)
    saved = engine.OPTIONS.base_dtype
    try:
        for dtype in ("bfloat16", "float32"):
            engine.OPTIONS.base_dtype = dtype
            assert fixed(**asked).bnb_4bit_compute_dtype == getattr(torch, dtype)
        assert fixed(load_in_8bit=True).load_in_8bit  # int8 is left as asked
    finally:
        engine.OPTIONS.base_dtype = saved


def test_max_seq_length_becomes_max_length(tmp_path):
    """trl 0.20 removed SFTConfig(max_seq_length=...)."""
    from trl import SFTConfig

    with pytest.raises(TypeError, match="max_seq_length"):
        SFTConfig(output_dir=str(tmp_path), max_seq_length=64, bf16=False)
    fixed = _fix("sft-config").wrap(SFTConfig)(output_dir=str(tmp_path), max_seq_length=64, bf16=False, packing=True)
    assert (fixed.max_length, fixed.packing_strategy) == (64, "bfd_split")


def test_packing_keeps_every_token_of_a_sample_longer_than_the_block(tmp_path, tiny_model):
    """trl 0.19 packs best-fit and cuts each sample at max_length: a long answer lost its end and EOS."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    texts = ["짧은 답변입니다.", "오늘 하루도 수고 많으셨어요. 푹 쉬세요. " * 4]
    lengths = [len(tokenizer(t)["input_ids"]) + 1 for t in texts]  # each sample gets its EOS
    assert lengths[1] > 32 > lengths[0]

    def packed(config):
        trainer = SFTTrainer(
            model=AutoModelForCausalLM.from_pretrained(tiny_model),
            args=config,
            train_dataset=Dataset.from_dict({"text": texts}),
            processing_class=tokenizer,
        )
        return [token for row in trainer.train_dataset["input_ids"] for token in row]

    args = {"output_dir": str(tmp_path), "packing": True, "bf16": False, "report_to": []}
    assert len(packed(SFTConfig(**args, max_length=32))) < sum(lengths), "bfd drops the tail of the long sample"
    kept = packed(_fix("sft-config").wrap(SFTConfig)(**args, max_seq_length=32))
    assert len(kept) == sum(lengths) and kept.count(tokenizer.eos_token_id) == 2


@pytest.mark.parametrize("precision", ["none", "fp16", "bf16"])
def test_training_args_warmup_ratio_and_precision_as_asked(tmp_path, monkeypatch, precision):
    """transformers 5.15 removed warmup_ratio; trl 0.19 turns bf16 on unless fp16 is set."""
    from autotrain.trainers.clm.utils import configure_training_args
    from trl import SFTConfig

    monkeypatch.chdir(tmp_path)  # AutoTrain's output_dir is the project name, relative
    config = _params(tmp_path, mixed_precision=precision, warmup_ratio=0.1, project_name="out")
    original = configure_training_args(config, 5)
    with pytest.raises(TypeError, match="warmup_ratio"):
        SFTConfig(**original)
    fixed = _fix("training-args").wrap(configure_training_args)(config, 5)
    args = SFTConfig(**fixed)
    assert args.warmup_steps == pytest.approx(0.1)
    # no CUDA here: whatever MIXED_PRECISION says, the CPU trains in fp32 (a note in `atr check`)
    assert (args.bf16, args.fp16) == (False, False)
    del original["warmup_ratio"]
    if precision != "fp16":  # unfixed, TRL turns bf16 on: refused on a CPU, silently bf16 on a GPU
        with pytest.raises(ValueError, match="bf16"):
            SFTConfig(**original)


def test_render_tokenizes_train_and_validation_splits_with_the_renderer(tmp_path, tiny_model):
    """AutoTrain's chat rendering crashes on a validation split; fixed, every sft sample is the
    renderer's ids (the prompt as generation encodes it), with a completion mask from the answer."""
    from autotrain.trainers.clm.utils import get_tokenizer, process_data_with_chat_template
    from datasets import Dataset

    from autotrain_runner.config.templates import NAMED
    from autotrain_runner.rendering import Renderer

    rows = [[{"role": "user", "content": f"질문 {i}"}, {"role": "assistant", "content": f"답 {i}"}] for i in range(4)]
    config = _params(
        tmp_path,
        model=str(tiny_model),
        text_column="messages",
        chat_template="tokenizer",
        valid_split="v",
        trainer="sft",
    )
    tokenizer = get_tokenizer(config)

    def data():
        return Dataset.from_dict({"messages": [str(r) for r in rows]}), Dataset.from_dict({"messages": rows[:2]})

    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'map'"):
        process_data_with_chat_template(config, tokenizer, *data())
    engine.OPTIONS.loss_on = "answer"
    try:
        train, valid = _fix("render").wrap(process_data_with_chat_template)(config, tokenizer, *data())
    finally:
        engine.OPTIONS.loss_on = "all"
    assert train.column_names == valid.column_names == ["input_ids", "completion_mask"]
    renderer = Renderer(tokenizer, NAMED["tokenizer"])
    expected = renderer.sample(rows[1])
    assert valid["input_ids"][1] == expected.ids
    assert valid["completion_mask"][1] == [0] * expected.answer_start + [1] * (
        len(expected.ids) - expected.answer_start
    )
    # the prompt part is exactly what generation encodes; the answer ends at the template's EOS
    assert expected.ids[: expected.answer_start] == renderer.encode(renderer.prompt_text(rows[1][:-1]))
    assert tokenizer.decode(expected.ids[expected.answer_start :]) == "답 1</s>"
    assert train["input_ids"][0] == renderer.sample(rows[0]).ids


def test_valid_callback_that_expects_a_bin_file_is_dropped(tmp_path):
    """LoadBestPeftModelCallback expects adapter_model.bin; PEFT writes adapter_model.safetensors."""
    from autotrain.trainers.clm.callbacks import LoadBestPeftModelCallback
    from autotrain.trainers.clm.utils import get_callbacks

    config = _params(tmp_path, peft=True, valid_split="validation")
    assert LoadBestPeftModelCallback in get_callbacks(config)
    fixed = _fix("valid-callback").wrap(get_callbacks)(config)
    assert LoadBestPeftModelCallback not in fixed and len(fixed) == len(get_callbacks(config)) - 1


def test_launch_is_one_process_without_several_gpus(tmp_path):
    params = tmp_path / "params.json"
    params.write_text(json.dumps({}))
    fields = {"gradient_accumulation": 4, "mixed_precision": "bf16"}
    assert engine.launch_argv(params, 1, fields)[1:] == ["-m", "autotrain_runner.training.engine", str(params)]
    multi = engine.launch_argv(params, 2, fields)
    assert multi[1:7] == ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "1", "--num_processes"]
    assert multi[-5:] == ["--mixed_precision", "bf16", "-m", "autotrain_runner.training.engine", str(params)]
    deepspeed = engine.launch_argv(params, 4, {**fields, "distributed_backend": "deepspeed"})
    assert "--use_deepspeed" in deepspeed and deepspeed[deepspeed.index("--gradient_accumulation_steps") + 1] == "4"


def test_bitsandbytes_hub_kernel_notice_is_not_printed(caplog):
    """bitsandbytes warns at import, on AVX-512 BF16 CPUs, that it cannot fetch a kernel from the Hub,
    even for runs that do not quantize. The message as the installed bitsandbytes writes it is dropped."""
    import logging
    import re
    from pathlib import Path

    import bitsandbytes

    import autotrain_runner  # noqa: F401 - installs the filter

    source = (Path(bitsandbytes.__file__).parent / "backends" / "cpu" / "ops.py").read_text()
    message = re.search(r'"(Failed to load CPU gemm_4bit_forward[^"]*)"', source)[1]
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    with caplog.at_level(logging.WARNING):
        logger.warning(message, "No module named 'kernels'")
        logger.warning("another bitsandbytes warning")
    assert caplog.messages == ["another bitsandbytes warning"]


def _pinned(requirements: str, distribution: str) -> str:
    root = Path(__file__).resolve().parent.parent
    for line in (root / "requirements" / requirements).read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{distribution}=="):
            return line.split("==", 1)[1].split()[0]
    raise AssertionError(f"{distribution} is not pinned in requirements/{requirements}")


def test_the_fixes_are_applied_only_to_the_autotrain_release_they_are_written_for(monkeypatch):
    from importlib import metadata

    assert engine.AUTOTRAIN == _pinned("lock.txt", "autotrain-advanced") == metadata.version("autotrain-advanced")
    monkeypatch.setattr(engine, "_applied", False)
    monkeypatch.setattr(engine, "AUTOTRAIN", "0.8.35")  # as if a different release were installed
    with pytest.raises(RuntimeError, match=r"autotrain-advanced 0\.8\.36 is installed; .* written for 0\.8\.35"):
        engine.apply_fixes()
    assert engine._applied is False


def test_engine_options_refuse_a_name_they_do_not_know():
    from autotrain_runner.training.options import Options

    options = Options()
    options.update({"loss_on": "answer", "early_stopping": 2})
    assert (options.loss_on, options.early_stopping) == ("answer", 2)
    with pytest.raises(ValueError, match="engine options: unknown loss_onn "):
        options.update({"loss_onn": "answer"})
    assert options.loss_on == "answer"


def test_the_vllm_cpu_fix_names_the_vllm_it_replaces_ops_of(monkeypatch, capsys):
    import types

    from autotrain_runner import versions
    from autotrain_runner.generation import vllm_fix

    assert vllm_fix.FOR_VLLM == _pinned("vllm-cpu.txt", "vllm-cpu") == _pinned("vllm-cuda.txt", "vllm")
    ops = types.ModuleType(vllm_fix.FIXED)
    ops.bgmv_shrink = original = object()
    monkeypatch.setattr(versions, "vllm", lambda: "0.33.0")
    vllm_fix._patch(ops)
    assert ops.bgmv_shrink is original  # another vLLM's ops are left as they are, and that is said
    assert "not replaced: the fix is written for vLLM 0.32.0, this is 0.33.0" in capsys.readouterr().err
    monkeypatch.setattr(versions, "vllm", lambda: vllm_fix.FOR_VLLM)
    vllm_fix._patch(ops)
    assert ops.bgmv_shrink is vllm_fix.bgmv_shrink

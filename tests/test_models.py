"""The bundled SmolLM2 GGUF becomes a model folder AutoTrain can train, with the right special tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autotrain_runner import gguf
from autotrain_runner.config import models

BUNDLED = "bundled:smollm2-135m-instruct"


@pytest.fixture(scope="module")
def conversion(tmp_path_factory) -> tuple[Path, list[str]]:
    """The bundled model converted in the session's cache, and what a first conversion logs.

    The cache is the one conftest points ATR_CACHE_DIR at for every test, so the real conversion
    (tens of seconds) runs once per session, by whichever test asks first. When that was another
    one, the model is converted once more into a cache of this module's own, so that what a first
    conversion says is checked whatever the order of the tests.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("ATR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "atr-cache"))
        ref = models.resolve(BUNDLED, tmp_path_factory.getbasetemp())
        messages: list[str] = []
        folder = gguf.ensure_converted(ref, log=messages.append)
        if not messages:  # converted before: see a first conversion in a cache of its own
            patch.setenv("ATR_CACHE_DIR", str(tmp_path_factory.mktemp("own-cache")))
            assert gguf.ensure_converted(models.resolve(BUNDLED, tmp_path_factory.getbasetemp()), log=messages.append)
    assert folder is not None
    return folder, messages


def test_bundled_gguf_converts_once_with_the_gguf_special_tokens(conversion, tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    folder, messages = conversion
    ref = models.resolve(BUNDLED, tmp_path)
    assert folder == models.converted_folder(ref)
    assert messages and "converting" in messages[0], "converted, and said so"
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".converting-")], "no temporary folder left"

    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = AutoConfig.from_pretrained(folder)
    # The GGUF metadata says BOS 1, EOS 2, PAD 2; transformers alone once made EOS <|im_start|>.
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token) == (
        "<|im_end|>",
        "<|im_end|>",
        "<|im_start|>",
    )
    assert (config.eos_token_id, config.bos_token_id, config.pad_token_id) == (2, 1, 2)
    generation = json.loads((folder / "generation_config.json").read_text())
    assert (generation["eos_token_id"], generation["bos_token_id"], generation["pad_token_id"]) == (2, 1, 2)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "안녕"}], tokenize=False)
    assert "<|im_start|>user\n안녕<|im_end|>" in prompt

    again: list[str] = []
    assert gguf.ensure_converted(ref, log=again.append) == folder and again == [], "reused, not converted again"


def test_converted_folder_is_a_plain_model_that_answers(conversion):
    """Dense safetensors with no GGUF quantization left in the config, and weights that still work."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, _ = conversion
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert (folder / "model.safetensors").is_file()

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert getattr(model, "hf_quantizer", None) is None
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    answer = tokenizer.decode(output[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


def test_the_conversion_version_is_part_of_the_cache_key(tmp_path, monkeypatch):
    """Folders converted by an older conversion (transformers' tokenizer) are not reused."""
    ref = models.resolve(BUNDLED, tmp_path)
    current = models.converted_folder(ref)
    monkeypatch.setattr(models, "CONVERSION_VERSION", models.CONVERSION_VERSION - 1)
    older = models.converted_folder(ref)
    assert older != current and older.parent == current.parent
    assert older.name.startswith("SmolLM2-135M-Instruct.Q4_1-")

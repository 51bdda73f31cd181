"""The bundled SmolLM2 GGUF becomes a model folder AutoTrain can train, with the right special tokens."""

from autotrain_runner import models


def test_bundled_gguf_converts_once_with_the_gguf_special_tokens(tmp_path, monkeypatch):
    from transformers import AutoConfig, AutoTokenizer

    monkeypatch.setenv("ATR_CACHE_DIR", str(tmp_path / "cache"))
    ref = models.resolve("bundled:smollm2-135m-instruct", tmp_path)
    messages = []
    folder = models.ensure_converted(ref, log=messages.append)
    assert folder == models.converted_folder(ref) and messages, "converted, and said so"
    assert list(folder.parent.iterdir()) == [folder], "no temporary folder left behind"

    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = AutoConfig.from_pretrained(folder)
    # The GGUF metadata says BOS 1, EOS 2, PAD 2; transformers alone made EOS <|im_start|>.
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token) == (
        "<|im_end|>",
        "<|im_end|>",
        "<|im_start|>",
    )
    assert (config.eos_token_id, config.bos_token_id) == (2, 1)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "안녕"}], tokenize=False)
    assert "<|im_start|>user\n안녕<|im_end|>" in prompt

    again = []
    assert models.ensure_converted(ref, log=again.append) == folder and again == [], "reused, not converted again"

"""The tokenizer of a converted GGUF is the model's own byte-level BPE, rebuilt from the GGUF metadata.

It must give text back exactly (Korean included), add no BOS/EOS of its own, render the chat template
with the newline after each role name, and give the ids llama.cpp's byte-level BPE gives.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from autotrain_runner import gguf
from autotrain_runner.config import models

BUNDLED = "bundled:smollm2-135m-instruct"
TEXTS = [
    "안녕하세요, 오늘 날씨가 좋네요.",
    "The quick brown fox.\n  Two spaces and a newline.",
    "def f(x):\n\treturn x * 2024  # 12 tabs\t\n\n",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """The bundled model converted once per session, in the cache conftest sets for every test."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("ATR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "atr-cache"))
        converted = gguf.ensure_converted(models.resolve(BUNDLED, tmp_path_factory.getbasetemp()), log=print)
    assert converted is not None
    return converted


@pytest.fixture(scope="module")
def tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def vocab() -> gguf.GgufVocab:
    found = gguf.read_gguf_vocab(models.resolve(BUNDLED, Path.cwd()).path)
    assert found is not None
    return found


@pytest.mark.parametrize("text", TEXTS)
def test_text_round_trips_exactly_with_no_bos_or_eos(tokenizer, text):
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert tokenizer.bos_token_id not in ids and tokenizer.eos_token_id not in ids
    assert tokenizer(text)["input_ids"] == ids, "calling the tokenizer adds nothing either"
    # No raw byte-level pieces (Ġ for a space, Ċ for a newline) leak into decoded text.
    assert "Ġ" not in tokenizer.decode(ids) and "Ċ" not in tokenizer.decode(ids)


def test_chat_template_renders_and_round_trips(tokenizer):
    messages = [
        {"role": "system", "content": "당신은 친절한 도우미입니다."},
        {"role": "user", "content": "Hello there!\nHow are you?"},
    ]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == (
        "<|im_start|>system\n당신은 친절한 도우미입니다.<|im_end|>\n"
        "<|im_start|>user\nHello there!\nHow are you?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    ids = tokenizer.encode(prompt)
    assert tokenizer.decode(ids) == prompt
    pieces = tokenizer.convert_ids_to_tokens(ids)
    assert pieces[:3] == ["<|im_start|>", "system", "Ċ"], "one <|im_start|>, and the newline after the role"
    starts = [i for i, piece in enumerate(pieces) if piece == "<|im_start|>"]
    assert pieces[starts[1] : starts[1] + 3] == ["<|im_start|>", "user", "Ċ"]
    # This vocabulary has no single "assistant" token: the role is "ass" + "istant", then the newline.
    assert pieces[starts[2] :] == ["<|im_start|>", "ass", "istant", "Ċ"]
    assert tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"] == ids


def test_eos_is_im_end_in_the_tokenizer_and_the_config(folder, tokenizer):
    from transformers import AutoConfig, GenerationConfig

    assert tokenizer.eos_token == "<|im_end|>"
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert AutoConfig.from_pretrained(folder).eos_token_id == eos == tokenizer.eos_token_id
    assert GenerationConfig.from_pretrained(folder).eos_token_id == eos
    assert tokenizer.model_max_length == 8192, "the GGUF's llama.context_length"
    # Control tokens stay whole and are special: skip_special_tokens drops them when decoding.
    assert tokenizer.decode(tokenizer.encode("<|im_start|>hi<|im_end|>"), skip_special_tokens=True) == "hi"


def reference_bpe(text: str, vocab: gguf.GgufVocab) -> list[str]:
    """A plain reimplementation of llama.cpp's byte-level BPE for the "smollm" pre-tokenizer.

    Independent of the `tokenizers` library: split every digit on its own, then the GPT-2 pattern;
    spell each piece's UTF-8 bytes in GPT-2's printable alphabet; merge the best-ranked adjacent pair
    until no listed merge applies.
    """
    import regex

    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    spelling, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            spelling[byte] = chr(byte)
        else:
            spelling[byte] = chr(256 + extra)
            extra += 1
    gpt2 = regex.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")
    ranks = {tuple(merge.split(" ", 1)): rank for rank, merge in enumerate(vocab.merges)}
    out: list[str] = []
    for chunk in regex.split(r"(\p{N})", text):
        for piece in gpt2.findall(chunk):
            symbols = [spelling[byte] for byte in piece.encode("utf-8")]
            while len(symbols) > 1:
                pairs = [(ranks.get(pair, len(ranks)), i) for i, pair in enumerate(pairwise(symbols))]
                rank, i = min(pairs)
                if rank == len(ranks):
                    break
                symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
            out.extend(symbols)
    return out


@pytest.mark.parametrize("text", ["Hello world", *TEXTS, "In 2024, 3.14159 + 42 = ?"])
def test_ids_match_a_reference_byte_level_bpe(tokenizer, vocab, text):
    expected = reference_bpe(text, vocab)
    ids = tokenizer.encode(text)
    assert tokenizer.convert_ids_to_tokens(ids) == expected
    assert ids == [vocab.tokens.index(piece) for piece in expected]


def test_hello_world_is_two_tokens(tokenizer):
    assert tokenizer.convert_ids_to_tokens(tokenizer.encode("Hello world")) == ["Hello", "Ġworld"]


def test_gguf_vocab_of_the_bundled_model(vocab):
    """What the rebuilt tokenizer is made from: SmolLM2's metadata, as the GGUF states it."""
    assert (vocab.model, vocab.pre) == ("gpt2", "smollm")
    assert len(vocab.tokens) == 49152 and len(vocab.merges) == 48900
    assert vocab.special_ids == {"bos": 1, "eos": 2, "pad": 2, "unk": 0}
    assert vocab.tokens[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert vocab.chat_template is not None and vocab.chat_template.startswith("{% for message in messages %}")


@pytest.mark.parametrize(
    ("pre", "text", "pieces"),
    [
        ("gpt-2", "Call 123 now", ["Call", "Ġ123", "Ġnow"]),
        ("smollm", "Call 123 now", ["Call", "Ġ", "1", "2", "3", "Ġnow"]),
        ("llama-bpe", "Call 12345 now\n\n", ["Call", "Ġ", "123", "45", "Ġnow", "ĊĊ"]),
        ("qwen2", "Call 123 now", ["Call", "Ġ", "1", "2", "3", "Ġnow"]),
    ],
)
def test_pre_tokenizer_follows_the_gguf_pre_type(pre, text, pieces):
    splitter = gguf._byte_level_pre_tokenizer(pre)
    assert [piece for piece, _ in splitter.pre_tokenize_str(text)] == pieces


def test_other_gguf_tokenizers_keep_the_transformers_one(vocab):
    """SentencePiece vocabularies, and byte-level ones split in a way not known here, are not rebuilt."""
    from dataclasses import replace

    assert gguf.gguf_byte_level_tokenizer(replace(vocab, model="llama")) is None
    assert gguf.gguf_byte_level_tokenizer(replace(vocab, pre="some-future-pre")) is None

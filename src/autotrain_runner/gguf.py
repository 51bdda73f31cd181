"""GGUF files (and the bundled SmolLM2, which is one) converted once into a normal model folder in
the cache (`models.converted_folder`), because AutoTrain trains from `from_pretrained(folder)`. The
conversion writes to a temporary folder and renames it into place, so an interrupted conversion is
never reused.

The weights come from transformers' GGUF loader. A byte-level BPE tokenizer (`tokenizer.ggml.model`
"gpt2", which SmolLM2's is) is rebuilt here from the GGUF's own metadata instead, because the one
transformers' conversion saves has not round-tripped text on every version (dropped newlines after
role names, raw `Ġ`/`Ċ` pieces in decoded text, an extra BOS before the chat template).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotrain_runner import progress
from autotrain_runner.config.models import ModelRef, converted_folder
from autotrain_runner.errors import WorkError


def ensure_converted(ref: ModelRef, log=print) -> Path | None:
    """Convert a GGUF model into a model folder once; later calls reuse it."""
    if ref.kind not in ("gguf", "bundled"):
        return None
    target = converted_folder(ref)
    if (target / "config.json").is_file():
        return target
    assert ref.path is not None
    log(f"converting {ref.path.name} to a model folder in {target} (once; about half a minute)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

        folder, name = str(ref.path.parent), ref.path.name
        vocab = read_gguf_vocab(ref.path)
        tokenizer = gguf_byte_level_tokenizer(vocab) if vocab is not None else None
        if tokenizer is None:
            if vocab is not None:
                log(
                    f"keeping transformers' tokenizer for {name} (tokenizer {vocab.model!r}, "
                    f"pre-tokenizer {vocab.pre!r} is not one rebuilt here)"
                )
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        # Dense weights, never GGUF blocks: a folder of packed blocks is not something AutoTrain (or
        # save_pretrained, which refuses a model with the GGUF quantizer attached) can use.
        with progress.waiting(f"converting {name}", log):
            model = AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=name, quantization_config=GgufConfig(dequantize=True)
            )
            _detach_gguf_quantizer(model)
            if vocab is not None:
                _apply_gguf_special_tokens(vocab, tokenizer, model)
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except Exception as exc:  # any failure of the conversion is a failure of the work
        raise WorkError(f"could not convert {ref.path} to a model folder: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _detach_gguf_quantizer(model: Any) -> None:
    """Drop the GGUF quantizer from a dequantized model.

    transformers 5 keeps a GGUF quantizer on every model loaded from a `.gguf` file, even a fully
    dequantized one, and save_pretrained refuses to write a model that has it. The weights are plain
    tensors by now, so removing it (and its `quantization_config`, which would make the saved folder
    look like a GGUF checkpoint again) leaves an ordinary model.
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return
    if not getattr(quantizer.quantization_config, "dequantize", True):
        raise WorkError("the GGUF weights were kept packed; they must be dequantized to save a model folder")
    quantizer.remove_quantization_config(model)


# llama.cpp's GGUF token types (gguf.TokenType): CONTROL tokens are the special ones (`<|im_end|>`),
# USER_DEFINED ones are added tokens matched whole but not special (`<think>`).
_CONTROL, _USER_DEFINED = 3, 4

# How text is split before the merges, by `tokenizer.ggml.pre`: these are the pre-tokenizer names
# llama.cpp's converter writes, grouped by the split it applies for each. Anything else keeps
# transformers' tokenizer, which knows more of them.
_GPT2_PRE = {"gpt-2", "gpt2", "phi-2", "mpt", "olmo", "jais"}
# The GPT-2 split after splitting every digit on its own (StarCoder-style vocabularies; SmolLM2).
_DIGITS_PRE = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone"}
_LLAMA3_PRE = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"}
_QWEN2_PRE = {"qwen2", "stablelm2", "deepseek-r1-qwen"}
# Llama 3's split (its tokenizer.json) and Qwen2's, which differs only in taking digits one at a time.
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = _LLAMA3_SPLIT.replace(r"\p{N}{1,3}", r"\p{N}")


@dataclass(frozen=True)
class GgufVocab:
    """What a GGUF file says about its tokenizer, under llama.cpp's key names."""

    model: str | None  # tokenizer.ggml.model: "gpt2" is byte-level BPE, "llama" SentencePiece
    pre: str | None  # tokenizer.ggml.pre: how text is split before the merges
    tokens: list[str]  # the vocabulary; a token's id is its position
    token_types: list[int]
    merges: list[str]  # "left right", best first
    special_ids: dict[str, int]  # "bos", "eos", "pad", "unk" -> token id, those the file names
    chat_template: str | None
    context_length: int | None

    def special(self, role: str) -> str | None:
        index = self.special_ids.get(role)
        return self.tokens[index] if index is not None else None


def read_gguf_vocab(path: Path) -> GgufVocab | None:
    """The tokenizer metadata of a GGUF file; None when it carries no vocabulary."""
    from gguf import GGUFReader

    reader = GGUFReader(path)

    def value(key: str) -> Any:
        field_ = reader.fields.get(key)
        return field_.contents() if field_ is not None else None

    tokens = value("tokenizer.ggml.tokens")
    if not tokens:
        return None
    special_ids = {}
    for role, key in (("bos", "bos"), ("eos", "eos"), ("pad", "padding"), ("unk", "unknown")):
        index = value(f"tokenizer.ggml.{key}_token_id")
        # An id past the vocabulary is a broken file; leaving the role unset beats pointing it anywhere.
        if index is not None and 0 <= int(index) < len(tokens):
            special_ids[role] = int(index)
    architecture = value("general.architecture")
    context_length = value(f"{architecture}.context_length") if architecture else None
    return GgufVocab(
        model=value("tokenizer.ggml.model"),
        pre=value("tokenizer.ggml.pre"),
        tokens=list(tokens),
        token_types=list(value("tokenizer.ggml.token_type") or []),
        merges=list(value("tokenizer.ggml.merges") or []),
        special_ids=special_ids,
        chat_template=value("tokenizer.chat_template"),
        context_length=int(context_length) if context_length else None,
    )


def _byte_level_pre_tokenizer(pre: str | None) -> Any:
    """The pre-tokenizer for a byte-level vocabulary, or None for a split not known here."""
    from tokenizers import Regex, pre_tokenizers

    if pre in _GPT2_PRE:
        return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in _DIGITS_PRE:
        return pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            ]
        )
    split = _LLAMA3_SPLIT if pre in _LLAMA3_PRE else _QWEN2_SPLIT if pre in _QWEN2_PRE else None
    if split is None:
        return None
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(split), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def gguf_byte_level_tokenizer(vocab: GgufVocab) -> Any:
    """A `PreTrainedTokenizerFast` built from a byte-level BPE GGUF's metadata, or None.

    None when the file's tokenizer is not byte-level BPE, or splits text in a way not known here:
    then transformers' own GGUF tokenizer is used. The result is a plain GPT-2-style tokenizer:
    ids are the GGUF's positions, control tokens are special added tokens, and neither BOS nor EOS
    is added when encoding (a chat template writes its own `<|im_start|>`; a second would be noise
    the model never saw).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, processors
    from transformers import PreTrainedTokenizerFast

    if vocab.model != "gpt2" or not vocab.merges:
        return None
    pre_tokenizer = _byte_level_pre_tokenizer(vocab.pre)
    if pre_tokenizer is None:
        return None
    ids: dict[str, int] = {}
    for index, token in enumerate(vocab.tokens):
        ids.setdefault(token, index)  # one id per spelling; a duplicate (rare, a broken file) keeps its first
    # Byte-level tokens never hold a real space (it is spelled `Ġ`), so one space separates a merge.
    merges = [tuple(merge.split(" ", 1)) for merge in vocab.merges]
    backend = Tokenizer(
        models.BPE(
            vocab=ids,
            merges=merges,
            fuse_unk=False,
            byte_fallback=False,
            # Llama 3's tokenizer.json (and llama.cpp, for these pre types) looks a whole piece up first.
            ignore_merges=vocab.pre in _LLAMA3_PRE,
        )
    )
    backend.pre_tokenizer = pre_tokenizer
    backend.decoder = decoders.ByteLevel()
    types = vocab.token_types
    added = [
        AddedToken(token, special=types[index] == _CONTROL, normalized=False)
        for index, token in enumerate(vocab.tokens)
        if index < len(types) and types[index] in (_CONTROL, _USER_DEFINED)
    ]
    # Special ones first: add_special_tokens keeps them whole and skips them when decoding with
    # skip_special_tokens, add_tokens keeps user-defined ones whole but decodes them as text.
    backend.add_special_tokens([token for token in added if token.special])
    backend.add_tokens([token for token in added if not token.special])
    roles = {f"{role}_token": vocab.special(role) for role in ("bos", "eos", "pad", "unk")}
    options: dict[str, Any] = {name: token for name, token in roles.items() if token is not None}
    if vocab.context_length:
        options["model_max_length"] = vocab.context_length
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        add_bos_token=False,
        add_eos_token=False,
        chat_template=vocab.chat_template,
        clean_up_tokenization_spaces=False,
        **options,
    )
    # Naming add_bos_token/add_eos_token makes transformers 5 put a template post-processor in; with
    # both false that only passes the text through, so the byte-level one (offsets only) goes back.
    tokenizer.backend_tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def _apply_gguf_special_tokens(vocab: GgufVocab, tokenizer: Any, model: Any) -> None:
    """Take BOS/EOS/PAD from the GGUF metadata itself.

    transformers 4.48 maps them wrongly for some GGUF tokenizers (SmolLM2: EOS became
    `<|im_start|>`, PAD unset), and then training separates packed samples with the wrong token
    and generation never stops at the end of an answer. The tokenizer rebuilt here already has
    them; transformers' own tokenizer (for other GGUFs) gets them set here too.
    """
    for role in ("bos", "eos", "pad"):
        index = vocab.special_ids.get(role)
        if index is None:
            continue
        setattr(tokenizer, f"{role}_token", vocab.tokens[index])
        setattr(model.config, f"{role}_token_id", index)
        if model.generation_config is not None:
            setattr(model.generation_config, f"{role}_token_id", index)

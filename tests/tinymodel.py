"""A tiny Llama and a byte-level BPE tokenizer trained on a few Korean sentences.

Built offline in seconds, saved with `save_pretrained`, it is a real model folder that
AutoTrain trains on CPU: nothing in the pipeline under test is replaced.
"""

from __future__ import annotations

from pathlib import Path

SENTENCES = [
    "안녕하세요, 오늘 날씨가 정말 좋네요.",
    "저는 한국어로 대답하는 도우미입니다.",
    "싸이월드 감성으로 일기를 써 볼게요~*",
    "오늘 하루도 수고 많으셨어요. 푹 쉬세요.",
    "질문에 친절하고 짧게 답해 주세요.",
    "맛있는 저녁을 먹고 산책을 했어요.",
    "The quick brown fox jumps over the lazy dog.",
    "### 질문: ### 답변: <|user|> <|assistant|>",
]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def build_tiny_model(
    folder: Path, hidden_size: int = 32, heads: int = 4, kv_heads: int = 2, context: int = 256
) -> Path:
    """hidden_size / heads is the attention head size: 8 by default; vLLM's CPU attention needs 32 or more.
    `context`: the model's max_position_embeddings and the tokenizer's model_max_length."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(SENTENCES * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=context,
        chat_template=CHAT_TEMPLATE,
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=context,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


if __name__ == "__main__":  # python tests/tinymodel.py /tmp/tiny: the benchmark's tiny model
    import sys

    print(build_tiny_model(Path(sys.argv[1])))

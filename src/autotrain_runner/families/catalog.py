"""The families: for each, transformers' config and model classes, its chat template (in the
family's own layout), its end-of-turn token and control tokens; and the chat samples every tiny
model is trained on.

The sizes are tiny (`TINY_SIZES`: 2 layers, hidden size 32), the architecture code under test
(attention variants, sliding windows, RoPE types, norms, experts) is transformers' own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SENTENCES = [
    "안녕하세요, 오늘 날씨가 정말 좋네요.",
    "저는 한국어로 대답하는 도우미입니다.",
    "싸이월드 감성으로 일기를 써 볼게요~*",
    "오늘 하루도 수고 많으셨어요. 푹 쉬세요.",
    "질문에 친절하고 짧게 답해 주세요.",
    "맛있는 저녁을 먹고 산책을 했어요.",
    "The quick brown fox jumps over the lazy dog.",
    "You are a helpful assistant.",
]
QUESTIONS = ["오늘 날씨 어때?", "저녁 뭐 먹지?", "주말에 뭐 할까?", "기분이 우울해", "추천할 노래 있어?"]
ANSWERS = ["맑고 따뜻해여~*", "떡볶이 어때여 ^^", "산책 가요~*", "힘내세여 토닥토닥", "발라드 들어 봐여~"]
SYSTEM = "싸이월드 감성으로 짧게 답해 주세요."

# --- chat templates, each in its family's layout (simplified: no tools, no reasoning content)

LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
# Mistral v0.3: the system prompt goes in front of the first user message; answers end with </s>.
MISTRAL_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system = messages[0]['content'] + '\\n\\n' %}{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set system = '' %}{%- set loop_messages = messages %}{%- endif %}"
    "{%- for message in loop_messages %}"
    "{%- if message['role'] == 'user' %}"
    "{{- '[INST] ' + (system if loop.first else '') + message['content'] + '[/INST]' }}"
    "{%- else %}{{- ' ' + message['content'] + eos_token }}{%- endif %}"
    "{%- endfor %}"
)
QWEN25_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if message['role'] != 'system' %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
# Qwen3: ChatML; the last answer carries an (empty) think block, as Qwen3's own template renders it,
# and the generation prompt gets one only with enable_thinking=False.
QWEN3_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' and loop.last %}"
    "{{- '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)
# Gemma 3: roles user and model; a system prompt is put in front of the first user turn.
GEMMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' %}{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set first_user_prefix = '' %}{%- set loop_messages = messages %}{%- endif %}"
    "{%- for message in loop_messages %}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{- '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') + message['content'] | trim"
    " + '<end_of_turn>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}"
)
# Gemma 4: new turn tokens <|turn> ... <turn|>, and a system role of its own.
GEMMA4_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{- '<|turn>' + role + '\\n' + message['content'] | trim + '<turn|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|turn>model\\n' }}{%- endif %}"
)
EXAONE4_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '[|' + message['role'] + '|]\\n' + message['content'] + '[|endofturn|]\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '[|assistant|]\\n' }}{%- endif %}"
)
# gpt-oss harmony: every message ends with <|end|>, the last (completed) answer with <|return|>; the
# generation prompt opens the final channel (what one does to skip the analysis channel).
GPT_OSS_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|start|>system<|message|>' + messages[0]['content'] + '<|end|>' }}"
    "{%- set loop_messages = messages[1:] %}"
    "{%- else %}{{- '<|start|>system<|message|>You are a helpful assistant.<|end|>' }}"
    "{%- set loop_messages = messages %}{%- endif %}"
    "{%- for message in loop_messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|start|>assistant<|channel|>final<|message|>' + message['content'] }}"
    "{{- '<|return|>' if loop.last and not add_generation_prompt else '<|end|>' }}"
    "{%- else %}{{- '<|start|>' + message['role'] + '<|message|>' + message['content'] + '<|end|>' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start|>assistant<|channel|>final<|message|>' }}{%- endif %}"
)

TINY_SIZES = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
}


@dataclass(frozen=True)
class Family:
    name: str  # the key of FAMILIES, and of --only
    architecture: str
    config_class: str  # a transformers config class
    model_class: str  # the transformers class built (AutoModelForCausalLM maps model_type back to it)
    min_transformers: str  # the first transformers release with this architecture (a note)
    template_style: str
    chat_template: str
    eos: str  # the end-of-turn token: the tokenizer's EOS and the config's eos_token_id
    bos: str | None = None
    pad: str | None = None  # None: like the real tokenizer, no pad token (trainer and eval fall back to EOS)
    specials: tuple[str, ...] = ()  # the other control tokens (role markers): special tokens
    added: tuple[str, ...] = ()  # tokens that are added but not special (Qwen3's <think>)
    config: dict[str, Any] = field(default_factory=dict)  # family-specific config fields

    def describe(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "config_class": self.config_class,
            "model_class": self.model_class,
            "min_transformers": self.min_transformers,
            "template": self.template_style,
            "eos": self.eos,
        }


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "llama3",
            "Llama 3",
            "LlamaConfig",
            "LlamaForCausalLM",
            "4.43 (rope_type llama3)",
            "<|start_header_id|>role<|end_header_id|>\\n\\n...<|eot_id|>",
            LLAMA3_TEMPLATE,
            eos="<|eot_id|>",
            bos="<|begin_of_text|>",
            specials=("<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|finetune_right_pad_id|>"),
            config={
                "max_position_embeddings": 131072,
                "rope_parameters": {
                    "rope_type": "llama3",
                    "rope_theta": 500000.0,
                    "factor": 8.0,
                    "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 8192,
                },
            },
        ),
        Family(
            "mistral",
            "Mistral",
            "MistralConfig",
            "MistralForCausalLM",
            "4.34",
            "<s>[INST] ...[/INST] ...</s>",
            MISTRAL_TEMPLATE,
            eos="</s>",
            bos="<s>",
            specials=("<unk>", "[INST]", "[/INST]"),
            config={"sliding_window": None, "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}},
        ),
        Family(
            "qwen2.5",
            "Qwen2.5",
            "Qwen2Config",
            "Qwen2ForCausalLM",
            "4.37",
            "ChatML <|im_start|>role\\n...<|im_end|>\\n, default system prompt",
            QWEN25_TEMPLATE,
            eos="<|im_end|>",
            pad="<|endoftext|>",
            specials=("<|im_start|>",),
            config={
                "tie_word_embeddings": True,
                "use_sliding_window": False,
                "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            },
        ),
        Family(
            "qwen3",
            "Qwen3",
            "Qwen3Config",
            "Qwen3ForCausalLM",
            "4.51",
            "ChatML, <think>\\n\\n</think>\\n\\n before the last answer",
            QWEN3_TEMPLATE,
            eos="<|im_end|>",
            pad="<|endoftext|>",
            specials=("<|im_start|>",),
            added=("<think>", "</think>"),
            config={
                "head_dim": 8,
                "tie_word_embeddings": True,
                "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            },
        ),
        Family(
            "gemma3",
            "Gemma 3 (text)",
            "Gemma3TextConfig",
            "Gemma3ForCausalLM",
            "4.50",
            "<bos><start_of_turn>user\\n...<end_of_turn>\\n<start_of_turn>model\\n",
            GEMMA3_TEMPLATE,
            eos="<end_of_turn>",
            bos="<bos>",
            pad="<pad>",
            specials=("<eos>", "<start_of_turn>"),
            config={
                "head_dim": 8,
                "query_pre_attn_scalar": 8,
                "sliding_window": 16,  # below BLOCK_SIZE: the sliding-window mask really masks
                "layer_types": ["sliding_attention", "full_attention"],
            },
        ),
        Family(
            "gemma4",
            "Gemma 4 (text)",
            "Gemma4TextConfig",
            "Gemma4ForCausalLM",
            "5.x (present in 5.19.0; first release not checked)",
            "<bos><|turn>role\\n...<turn|>\\n, role model",
            GEMMA4_TEMPLATE,
            eos="<turn|>",
            bos="<bos>",
            pad="<pad>",
            specials=("<eos>", "<|turn>"),
            config={
                "head_dim": 8,
                "global_head_dim": 16,
                "sliding_window": 16,
                "layer_types": ["sliding_attention", "full_attention"],
                "hidden_size_per_layer_input": 8,  # per-layer embeddings (PLE), sized to the tiny vocab below
            },
        ),
        Family(
            "exaone4",
            "EXAONE 4",
            "Exaone4Config",
            "Exaone4ForCausalLM",
            "4.54",
            "[|role|]\\n...[|endofturn|]\\n",
            EXAONE4_TEMPLATE,
            eos="[|endofturn|]",
            bos="[BOS]",
            pad="[PAD]",
            specials=("[UNK]", "[|system|]", "[|user|]", "[|assistant|]"),
            config={
                "sliding_window": 16,
                "layer_types": ["sliding_attention", "full_attention"],  # local + global (no RoPE), as 32B
                "tie_word_embeddings": True,
            },
        ),
        Family(
            "gpt-oss",
            "gpt-oss",
            "GptOssConfig",
            "GptOssForCausalLM",
            "4.55",
            "harmony <|start|>role<|message|>...<|end|>, last answer ...<|return|>",
            GPT_OSS_TEMPLATE,
            eos="<|return|>",
            pad="<|endoftext|>",
            specials=("<|start|>", "<|message|>", "<|end|>", "<|channel|>", "<|call|>"),
            config={
                "head_dim": 8,
                "intermediate_size": 32,
                "num_local_experts": 4,
                "num_experts_per_tok": 2,
                "max_position_embeddings": 131072,  # YaRN from 4096, factor 32, as gpt-oss-20b
                "sliding_window": 16,
                "layer_types": ["sliding_attention", "full_attention"],
            },
        ),
    )
}


CI_FAMILIES = ("llama3", "qwen3", "gemma3", "exaone4")  # the ones CI trains at least


def chat_rows(n: int = 24) -> list[dict[str, Any]]:
    """`messages` samples in the style of the tests' corpus; every fourth one with a system prompt."""
    rows = []
    for i in range(n):
        messages = [
            {"role": "user", "content": f"{QUESTIONS[i % 5]} {i}"},
            {"role": "assistant", "content": f"{ANSWERS[i % 5]} {i}"},
        ]
        if i % 4 == 0:
            messages.insert(0, {"role": "system", "content": SYSTEM})
        rows.append({"messages": messages})
    return rows

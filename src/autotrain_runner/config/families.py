"""Tiny random models of today's open LLM families, and a check that each trains and evaluates.

Every model is built from transformers' own config class for its family (2 layers, hidden size
32, a few hundred tokens of vocabulary), with a byte-level BPE tokenizer trained here with the
`tokenizers` library (as `tests/tinymodel.py` does for the tiny Llama), the family's chat
template, and its end-of-turn token as EOS and as a special token. Each is saved with
`save_pretrained`, so `AutoModelForCausalLM.from_pretrained(folder)` and
`AutoTokenizer.from_pretrained(folder)` load it like the real model: the architecture code
under test (attention variants, sliding windows, RoPE types, norms, experts) is transformers'
own, only the sizes are small and the weights random.

`python -m autotrain_runner.config.families [--only llama3,qwen3] [--out FILE]` builds each family in a
temporary folder, writes a tiny chat project (`DATA_BUILDER=messages`, `PROMPT_TEMPLATE=tokenizer`),
runs the real `atr data`, `atr train` and `atr eval` in child processes, and prints one Markdown
table row per family. One family failing does not stop the others; the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
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

_SMALL = {
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


def build(name: str, folder: Path) -> Path:
    """The tiny model and tokenizer of family `name`, saved into `folder`."""
    import torch
    import transformers
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    family = FAMILIES[name]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    named = [t for t in (family.bos, family.eos, family.pad) if t]
    specials = list(dict.fromkeys([*named, *family.specials]))
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = SENTENCES + [m["content"] for row in chat_rows() for m in row["messages"]]
    bpe.train_from_iterator(corpus * 4, trainer=trainer)
    if family.added:
        bpe.add_tokens([AddedToken(t, special=False, normalized=False) for t in family.added])
    extra = [t for t in specials if t not in named]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=family.bos,
        eos_token=family.eos,
        pad_token=family.pad,
        additional_special_tokens=extra,
        model_max_length=2048,
        chat_template=family.chat_template,
    )
    fields: dict[str, Any] = {
        **_SMALL,
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        **family.config,
    }
    if family.config_class == "Gemma4TextConfig":
        fields["vocab_size_per_layer_input"] = len(tokenizer)
    config = getattr(transformers, family.config_class)(**fields)
    torch.manual_seed(0)
    model = getattr(transformers, family.model_class)(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# --- the check: a tiny chat project per family through the real atr data, train and eval

PROJECT_ENV = """\
PROJECT_NAME={project}
MODEL={model}
DATA_BUILDER=messages
RAW_DATA=chat.jsonl
PROMPT_TEMPLATE=tokenizer
TRAINER=sft
EPOCHS=1
BATCH_SIZE=2
BLOCK_SIZE=64
LR=1e-3
PEFT=true
QUANTIZATION=none
LORA_R=4
LORA_ALPHA=8
GRADIENT_ACCUMULATION=1
MAX_NEW_TOKENS=16
EVAL_BATCH_SIZE=8
"""
RUN_ID = "tiny"


def project_name(name: str) -> str:
    """PROJECT_NAME of a family's project: also the folder of the adapter inside a run."""
    return "tiny-" + re.sub(r"[^a-z0-9]+", "-", name.lower())


def write_project(folder: Path, model: Path, name: str, rows: int = 24) -> Path:
    """A chat project on the tiny model: `messages` JSONL, rendered by the tokenizer's chat template."""
    folder.mkdir(parents=True, exist_ok=True)
    text = PROJECT_ENV.format(project=project_name(name), model=model)
    (folder / "project.env").write_text(text, encoding="utf-8")
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in chat_rows(rows)]
    (folder / "chat.jsonl").write_text("".join(lines), encoding="utf-8")
    return folder


@dataclass
class Outcome:
    family: Family
    model_type: str = "?"
    train: str = "not run"
    evaluation: str = "not run"
    seconds: float = 0.0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    ok: bool = False

    def row(self) -> str:
        cells = [
            self.family.architecture,
            self.family.config_class,
            self.model_type,
            self.train,
            self.evaluation,
            f"{self.seconds:.1f} (train {self.train_seconds:.1f}, eval {self.eval_seconds:.1f})",
        ]
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


HEADER = "| architecture | transformers config class | model_type | train | eval | seconds |\n|---|---|---|---|---|---|"


def _atr(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "autotrain_runner", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
        check=False,
    )


_EXCEPTION = re.compile(r"^(?:[\w.]+\.)?\w*(?:Error|Exception|Interrupt)\b.*$|^\w+Error: .*$")


def failure_reason(done: subprocess.CompletedProcess, log: Path | None = None, limit: int = 200) -> str:
    """The exception line of the log (the child's traceback), else the last line `atr` printed."""
    lines: list[str] = []
    if log is not None and log.is_file():
        lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines()]
        lines = [line for line in lines if _EXCEPTION.match(line)]
    if not lines:
        text = (done.stderr or "") + (done.stdout or "")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error") or _EXCEPTION.match(line)]
        lines = errors or lines
    reason = lines[-1] if lines else f"exit code {done.returncode}"
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."


def check(name: str, workdir: Path, env: dict[str, str] | None = None) -> Outcome:
    """Build, `atr data`, `atr train`, `atr eval` for one family in `workdir`; never raises."""
    family = FAMILIES[name]
    outcome = Outcome(family)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CI": "true", **(env or {})}
    env.setdefault("ATR_CACHE_DIR", str(workdir / "atr-cache"))
    started = time.perf_counter()
    try:
        model = build(name, workdir / "model")
        config = json.loads((model / "config.json").read_text(encoding="utf-8"))
        outcome.model_type = config.get("model_type", "?")
        project = write_project(workdir / "project", model, name)
        data = _atr("data", str(project), env=env)
        if data.returncode != 0:
            outcome.train = f"failed (atr data): {failure_reason(data)}"
            return outcome
        train_started = time.perf_counter()
        trained = _atr("train", str(project), "--run-id", RUN_ID, env=env)
        outcome.train_seconds = time.perf_counter() - train_started
        run_dir = project / "runs" / RUN_ID
        if trained.returncode != 0:
            outcome.train = f"failed: {failure_reason(trained, run_dir / 'train.log')}"
            outcome.evaluation = "skipped"
            return outcome
        record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        loss = record.get("train_loss")
        outcome.train = f"ok (loss {loss:.3f})" if isinstance(loss, float) else "ok"
        eval_started = time.perf_counter()
        evaluated = _atr("eval", str(project), "--run", RUN_ID, env=env)
        outcome.eval_seconds = time.perf_counter() - eval_started
        metrics_file = run_dir / "eval" / "metrics.json"
        if evaluated.returncode != 0 or not metrics_file.is_file():
            outcome.evaluation = f"failed: {failure_reason(evaluated)}"
            return outcome
        figures = json.loads(metrics_file.read_text(encoding="utf-8"))
        outcome.evaluation = (
            f"ok: n {figures.get('n')}, chrF {figures.get('chrf')}, eos_rate {figures.get('eos_rate')}, "
            f"valid_loss {figures.get('valid_loss')}"
        )
        outcome.ok = True
    except Exception as exc:  # one family's failure must not stop the others
        where = "build" if outcome.model_type == "?" else "check"
        message = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        if outcome.train == "not run":
            outcome.train = f"failed ({where}): {type(exc).__name__}: {message}"
        else:
            outcome.evaluation = f"failed: {type(exc).__name__}: {message}"
    finally:
        outcome.seconds = time.perf_counter() - started
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autotrain_runner.config.families",
        description="Train and evaluate a tiny random model of each LLM family through the real atr.",
    )
    parser.add_argument("--only", help=f"comma-separated families (default: all): {','.join(FAMILIES)}")
    parser.add_argument("--out", type=Path, help="also write the Markdown table to this file")
    parser.add_argument("--keep", type=Path, help="build the projects in this folder and keep them")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(FAMILIES)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        parser.error(f"unknown family {', '.join(unknown)}; known: {', '.join(FAMILIES)}")
    import transformers

    print(f"transformers {transformers.__version__}; {len(names)} families", file=sys.stderr)
    rows = []
    for name in names:
        print(f"{name}: building, training and evaluating...", file=sys.stderr, flush=True)
        if args.keep:
            outcome = check(name, args.keep / name)
        else:
            with tempfile.TemporaryDirectory(prefix=f"atr-family-{name}-") as tmp:
                outcome = check(name, Path(tmp))
        print(outcome.row(), file=sys.stderr, flush=True)
        rows.append(outcome)
    table = HEADER + "\n" + "\n".join(o.row() for o in rows) + "\n"
    print(table, end="")
    if args.out:
        args.out.write_text(table, encoding="utf-8")
    return 0 if all(o.ok for o in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

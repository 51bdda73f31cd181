"""Build a tiny random model of each family, and check that it trains and evaluates through atr.

Every model is built from transformers' own config class for its family (`catalog.TINY_SIZES`, a
few hundred tokens of vocabulary), with a byte-level BPE tokenizer trained here with the
`tokenizers` library (as `tests/tinymodel.py` does for the tiny Llama), the family's chat
template, and its end-of-turn token as EOS and as a special token. Each is saved with
`save_pretrained`, so `AutoModelForCausalLM.from_pretrained(folder)` and
`AutoTokenizer.from_pretrained(folder)` load it like the real model; only the sizes are small and
the weights random.

`python -m autotrain_runner.families [--only llama3,qwen3] [--out FILE]` builds each family in a
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotrain_runner import layout
from autotrain_runner.families.catalog import FAMILIES, SENTENCES, TINY_SIZES, Family, chat_rows


def build(
    name: str, folder: Path, sizes: dict[str, Any] | None = None, dtype: str | None = None, device: str = "cpu"
) -> Path:
    """The tiny model and tokenizer of family `name`, saved into `folder`.

    `sizes` replaces the tiny sizes with a real model's (`atr bench train --shape`): the weights are
    random, initialised on `device` in `dtype`, and the tokenizer's vocabulary is padded with unused
    entries up to the shape's `vocab_size`, so the embeddings and logits have the real size (AutoTrain
    resizes the embeddings to the tokenizer's length)."""
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
    if sizes and sizes.get("vocab_size"):
        bpe = _padded_vocabulary(bpe, int(sizes["vocab_size"]))
    extra = [t for t in specials if t not in named]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=family.bos,
        eos_token=family.eos,
        pad_token=family.pad,
        additional_special_tokens=extra,
        model_max_length=2048 if not sizes else int(sizes.get("max_position_embeddings", 8192)),
        chat_template=family.chat_template,
    )
    fields: dict[str, Any] = {
        **TINY_SIZES,
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        **family.config,
        **(sizes or {}),
    }
    if family.config_class == "Gemma4TextConfig":
        fields["vocab_size_per_layer_input"] = len(tokenizer)
    config = getattr(transformers, family.config_class)(**fields)
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    try:
        if dtype:
            torch.set_default_dtype(getattr(torch, dtype))
        with torch.device(device):
            model = getattr(transformers, family.model_class)(config)
    finally:
        torch.set_default_dtype(default)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _padded_vocabulary(bpe, size: int):
    """The same tokenizer with unused vocabulary entries up to `size` ids (never produced by its merges)."""
    from tokenizers import Tokenizer

    data = json.loads(bpe.to_str())
    vocab = data["model"]["vocab"]
    taken = set(vocab.values()) | {t["id"] for t in data.get("added_tokens", [])}
    for new_id in range(size):
        if new_id not in taken:
            vocab[f"<|unused_{new_id}|>"] = new_id
    return Tokenizer.from_str(json.dumps(data))


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
        run_dir = project / layout.RUNS_DIR / RUN_ID
        if trained.returncode != 0:
            outcome.train = f"failed: {failure_reason(trained, run_dir / layout.TRAIN_LOG)}"
            outcome.evaluation = "skipped"
            return outcome
        record = layout.read_run(run_dir)
        loss = record.train_loss if record else None
        outcome.train = f"ok (loss {loss:.3f})" if isinstance(loss, float) else "ok"
        eval_started = time.perf_counter()
        evaluated = _atr("eval", str(project), "--run", RUN_ID, env=env)
        outcome.eval_seconds = time.perf_counter() - eval_started
        figures = layout.read_metrics(layout.run_eval_dir(run_dir))
        if evaluated.returncode != 0 or figures is None:
            outcome.evaluation = f"failed: {failure_reason(evaluated)}"
            return outcome
        outcome.evaluation = (
            f"ok: n {figures.n}, chrF {figures.chrf}, eos_rate {figures.eos_rate}, valid_loss {figures.valid_loss}"
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
    """`python -m autotrain_runner.families`: the same as `atr bench families`."""
    parser = argparse.ArgumentParser(
        prog="python -m autotrain_runner.families",
        description="Train and evaluate a tiny random model of each LLM family through the real atr.",
    )
    parser.add_argument("--only", help=f"comma-separated families (default: all): {','.join(FAMILIES)}")
    parser.add_argument("--out", type=Path, help="also write the Markdown table to this file")
    parser.add_argument("--keep", type=Path, help="build the projects in this folder and keep them")
    args = parser.parse_args(argv)
    try:
        return run(args.only, args.out, args.keep)
    except ValueError as exc:
        parser.error(str(exc))


def run(only: str | None, out: Path | None = None, keep: Path | None = None) -> int:
    """Each family (`only`: comma-separated names; default all) built, trained and evaluated; the
    Markdown table on stdout (and in `out`); 0 when every family passed."""
    names = [n.strip() for n in only.split(",") if n.strip()] if only else list(FAMILIES)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown family {', '.join(unknown)}; known: {', '.join(FAMILIES)}")
    import transformers

    print(f"transformers {transformers.__version__}; {len(names)} families", file=sys.stderr)
    rows = []
    for name in names:
        print(f"{name}: building, training and evaluating...", file=sys.stderr, flush=True)
        if keep:
            outcome = check(name, keep / name)
        else:
            with tempfile.TemporaryDirectory(prefix=f"atr-family-{name}-") as tmp:
                outcome = check(name, Path(tmp))
        print(outcome.row(), file=sys.stderr, flush=True)
        rows.append(outcome)
    table = HEADER + "\n" + "\n".join(o.row() for o in rows) + "\n"
    print(table, end="")
    if out:
        out.write_text(table, encoding="utf-8")
    return 0 if all(o.ok for o in rows) else 1

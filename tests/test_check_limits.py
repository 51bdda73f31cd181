"""`atr check` refuses settings that cannot work, with what can be checked without downloading:
upper bounds, the model's own context, a model path that is a file or a damaged folder, a fake GGUF,
a missing prompt list, a preference trainer without its columns, a Hub repo that is no repo id."""

import json
import os
from pathlib import Path

import pytest

from autotrain_runner.config.load import load_config
from autotrain_runner.errors import ConfigError
from helpers import atr, write


def project(tmp_path: Path, env: str, model: str = "org/model") -> Path:
    folder = tmp_path / "p"
    write(folder / "d.csv", "text,rejected,prompt\n좋아요,싫어요,어때?\n")
    write(folder / "project.env", f"MODEL={model}\nDATA_FILE=d.csv\n" + env)
    return folder


def errors(folder: Path, *overrides: str) -> list[str]:
    try:
        load_config(folder, list(overrides))
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    return []


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("EPOCHS=1e32", "EPOCHS"),
        ("EPOCHS=100000", "must be in [1, 1000]"),
        ("LR=1e308", "must be in (0, 1]"),
        ("LR=inf", "LR"),
        ("LR=nan", "LR"),
        ("BLOCK_SIZE=100000000", "from 1 to 10,000,000"),
        ("MAX_NEW_TOKENS=100000000", "must be in [1, 1e+07]"),
        ("TEMPERATURE=50", "must be in [0, 2]"),
        ("BATCH_SIZE=1000000", "must be in [1, 65536]"),
        ("LORA_R=1000000", "must be in [1, 65536]"),
        ("SWEEP_LR=1e-4,5", "must be in (0, 1]"),
        ("HUB_REPO=../../x", "is not a Hub repo id"),
        ("HUB_REPO=owner/na--me", "is not a Hub repo id"),
        ("HUB_REPO=just-a-name", "is not a Hub repo id (it must name the owner"),
        ("ENCODING=klingon", "is not an encoding"),
    ],
)
def test_values_past_any_sensible_bound_are_refused(tmp_path, setting, message):
    found = errors(project(tmp_path, setting + "\n"))
    key = setting.split("=")[0]
    assert any(key in line and message in line for line in found), found


def test_sensible_values_pass(tmp_path):
    settings = "EPOCHS=5\nLR=2e-4\nBLOCK_SIZE=4096\nMAX_NEW_TOKENS=512\nHUB_REPO=LDCC/Llama-2-ko-13B.v1_4\n"
    assert errors(project(tmp_path, settings)) == []


def test_the_model_context_bounds_block_size_and_max_new_tokens(tmp_path, tiny_model):
    context = json.loads((tiny_model / "config.json").read_text())["max_position_embeddings"]
    folder = project(tmp_path, f"BLOCK_SIZE={context * 9}\nMAX_NEW_TOKENS={context + 1}\n", model=str(tiny_model))
    found = errors(folder)
    assert sum(f"more than the model's context of {context:,}" in line for line in found) == 2, found
    assert errors(project(tmp_path / "ok", f"BLOCK_SIZE={context}\n", model=str(tiny_model))) == []
    # a few times the context is a warning: RoPE extends, the run may still be what was meant
    config = load_config(project(tmp_path / "warned", f"BLOCK_SIZE={context * 4}\n", model=str(tiny_model)))
    assert any(p.level == "warning" and "positions past it were never trained" in p.message for p in config.problems)


def test_model_paths_that_cannot_be_models_are_refused(tmp_path, tiny_model):
    folder = project(tmp_path, "", model="notes.txt")
    write(folder / "notes.txt", "my notes")
    assert any("notes.txt is a file; MODEL is a Hub id" in e for e in errors(folder)), errors(folder)

    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama", ', encoding="utf-8")
    assert any("is not a JSON object: the model folder is damaged" in e for e in errors(folder, f"MODEL={broken}"))

    for name, content in (("empty.gguf", b""), ("fake.gguf", b"not a gguf at all")):
        (folder / name).write_bytes(content)
        assert any(f"{name} is not a GGUF file" in e for e in errors(folder, f"MODEL={folder / name}")), name


def test_a_missing_prompt_list_is_named_by_check(tmp_path):
    folder = project(tmp_path, "EVAL_PROMPTS=prompts.txt\n")
    assert any("EVAL_PROMPTS: " in e and "prompts.txt: no such prompt list" in e for e in errors(folder))
    write(folder / "prompts.txt", "안녕?\n")
    assert errors(folder) == []


def test_a_preference_trainer_needs_its_columns(tmp_path):
    folder = project(tmp_path, "TRAINER=dpo\n")
    found = errors(folder)
    assert any("PROMPT_TEXT_COLUMN: TRAINER=dpo needs it" in e for e in found), found
    assert any("REJECTED_TEXT_COLUMN: TRAINER=dpo needs it" in e for e in found), found
    found = errors(folder, "PROMPT_TEXT_COLUMN=question", "REJECTED_TEXT_COLUMN=rejected")
    missing = "d.csv has no column 'question' (columns found: prompt"
    assert any("PROMPT_TEXT_COLUMN: " in e and missing in e for e in found), found
    assert errors(folder, "PROMPT_TEXT_COLUMN=prompt", "REJECTED_TEXT_COLUMN=rejected") == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_project_names_the_path_and_the_cause(tmp_path):
    folder = project(tmp_path, "")
    os.chmod(folder, 0o555)
    try:
        result = atr("report", str(folder))
    finally:
        os.chmod(folder, 0o755)
    assert result.code == 1 and "Traceback" not in result.text
    assert str(folder) in result.err and "must be writable" in result.err


def test_an_os_error_is_one_line_with_the_path_and_what_it_means(tmp_path):
    from autotrain_runner.cli.main import _os_error

    line = _os_error(OSError(28, "No space left on device", str(tmp_path / "runs/r1/train.log")))
    assert line.startswith(str(tmp_path / "runs/r1/train.log")) and "the disk is full" in line
    assert "must be writable" in _os_error(PermissionError(13, "Permission denied", "/x/runs"))

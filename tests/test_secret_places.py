"""Secrets in every encoding and every place a user can put one: env files PowerShell wrote, training
data, templates, prompt lists, file names, mistyped --set keys, run.json; and text in encodings that
are not UTF-8 decoded by their BOM, forced with ENCODING=, or refused when they are not Korean."""

import json
import os
from pathlib import Path

import pytest

from helpers import CANARY, atr, write

TOKEN_LINES = [
    f"{CANARY}",  # a line without '='
    f"HF_TOKEN:{CANARY}",  # the wrong separator
    f"{CANARY}=1",  # the token as a key
    f"export {CANARY}",
]
QA = "질문,답변\n안녕?,안녕하세요~*\n뭐해?,미니홈피 꾸며여 ^^\n날씨는?,맑아요\n"


def table_project(tmp_path: Path, raw: str = QA, env: str = "", raw_name: str = "qa.csv") -> Path:
    folder = tmp_path / "projects" / "p"
    write(folder / raw_name, raw)
    write(
        folder / "project.env",
        "MODEL=org/model\nDATA_BUILDER=table\nPROMPT_COLUMN=질문\nRESPONSE_COLUMN=답변\nSPLIT=1,0,0\n"
        f"RAW_DATA={raw_name}\n" + env,
    )
    return folder


def dataset_text(root: Path) -> str:
    return "".join(p.read_text(encoding="utf-8") for p in sorted((root / "datasets" / "p").iterdir()) if p.is_file())


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32", "utf-8-sig"])
def test_an_env_file_in_any_unicode_encoding_is_read_and_never_echoes_a_token(tmp_path, encoding):
    """PowerShell's `>` writes UTF-16 with a BOM; Notepad may write UTF-8 with one. The file is read
    as text (its keys count) and no line shape prints the token, NUL bytes or not."""
    project = tmp_path / "p"
    project.mkdir()
    text = "MODEL=org/model\r\nDATA_FILE=d.csv\r\n" + "\r\n".join(TOKEN_LINES) + "\r\n"
    (project / "project.env").write_bytes(text.encode(encoding))
    write(project / "d.csv", "text\n안녕\n")
    result = atr("check", str(project))
    assert result.code == 2 and "Traceback" not in result.text
    assert CANARY not in result.text and "\x00" not in result.text
    assert "canaryTOKEN" not in result.text.replace("\x00", "")
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == len(TOKEN_LINES), result.err  # each bad line named once, MODEL and DATA_FILE read
    assert all("project.env:" in line for line in errors)


def test_a_configured_secret_that_is_not_token_shaped_is_masked_in_every_error(tmp_path):
    secret = "plain-secret-value-4242"
    project = tmp_path / "p"
    write(project / "project.env", f"MODEL=org/model\nDATA_FILE=d.csv\n{secret}\nNOT A LINE {secret}\n")
    write(project / "d.csv", "text\n안녕\n")
    result = atr("check", str(project), env={"OPENAI_API_KEY": secret})
    assert result.code == 2 and secret not in result.text and "***" in result.err


@pytest.mark.parametrize(
    "override", [f"OPENAI API_KEY={CANARY}", f"HF TOKEN={CANARY}", f"{CANARY}", "A-B=plain-secret-value-4242"]
)
def test_a_mistyped_set_never_repeats_its_value(tmp_path, override):
    project = table_project(tmp_path)
    result = atr("check", str(project), "--set", override)
    assert result.code == 2 and "--set" in result.err
    assert CANARY not in result.text and "plain-secret-value-4242" not in result.text


def test_a_secret_given_with_set_is_warned_about(tmp_path):
    project = table_project(tmp_path)
    result = atr("check", str(project), "--set", f"HF_TOKEN={CANARY}")
    assert result.code == 0, result.text
    assert "warning: --set: HF_TOKEN: a secret on the command line" in result.text
    assert CANARY not in result.text


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (QA + f"토큰 알려줘,여기요 {CANARY}\n", "qa.csv:row 5"),  # the answer
        (QA + f"이거 써 {CANARY[3:]}hf_{CANARY[3:]},네\n", "qa.csv:row 5"),  # glued to Hangul
        (QA + "키 알려줘,sk-proj-abcdefghijklmnopqrstuvwxyz0123\n", "qa.csv:row 5"),
        ("질문,답변\n" + f"{CANARY} 뭐야?,몰라요\n" + QA.split("\n", 1)[1], "qa.csv:row 2"),  # the question
    ],
)
def test_a_token_in_training_data_is_refused_naming_the_row_or_dropped_and_counted(tmp_path, raw, where):
    project = table_project(tmp_path, raw)
    result = atr("data", str(project))
    assert result.code == 2, result.text
    assert f"{where}: secret:" in result.err and CANARY not in result.text
    assert not (tmp_path / "datasets" / "p").exists()  # nothing half-written

    skipped = atr("data", str(project), "--set", "ON_BAD_ROWS=skip")
    assert skipped.code == 0, skipped.text
    assert "secret 1" in skipped.out
    built = (tmp_path / "datasets" / "p").rglob("*")
    assert not any(CANARY[3:] in p.read_text(encoding="utf-8") for p in built if p.is_file())


def test_the_configured_token_value_in_training_data_is_refused(tmp_path):
    secret = "not-shaped-but-configured-777"
    project = table_project(tmp_path, QA + f"비밀번호?,{secret}\n")
    result = atr("data", str(project), env={"HF_TOKEN": secret})
    assert result.code == 2 and "qa.csv:row 5: secret: the value of HF_TOKEN" in result.err
    assert secret not in result.text


def test_a_token_in_a_template_or_a_prompt_list_is_refused(tmp_path):
    template = {"system": f"키는 {CANARY}", "user": "Q: {content}", "assistant_prefix": "A: "}
    project = table_project(tmp_path, env="PROMPT_TEMPLATE=t.json\n")
    write(project / "t.json", json.dumps(template, ensure_ascii=False))
    result = atr("check", str(project))
    assert result.code == 2 and "t.json: system: holds a Hugging Face token" in result.err
    assert CANARY not in result.text

    from autotrain_runner.errors import ConfigError
    from autotrain_runner.evaluation.prompts import read_prompts

    prompts = write(tmp_path / "prompts.txt", f"안녕?\n토큰은 {CANARY}\n")
    with pytest.raises(ConfigError, match=r"prompts.txt:2: holds a Hugging Face token"):
        read_prompts(prompts)
    configured = write(tmp_path / "configured.jsonl", '{"prompt": "안녕?"}\n{"prompt": "my-own-secret-99"}\n')
    with pytest.raises(ConfigError, match=r"configured.jsonl:2: holds the value of OPENAI_API_KEY"):
        read_prompts(configured, {"OPENAI_API_KEY": "my-own-secret-99"})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"prompt": 0}', "prompt must be a string, got int"),
        ('{"prompt": [{"type": "text", "text": "hi"}]}', "prompt must be a string, got list"),
        ('{"content": null}', "content must be a string, got NoneType"),
        ('{"prompt": "   "}', "prompt is empty"),
        ('{"text": "hi"}', "a JSONL prompt needs prompt (or content) or messages"),
        ('{"messages": "hi"}', "messages must be a list"),
        ('{"messages": [{"role": "user", "content": 5}]}', "messages: empty user message"),
        ('{"prompt": "\\ud800"}', "lone surrogate"),
        ('{"prompt": ' + "9" * 5000 + "}", "cannot be read"),
    ],
)
def test_a_prompt_list_names_the_line_and_the_wrong_type(tmp_path, line, message):
    from autotrain_runner.errors import ConfigError
    from autotrain_runner.evaluation.prompts import read_prompts

    prompts = write(tmp_path / "prompts.jsonl", '{"prompt": "안녕?"}\n' + line + "\n")
    with pytest.raises(ConfigError) as caught:
        read_prompts(prompts)
    assert "prompts.jsonl:2: " in str(caught.value) and message in str(caught.value)


def test_eval_checks_a_missing_prompt_list_before_anything_loads(tmp_path):
    project = table_project(tmp_path)
    result = atr("eval", str(project), "--base", "--prompts", str(tmp_path / "missing.txt"), timeout=60)
    assert result.code == 2 and "missing.txt: no such prompt list" in result.err
    assert "loading" not in result.text and "engine" not in result.out


def test_token_shaped_file_and_folder_names_are_masked_everywhere_they_are_shown(tmp_path):
    project = table_project(tmp_path, raw_name=f"raw/{CANARY}.csv")
    result = atr("data", str(project))
    assert result.code == 0, result.text
    assert CANARY not in result.text and "raw/***.csv" in result.out
    for path in (tmp_path / "datasets" / "p").iterdir():
        assert CANARY not in path.read_text(encoding="utf-8"), path.name


def test_raw_data_from_the_system_is_refused_before_it_is_read(tmp_path):
    for target in ("/proc/self/environ", "/dev/zero", "/sys/kernel/mm"):
        project = table_project(tmp_path / target.replace("/", "_"), env=f"RAW_DATA={target}\n")
        result = atr("data", str(project), env={"MY_TOKEN": CANARY})
        assert result.code == 2 and "a file of the system" in result.err, result.text
        assert CANARY not in result.text


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig", "cp949"])
def test_table_files_in_unicode_or_korean_encodings_are_decoded_and_named(tmp_path, encoding):
    project = table_project(tmp_path)
    (project / "qa.csv").write_bytes(QA.encode(encoding))
    result = atr("data", str(project))
    assert result.code == 0, result.text
    manifest = json.loads((tmp_path / "datasets/p/manifest.json").read_text(encoding="utf-8"))
    named = {"utf-16-le": "utf-16", "utf-16-be": "utf-16", "cp949": "euc-kr"}.get(encoding, encoding)
    assert manifest["inputs"][0]["encoding"] in (encoding, named)
    assert "미니홈피 꾸며여" in dataset_text(tmp_path)


def test_shift_jis_is_refused_instead_of_read_as_garbage_hangul_and_encoding_forces_one(tmp_path):
    japanese = "質問,回答\nこれは何ですか,ペンです\n今日はいい天気ですね,そうですね\n"
    japanese += "元気ですか,はい元気です\n"
    project = table_project(tmp_path, env="", raw="")
    write(
        project / "project.env", (project / "project.env").read_text().replace("질문", "質問").replace("답변", "回答")
    )
    (project / "qa.csv").write_bytes(japanese.encode("shift_jis"))
    result = atr("data", str(project))
    assert result.code == 2 and "qa.csv: ENCODING: decodes as cp949 only into rare Hangul" in result.err

    forced = atr("data", str(project), "--set", "ENCODING=shift_jis")
    assert forced.code == 0, forced.text
    assert "ペンです" in dataset_text(tmp_path)
    assert "(shift_jis)" in forced.out

    wrong = atr("data", str(project), "--set", "ENCODING=utf-8", "--force")
    assert wrong.code == 2 and "qa.csv:1: ENCODING: not valid utf-8 text" in wrong.err
    unknown = atr("check", str(project), "--set", "ENCODING=klingon")
    assert unknown.code == 2 and "ENCODING: is not an encoding Python knows" in unknown.err


def test_korean_cp949_with_a_few_rare_syllables_is_still_korean(tmp_path):
    rows = "질문,답변\n똠방각하가 누구야?,햏자의 친구예요\n뭐해?,미니홈피 꾸며여 ^^\n날씨는?,맑아요 쌰갈\n"
    project = table_project(tmp_path, rows)
    (project / "qa.csv").write_bytes(rows.encode("cp949"))
    result = atr("data", str(project))
    assert result.code == 0, result.text
    assert "(cp949)" in result.out


def test_runs_and_the_report_show_no_escape_sequence_or_token_from_a_hand_edited_run_json(tmp_path):
    project = table_project(tmp_path)
    run = project / "runs" / "r1"
    run.mkdir(parents=True)
    record = {
        "id": "r1",
        "status": "failed",
        "model": {"spec": f"org/\x1b]0;pwned\x07model-{CANARY}"},
        "error": f"\x1b[2J boom {CANARY}",
        "loss_history": [1.0, "x", None, float("nan"), 0.5],
        "loss_epochs": [1, 2],
        "eval_loss_history": [0.9, {"a": 1}],
        "eval_loss_epochs": ["one", 2],
    }
    (run / "run.json").write_text(json.dumps(record), encoding="utf-8")
    listed = atr("runs", str(project))
    assert listed.code == 0, listed.text
    assert "\x1b" not in listed.text and "\x07" not in listed.text and CANARY not in listed.text
    reported = atr("report", str(project))
    assert reported.code == 0, reported.text
    page = (project / "report.html").read_text(encoding="utf-8")
    assert CANARY not in page and "\x1b" not in page
    assert os.stat(project / "report.html").st_size > 0


def test_a_link_in_a_run_folder_to_a_file_outside_it_is_never_planned_for_upload(tmp_path):
    from autotrain_runner.hub.files import collect

    secret = tmp_path / "id_rsa"
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n", encoding="utf-8")
    run = tmp_path / "runs" / "r1"
    output = run / "output"
    output.mkdir(parents=True)
    (output / "adapter_config.json").write_text("{}", encoding="utf-8")
    (output / "adapter_model.safetensors").write_bytes(b"\0" * 8)
    (output / "tokenizer.json").symlink_to(secret)
    (output / "special_tokens_map.json").symlink_to(output / "adapter_config.json")  # inside: kept
    files, excluded = collect(run, output, None)
    names = {upload.name for upload in files}
    assert names == {"adapter_config.json", "adapter_model.safetensors", "special_tokens_map.json"}
    assert any("tokenizer.json" in e.name and "outside the run folder" in e.reason for e in excluded), excluded


def test_a_dataset_folder_another_project_built_is_never_replaced(tmp_path):
    first = table_project(tmp_path / "a")
    assert atr("data", str(first)).code == 0
    shared = tmp_path / "a" / "datasets" / "p"
    before = {p.name: p.read_bytes() for p in shared.iterdir()}
    second = table_project(tmp_path / "b", env=f"DATASET_DIR={shared}\n")
    result = atr("data", str(second))
    assert result.code == 2 and "holds the dataset of another project" in result.err, result.text
    assert {p.name: p.read_bytes() for p in shared.iterdir()} == before
    assert atr("data", str(first), "--force").code == 0  # its own project rebuilds it


def test_a_project_copied_with_its_datasets_still_owns_them(tmp_path):
    import shutil

    first = table_project(tmp_path / "a")
    assert atr("data", str(first)).code == 0
    shutil.copytree(tmp_path / "a", tmp_path / "copy")
    copied = tmp_path / "copy" / "projects" / "p"
    result = atr("data", str(copied), "--force")
    assert result.code == 0, result.text

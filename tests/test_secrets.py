"""The one secret matcher (redaction, `check`'s output, the push scan) and values that hold a secret:
a canary token never reaches a file, an argv, a log or the terminal, however it is spelled or placed."""

import json
import socket

import pytest

from autotrain_runner.config.load import load_config, sanitize_project_name
from autotrain_runner.hub.scan import Hit, scan_text
from autotrain_runner.redact import MASK, Redactor, as_text, hide_credentials
from autotrain_runner.training.train import _child_env
from helpers import CANARY, atr, write

HF = "a Hugging Face token (hf_...)"
# Another token shape, written in a value (not the configured HF_TOKEN).
PASTED = "hf_pastedPASTEDpastedPASTEDpasted0042"
SPELLINGS = [
    f"토큰{CANARY}",  # after Hangul
    f"공감하며 답하세요{CANARY}",
    f"{CANARY}한글",  # before Hangul
    f"x{CANARY}",  # the tail of an ASCII word
    f"9{CANARY}y",
    "hf\\u005f" + CANARY[3:],  # JSON's escape of `_`
    "hf\\\\u005f" + CANARY[3:],  # escaped twice: JSON in a JSON string
    "\\u0068\\u0066\\u005f" + CANARY[3:],
    '"note": "' + CANARY + '"',
]


def no_canary(text: str) -> bool:
    return CANARY not in text and sanitize_project_name(CANARY) not in text and CANARY[3:] not in text


@pytest.mark.parametrize("text", SPELLINGS)
def test_redactor_and_scan_find_a_token_however_it_is_glued_or_escaped(text):
    masked = Redactor()(text)
    assert no_canary(masked) and MASK in masked
    assert scan_text("f.json", text, {}) == [Hit("f.json:1", HF)]


# 25 characters after `hf_`: masked by the old `hf_[A-Za-z0-9]{20,}` of redaction, passed by the
# old `{30,}` of the push's scan. Both now use redact.TOKEN_SHAPES.
SHORT_TOKEN = "hf_shortCANARYshort12345abcd"


def test_a_token_of_25_characters_is_masked_and_found_by_the_push_scan():
    text = f"note: {SHORT_TOKEN}"
    assert Redactor()(text) == f"note: {MASK}"
    assert scan_text("tokenizer_config.json", text, {}) == [Hit("tokenizer_config.json:1", HF)]


@pytest.mark.parametrize("length", [19, 20, 25, 29, 30, 40])
def test_masking_and_the_push_scan_agree_on_every_token_length(length):
    token = "hf_" + ("aB3" * 20)[:length]
    masked, found = Redactor()(token) != token, scan_text("f", token, {}) != []
    assert masked == found == (length >= 20)


def test_a_configured_secret_is_found_in_the_form_autotrain_gives_a_project_name():
    secret = "my_secret_value_4711"
    redact = Redactor([secret])
    assert redact(f"proj-{sanitize_project_name(secret)}") == f"proj-{MASK}"
    assert redact(f"--project-name proj-{CANARY.replace('_', '-')}") == f"--project-name proj-{MASK}"
    assert scan_text("f", "x my-secret-value-4711", {secret: "the value of HF_TOKEN"}) == [
        Hit("f:1", "the value of HF_TOKEN")
    ]


def test_masking_keeps_the_text_around_a_token():
    assert Redactor()(f"공감하며 답하세요{CANARY}한글") == f"공감하며 답하세요{MASK}한글"
    assert Redactor()('{"a": "hf\\u005f' + CANARY[3:] + '", "b": 1}') == '{"a": "' + MASK + '", "b": 1}'
    assert Redactor()("task-management-for-everyone-here") == "task-management-for-everyone-here", "no sk- key"


def test_utf16_and_utf32_text_is_read_as_text():
    text = '{\n  "note": "' + CANARY + '"\n}\n'
    for encoding in ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig", "utf-8"):
        assert as_text(text.encode(encoding)) == text, encoding
    assert as_text(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe") is None


def test_url_credentials_are_masked_and_the_host_kept():
    assert hide_credentials("http://bob:pw0rd@127.0.0.1:9/v1") == "http://***@127.0.0.1:9/v1"
    assert hide_credentials("https://host:8000/v1") == "https://host:8000/v1"
    assert Redactor()("cannot reach https://u:p@host/x: refused") == "cannot reach https://***@host/x: refused"
    assert scan_text("card", "see http://user:secret@host/api", {}) == [
        Hit("card:1", "a URL with a password (scheme://user:password@host)")
    ]


@pytest.fixture
def project(tmp_path):
    write(tmp_path / "d.csv", "text\nhello\n")
    return tmp_path


@pytest.mark.slow
def test_check_and_command_mask_every_value_holding_a_secret(project):
    env = write(
        project / "project.env",
        f"""\
        MODEL=org/m
        DATA_FILE=d.csv
        SYSTEM_PROMPT="공감하며 답하세요${{HF_TOKEN}}"
        TXT_INSTRUCTION=x토큰{PASTED}
        USERNAME=me-${{HF_TOKEN}}
        OPENAI_BASE_URL=http://bob:pw0rd-4711@127.0.0.1:9/v1
        """,
    )
    check = atr("check", ".", "--set", f"SUMMARY_INSTRUCTION=요약{PASTED}한글", cwd=project, env={"HF_TOKEN": CANARY})
    assert check.code == 0, check.text[-3000:]
    rows = {line.split()[0]: line.split()[1] for line in check.out.splitlines() if line[:1].isupper()}
    assert f"공감하며 답하세요{MASK}  " in check.out  # the table's SYSTEM_PROMPT cell
    assert rows["TXT_INSTRUCTION"] == f"x토큰{MASK}" and rows["USERNAME"] == f"me-{MASK}"
    assert rows["OPENAI_BASE_URL"] == "http://***@127.0.0.1:9/v1" and rows["HF_TOKEN"] == MASK
    assert f"warning: {env.name}:3: SYSTEM_PROMPT: holds the value of HF_TOKEN: *** is used in its place" in check.out
    assert f"warning: {env.name}:4: TXT_INSTRUCTION: holds {HF}" in check.out
    # a repo id holding a token is no repo id: refused, the token masked in the line that says so
    repo = atr("check", ".", "--set", f"HUB_REPO=me/x{PASTED}", cwd=project, env={"HF_TOKEN": CANARY})
    assert repo.code == 2 and "HUB_REPO: 'me/x***' is not a Hub repo id" in repo.err, repo.text[-2000:]
    assert PASTED not in repo.text and no_canary(repo.text)
    assert "warning: --set: SUMMARY_INSTRUCTION: holds" in check.out
    for args in (("command",), ("command", "--json")):
        result = atr(*args, str(project), env={"HF_TOKEN": CANARY})
        assert result.code == 0, result.text[-3000:]
        assert "--username" in result.out and "me-***" in result.out
        for shown in (result, check):
            assert no_canary(shown.text) and PASTED not in shown.text and "pw0rd-4711" not in shown.text


@pytest.mark.parametrize(
    "how",
    ["file", "legacy", "--set", "--set sanitized", "environment"],
)
def test_a_project_name_holding_a_secret_is_refused_with_file_line_and_key(project, how):
    lines = ["MODEL=org/m", "DATA_FILE=d.csv"]
    args: list[str] = []
    env = {"HF_TOKEN": CANARY}
    if how == "file":
        lines.append("PROJECT_NAME=proj-${HF_TOKEN}")
        where = "project.env:3: PROJECT_NAME"
    elif how == "legacy":
        lines.append('AUTOTRAIN_PROJECT_NAME="LDCC/2-$HF_TOKEN"')
        where = "project.env:3: AUTOTRAIN_PROJECT_NAME"
    elif how == "--set":
        args, where = ["--set", f"PROJECT_NAME=proj-{CANARY}"], "--set: PROJECT_NAME"
    elif how == "--set sanitized":  # already in the form AutoTrain would give it
        args, where = ["--set", f"PROJECT_NAME=proj-{sanitize_project_name(CANARY)}"], "--set: PROJECT_NAME"
    else:
        env["ATR_PROJECT_NAME"] = f"p{CANARY}"
        where = "environment (ATR_PROJECT_NAME): PROJECT_NAME"
    write(project / "project.env", "\n".join(lines) + "\n")
    commands = [["check"], ["command", "--json"]] + ([["command"], ["train", "--cpu"]] if how == "file" else [])
    for command in commands:
        result = atr(*command, ".", *args, cwd=project, env=env)
        assert result.code == 2, (command, result.text[-3000:])
        errors = [line for line in result.err.splitlines() if line.startswith("error: ")]
        assert errors == [
            f"error: {where}: holds the value of HF_TOKEN: the project name becomes the output folder's name "
            "and reaches AutoTrain; take the secret out of it"
        ], result.err
        assert no_canary(result.text) and "Traceback" not in result.text
    assert not (project / "runs").exists(), "no run folder, no output folder"


def test_a_project_folder_named_with_a_token_is_refused(tmp_path):
    project = tmp_path / f"x{PASTED}"
    write(project / "d.csv", "text\nhello\n")
    write(project / "project.env", "MODEL=org/m\nDATA_FILE=d.csv\n")
    result = atr("check", str(project))
    assert result.code == 2
    assert (
        "PROJECT_NAME: the project is named after its folder (or env file), and that name holds a secret" in result.err
    )
    assert PASTED not in result.text and sanitize_project_name(PASTED) not in result.text


def test_a_short_secret_interpolated_is_masked_whatever_its_length(project):
    write(project / "project.env", "MODEL=org/m\nDATA_FILE=d.csv\nSYSTEM_PROMPT=say ${MY_API_KEY} now\n")
    config = load_config(project, environ={"MY_API_KEY": "q7z"})
    assert config.get("SYSTEM_PROMPT") == f"say {MASK} now"
    assert any(p.key == "SYSTEM_PROMPT" and "the value of MY_API_KEY" in p.message for p in config.problems)


def test_the_trainer_inherits_no_secret_named_variable(project, monkeypatch):
    """Verified, not changed: train._child_env drops OPENAI_API_KEY and every other such name."""
    write(project / "project.env", "MODEL=org/m\nDATA_FILE=d.csv\n")
    for name, value in {"OPENAI_API_KEY": "sk-x", "AWS_SECRET_ACCESS_KEY": "a", "DB_PASSWORD": "p"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HF_TOKEN", CANARY)
    env = _child_env(load_config(project))
    assert not {"OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD"} & set(env)
    assert env["HF_TOKEN"] == CANARY, "the Hub token only, and only because the model is a Hub id"
    write(project / "model" / "config.json", "{}")
    write(project / "project.env", "MODEL=./model\nDATA_FILE=d.csv\n")
    local = _child_env(load_config(project))
    assert not {"OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "HF_TOKEN"} & set(local)
    assert CANARY not in json.dumps(local)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_url_password_is_never_echoed(project):
    write(project / "project.env", "MODEL=org/m\nDATA_FILE=d.csv\n")
    write(project / "prompts.txt", "안녕?\n")
    url = f"http://bob:pw0rd-4711@127.0.0.1:{_closed_port()}/v1"
    common = ("--base", "--backend", "openai", "--set", f"OPENAI_BASE_URL={url}")
    evaluated = atr("eval", str(project), *common, "--prompts", str(project / "prompts.txt"))
    assert evaluated.code == 1
    assert f"cannot reach {url.replace('bob:pw0rd-4711', MASK)}/chat/completions: ConnectError" in evaluated.err
    chatted = atr("chat", str(project), *common)
    assert f"at {url.replace('bob:pw0rd-4711', MASK)}/chat/completions" in chatted.out
    unreachable = atr("push", str(project), env={"HF_TOKEN": CANARY, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": url})
    for result in (evaluated, chatted, unreachable):
        assert "pw0rd-4711" not in result.text and CANARY not in result.text


@pytest.mark.slow
def test_train_keeps_interpolated_and_pasted_secrets_out_of_every_file(style_project):
    """The txt builder puts SYSTEM_PROMPT in every sample; USERNAME is an AutoTrain field (argv, params)."""
    env_file = style_project / "project.env"
    with env_file.open("a", encoding="utf-8") as handle:
        handle.write(
            f'SYSTEM_PROMPT="공감하며 답하세요${{HF_TOKEN}} {PASTED}한글"\nUSERNAME=me-${{HF_TOKEN}}\nEPOCHS=1\n'
        )
    env = {"HF_TOKEN": CANARY}
    built = atr("data", str(style_project), env=env)
    assert built.code == 0, built.text[-3000:]
    result = atr("train", str(style_project), "--run-id", "t1", "--cpu", env=env)
    assert result.code == 0, result.text[-3000:]
    run_dir = style_project / "runs" / "t1"
    record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    params = json.loads((run_dir / "params.json").read_text(encoding="utf-8"))
    assert params["username"] == record["params"]["username"] == f"me-{MASK}"
    assert record["argv"][record["argv"].index("--username") + 1] == f"me-{MASK}"
    assert "공감하며 답하세요*** ***한글" in (style_project.parent.parent / "datasets/style/train.csv").read_text()
    assert (run_dir / "style" / "training_params.json").is_file()
    needles = [CANARY, sanitize_project_name(CANARY), PASTED, CANARY[3:], PASTED[3:]]
    for path in style_project.parent.parent.rglob("*"):
        if path.is_file() and path != env_file:  # the user wrote PASTED there; nothing else may hold it
            data = path.read_bytes()
            assert not [n for n in needles if n.encode() in data], path
    for text in (built.text, result.text):
        assert not [n for n in needles if n in text]

"""Generated inputs that carry a token: env files in any Unicode encoding, table cells, file and
folder names. Whatever the shape, the token never reaches the terminal or a file atr writes; and
no `--out` target among a project's own files is ever overwritten.

In process (`cli.main`), like tests/test_properties.py; `ATR_HYPOTHESIS_EXAMPLES` sets the count.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autotrain_runner.cli import main as cli
from helpers import CANARY

EXAMPLES = int(os.environ.get("ATR_HYPOTHESIS_EXAMPLES", "100"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
# what a token is glued to or sits in: nothing, Hangul, quotes, separators, JSON and URL syntax
AROUND = st.sampled_from(["", "토큰", "'", '"', "=", ":", " ", ",", "\t", '{"v": "', "://u:", "@", "-", "\\"])
KEYS = st.sampled_from(["", "HF_TOKEN", "MODEL", "SYSTEM_PROMPT", "OPENAI API_KEY", "export ", "PROJECT_NAME"])
SEPARATORS = st.sampled_from(["=", ":", " ", '="', "='", ""])


def _token_line() -> st.SearchStrategy[str]:
    return st.builds(lambda k, s, a, b: f"{k}{s}{a}{CANARY}{b}", KEYS, SEPARATORS, AROUND, AROUND)


ENV_LINES = st.lists(
    st.one_of(_token_line(), st.sampled_from(["MODEL=org/model", "DATA_FILE=d.csv", "# note", "", "EPOCHS=2"])),
    min_size=1,
    max_size=8,
)


def _run(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _never_shown(text: str) -> None:
    """Not the token, nor any 17 characters of it (an error that quotes 60 bytes of a UTF-16 line
    shows half of one), NUL bytes or not."""
    plain = text.replace("\x00", "")
    assert not any(CANARY[i : i + 17] in plain for i in range(len(CANARY) - 16)), plain[-2000:]


@pytest.fixture(autouse=True)
def _cwd_and_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_TOKEN", raising=False)


@SETTINGS
@given(ENV_LINES, ENCODINGS)
def test_a_token_anywhere_in_an_env_file_in_any_encoding_is_never_shown(capsys, lines, encoding):
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "p"
        project.mkdir()
        (project / "d.csv").write_text("text\n안녕\n", encoding="utf-8")
        (project / "project.env").write_bytes("\r\n".join(lines).encode(encoding))
        for command in ("check", "command"):
            code, text = _run(capsys, command, str(project))
            assert code in (0, 2), text
            assert "Traceback" not in text
            _never_shown(text)


CELL = st.builds(lambda a, b: f"{a}{CANARY}{b}", AROUND, st.sampled_from(["", "한글", "?", " 답"]))


@SETTINGS
@given(
    st.lists(
        st.tuples(st.one_of(CELL, st.just("안녕?")), st.one_of(CELL, st.just("안녕하세요"))), min_size=1, max_size=4
    ),
    st.sampled_from(["qa.csv", f"{CANARY}.csv", f"raw-{CANARY}/qa.csv", f"토큰{CANARY}/qa.csv"]),
    ENCODINGS,
    st.sampled_from(["error", "skip"]),
)
def test_a_token_in_training_data_or_a_file_name_never_reaches_the_dataset_or_the_terminal(
    capsys, rows, raw_name, encoding, on_bad_rows
):
    import csv
    import io

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project = root / "projects" / "p"
        raw = project / raw_name
        raw.parent.mkdir(parents=True)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["질문", "답변"])
        writer.writerows([*rows, ("뭐해?", "미니홈피 꾸며여")])
        raw.write_bytes(buffer.getvalue().encode(encoding))
        (project / "project.env").write_text(
            "MODEL=org/model\nDATA_BUILDER=table\nPROMPT_COLUMN=질문\nRESPONSE_COLUMN=답변\nSPLIT=1,0,0\n"
            f"RAW_DATA={raw_name}\nON_BAD_ROWS={on_bad_rows}\n",
            encoding="utf-8",
        )
        code, text = _run(capsys, "data", str(project))
        assert code in (0, 2), text
        assert "Traceback" not in text
        _never_shown(text)
        for path in (root / "datasets").rglob("*") if (root / "datasets").exists() else ():
            if path.is_file():
                _never_shown(path.read_text(encoding="utf-8"))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@SETTINGS
@given(
    st.sampled_from(["project.env", "qa.csv", "runs/r1/run.json", "runs/r1", "runs/new.html", "/dev/null"]),
    st.sampled_from(["report", "eval"]),
)
def test_no_out_target_among_the_projects_own_files_is_overwritten(capsys, target, command):
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "p"
        (project / "runs" / "r1").mkdir(parents=True)
        (project / "qa.csv").write_text("질문,답변\n안녕?,안녕하세요\n", encoding="utf-8")
        (project / "project.env").write_text(
            "MODEL=org/model\nDATA_BUILDER=table\nRAW_DATA=qa.csv\nPROMPT_COLUMN=질문\nRESPONSE_COLUMN=답변\n",
            encoding="utf-8",
        )
        (project / "runs" / "r1" / "run.json").write_text('{"id": "r1", "status": "running"}', encoding="utf-8")
        owned = [p for p in project.rglob("*") if p.is_file()]
        before = {p: _digest(p) for p in owned}
        out = target if target.startswith("/") else str(project / target)
        args = ["report", str(project), "--out", out] if command == "report" else ["eval", str(project), "--out", out]
        code, text = _run(capsys, *args)
        assert code == 2, text
        assert "Traceback" not in text
        assert {p: _digest(p) for p in owned} == before
        assert Path("/dev/null").is_char_device()

"""What the tests share besides fixtures: running the real `atr`, writing projects, the env files
and the canary token. Fixtures stay in conftest.py; tests import these from here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

CANARY = "hf_canaryTOKENcanaryTOKENcanary12345"

# The legacy env file from DESIGN.md, unchanged (token removed there too).
LEGACY_ENV = """\
PROJECT_ID=${PROJECT_ID:="202021013"}
AUTOTRAIN_PROJECT_NAME="LDCC/2-${PROJECT_ID}"
MODEL_NAME="LDCC/LDCC-Instruct-Llama-2-ko-13B-v1.4"
DATA_PATH="src/202021013/dataset"
DATA_FILE="src/202021013/dataset/output.csv"
TEXT_COLUMM="text"
LEARNING_RATE=2e-4
NUM_EPOCHS=2
BATCH_SIZE=2
BLOCK_SIZE=1024
TRAINER="sft"
WARMUP_RATIO=0.1
WEIGHT_DECAY=0.01
GRADIENT_ACCUMULATION=4
USE_FP16="True"
USE_PEFT="True"
USE_INT4="True"
LORA_R=16
LORA_ALPHA=32
LORA_DROPOUT=0.05
PUSH_TO_HUB="False"
HF_TOKEN=${HF_TOKEN:="hf_xxxxxxxx"}
REPO_ID="username/repo_name"
"""


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def offline_env(patch, basetemp: Path) -> None:
    """The environment every test runs `atr` in: offline, CI, one cache for the session, no token."""
    patch.setenv("HF_HUB_OFFLINE", "1")
    patch.setenv("CI", "true")
    patch.setenv("ATR_CACHE_DIR", str(basetemp / "atr-cache"))
    for key in list(os.environ):
        if "TOKEN" in key or key in ("EPOCHS", "LR", "MODEL", "DATA_PATH", "BATCH_SIZE", "PROJECT_ID"):
            patch.delenv(key, raising=False)


def atr(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 600) -> Result:
    """Run the real `atr` in a child process, as a user would."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "autotrain_runner", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def read_events(response) -> list[dict]:
    """Server-sent events (`data: {json}` lines) up to `data: [DONE]`, from an HTTP response."""
    import json

    events = []
    for raw in response:
        line = raw.decode().strip()
        if not line:
            continue
        assert line.startswith("data: "), line
        if line == "data: [DONE]":
            return events
        events.append(json.loads(line[6:]))
    raise AssertionError(f"no data: [DONE] after {len(events)} events")


def sigint_default() -> None:
    # A background job of a non-interactive shell starts with SIGINT ignored, and a child inherits
    # that: the runner then rightly ignores Ctrl-C. A test of Ctrl-C gives its child the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Background:
    """The real `atr` started in the background, with SIGINT at its default whatever the suite
    inherited; its output goes to a file (a pipe nobody reads would fill and stall it)."""

    def __init__(self, *args: str, new_session: bool = False):
        import tempfile

        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - open for the life of the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "autotrain_runner", *args],
            stdout=self._output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=sigint_default,
            start_new_session=new_session,
        )
        self.pid = self.process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def send_signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def finish(self, timeout: float) -> tuple[int, str]:
        """Wait for the exit; the exit code and everything it printed."""
        code = self.process.wait(timeout=timeout)
        with self._output:
            self._output.seek(0)
            return code, self._output.read().decode("utf-8", errors="replace")


def start_atr(*args: str, new_session: bool = False) -> Background:
    return Background(*args, new_session=new_session)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def style_rows(n: int = 40) -> list[str]:
    questions = ["오늘 날씨 어때?", "저녁 뭐 먹지?", "주말에 뭐 할까?", "기분이 우울해", "추천할 노래 있어?"]
    return [f"### 질문: {questions[i % 5]} {i}\n### 답변: 싸이월드 감성으로 답해 볼게요~* {i}" for i in range(n)]


def write_csv(path: Path, rows: list[str], column: str = "text") -> Path:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([column])
        writer.writerows([r] for r in rows)
    return path


def style_txt(n: int = 40) -> str:
    """The txt style corpus: question and answer pairs that `DATA_BUILDER=txt` builds into rows."""
    return "".join(f"Q: 질문 {i} 오늘 어때?\nA: 싸이월드 감성으로 답해여~* {i}\n\n" for i in range(n))


def style_project_in(root: Path, env: str) -> Path:
    """ROOT/projects/style with the txt style corpus and `env` as its project.env (its dataset goes
    to ROOT/datasets/style)."""
    project = root / "projects" / "style"
    write(project / "style.txt", style_txt())
    write(project / "project.env", env)
    return project


TINY_ENV = """\
PROJECT_NAME=tiny-test
MODEL={model}
DATA_FILE=style.csv
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
"""


STYLE_ENV = """\
MODEL={model}
DATA_BUILDER=txt
RAW_DATA=style.txt
PROMPT_TEMPLATE=instruct-ko
TRAINER=sft
PEFT=true
QUANTIZATION=none
LORA_R=4
LORA_ALPHA=8
BLOCK_SIZE=64
BATCH_SIZE=2
GRADIENT_ACCUMULATION=1
LR=1e-3
"""


# One real training shared by the tests that only need a finished run (read it, evaluate it, push or
# merge it): `style_project`'s project with a Hub owner and short generations, run `r1`.
TRAINED_ENV = STYLE_ENV + "USERNAME=me\nMAX_NEW_TOKENS=8\nEVAL_BATCH_SIZE=4\n"

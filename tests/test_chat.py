"""`atr chat` driven through a real pseudo-terminal, as a person types."""

import os
import pty
import select
import signal
import subprocess
import sys
import time

import pytest

from helpers import sigint_default, write, write_csv
from tinymodel import build_tiny_model


def read_until(fd: int, marker: str, timeout: float = 120) -> str:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker.encode() not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no {marker!r} within {timeout} s; the terminal showed:\n{seen.decode(errors='replace')}"
            )
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen.decode(errors="replace")


def test_chat_in_a_pseudo_terminal(tmp_path, tiny_model):
    write_csv(tmp_path / "d.csv", ["x"])
    write(tmp_path / "project.env", f"MODEL={tiny_model}\nDATA_FILE=d.csv\nMAX_NEW_TOKENS=6\n")
    leader, child = start_chat(tmp_path)
    try:
        banner = read_until(leader, "you> ")
        assert "template instruct-ko" in banner and "/reset" in banner
        os.write(leader, "안녕하세요\n".encode())
        answer = read_until(leader, "you> ")
        assert "bot> " in answer
        assert "warning: no end of answer within MAX_NEW_TOKENS=6" in answer, "a random model never stops"
        os.write(leader, b"/reset\n")
        assert "(conversation reset)" in read_until(leader, "you> ")
        os.write(leader, "종료\n".encode())
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            child.kill()
        os.close(leader)


@pytest.fixture(scope="module")
def long_context_model(tmp_path_factory):
    """The tiny Llama with a context of 32,768: a random model that never stops, answering for minutes."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-long"), context=32768)


def start_chat(project):
    """`atr chat --base` on a pseudo-terminal, as a person runs it; the terminal's side and the child."""
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "autotrain_runner", "chat", str(project), "--base"],
        stdin=follower,
        stdout=follower,
        stderr=subprocess.STDOUT,
        close_fds=True,
        preexec_fn=sigint_default,
    )
    os.close(follower)
    return leader, child


def test_ctrl_c_stops_the_answer_at_once_and_a_second_one_at_the_prompt_leaves(tmp_path, long_context_model):
    write_csv(tmp_path / "d.csv", ["x"])
    write(tmp_path / "project.env", f"MODEL={long_context_model}\nDATA_FILE=d.csv\nMAX_NEW_TOKENS=30000\n")
    leader, child = start_chat(tmp_path)
    try:
        read_until(leader, "you> ")
        os.write(leader, "안녕하세요\n".encode())
        read_until(leader, "bot> ")
        time.sleep(1)  # some of the answer shown
        child.send_signal(signal.SIGINT)
        answer = read_until(leader, "you> ", timeout=120)
        assert "(stopped; Ctrl-C at the prompt leaves)" in answer, answer[-2000:]
        # 30,000 tokens were asked for: far fewer were shown before the stop
        assert len(answer) < 30000, len(answer)
        assert child.poll() is None, "the first Ctrl-C only stops the answer"
        os.write(leader, "다시\n".encode())  # the model is free: the next answer starts
        read_until(leader, "bot> ")
        child.send_signal(signal.SIGINT)
        read_until(leader, "you> ", timeout=120)
        child.send_signal(signal.SIGINT)  # at the prompt: leave
        assert child.wait(timeout=60) == 130
    finally:
        if child.poll() is None:
            child.kill()
        os.close(leader)


def test_a_message_past_the_context_and_bytes_that_are_not_utf8_are_refused_at_once(tmp_path, tiny_model):
    write_csv(tmp_path / "d.csv", ["x"])
    write(tmp_path / "project.env", f"MODEL={tiny_model}\nDATA_FILE=d.csv\nMAX_NEW_TOKENS=6\n")
    lines = b"\xff\xfe not utf-8 \xc3\n" + ("안녕 " * 40000).encode() + b"\n" + "종료\n".encode()
    done = subprocess.run(
        [sys.executable, "-m", "autotrain_runner", "chat", str(tmp_path), "--base"],
        input=lines,
        capture_output=True,
        timeout=300,
        check=False,
    )
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    assert "(that line is not UTF-8 text; set the terminal to UTF-8 and type it again)" in out
    assert "(not sent: This model's maximum context length is 256 tokens." in out
    assert "Traceback" not in out + done.stderr.decode()

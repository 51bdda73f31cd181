"""`atr chat` driven through a real pseudo-terminal, as a person types."""

import os
import pty
import select
import subprocess
import sys
import time

from conftest import write, write_csv


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
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "autotrain_runner", "chat", str(tmp_path), "--base"],
        stdin=follower,
        stdout=follower,
        stderr=subprocess.DEVNULL,
        close_fds=True,
    )
    os.close(follower)
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

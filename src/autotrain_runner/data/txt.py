"""`txt`: a style corpus in plain text, in one of three documented layouts (`TXT_FORMAT`).

- `qa` (default): blocks separated by blank lines; a line starting with `TXT_Q_MARKER`
  (default `Q:`) starts the question, one starting with `TXT_A_MARKER` (default `A:`) the
  answer; either may continue over several lines.
- `tsv`: one `question<TAB>answer` pair per line.
- `lines`: one styled line per row; each becomes the answer to `TXT_INSTRUCTION`.

A line that shows nothing (spaces, U+3000, zero-width characters) is a blank line.

The pairs are also written as `pairs.json` (alpaca shape) beside the dataset, to inspect or
hand-edit and rebuild with `DATA_BUILDER=alpaca`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from autotrain_runner.config.envfile import display_path
from autotrain_runner.data.base import BadRows, Options, Sample, is_blank, with_system
from autotrain_runner.data.readers import read_text
from autotrain_runner.errors import ConfigError

SUFFIXES = (".txt",)
FORMATS = ("qa", "tsv", "lines")


def build(inputs: list[Path], options: Options, bad: BadRows) -> Iterator[Sample]:
    layout = options.get("TXT_FORMAT", "qa")
    system = options.get("SYSTEM_PROMPT")
    instruction = options.get("TXT_INSTRUCTION")
    if layout == "lines" and not instruction:
        raise ConfigError("TXT_FORMAT=lines needs TXT_INSTRUCTION, the request each styled line answers")
    for path in inputs:
        text, _ = read_text(path)
        pairs = {"qa": _qa_blocks, "tsv": _tsv_lines, "lines": _styled_lines}[layout]
        for where, question, answer in pairs(path, text, options):
            question = (instruction if layout == "lines" else question) or ""
            if is_blank(question) or is_blank(answer):
                bad.add(where, f"empty {'question' if is_blank(question) else 'answer'}")
                continue
            turns = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            yield Sample(with_system(system, turns), where, where)


def _qa_blocks(path: Path, text: str, options: Options):
    q_marker, a_marker = options.get("TXT_Q_MARKER", "Q:"), options.get("TXT_A_MARKER", "A:")
    name = display_path(path)
    block: list[tuple[int, str]] = []
    for number, line in enumerate([*text.splitlines(), ""], 1):
        if not is_blank(line):
            block.append((number, line))
            continue
        if block:
            yield _qa_pair(name, block, q_marker, a_marker)
            block = []


def _qa_pair(name: str, block: list[tuple[int, str]], q_marker: str, a_marker: str):
    where = f"{name}:{block[0][0]}"
    question: list[str] = []
    answer: list[str] = []
    current = None
    for _, line in block:
        stripped = line.strip()
        if stripped.startswith(q_marker):
            current, stripped = question, stripped[len(q_marker) :].strip()
        elif stripped.startswith(a_marker):
            current, stripped = answer, stripped[len(a_marker) :].strip()
        if current is None:
            return where, "", ""  # text before any marker: reported as an empty question
        current.append(stripped)
    return where, "\n".join(question).strip(), "\n".join(answer).strip()


def _tsv_lines(path: Path, text: str, options: Options):
    name = display_path(path)
    for number, line in enumerate(text.splitlines(), 1):
        if is_blank(line):
            continue
        question, tab, answer = line.partition("\t")
        yield f"{name}:{number}", question.strip() if tab else "", answer.strip()


def _styled_lines(path: Path, text: str, options: Options):
    name = display_path(path)
    for number, line in enumerate(text.splitlines(), 1):
        if not is_blank(line):
            yield f"{name}:{number}", "", line.strip()

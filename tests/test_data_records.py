"""`atr data` on records of the wrong shape: every one a bad row naming the file, the record and the
field (exit 2, or dropped and counted with ON_BAD_ROWS=skip), never a traceback, never text made
from a value that is no text; spreadsheets read whole or refused; invisible text is empty."""

from __future__ import annotations

import copy
import csv
import json
import os
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from autotrain_runner.data import emotion, summary
from autotrain_runner.data.base import BadRows, Options, conversation_problem
from autotrain_runner.errors import ConfigError
from helpers import atr, write

FIXTURES = Path(__file__).parent / "fixtures"
SUMMARY_ITEM = json.loads((FIXTURES / "dialogue_summary.json").read_text(encoding="utf-8"))["data"][0]
EMOTION_RECORD = json.loads((FIXTURES / "emotion_dialogue.json").read_text(encoding="utf-8"))[0]


def project(tmp_path: Path, env: str, **files: Any) -> Path:
    """projects/p with its env file and raw files (text, or JSON-able values written as JSON)."""
    folder = tmp_path / "projects" / "p"
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        write(folder / name.replace("__", "."), text)
    write(folder / "project.env", "MODEL=org/model\n" + env)
    return folder


def errors_of(result) -> list[str]:
    return [line for line in result.err.splitlines() if line.startswith("error: ")]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def conversations(out: Path) -> list[list[dict]]:
    """Every conversation of a built dataset (SPLIT=1,0,0 keeps them all in train.jsonl, chatml)."""
    return [r["messages"] for r in read_jsonl(out / "train.jsonl")]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def skip_on(p: Path) -> None:
    write(p / "project.env", (p / "project.env").read_text() + "ON_BAD_ROWS=skip\n")


def summary_item(change) -> dict:
    item = copy.deepcopy(SUMMARY_ITEM)
    change(item)
    return item


def test_summary_items_of_the_wrong_shape_are_named_and_the_previous_dataset_stays(tmp_path):
    good = {"numberOfItems": 1, "data": [SUMMARY_ITEM]}
    p = project(tmp_path, "DATA_BUILDER=dialogue_summary\nRAW_DATA=c.json\n", c__json=good)
    assert atr("data", str(p), cwd=tmp_path).code == 0
    out = tmp_path / "datasets" / "p"
    before = snapshot(out)

    broken = [
        (lambda i: i["body"].update(dialogue=None), "body.dialogue: expected a list, got null"),
        (lambda i: i["body"].update(dialogue="안녕"), "body.dialogue: expected a list, got string"),
        (lambda i: i.update(header=[]), "header: expected an object, got list"),
        (
            lambda i: i["body"]["dialogue"][2].update(utterance=5),
            "body.dialogue[2].utterance: expected a string, got int",
        ),
        (lambda i: i["header"].update(dialogueInfo="x"), "header.dialogueInfo: expected an object, got string"),
        (lambda i: i["body"]["dialogue"][1].pop("participantID"), "body.dialogue[1].participantID: missing"),
        (
            lambda i: i["body"]["dialogue"][0].update(participantID=None),
            "body.dialogue[0].participantID: expected a string, got null",
        ),
        (lambda i: i["body"].update(summary=["요약"]), "body.summary: expected a string, got list"),
        (lambda i: i["body"].update(summary="\u3000\u200b\ufeff"), "empty summary"),
    ]
    items = [SUMMARY_ITEM, *(summary_item(change) for change, _ in broken), "not an item"]
    write(p / "c.json", json.dumps({"numberOfItems": len(items), "data": items}, ensure_ascii=False))
    result = atr("data", str(p), cwd=tmp_path)
    assert result.code == 2, result.text
    assert "Traceback" not in result.err
    expected = [f"error: projects/p/c.json[item {n}]: {line}" for n, (_, line) in enumerate(broken, 1)]
    expected.append("error: projects/p/c.json[item 10]: expected an object, got string")
    assert errors_of(result) == [
        *expected,
        "error: ON_BAD_ROWS: fix them, or set ON_BAD_ROWS=skip to drop and count them",
    ]
    assert snapshot(out) == before, "the previous dataset stays as it was"

    skip_on(p)
    skipped = atr("data", str(p), cwd=tmp_path)
    assert skipped.code == 0, skipped.text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"]["read"] == 11 and manifest["rows"]["kept"] == 1
    assert manifest["rows"]["dropped"] == {
        "invalid body.dialogue": 2,
        "invalid header": 1,
        "invalid body.dialogue[].utterance": 1,
        "invalid header.dialogueInfo": 1,
        "invalid body.dialogue[].participantID": 2,
        "invalid body.summary": 1,
        "empty summary": 1,
        "invalid record": 1,
    }


def test_summary_utterances_that_show_nothing_are_not_turns(tmp_path):
    item = summary_item(lambda i: i["body"]["dialogue"][1].update(utterance="\u200b\u3000"))
    only_blank = summary_item(lambda i: [u.update(utterance="\ufeff \u3164") for u in i["body"]["dialogue"]])
    corpus = {"numberOfItems": 2, "data": [item, only_blank]}
    env = "DATA_BUILDER=dialogue_summary\nRAW_DATA=c.json\nON_BAD_ROWS=skip\nSPLIT=1,0,0\nPROMPT_TEMPLATE=chatml\n"
    p = project(tmp_path, env, c__json=corpus)
    result = atr("data", str(p), cwd=tmp_path)
    assert result.code == 0, result.text
    assert "dropped: empty dialogue 1" in result.out
    [[user, _]] = conversations(tmp_path / "datasets" / "p")
    assert user["content"].endswith("P01: #@이름# 주말에 뭐 해?\nP02: 좋아! #@주소# 근처 어때?\nP01: ㅇㅋ")


def test_emotion_json_records_of_the_wrong_shape_are_named(tmp_path):
    def record(**changes) -> dict:
        return {**copy.deepcopy(EMOTION_RECORD), **changes}

    turns = {"HS01": "안녕", "SS01": "반가워요"}
    broken = [
        ({"talk": [1, 2]}, "talk: expected an object, got list"),
        ({"HS01": 5}, "talk: missing"),
        (record(profile="E18"), "profile: expected an object, got string"),
        (record(profile=["E18"]), "profile: expected an object, got list"),
        (record(profile={"emotion": "E18"}), "profile.emotion: expected an object, got string"),
        (record(profile={"emotion": {"type": 18}}), "profile.emotion.type: expected a string, got int"),
        ({"talk": {"content": {**turns, "SS01": 5}}}, "talk.content.SS01: expected a string, got int"),
        ({"talk": {"content": {**turns, "HS1": "또"}}}, "talk.content: HS01 and HS1 are the same turn"),
        (
            {"talk": {"id": {"talk-id": {}}, "content": turns}},
            "talk.id.talk-id: expected a string or an integer, got object",
        ),
        ({"talk": {"content": {"HS01": "\u200b", "SS01": "네"}}}, "no complete user/system turn"),
    ]
    p = project(
        tmp_path,
        "DATA_BUILDER=emotion_dialogue\nRAW_DATA=c.json\nPROMPT_TEMPLATE=chatml\nSPLIT=1,0,0\n",
        c__json=[EMOTION_RECORD, *(r for r, _ in broken)],
    )
    result = atr("data", str(p), cwd=tmp_path)
    assert result.code == 2, result.text
    assert "Traceback" not in result.err
    assert errors_of(result)[:-1] == [
        f"error: projects/p/c.json[item {n}]: {line}" for n, (_, line) in enumerate(broken, 1)
    ]
    skip_on(p)
    skipped = atr("data", str(p), cwd=tmp_path)
    assert skipped.code == 0, skipped.text
    assert "rows read 11, kept 1, dropped: invalid talk 2, invalid profile 2, invalid profile.emotion 1" in skipped.out


def test_emotion_turns_pair_by_their_whole_number(tmp_path):
    """Ten turns and more: question 1 is answered by answer 1, never by answer 11."""
    header = ["번호", *(f"{who}{n}" for n in range(1, 12) for who in ("사람문장", "시스템응답"))]
    row = ["1", *(f"{who} {n}" for n in range(1, 12) for who in ("표 질문", "표 답"))]
    content = {f"{who}S{n}": f"{'질문' if who == 'H' else '답'} {n}" for n in range(1, 12) for who in "HS"}
    env = "DATA_BUILDER=emotion_dialogue\nRAW_DATA=raw\nPROMPT_TEMPLATE=chatml\nSPLIT=1,0,0\nSYSTEM_PROMPT=공감\n"
    p = project(tmp_path, env)
    # HS1 ... HS11, without zero padding
    write(p / "raw" / "t.json", json.dumps([{"talk": {"id": {"talk-id": "t1"}, "content": content}}]))
    with (p / "raw" / "t.csv").open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, row])
    result = atr("data", str(p), cwd=tmp_path)
    assert result.code == 0, result.text

    def dialogue(question: str, answer: str) -> list[dict]:
        turns = [{"role": "system", "content": "공감"}]
        for n in range(1, 12):
            turns += [{"role": "user", "content": f"{question} {n}"}, {"role": "assistant", "content": f"{answer} {n}"}]
        return turns

    assert conversations(tmp_path / "datasets" / "p") == [dialogue("표 질문", "표 답"), dialogue("질문", "답")]

    # 시스템응답1 beside 시스템문장1: which one answers is a guess, so the table is refused
    with (p / "raw" / "t.csv").open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([[*header, "시스템문장1"], [*row, "다른 답"]])
    refused = atr("data", str(p), cwd=tmp_path)
    assert refused.code == 2
    assert errors_of(refused) == [
        "error: projects/p/raw/t.csv: columns '시스템응답1' and '시스템문장1' are the same turn; remove or rename one"
    ]


@pytest.mark.parametrize(
    ("builder", "name", "records", "expected"),
    [
        (
            "sharegpt",
            "s.jsonl",
            [
                {"conversations": [{"from": "human", "value": "질문"}, {"from": "gpt", "value": None}]},
                {"conversations": [{"from": "human", "value": ["질문", "둘"]}, {"from": "gpt", "value": "답"}]},
                {"conversations": [{"from": "human", "value": 7}, {"from": "gpt", "value": "답"}]},
            ],
            [
                "s.jsonl:2: conversations[1].value: expected a string, got null",
                "s.jsonl:3: conversations[0].value: expected a string, got list",
                "s.jsonl:4: conversations[0].value: expected a string, got int",
            ],
        ),
        (
            "alpaca",
            "a.json",
            [
                {"instruction": {"text": "질문"}, "output": "답"},
                {"instruction": "질문", "output": "답", "history": [["전 질문", None]]},
                {"instruction": "질문", "output": 42},
                {"instruction": "질문"},
                {"instruction": "과제", "instances": [{"input": "입력", "output": ["답"]}]},
            ],
            [
                "a.json[item 1]: instruction: expected a string, got object",
                "a.json[item 2]: history[0][1]: expected a string, got null",
                "a.json[item 3]: output: expected a string, got int",
                "a.json[item 4]: output: missing",
                "a.json[item 5][instance 0]: output: expected a string, got list",
            ],
        ),
        (
            "messages",
            "m.jsonl",
            [
                {"messages": [{"role": "user", "content": "질문"}, {"role": "assistant", "content": None}]},
                {"messages": [{"role": "user", "content": [{"type": "text", "text": "질문"}]}]},
                {"messages": [{"role": "user", "content": "\u200b\u3000"}, {"role": "assistant", "content": "답"}]},
                {"messages": [{"role": "user", "content": "질문"}, {"role": "assistant", "content": "\ufeff"}]},
            ],
            [
                "m.jsonl:2: messages[1].content: expected a string, got null",
                "m.jsonl:3: messages[0].content: expected a string, got list",
                "m.jsonl:4: empty user message",
                "m.jsonl:5: empty assistant message",
            ],
        ),
        (
            "table",
            "t.jsonl",
            [
                {"prompt": {"q": "질문"}, "response": "답"},
                {"prompt": "질문", "response": ["답"]},
                {"prompt": 5, "response": "답"},
                {"prompt": "\u3000", "response": "답"},
            ],
            [
                "t.jsonl:2: prompt: expected a string, got object",
                "t.jsonl:3: response: expected a string, got list",
                "t.jsonl:4: prompt: expected a string, got int",
                "t.jsonl:5: empty prompt",
            ],
        ),
    ],
)
def test_a_value_that_is_no_text_is_a_bad_row_never_text(tmp_path, builder, name, records, expected):
    first = {
        "sharegpt": {"conversations": [{"from": "human", "value": "좋은 질문"}, {"from": "gpt", "value": "좋은 답"}]},
        "alpaca": {"instruction": "좋은 질문", "input": None, "output": "좋은 답"},
        "messages": {
            "messages": [{"role": "user", "content": "좋은 질문"}, {"role": "assistant", "content": "좋은 답"}]
        },
        "table": {"prompt": "좋은 질문", "response": "좋은 답"},
    }[builder]
    rows = [first, *records]
    text = json.dumps(rows, ensure_ascii=False) if name.endswith(".json") else "\n".join(json.dumps(r) for r in rows)
    env = f"DATA_BUILDER={builder}\nRAW_DATA={name}\nPROMPT_TEMPLATE=chatml\nSPLIT=1,0,0\n"
    p = project(tmp_path, env, **{name.replace(".", "__"): text})
    result = atr("data", str(p), cwd=tmp_path)
    assert result.code == 2, result.text
    assert errors_of(result)[:-1] == [f"error: projects/p/{line}" for line in expected]
    skip_on(p)
    skipped = atr("data", str(p), cwd=tmp_path)
    assert skipped.code == 0, skipped.text
    [kept] = conversations(tmp_path / "datasets" / "p")
    assert [m["content"] for m in kept] == ["좋은 질문", "좋은 답"]
    manifest = json.loads((tmp_path / "datasets/p/manifest.json").read_text())
    assert sum(manifest["rows"]["dropped"].values()) == len(records)


def test_summary_speakers_must_be_named(tmp_path):
    """An utterance without its participantID was rendered `None: ...`."""
    unnamed = summary_item(lambda i: [u.pop("participantID") for u in i["body"]["dialogue"]])
    blank = summary_item(lambda i: i["body"]["dialogue"][2].update(participantID="\u3000"))
    p = project(tmp_path, "DATA_BUILDER=dialogue_summary\nRAW_DATA=c.json\n", c__json={"data": [unnamed, blank]})
    result = atr("data", str(p), cwd=tmp_path)
    assert result.code == 2
    assert errors_of(result)[:2] == [
        "error: projects/p/c.json[item 0]: body.dialogue[0].participantID: missing",
        "error: projects/p/c.json[item 1]: body.dialogue[2].participantID: empty",
    ]
    assert "None:" not in result.text


def workbook(path: Path, sheets: dict[str, list[list[Any]]]) -> Path:
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def test_every_sheet_with_the_first_header_is_read_and_another_header_is_refused(tmp_path):
    p = project(tmp_path, "DATA_BUILDER=table\nRAW_DATA=q.xlsx\nPROMPT_TEMPLATE=chatml\nSPLIT=1,0,0\n")
    workbook(
        p / "q.xlsx",
        {
            "1월": [["prompt", "response"], ["질문 1", "답 1"]],
            "빈 시트": [],
            "2월": [["prompt", "response"], ["질문 2", 5]],  # a number in a cell is its text
        },
    )
    result = atr("data", str(p), cwd=tmp_path)
    assert result.code == 0, result.text
    out = tmp_path / "datasets" / "p"
    assert [[m["content"] for m in c] for c in conversations(out)] == [["질문 1", "답 1"], ["질문 2", "5"]]
    assert [r["source"] for r in read_jsonl(out / "train-eval.jsonl")] == [
        "projects/p/q.xlsx[1월]:row 2",
        "projects/p/q.xlsx[2월]:row 2",
    ]

    workbook(
        p / "q.xlsx",
        {
            "1월": [["prompt", "response"], ["질문 1", "답 1"]],
            "메모": [["note"], ["이 시트는 데이터가 아님"]],
            "2월": [["prompt", "response"], ["질문 2", "답 2"]],
        },
    )
    before = snapshot(out)
    refused = atr("data", str(p), cwd=tmp_path)
    assert refused.code == 2
    assert errors_of(refused) == [
        "error: projects/p/q.xlsx: sheet '메모' has another header than sheet '1월'; set SHEET= to the sheets "
        "to read, which share one header (sheets: 1월, 메모, 2월)"
    ]
    assert snapshot(out) == before

    write(p / "project.env", (p / "project.env").read_text() + "SHEET=2월\n")
    chosen = atr("data", str(p), cwd=tmp_path)
    assert chosen.code == 0, chosen.text
    assert [[m["content"] for m in c] for c in conversations(out)] == [["질문 2", "답 2"]]

    write(p / "project.env", (p / "project.env").read_text() + "SHEET=3월, 1월\n")
    missing = atr("data", str(p), cwd=tmp_path)
    assert missing.code == 2
    assert errors_of(missing) == ["error: projects/p/q.xlsx: SHEET: no sheet '3월' here (sheets: 1월, 메모, 2월)"]


def test_the_sheets_read_are_recorded_for_the_manifest(tmp_path):
    path = workbook(
        tmp_path / "e.xlsx",
        {"A": [["사람문장1", "시스템응답1"], ["질문", "답"]], "B": [], "C": [["사람문장1", "시스템응답1"]]},
    )
    options = Options({}, tmp_path)
    samples = list(emotion.build([path], options, BadRows("error")))
    assert len(samples) == 1
    assert options.read == {path: {"sheets": ["A", "C"]}}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("qa.csv", "error: projects/p/qa.csv:row 1: column 'response' appears more than once in the header"),
        ("qa.xlsx", "error: projects/p/qa.xlsx:row 1: column 'response' appears more than once in the header"),
    ],
)
def test_a_column_named_twice_is_refused(tmp_path, name, expected):
    p = project(tmp_path, f"DATA_BUILDER=table\nRAW_DATA={name}\n")
    rows = [["prompt", "response", "response "], ["질문", "첫 답", "둘째 답"]]
    if name.endswith(".xlsx"):
        workbook(p / name, {"Sheet": rows})
    else:
        with (p / name).open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows(rows)
    result = atr("data", str(p), cwd=tmp_path)
    assert result.code == 2
    assert [line.split(";")[0] for line in errors_of(result)] == [expected]


def test_text_that_shows_nothing_is_empty_and_normal_forms_are_duplicates(tmp_path):
    question = "한글 질문"
    nfd = unicodedata.normalize("NFD", question)
    assert nfd != question
    lines = [
        {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": "답"}]},
        {"messages": [{"role": "user", "content": nfd}, {"role": "assistant", "content": "답"}]},
        *(
            {"messages": [{"role": "user", "content": "질문"}, {"role": "assistant", "content": blank}]}
            for blank in ("\u200b", "\u3000\u3000", "\ufeff", "\u3164", "\u2060\u200d", "\u00a0\u180e")
        ),
    ]
    p = project(
        tmp_path,
        "DATA_BUILDER=messages\nRAW_DATA=m.jsonl\nPROMPT_TEMPLATE=chatml\nSPLIT=1,0,0\nON_BAD_ROWS=skip\n",
        m__jsonl="\n".join(json.dumps(line, ensure_ascii=False) for line in lines),
    )
    result = atr("data", str(p), cwd=tmp_path)
    assert result.code == 0, result.text
    assert "rows read 8, kept 1, dropped: empty assistant message 6, duplicate 1" in result.out
    assert conversations(tmp_path / "datasets" / "p")[0][0]["content"] == question, "the first one, as written"

    txt = project(tmp_path / "txt", "DATA_BUILDER=txt\nRAW_DATA=s.txt\n", s__txt="Q: 질문\nA: \u200b\u3000\n")
    refused = atr("data", str(txt), cwd=tmp_path / "txt")
    assert refused.code == 2
    assert errors_of(refused)[0] == "error: projects/p/s.txt:1: empty answer"


# --- property: malformed AI Hub records never crash a build

FAST = int(os.environ.get("ATR_HYPOTHESIS_EXAMPLES", "200"))
SLOW = int(os.environ.get("ATR_HYPOTHESIS_EXAMPLES", "2000"))
FAST_SETTINGS = settings(max_examples=FAST, deadline=None, suppress_health_check=list(HealthCheck))
SLOW_SETTINGS = settings(max_examples=SLOW, deadline=None, suppress_health_check=list(HealthCheck))

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON value: the value itself, each key, each item."""
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


SUMMARY_PATHS = _paths(SUMMARY_ITEM)
EMOTION_PATHS = _paths(EMOTION_RECORD)


def _holds(parent: Any, step: str | int) -> bool:
    if isinstance(parent, dict):
        return isinstance(step, str) and step in parent
    return isinstance(parent, list) and isinstance(step, int) and step < len(parent)


@st.composite
def mutated(draw, record: dict, paths: list[tuple]) -> Any:
    """The record with one to three of its places replaced by a random JSON value, or deleted (a path
    an earlier change took away is passed over)."""
    record = copy.deepcopy(record)
    for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3)):
        if not path:
            return draw(JSON)
        parent = record
        for step in path[:-1]:
            if not _holds(parent, step):
                break
            parent = parent[step]
        else:
            if not _holds(parent, path[-1]):
                continue
            if isinstance(parent, dict) and draw(st.booleans()):
                del parent[path[-1]]
            else:
                parent[path[-1]] = draw(JSON)
    return record


CORPORA = st.one_of(
    st.tuples(st.just("summary"), st.lists(mutated(SUMMARY_ITEM, SUMMARY_PATHS), min_size=1, max_size=4)),
    st.tuples(st.just("emotion"), st.lists(mutated(EMOTION_RECORD, EMOTION_PATHS), min_size=1, max_size=4)),
)


def _build_in_process(corpus: str, records: list, mode: str) -> None:
    """What `atr data` does with a builder's output, in this process: a ConfigError is exit 2 (one line
    per problem); anything else raised here would be exit 1 with a traceback."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.json"
        data = {"numberOfItems": len(records), "data": records} if corpus == "summary" else records
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        builder = summary.build if corpus == "summary" else emotion.build
        bad = BadRows(mode)
        try:
            samples = list(builder([path], Options({}, Path(tmp)), bad))
            bad.raise_if_any()
        except ConfigError as exc:
            assert exc.problems and all("\n" not in str(p) for p in exc.problems), str(exc)
            assert all("c.json" in str(p) or p.where == "ON_BAD_ROWS" for p in exc.problems), str(exc)
            return
    assert len(samples) + len(bad.rows) == len(records)
    assert all("c.json[item " in where for where, _ in bad.rows)
    for sample in samples:
        assert conversation_problem(sample.messages) is None, sample.messages
        assert all(isinstance(m["content"], str) for m in sample.messages)


@FAST_SETTINGS
@given(CORPORA, st.sampled_from(["error", "skip"]))
def test_malformed_ai_hub_records_are_bad_rows_never_a_crash(corpus, mode):
    _build_in_process(*corpus, mode)


@pytest.mark.slow
@SLOW_SETTINGS
@given(CORPORA, st.sampled_from(["error", "skip"]))
def test_malformed_ai_hub_records_are_bad_rows_never_a_crash_many(corpus, mode):
    _build_in_process(*corpus, mode)

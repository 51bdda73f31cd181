"""`atr data`: every builder on fixtures in the corpora's real shapes, splits, lint, bad input."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autotrain_runner.data import build_data
from autotrain_runner.errors import ConfigError
from helpers import atr, write

FIXTURES = Path(__file__).parent / "fixtures"
EMOTION_HEADER = [
    "번호",
    "연령",
    "성별",
    "상황키워드",
    "신체질환",
    "감정_대분류",
    "감정_소분류",
    "사람문장1",
    "시스템응답1",
    "사람문장2",
    "시스템응답2",
    "사람문장3",
    "시스템응답3",
]
EMOTION_ROWS = [
    [
        "1",
        "청년",
        "여성",
        "진로,취업,직장",
        "해당없음",
        "분노",
        "노여워하는",
        "일은 왜 해도 해도 끝이 없을까?",
        "많이 힘드시겠어요.",
        "혼자 해결할래.",
        "혼자 해결하기로 했군요.",
        "",
        "",
    ],
    [
        "2",
        "노년",
        "남성",
        "건강",
        "만성질환 유",
        "불안",
        "걱정스러운",
        "요즘 잠이 안 와.",
        "잠을 못 자서 걱정이시군요.",
        "",
        "",
        "",
        "",
    ],
    [
        "3",
        "청소년",
        "여성",
        "학업",
        "해당없음",
        "기쁨",
        "신이 난",
        "시험 잘 봤어!",
        "축하해요!",
        "고마워",
        "오늘은 푹 쉬세요.",
        "응",
        "좋은 하루 보내세요.",
    ],
]


def project(tmp_path: Path, env: str, **files: Path | str) -> Path:
    folder = tmp_path / "projects" / "p"
    for name, content in files.items():
        target = folder / name.replace("__", ".")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copy(content, target)
        else:
            target.write_text(content, encoding="utf-8")
    write(folder / "project.env", "MODEL=org/model\n" + env)
    return folder


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def all_conversations(out: Path) -> list[list[dict]]:
    """Every conversation of the built dataset, whatever split it went to."""
    convs = [r["messages"] for r in read_jsonl(out / "train.jsonl")] if (out / "train.jsonl").exists() else []
    for split in ("valid", "test"):
        convs += [
            r["messages"] + [{"role": "assistant", "content": r["reference"]}]
            for r in read_jsonl(out / f"{split}.jsonl")
        ]
    return convs


def test_emotion_dialogue_json(tmp_path):
    p = project(
        tmp_path,
        "DATA_BUILDER=emotion_dialogue\nRAW_DATA=corpus.json\nPROMPT_TEMPLATE=chatml\nSPLIT=1,0,0\n",
        corpus__json=FIXTURES / "emotion_dialogue.json",
    )
    result = build_data(p)
    out = tmp_path / "datasets" / "p"
    assert result.out_dir == out
    convs = all_conversations(out)
    assert len(convs) == 3
    first = convs[0]
    assert first[0]["role"] == "system" and "공감" in first[0]["content"]
    assert [m["role"] for m in first[1:]] == ["user", "assistant", "user", "assistant"]
    assert convs[1][1:] == [
        {"role": "user", "content": "친구가 이사를 가서 너무 슬퍼."},
        {"role": "assistant", "content": "친한 친구와 떨어지게 되어 슬프시군요."},
    ]
    assert len(convs[2]) == 5, "the third pair has no system answer: the dialogue ends before it"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"] == {"read": 3, "kept": 3, "dropped": {}}
    assert manifest["template"]["name"] == "chatml" and manifest["text_column"] == "messages"


def test_emotion_dialogue_cp949_csv_and_xlsx(tmp_path):
    from openpyxl import Workbook

    folder = tmp_path / "raw"
    folder.mkdir()
    with (folder / "감성대화_training.csv").open("w", encoding="cp949", newline="") as handle:
        csv.writer(handle).writerows([EMOTION_HEADER, *EMOTION_ROWS])
    book = Workbook()
    sheet = book.active
    sheet.append([c.replace("시스템응답", "시스템문장") for c in EMOTION_HEADER])  # the other release's names
    for row in EMOTION_ROWS:
        sheet.append([f"x{row[0]}", *row[1:7], row[7] + " 정말", *row[8:]])
    book.save(folder / "감성대화_validation.xlsx")
    p = project(
        tmp_path,
        f"DATA_BUILDER=emotion_dialogue\nRAW_DATA={folder}\nSYSTEM_PROMPT=공감하며 답하세요.\nSPLIT=0.5,0.25,0.25\n",
    )
    build_data(p)
    out = tmp_path / "datasets" / "p"
    manifest = json.loads((out / "manifest.json").read_text())
    encodings = {Path(i["path"]).suffix: i["encoding"] for i in manifest["inputs"]}
    assert encodings == {".csv": "euc-kr", ".xlsx": "xlsx"}
    assert manifest["rows"]["kept"] == 6
    # instruct-ko (the default) renders text: train.csv with a text column
    with (out / "train.csv").open(encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    assert all(t.startswith("공감하며 답하세요.\n\n### 질문:\n") for t in texts)
    assert all(not t.endswith("\n") for t in texts), "a sample ends with the answer, where EOS follows"
    test = read_jsonl(out / "test.jsonl") + read_jsonl(out / "valid.jsonl")
    assert all(r["prompt"].endswith("### 답변:\n") for r in test)
    assert all(r["meta"]["감정_대분류"] in ("분노", "불안", "기쁨") for r in test)


def test_dialogue_summary_merges_turns_and_masking(tmp_path):
    p = project(
        tmp_path,
        "DATA_BUILDER=dialogue_summary\nRAW_DATA=corpus\nSPLIT=1,0,0\nPROMPT_TEMPLATE=tokenizer\n",
        corpus__개인및관계__json=FIXTURES / "dialogue_summary.json",
    )
    (p / "corpus").mkdir()
    shutil.move(p / "corpus.개인및관계.json", p / "corpus" / "개인및관계.json")
    build_data(p)
    out = tmp_path / "datasets" / "p"
    convs = all_conversations(out)
    first = convs[0][0]["content"]
    merged = "P01: #@이름# 주말에 뭐 해? 시간 되면 영화 보자\nP02: 좋아! #@주소# 근처 어때?\nP01: ㅇㅋ"
    assert first == f"다음 대화를 요약해 주세요.\n\n{merged}"
    assert convs[0][1]["content"] == "P01과 P02는 주말에 #@주소# 근처에서 영화를 보기로 했다."
    lint = json.loads((out / "manifest.json").read_text())["lint"]
    assert lint["masked_samples"] == 2

    write(p / "project.env", (p / "project.env").read_text() + "MASKING=map\nMASK_MAP=#@이름#=민지\n")
    build_data(p)
    mapped = all_conversations(out)
    assert mapped[0][0]["content"].split("\n\n")[1].startswith("P01: 민지 주말에")
    assert "OO시 근처" in mapped[0][1]["content"]
    assert "(사진)" in mapped[1][0]["content"] and "010-0000-0000" in mapped[1][0]["content"]


def test_summary_less_corpus_says_what_it_is(tmp_path):
    p = project(
        tmp_path, "DATA_BUILDER=dialogue_summary\nRAW_DATA=sns.json\n", sns__json=FIXTURES / "sns_no_summary.json"
    )
    result = atr("data", str(p))
    assert result.code == 2
    assert "sns.json: no item has body.summary: this looks like the SNS dialogue corpus" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("builder", "fixture", "expected"),
    [
        (
            "alpaca",
            "alpaca.json",
            [
                [
                    {"role": "user", "content": "다음 문장을 존댓말로 바꿔 줘.\n\n밥 먹었어?"},
                    {"role": "assistant", "content": "식사하셨어요?"},
                ],
                [
                    {"role": "system", "content": "당신은 친절한 도우미입니다."},
                    {"role": "user", "content": "이름이 뭐야?"},
                    {"role": "assistant", "content": "저는 도우미예요."},
                    {"role": "user", "content": "인사해 줘."},
                    {"role": "assistant", "content": "안녕하세요!"},
                ],
            ],
        ),
        (
            "sharegpt",
            "sharegpt.jsonl",
            [
                [
                    {"role": "user", "content": "서울의 수도는?"},
                    {"role": "assistant", "content": "서울은 한국의 수도예요."},
                ],
                [
                    {"role": "system", "content": "짧게 답하세요."},
                    {"role": "user", "content": "1+1은?"},
                    {"role": "assistant", "content": "2"},
                ],
            ],
        ),
        (
            "messages",
            "messages.jsonl",
            [
                [{"role": "user", "content": "안녕"}, {"role": "assistant", "content": "안녕하세요~*"}],
                [
                    {"role": "user", "content": "잘 자"},
                    {"role": "assistant", "content": "굿나잇 ^^"},
                    {"role": "user", "content": "내일 봐"},
                    {"role": "assistant", "content": "내일 만나여~"},
                ],
            ],
        ),
        (
            "txt",
            "style.txt",
            [
                [{"role": "user", "content": "오늘 기분 어때?"}, {"role": "assistant", "content": "넘넘 좋아여~*"}],
                [
                    {"role": "user", "content": "뭐 먹을까?"},
                    {"role": "assistant", "content": "떡볶이 어때여?!\n매콤달콤 ㅎㅎ"},
                ],
                [{"role": "user", "content": "잘 자"}, {"role": "assistant", "content": "굿나잇 ^^*"}],
            ],
        ),
    ],
)
def test_instruction_shapes(tmp_path, builder, fixture, expected):
    suffix = Path(fixture).suffix
    p = project(
        tmp_path,
        f"DATA_BUILDER={builder}\nRAW_DATA=raw{suffix}\nPROMPT_TEMPLATE=chatml\nSPLIT=1,0,0\n",
        **{f"raw__{suffix[1:]}": FIXTURES / fixture},
    )
    build_data(p)
    out = tmp_path / "datasets" / "p"
    assert all_conversations(out) == expected
    if builder == "txt":
        pairs = json.loads((out / "pairs.json").read_text())
        assert pairs[1] == {"instruction": "뭐 먹을까?", "output": "떡볶이 어때여?!\n매콤달콤 ㅎㅎ"}


def test_table_builder_csv_tsv_and_missing_columns(tmp_path):
    rows = "질문,답변\n안녕?,안녕하세요~*\n뭐해?,미니홈피 꾸며여 ^^\n"
    p = project(
        tmp_path,
        "DATA_BUILDER=table\nRAW_DATA=qa.csv\nPROMPT_COLUMN=질문\nRESPONSE_COLUMN=답변\n"
        "SYSTEM_PROMPT=친절하게\nSPLIT=1,0,0\n",
        qa__csv=rows,
    )
    build_data(p)
    with (tmp_path / "datasets/p/train.csv").open(encoding="utf-8") as handle:
        assert (
            next(r["text"] for r in csv.DictReader(handle)) == "친절하게\n\n### 질문:\n안녕?\n\n### 답변:\n안녕하세요~*"
        )
    write(p / "project.env", (p / "project.env").read_text().replace("RESPONSE_COLUMN=답변", "RESPONSE_COLUMN=answer"))
    result = atr("data", str(p))
    assert result.code == 2
    assert "qa.csv: no column 'answer' (columns found: 질문, 답변)" in result.err

    # the same table as tsv: split at tabs only, so the commas are the fields' own
    tsv = project(
        tmp_path / "tsv",
        "DATA_BUILDER=table\nRAW_DATA=qa.tsv\nPROMPT_COLUMN=질문\nRESPONSE_COLUMN=답변\n"
        "SYSTEM_PROMPT=친절하게\nSPLIT=1,0,0\n",
        qa__tsv="질문\t답변\n안녕, 친구?\t안녕하세요, 반가워요~*\n뭐해?\t미니홈피 꾸며여 ^^\n",
    )
    build_data(tsv)
    with (tmp_path / "tsv/datasets/p/train.csv").open(encoding="utf-8") as handle:
        assert sorted(r["text"] for r in csv.DictReader(handle)) == [
            "친절하게\n\n### 질문:\n뭐해?\n\n### 답변:\n미니홈피 꾸며여 ^^",
            "친절하게\n\n### 질문:\n안녕, 친구?\n\n### 답변:\n안녕하세요, 반가워요~*",
        ]
    env_file = tsv / "project.env"
    write(env_file, env_file.read_text().replace("RESPONSE_COLUMN=답변", "RESPONSE_COLUMN=answer"))
    with pytest.raises(ConfigError, match=r"qa\.tsv: no column 'answer' \(columns found: 질문, 답변\)"):
        build_data(tsv)


def test_malformed_json_names_file_and_line(tmp_path):
    bad = '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n{"messages": [\n'
    p = project(tmp_path, "DATA_BUILDER=messages\nRAW_DATA=m.jsonl\n", m__jsonl=bad)
    result = atr("data", str(p))
    assert result.code == 2
    assert "m.jsonl:2: malformed JSON" in result.err


def test_bad_rows_error_lists_them_and_skip_counts_them(tmp_path):
    lines = [
        json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]})
        for i in range(20)
    ]
    lines[3] = json.dumps({"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]})
    lines[7] = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]})
    lines[9] = json.dumps({"text": "no messages"})
    p = project(
        tmp_path, "DATA_BUILDER=messages\nRAW_DATA=m.jsonl\nPROMPT_TEMPLATE=chatml\n", m__jsonl="\n".join(lines)
    )
    result = atr("data", str(p))
    assert result.code == 2
    errors = [line for line in result.err.splitlines() if line.startswith("error: ")]
    assert [e.split("m.jsonl:")[1] for e in errors[:3]] == [
        "4: roles must alternate user, assistant, ...",
        "8: empty assistant message",
        "10: no 'messages' list",
    ]
    assert "ON_BAD_ROWS=skip" in result.err
    assert not (tmp_path / "datasets" / "p").exists(), "nothing written"

    write(p / "project.env", (p / "project.env").read_text() + "ON_BAD_ROWS=skip\n")
    ok = atr("data", str(p))
    assert ok.code == 0, ok.text
    manifest = json.loads((tmp_path / "datasets/p/manifest.json").read_text())
    assert manifest["rows"]["read"] == 20 and manifest["rows"]["kept"] == 17
    assert manifest["rows"]["dropped"] == {
        "roles must alternate user, assistant, ...": 1,
        "empty assistant message": 1,
        "no 'messages' list": 1,
    }


def test_split_is_deterministic_keeps_dialogues_whole_and_drops_duplicates(tmp_path):
    lines = [
        json.dumps(
            {"messages": [{"role": "user", "content": f"질문 {i}"}, {"role": "assistant", "content": f"답 {i}"}]},
            ensure_ascii=False,
        )
        for i in range(100)
    ]
    lines += lines[:5]  # exact duplicates
    p = project(
        tmp_path, "DATA_BUILDER=messages\nRAW_DATA=m.jsonl\nPROMPT_TEMPLATE=chatml\nSEED=7\n", m__jsonl="\n".join(lines)
    )
    build_data(p)
    out = tmp_path / "datasets" / "p"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"] == {"train": 70, "valid": 15, "test": 15}
    assert manifest["rows"]["dropped"] == {"duplicate": 5}
    first = {name: (out / name).read_bytes() for name in ("train.jsonl", "valid.jsonl", "test.jsonl")}
    build_data(p, force=True)
    assert first == {name: (out / name).read_bytes() for name in first}, "same seed, same split"
    build_data(p, overrides=["SEED=8"])
    assert (out / "test.jsonl").read_bytes() != first["test.jsonl"]

    # emotion json: two samples of one dialogue id never land in different splits
    records = json.loads((FIXTURES / "emotion_dialogue.json").read_text())
    many = []
    for i in range(30):
        for r in records[:2]:
            copy = json.loads(json.dumps(r))
            copy["talk"]["id"]["talk-id"] = f"dlg-{i}"
            copy["talk"]["content"]["HS01"] += f" {i}"
            many.append(copy)
    p2 = project(
        tmp_path / "two",
        "DATA_BUILDER=emotion_dialogue\nRAW_DATA=e.json\nPROMPT_TEMPLATE=chatml\n",
        e__json=json.dumps(many, ensure_ascii=False),
    )
    build_data(p2)
    out2 = tmp_path / "two" / "datasets" / "p"
    where = {}
    for split in ("valid", "test"):
        for r in read_jsonl(out2 / f"{split}.jsonl"):
            dialogue = r["messages"][1]["content"].split()[-1]
            where.setdefault(dialogue, set()).add(split)
    for r in read_jsonl(out2 / "train.jsonl"):
        where.setdefault(r["messages"][1]["content"].split()[-1], set()).add("train")
    assert len(where) == 30 and all(len(s) == 1 for s in where.values())


def test_failed_build_leaves_previous_dataset_and_up_to_date_skips(tmp_path):
    p = project(tmp_path, "DATA_BUILDER=txt\nRAW_DATA=style.txt\n", style__txt=FIXTURES / "style.txt")
    first = atr("data", str(p))
    assert first.code == 0 and first.out.startswith("built: ")
    out = tmp_path / "datasets" / "p"
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    assert atr("data", str(p)).out.startswith("up to date: ")

    (p / "style.txt").write_text("Q: 질문만 있고\n\nA:\n", encoding="utf-8")
    failed = atr("data", str(p))
    assert failed.code == 2
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    assert sorted(x.name for x in out.parent.iterdir()) == ["p"], "no temporary folder left"

    (p / "style.txt").write_text("Q: 새 질문\nA: 새 답\n", encoding="utf-8")
    rebuilt = atr("data", str(p))
    assert rebuilt.out.startswith("built: "), "changed input: rebuilt"


def test_lint_counts_long_samples_and_check_reports_it(tmp_path, tiny_model):
    long_answer = "아주 긴 답변입니다. " * 40
    text = "".join(f"Q: 질문 {i}\nA: {long_answer if i % 2 else '짧은 답'}\n\n" for i in range(10))
    p = project(tmp_path, "DATA_BUILDER=txt\nRAW_DATA=s.txt\nBLOCK_SIZE=64\nSPLIT=1,0,0\n", s__txt=text)
    write(p / "project.env", (p / "project.env").read_text().replace("MODEL=org/model", f"MODEL={tiny_model}"))
    result = atr("data", str(p))
    assert result.code == 0, result.text
    assert "lint: 5 of 10 samples (50.0%) are longer than BLOCK_SIZE=64 tokens (tokenizer " in result.out
    checked = atr("check", str(p))
    assert "are longer than BLOCK_SIZE=64 tokens" in checked.out

    write(p / "project.env", (p / "project.env").read_text().replace(f"MODEL={tiny_model}", "MODEL=org/model"))
    estimated = atr("data", str(p), "--force")
    assert "(estimate: UTF-8 bytes / 3" in estimated.out


def test_data_without_builder_and_raw_data_required(tmp_path):
    p = project(tmp_path, "DATA_FILE=d.csv\n", d__csv="text\nx\n")
    assert "no DATA_BUILDER" in atr("data", str(p)).out
    write(p / "project.env", "MODEL=org/model\nDATA_BUILDER=table\n")
    result = atr("check", str(p))
    assert result.code == 2 and "RAW_DATA: DATA_BUILDER=table needs RAW_DATA" in result.err


def test_template_conflicts_are_errors(tmp_path):
    p = project(
        tmp_path,
        "DATA_BUILDER=txt\nRAW_DATA=s.txt\nPROMPT_TEMPLATE=instruct-ko\nCHAT_TEMPLATE=chatml\n",
        s__txt=FIXTURES / "style.txt",
    )
    result = atr("check", str(p))
    assert result.code == 2
    assert "PROMPT_TEMPLATE: instruct-ko renders text, but CHAT_TEMPLATE=chatml expects messages" in result.err


def test_custom_template_file(tmp_path):
    template = {
        "system": "[시스템] {content}",
        "user": "[사용자] {content}",
        "assistant_prefix": "[도우미] ",
        "separator": "\n",
        "stop": ["[사용자]"],
    }
    p = project(
        tmp_path,
        "DATA_BUILDER=txt\nRAW_DATA=s.txt\nPROMPT_TEMPLATE=my.json\nSPLIT=1,0,0\n",
        s__txt=FIXTURES / "style.txt",
        my__json=json.dumps(template, ensure_ascii=False),
    )
    build_data(p)
    with (tmp_path / "datasets/p/train.csv").open(encoding="utf-8") as handle:
        assert next(csv.DictReader(handle))["text"] == "[사용자] 오늘 기분 어때?\n[도우미] 넘넘 좋아여~*"


def test_bad_template_file_is_config_error(tmp_path):
    p = project(
        tmp_path,
        "DATA_BUILDER=txt\nRAW_DATA=s.txt\nPROMPT_TEMPLATE=my.json\n",
        s__txt=FIXTURES / "style.txt",
        my__json='{"user": "no placeholder", "assistant_prefix": "A"}',
    )
    with pytest.raises(ConfigError, match="user must contain"):
        build_data(p)


def test_bench_data_builds_a_synthetic_summary_corpus():
    result = atr("bench", "data", "--dialogues", "300")
    assert result.code == 0, result.text
    figures = json.loads(result.out)
    assert figures["dialogues"] == figures["kept"] == 300 and figures["files"] == 9
    assert figures["peak_rss_mb"] > 0
    # the rate is the 300 dialogues over the wall time printed beside it (rounded to 0.01 s), which
    # holds the build the manifest timed
    seconds = figures["seconds"]
    assert 0 < figures["build_seconds"] <= seconds
    assert 300 / (seconds + 0.005) - 0.5 <= figures["items_per_s"] <= 300 / (seconds - 0.005) + 0.5, figures


@pytest.mark.parametrize(
    ("builder", "fixture"), [("alpaca", "alpaca.json"), ("sharegpt", "sharegpt.jsonl"), ("messages", "messages.jsonl")]
)
def test_system_prompt_fills_in_only_where_a_conversation_has_none(tmp_path, builder, fixture):
    suffix = Path(fixture).suffix
    p = project(
        tmp_path,
        f"DATA_BUILDER={builder}\nRAW_DATA=raw{suffix}\nPROMPT_TEMPLATE=chatml\nSPLIT=1,0,0\n"
        "SYSTEM_PROMPT=기본 시스템\n",
        **{f"raw__{suffix[1:]}": FIXTURES / fixture},
    )
    build_data(p)
    systems = [c[0]["content"] for c in all_conversations(tmp_path / "datasets" / "p")]
    own = {"alpaca": "당신은 친절한 도우미입니다.", "sharegpt": "짧게 답하세요."}.get(builder)
    assert systems == ["기본 시스템", own or "기본 시스템"]


# --- the dataset folder: never replaces what atr did not make, never overlaps the inputs


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) below root."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def errors_of(result) -> list[str]:
    return [line for line in result.err.splitlines() if line.startswith("error: ")]


@pytest.mark.parametrize(
    ("raw", "dataset_dir", "expected"),
    [
        ("corpus", ".", "'.' (projects/p) holds the env file projects/p/project.env"),
        ("corpus", "..", "'..' (projects) holds the env file projects/p/project.env"),
        ("style.txt", "style.txt", "'style.txt' (projects/p/style.txt) is a file, not a folder"),
        ("style.txt", "style.txt/out", "'style.txt/out' (projects/p/style.txt/out) lies below projects/p/style.txt, "),
        ("corpus", "corpus", "'corpus' (projects/p/corpus) is RAW_DATA projects/p/corpus"),
        ("corpus/style.txt", "corpus", "'corpus' (projects/p/corpus) holds RAW_DATA projects/p/corpus/style.txt"),
        ("corpus", "notes", "'notes' (projects/p/notes) exists and was not made by atr data (no .atr-dataset in it)"),
        (
            "corpus",
            "runs/data",
            "'runs/data' (projects/p/runs/data) overlaps projects/p/runs, where atr writes its runs",
        ),
    ],
)
def test_dataset_dir_that_would_replace_inputs_or_foreign_files_is_refused(tmp_path, raw, dataset_dir, expected):
    p = project(
        tmp_path, f"DATA_BUILDER=txt\nRAW_DATA={raw}\nDATASET_DIR={dataset_dir}\n", style__txt=FIXTURES / "style.txt"
    )
    (p / "corpus").mkdir()
    shutil.copy(FIXTURES / "style.txt", p / "corpus" / "style.txt")
    write(p / "notes" / "todo.md", "my notes\n")
    before = snapshot(tmp_path)
    for command in ("check", "data"):
        result = atr(command, str(p), cwd=tmp_path)
        assert result.code == 2, result.text
        assert errors_of(result) == [errors_of(result)[0]], "one line"
        assert errors_of(result)[0].startswith(f"error: projects/p/project.env:4: DATASET_DIR: {expected}"), result.err
        assert "Traceback" not in result.err
        assert snapshot(tmp_path) == before, "nothing written, moved or deleted"


def test_dataset_folder_is_marked_and_only_a_folder_atr_made_is_replaced(tmp_path):
    p = project(tmp_path, "DATA_BUILDER=txt\nRAW_DATA=style.txt\n", style__txt=FIXTURES / "style.txt")
    out = tmp_path / "datasets" / "p"
    assert atr("data", str(p), cwd=tmp_path).code == 0
    assert (out / ".atr-dataset").is_file()

    (out / ".atr-dataset").unlink()  # a build of an older version: manifest.json and atr's own names only
    rebuilt = atr("data", str(p), "--force", cwd=tmp_path)
    assert rebuilt.code == 0 and rebuilt.out.startswith("built: "), rebuilt.text
    assert (out / ".atr-dataset").is_file()

    write(out / "notes.md", "mine\n")  # a file atr never writes: replacing the folder would lose it
    before = snapshot(tmp_path)
    for command in (("check",), ("data", "--force")):
        refused = atr(*command, str(p), cwd=tmp_path)
        assert refused.code == 2, refused.text
        assert errors_of(refused) == [
            "error: projects/p/project.env:2: DATASET_DIR: datasets/p (the default) holds what atr data did not "
            "write (notes.md), and every build replaces the whole folder: move it out, or name a new folder"
        ]
    assert snapshot(tmp_path) == before


def test_raw_data_inside_the_dataset_folder_is_refused(tmp_path):
    """The README's pairs.json, hand-edited in place and rebuilt with DATA_BUILDER=alpaca: a build
    would delete it with the folder."""
    p = project(tmp_path, "DATA_BUILDER=txt\nRAW_DATA=style.txt\n", style__txt=FIXTURES / "style.txt")
    assert atr("data", str(p), cwd=tmp_path).code == 0
    write(p / "project.env", "MODEL=org/model\nDATA_BUILDER=alpaca\nRAW_DATA=../../datasets/p/pairs.json\n")
    before = snapshot(tmp_path)
    result = atr("data", str(p), cwd=tmp_path)
    assert result.code == 2
    assert errors_of(result) == [
        "error: projects/p/project.env:2: DATASET_DIR: datasets/p (the default) holds RAW_DATA "
        "datasets/p/pairs.json, and every build replaces the whole folder: move RAW_DATA out of it"
    ]
    assert snapshot(tmp_path) == before


def test_raw_data_folder_never_reads_the_dataset_or_atr_outputs(tmp_path):
    line = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    p = project(
        tmp_path,
        "DATA_BUILDER=messages\nRAW_DATA=.\nPROMPT_TEMPLATE=chatml\nDATASET_DIR=built\n",
        m__jsonl=FIXTURES / "messages.jsonl",
    )
    # what atr (or a concurrent build) writes inside a project, and another atr-made dataset
    for name in (
        "runs/r1/data/train.jsonl",
        "eval/base-m/predictions.jsonl",
        "sweeps/s1/trials/t1/eval/predictions.jsonl",
        "datasets/other/train.jsonl",
        ".built.building-1-abcd1234/train.jsonl",
    ):
        write(p / name, line + "\n")
    write(p / "copy" / "train.jsonl", line + "\n")
    write(p / "copy" / ".atr-dataset", "")
    for force in ((), ("--force",)):  # the second build finds the first one's outputs beside its input
        result = atr("data", str(p), *force, cwd=tmp_path)
        assert result.code == 0, result.text
        assert "rows read 2, kept 2" in result.out
        manifest = json.loads((p / "built" / "manifest.json").read_text())
        assert [i["path"] for i in manifest["inputs"]] == ["projects/p/m.jsonl"]


def test_next_build_removes_what_a_killed_build_left(tmp_path):
    p = project(tmp_path, "DATA_BUILDER=txt\nRAW_DATA=style.txt\n", style__txt=FIXTURES / "style.txt")
    assert atr("data", str(p), cwd=tmp_path).code == 0
    gone = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone.kill()  # SIGKILL, as `kill -9` stops a build: it leaves its folders under a pid nobody holds now
    gone.wait()
    parent = tmp_path / "datasets"
    left = {
        f".p.building-{gone.pid}-k1ll3d00": {".atr-dataset": "", "train.csv": "text\nhalf"},
        f".p.old-{gone.pid}-k1ll3d00": {".atr-dataset": "", "manifest.json": "{}", "train.csv": "text\n"},
        ".p.building-x1y2z3w4": {"train.csv": "text\n"},  # versions before the marker
        ".p.old": {"manifest.json": "{}", "valid.jsonl": ""},
    }
    kept = {
        f".p.building-{os.getpid()}-l1v3l1v3": {".atr-dataset": ""},  # a build still running
        f".p.building-{gone.pid}-n0t3s000": {"notes.md": "mine"},  # not atr's
        ".q.building-x1y2z3w4": {"train.csv": ""},  # another dataset's
    }
    for name, files in {**left, **kept}.items():
        for file, text in files.items():
            write(parent / name / file, text)
    result = atr("data", str(p), cwd=tmp_path)
    assert result.code == 0 and result.out.startswith("up to date: "), result.text
    assert sorted(x.name for x in parent.iterdir()) == sorted(["p", *kept])


def test_a_dataset_moved_aside_by_an_interrupted_swap_is_never_lost(tmp_path, monkeypatch):
    """The swap moves the dataset to `.p.old-...`, then the new build in. Interrupted between the two
    (Ctrl-C), the old dataset goes back at once; killed there (kill -9), the next build restores it,
    even when that build then fails, instead of deleting it as stale."""
    from autotrain_runner.data import build_data

    p = project(tmp_path, "DATA_BUILDER=txt\nRAW_DATA=style.txt\n", style__txt=FIXTURES / "style.txt")
    assert atr("data", str(p), cwd=tmp_path).code == 0
    dataset = tmp_path / "datasets" / "p"
    manifest = (dataset / "manifest.json").read_bytes()

    renames = []
    real_replace = os.replace

    def interrupted_after_the_first(src, dst):
        real_replace(src, dst)
        if Path(dst).name.startswith(".p.old-") and not renames:  # the dataset is aside, the new one not in
            renames.append((Path(src).name, Path(dst).name))
            raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("autotrain_runner.data.build.os.replace", interrupted_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        build_data(p, force=True, echo=lambda _: None)
    monkeypatch.undo()
    assert renames and renames[0][0] == "p", renames
    assert (dataset / "manifest.json").read_bytes() == manifest
    assert sorted(x.name for x in dataset.parent.iterdir()) == ["p"]

    gone = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone.kill()
    gone.wait()
    os.replace(dataset, dataset.with_name(f".p.old-{gone.pid}-k1ll3d00"))  # killed between the renames
    (p / "style.txt").write_text("", encoding="utf-8")  # and the next build fails
    result = atr("data", str(p), "--force", cwd=tmp_path)
    assert result.code == 2, result.text
    assert (dataset / "manifest.json").read_bytes() == manifest
    assert sorted(x.name for x in dataset.parent.iterdir()) == ["p"]


# --- the other shapes public instruction data comes in


def test_self_instruct_records_give_one_sample_per_instance(tmp_path):
    """KULLM and the self-instruct seed tasks: {instruction, instances: [{input, output}]}."""
    records = [
        {
            "id": "seed_task_0",
            "instruction": "다음 문장을 영어로 번역하세요.",
            "instances": [{"input": "안녕하세요", "output": "Hello"}, {"input": "감사합니다", "output": "Thank you"}],
            "is_classification": False,
        },
        {
            "id": "seed_task_1",
            "instruction": "좋아하는 계절을 말해 보세요.",
            "instances": [{"input": "", "output": "봄"}],
        },
    ]
    lines = "\n".join(json.dumps(r, ensure_ascii=False) for r in records)
    p = project(
        tmp_path, "DATA_BUILDER=alpaca\nRAW_DATA=seed.jsonl\nPROMPT_TEMPLATE=chatml\nSPLIT=1,0,0\n", seed__jsonl=lines
    )
    result = atr("data", str(p), cwd=tmp_path)
    assert result.code == 0, result.text
    assert all_conversations(tmp_path / "datasets" / "p") == [
        [
            {"role": "user", "content": "다음 문장을 영어로 번역하세요.\n\n안녕하세요"},
            {"role": "assistant", "content": "Hello"},
        ],
        [
            {"role": "user", "content": "다음 문장을 영어로 번역하세요.\n\n감사합니다"},
            {"role": "assistant", "content": "Thank you"},
        ],
        [{"role": "user", "content": "좋아하는 계절을 말해 보세요."}, {"role": "assistant", "content": "봄"}],
    ]

    # the instances of one task never cross splits; a bad instance is named
    many = [
        {
            "instruction": f"과제 {t}",
            "instances": [{"input": f"입력 {t}-{i}", "output": f"출력 {t}-{i}"} for i in range(3)],
        }
        for t in range(30)
    ]
    many[4]["instances"][1] = {"input": "x", "output": ""}
    write(p / "seed.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in many))
    write(p / "project.env", "MODEL=org/model\nDATA_BUILDER=alpaca\nRAW_DATA=seed.jsonl\nPROMPT_TEMPLATE=chatml\n")
    bad = atr("data", str(p), cwd=tmp_path)
    assert bad.code == 2
    assert errors_of(bad)[0] == "error: projects/p/seed.jsonl:5[instance 1]: empty assistant message"
    many[4]["instances"][1]["output"] = "출력"
    write(p / "seed.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in many))
    assert atr("data", str(p), cwd=tmp_path).code == 0
    where: dict[str, set[str]] = {}
    out = tmp_path / "datasets" / "p"
    for split in ("train", "valid", "test"):
        for record in read_jsonl(out / f"{split}.jsonl"):
            task = record["messages"][0]["content"].split("\n")[0]
            where.setdefault(task, set()).add(split)
    assert len(where) == 30 and all(len(splits) == 1 for splits in where.values())


@pytest.mark.parametrize(
    ("builder", "tool_record"),
    [
        (
            "sharegpt",
            {
                "conversations": [
                    {"from": "human", "value": "서울 날씨 알려 줘"},
                    {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "서울"}}'},
                    {"from": "observation", "value": '{"temp": 21}'},
                    {"from": "gpt", "value": "서울은 21도예요."},
                ],
                "tools": '[{"name": "weather"}]',
            },
        ),
        (
            "messages",
            {
                "messages": [
                    {"role": "user", "content": "서울 날씨 알려 줘"},
                    {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "weather"}}]},
                    {"role": "tool", "content": '{"temp": 21}'},
                    {"role": "assistant", "content": "서울은 21도예요."},
                ]
            },
        ),
    ],
)
def test_tool_turns_are_refused_naming_the_records(tmp_path, builder, tool_record):
    plain = {
        "sharegpt": {"conversations": [{"from": "human", "value": "안녕"}, {"from": "gpt", "value": "안녕하세요"}]},
        "messages": {"messages": [{"role": "user", "content": "안녕"}, {"role": "assistant", "content": "안녕하세요"}]},
    }[builder]
    lines = "\n".join(json.dumps(r, ensure_ascii=False) for r in (plain, tool_record, plain | {"id": 2}, tool_record))
    p = project(tmp_path, f"DATA_BUILDER={builder}\nRAW_DATA=t.jsonl\nPROMPT_TEMPLATE=chatml\n", t__jsonl=lines)
    result = atr("data", str(p), cwd=tmp_path)
    assert result.code == 2
    errors = errors_of(result)
    assert [e.split(": ")[1] for e in errors[:2]] == ["projects/p/t.jsonl:2", "projects/p/t.jsonl:4"]
    assert all("tool turns are not supported" in e for e in errors[:2]) and len(errors) == 3
    assert "Traceback" not in result.err
    assert not (tmp_path / "datasets").exists(), "nothing written"

    write(p / "project.env", (p / "project.env").read_text() + "ON_BAD_ROWS=skip\n")
    skipped = atr("data", str(p), cwd=tmp_path)
    assert skipped.code == 0, skipped.text
    assert "dropped: tool turns are not supported 2" in skipped.out


PREFERENCE_RECORDS = {
    # LLaMA-Factory's ShareGPT preference shape: the conversation ends with the question
    "sharegpt": [
        {
            "conversations": [{"from": "human", "value": "인사해 줘"}],
            "chosen": {"from": "gpt", "value": "안녕하세요~ 반가워요!"},
            "rejected": {"from": "gpt", "value": "싫어"},
        },
        {
            "conversations": [
                {"from": "system", "value": "짧게 답하세요."},
                {"from": "human", "value": "1+1은?"},
                {"from": "gpt", "value": "2"},
                {"from": "human", "value": "2+2는?"},
            ],
            "chosen": {"from": "gpt", "value": "4"},
            "rejected": {"from": "gpt", "value": "몰라"},
        },
    ],
    # and its alpaca one
    "alpaca": [
        {"instruction": "인사해 줘", "chosen": "안녕하세요~ 반가워요!", "rejected": "싫어"},
        {"instruction": "더해 줘", "input": "2+2", "chosen": "4", "rejected": "몰라", "system": "짧게 답하세요."},
    ],
}


@pytest.mark.parametrize("builder", ["sharegpt", "alpaca"])
def test_preference_data_says_what_it_is_and_preference_chosen_trains_the_chosen_answer(tmp_path, builder):
    lines = "\n".join(json.dumps(r, ensure_ascii=False) for r in PREFERENCE_RECORDS[builder])
    env = f"DATA_BUILDER={builder}\nRAW_DATA=pref.jsonl\nPROMPT_TEMPLATE=chatml\nSPLIT=1,0,0\n"
    p = project(tmp_path, env, pref__jsonl=lines)
    result = atr("data", str(p), cwd=tmp_path)
    assert result.code == 2
    [error] = errors_of(result)
    assert error.startswith("error: projects/p/pref.jsonl:1: PREFERENCE: this is preference data (chosen/rejected")
    assert "set TRAINER=dpo (or orpo, reward) to train the pairs, or PREFERENCE=chosen to train on the chosen" in error

    write(p / "project.env", "MODEL=org/model\n" + env + "PREFERENCE=chosen\n")
    built = atr("data", str(p), cwd=tmp_path)
    assert built.code == 0, built.text
    conversations = all_conversations(tmp_path / "datasets" / "p")
    assert conversations[0] == [
        {"role": "user", "content": "인사해 줘"},
        {"role": "assistant", "content": "안녕하세요~ 반가워요!"},
    ]
    assert conversations[1][0] == {"role": "system", "content": "짧게 답하세요."}
    assert conversations[1][-1] == {"role": "assistant", "content": "4"}
    assert "싫어" not in (tmp_path / "datasets" / "p" / "train.jsonl").read_text(encoding="utf-8")
    manifest = json.loads((tmp_path / "datasets" / "p" / "manifest.json").read_text())
    assert manifest["options"]["PREFERENCE"] == "chosen"

"""Preference pairs for the dpo, orpo and reward trainers: built by `atr data` from the shapes public
datasets have (real files, `fixtures/preference/SOURCES.json` says where each comes from), rendered
to ids by the one renderer, and checked by `atr check`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import atr, write

PREFERENCE = Path(__file__).parent / "fixtures" / "preference"
SOURCES = json.loads((PREFERENCE / "SOURCES.json").read_text(encoding="utf-8"))


def project(tmp_path: Path, env: str, raw: Path | None = None) -> Path:
    folder = tmp_path / "projects" / "p"
    folder.mkdir(parents=True)
    if raw is not None:
        (folder / raw.name).write_bytes(raw.read_bytes())
    write(folder / "project.env", "MODEL=org/model\n" + env)
    return folder


def pairs(folder: Path) -> list[dict]:
    """Every pair of the built dataset, whatever split: prompt messages, chosen, rejected."""
    found = [json.loads(line) for line in (folder / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    for split in ("valid", "test"):
        for line in (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            found.append({"prompt": record["messages"], "chosen": record["reference"], "rejected": record["rejected"]})
    return found


def test_every_fixture_records_its_source():
    files = {p.name for p in PREFERENCE.iterdir() if p.name != "SOURCES.json"}
    assert files == set(SOURCES)
    for source in SOURCES.values():
        assert len(source["commit"]) == 40 and source["url"].startswith(f"https://github.com/{source['repo']}/blob/")


@pytest.mark.parametrize(
    ("builder", "fixture", "expected"),
    [
        ("alpaca", "alpaca.json", 8),
        ("alpaca", "alpaca_ranked.json", 8),  # output: [chosen, rejected]
        ("sharegpt", "sharegpt.json", 6),  # LLaMA-Factory's dpo_en_demo.json
        ("messages", "messages.jsonl", 6),  # ultrafeedback_binarized: whole chosen/rejected conversations
    ],
)
def test_each_public_shape_builds_into_pairs(tmp_path, builder, fixture, expected):
    raw = PREFERENCE / fixture
    p = project(tmp_path, f"DATA_BUILDER={builder}\nRAW_DATA={fixture}\nPROMPT_TEMPLATE=chatml\nTRAINER=dpo\n", raw)
    result = atr("data", str(p), cwd=tmp_path)
    assert result.code == 0, result.text
    assert f"kept {expected}," in result.out
    assert "preference pairs for TRAINER=dpo: the prompt, a chosen and a rejected answer each" in result.out
    built = pairs(tmp_path / "datasets" / "p")
    assert len(built) == expected
    for pair in built:
        assert pair["prompt"][-1]["role"] == "user" and pair["chosen"].strip() and pair["rejected"].strip()
        assert pair["chosen"] != pair["rejected"]
    source = json.loads(raw.read_text(encoding="utf-8")) if raw.suffix == ".json" else None
    if fixture == "alpaca_ranked.json":  # the first of the two outputs is the chosen one
        assert {p["chosen"] for p in built} == {r["output"][0] for r in source}
        assert {p["rejected"] for p in built} == {r["output"][1] for r in source}
    if fixture == "sharegpt.json":  # a multi-turn prompt keeps its history, and the system turn
        longest = max(built, key=lambda p: len(p["prompt"]))
        assert [m["role"] for m in longest["prompt"]] == ["user", "assistant", "user", "assistant", "user"]
        assert any(p["prompt"][0]["role"] == "system" for p in built)
        assert {p["chosen"] for p in built} == {r["chosen"]["value"] for r in source}
    check = atr("check", str(p), cwd=tmp_path)
    assert check.code == 0, check.text
    assert "trainer:  dpo (preference pairs" in check.out


def test_a_table_of_pairs_refuses_empty_answers_naming_the_row(tmp_path):
    """The real file has three rows with an empty chosen or rejected answer (lines 4, 6 and 7)."""
    env = "DATA_BUILDER=table\nRAW_DATA=table.jsonl\nPROMPT_TEMPLATE=instruct-ko\nTRAINER=orpo\n"
    p = project(tmp_path, env, PREFERENCE / "table.jsonl")
    refused = atr("data", str(p), cwd=tmp_path)
    assert refused.code == 2 and "Traceback" not in refused.err
    lines = [line for line in refused.err.splitlines() if line.startswith("error: projects/p/table.jsonl")]
    assert lines == [
        "error: projects/p/table.jsonl:4: empty answer: rejected",
        "error: projects/p/table.jsonl:6: empty answer: chosen",
        "error: projects/p/table.jsonl:7: empty answer: rejected",
    ]
    assert not (tmp_path / "datasets").exists()
    skipped = atr("data", str(p), "--set", "ON_BAD_ROWS=skip", cwd=tmp_path)
    assert skipped.code == 0, skipped.text
    assert "kept 5, dropped: empty answer 3" in skipped.out
    assert len(pairs(tmp_path / "datasets" / "p")) == 5


def test_pairs_that_prefer_nothing_or_have_no_prompt_are_row_errors(tmp_path):
    records = [
        {"prompt": "인사해 줘", "chosen": "안녕하세요~", "rejected": "싫어"},
        {"prompt": "같은 답", "chosen": "네", "rejected": " 네 "},
        {"chosen": "혼자", "rejected": "남은 답"},
        {
            "chosen": [{"role": "user", "content": "A"}, {"role": "assistant", "content": "B"}],
            "rejected": [{"role": "user", "content": "C"}, {"role": "assistant", "content": "D"}],
        },
    ]
    lines = "\n".join(json.dumps(r, ensure_ascii=False) for r in records)
    p = project(tmp_path, "DATA_BUILDER=messages\nRAW_DATA=pref.jsonl\nPROMPT_TEMPLATE=chatml\nTRAINER=reward\n")
    write(p / "pref.jsonl", lines)
    result = atr("data", str(p), cwd=tmp_path)
    assert result.code == 2
    assert [line for line in result.err.splitlines() if "pref.jsonl" in line] == [
        "error: projects/p/pref.jsonl:2: chosen equals rejected: the pair prefers nothing",
        "error: projects/p/pref.jsonl:3: no prompt: 'messages', 'prompt', or chosen and rejected conversations",
        "error: projects/p/pref.jsonl:4: chosen and rejected do not share their prompt",
    ]


def test_preference_chosen_with_a_pair_trainer_is_said_to_be_ignored(tmp_path):
    raw = PREFERENCE / "sharegpt.json"
    env = "DATA_BUILDER=sharegpt\nRAW_DATA=sharegpt.json\nPROMPT_TEMPLATE=chatml\nTRAINER=dpo\nPREFERENCE=chosen\n"
    p = project(tmp_path, env, raw)
    assert atr("data", str(p), cwd=tmp_path).code == 0
    check = atr("check", str(p), cwd=tmp_path)
    assert "warning: projects/p/project.env:6: PREFERENCE: ignored: TRAINER=dpo trains the pairs" in check.out, (
        check.out
    )
    # the trainer decides the shape atr data builds, and check says it
    assert "builds:   sharegpt: preference pairs for TRAINER=dpo: the prompt, a chosen and a rejected" in check.out
    sft = atr("check", str(p), "--set", "TRAINER=sft", cwd=tmp_path)
    expected = "builds:   sharegpt: conversations for TRAINER=sft, each ending with its answer (the chosen answer of"
    assert expected in sft.out, sft.out


def test_check_says_which_trainer_and_why(tmp_path):
    p = project(tmp_path, "DATA_FILE=t.csv\n")
    write(p / "t.csv", "text\n### 질문:\n안녕\n### 답변:\n네\n")
    out = atr("check", str(p), cwd=tmp_path).out
    assert "trainer:  sft (supervised fine-tuning on conversations; LOSS_ON says which tokens carry loss; " in out
    assert "TRAINER is not set: sft is the default, TRAINER=default is AutoTrain's continued pretraining)" in out
    command = atr("command", str(p), cwd=tmp_path)
    assert "--trainer sft" in command.out  # AutoTrain's own default would be `default`
    write(p / "project.env", "MODEL=org/model\nDATA_FILE=t.csv\nTRAINER=default\n")
    out = atr("check", str(p), cwd=tmp_path).out
    assert "trainer:  default (a causal LM on the whole text" in out
    assert "loss on:  all (every token of the texts, concatenated into BLOCK_SIZE blocks)" in out


def test_check_refuses_and_warns_on_the_preference_keys(tmp_path):
    p = project(
        tmp_path,
        "DATA_FILE=t.csv\nTRAINER=dpo\nPROMPT_TEXT_COLUMN=prompt\nREJECTED_TEXT_COLUMN=rejected\nTEXT_COLUMN=chosen\nPEFT=true\n",
    )
    write(p / "t.csv", "prompt,chosen,rejected\n안녕,네,싫어\n")
    ok = atr("check", str(p), cwd=tmp_path)
    assert ok.code == 0, ok.text
    assert "beta 0.1; loss sigmoid; reference: the base with the adapter off)" in ok.out
    rpo = atr("check", str(p), "--set", "DPO_LOSS=sigmoid, sft", cwd=tmp_path)
    assert rpo.code == 0 and "beta 0.1; loss sigmoid,sft; reference:" in rpo.out, rpo.text
    typo = atr("check", str(p), "--set", "DPO_LOSS=dpo", cwd=tmp_path)
    assert typo.code == 2 and "DPO_LOSS" in typo.err and "must be TRL's DPO loss types" in typo.err
    zero = atr("check", str(p), "--set", "DPO_BETA=0", cwd=tmp_path)
    assert zero.code == 2 and "DPO_BETA" in zero.err and "must be in (0, 1000]" in zero.err
    limits = atr("check", str(p), "--set", "MAX_PROMPT_LENGTH=64", "--set", "MODEL_REF=org/ref", cwd=tmp_path)
    assert limits.code == 0, limits.text
    assert "MAX_PROMPT_LENGTH: TRL 1.x's trainers have no prompt or completion limit" in limits.out
    assert "MODEL_REF: ignored with PEFT: the reference is the base model with the adapter off" in limits.out
    sft = atr("check", str(p), "--set", "TRAINER=sft", "--set", "DPO_BETA=0.5", "--set", "DPO_LOSS=ipo", cwd=tmp_path)
    assert "DPO_BETA: only the dpo trainer reads it" in sft.out
    assert "DPO_LOSS: only the dpo trainer reads it; TRAINER=sft" in sft.out
    no_rejected = atr("check", str(p), "--set", "REJECTED_TEXT_COLUMN=worse", cwd=tmp_path)
    assert no_rejected.code == 2
    assert "REJECTED_TEXT_COLUMN: projects/p/t.csv has no column 'worse'" in no_rejected.err


def test_a_pair_renders_its_prompt_exactly_as_generation_does(tiny_model):
    from transformers import AutoTokenizer

    from autotrain_runner.config.templates import NAMED
    from autotrain_runner.rendering import Renderer, prompt_messages

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    history = [
        {"role": "user", "content": "1+1은?"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "2+2는?"},
    ]
    for template in (NAMED["tokenizer"], NAMED["instruct-ko"]):
        renderer = Renderer(tokenizer, template)
        pair = renderer.pair(history, "4", "몰라")
        assert pair.prompt == renderer.prompt_ids(history)
        assert pair.chosen[-1] == pair.rejected[-1] == tokenizer.eos_token_id
        whole = renderer.sample([*history, {"role": "assistant", "content": "4"}])
        assert pair.prompt + pair.chosen == whole.ids
    assert prompt_messages("안녕") == [{"role": "user", "content": "안녕"}]
    assert prompt_messages(json.dumps(history)) == history


def test_the_preference_margin_is_the_log_probability_difference_computed_by_hand(tiny_model):
    """log p(chosen | prompt) - log p(rejected | prompt), each summed over the answer and its end."""
    import torch

    from autotrain_runner.evaluation.preference import figures, log_prob_margins
    from autotrain_runner.generation.generate import HFBackend

    backend = HFBackend(str(tiny_model))
    prompt = [{"role": "user", "content": "오늘 날씨 어때?"}]
    pairs = [
        {"id": "a", "messages": prompt, "reference": "맑아여~*", "rejected": "The weather is fine."},
        {"id": "b", "messages": prompt, "reference": "The weather is fine.", "rejected": "맑아여~*"},
    ]
    margins = log_prob_margins(backend, pairs)

    def by_hand(answer: str) -> float:
        ids = backend.renderer.prompt_ids(prompt)
        answer_ids = backend.renderer.pair(prompt, answer, answer + "!").chosen
        full = torch.tensor([ids + answer_ids])
        with torch.no_grad():
            logits = backend.model(input_ids=full).logits[0].double()
        log_probs = torch.log_softmax(logits, dim=-1)
        return sum(float(log_probs[len(ids) + i - 1, token]) for i, token in enumerate(answer_ids))

    expected = by_hand("맑아여~*") - by_hand("The weather is fine.")
    assert margins["a"] == pytest.approx(expected, abs=1e-3)
    assert margins["b"] == pytest.approx(-expected, abs=1e-3)
    found = figures(margins.values(), "pref")
    assert found["pref_accuracy"] == 0.5 and found["pref_n"] == 2 and found["pref_margin"] == pytest.approx(0, abs=1e-3)

"""The demo project's data: reproducible from its rules, split without overlap, built cleanly."""

import importlib.util
import json
import shutil
from pathlib import Path

from helpers import atr

DEMO = Path(__file__).resolve().parents[1] / "projects" / "demo"


def _txtspeak():
    spec = importlib.util.spec_from_file_location("txtspeak", DEMO / "txtspeak.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.txtspeak


def test_style_tsv_is_exactly_the_rules_applied_to_plain_txt():
    """Each pair's answer is txtspeak.py's rewrite of its message, so the data can be checked and regenerated."""
    txtspeak = _txtspeak()
    plain = [line for line in (DEMO / "plain.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    pairs = [line.split("\t") for line in (DEMO / "style.tsv").read_text(encoding="utf-8").splitlines()]
    assert [message for message, _ in pairs] == plain and len(set(plain)) == len(plain) == 260
    assert all(answer == txtspeak(message) for message, answer in pairs)
    assert txtspeak("Are you coming to see me tonight?") == "r u coming 2 c me 2nite??"
    assert txtspeak("Thanks, that's really great!") == "thx, thats rly gr8!! ^^"
    assert txtspeak("I'm tired because of work today.") == "im tired cuz of work 2day ~*"


def test_the_demo_builds_its_splits_without_overlap_and_its_prompts_are_unseen(tmp_path):
    project = tmp_path / "projects" / "demo"
    shutil.copytree(DEMO, project, ignore=shutil.ignore_patterns("runs", "eval", "sweeps"))
    shutil.copytree(DEMO.parents[1] / "envs", tmp_path / "envs")
    result = atr("data", str(project))
    assert result.code == 0, result.text
    assert "rows read 260, kept 260, dropped: none" in result.out
    assert "splits: train 182, valid 39, test 39" in result.out
    built = tmp_path / "datasets" / "demo"
    train = [json.loads(line)["messages"] for line in (built / "train.jsonl").read_text().splitlines()]
    assert all(m[0] == {"role": "system", "content": "Rewrite the message in 2000s txt speak."} for m in train)
    seen = {m[1]["content"] for m in train}
    held_out = [
        json.loads(line)["messages"][-1]["content"]
        for split in ("valid", "test")
        for line in (built / f"{split}.jsonl").read_text().splitlines()
    ]
    assert len(held_out) == len(set(held_out)) == 78 and not seen & set(held_out)
    prompts = (project / "prompts.txt").read_text(encoding="utf-8").splitlines()
    assert prompts and not seen & set(prompts) and not set(held_out) & set(prompts)


PREFERENCE_DEMO = DEMO.parent / "demo-preference"


def test_the_preference_demo_pairs_are_the_rules_against_a_copy_or_a_preamble(tmp_path):
    """pairs.jsonl is pairs.py's output: chosen is txtspeak.py's rewrite, rejected the message copied
    back or wrapped in a preamble; `atr data` builds it as pairs, 182 / 39 / 39."""
    txtspeak = _txtspeak()
    plain = [line for line in (DEMO / "plain.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [json.loads(line) for line in (PREFERENCE_DEMO / "pairs.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["prompt"] for r in rows] == plain
    assert all(r["chosen"] == txtspeak(r["prompt"]) for r in rows)
    assert all(
        r["rejected"]
        in (r["prompt"], f"Certainly! Here is your message rewritten in a casual texting style: {r['prompt']}")
        for r in rows
    )
    assert {r["rejected"] == r["prompt"] for r in rows} == {True, False}

    project = tmp_path / "projects" / "demo-preference"
    shutil.copytree(PREFERENCE_DEMO, project, ignore=shutil.ignore_patterns("runs", "eval"))
    shutil.copytree(DEMO, tmp_path / "projects" / "demo", ignore=shutil.ignore_patterns("runs", "eval", "sweeps"))
    shutil.copytree(DEMO.parents[1] / "envs", tmp_path / "envs")
    result = atr("data", str(project))
    assert result.code == 0, result.text
    assert "rows read 260, kept 260, dropped: none" in result.out
    assert "splits: train 182, valid 39, test 39" in result.out
    assert "preference pairs for TRAINER=orpo" in result.out


def test_the_dpo_demo_trains_dpo_with_the_chosen_nll_on_the_preference_demos_held_out_pairs(tmp_path):
    """projects/demo-dpo reads demo-preference's pairs and splits them alike, so the two demos are
    scored on the same 39 held-out pairs; its trainer is DPO plus the chosen answers' NLL."""
    for name in ("demo", "demo-preference", "demo-dpo"):
        shutil.copytree(DEMO.parent / name, tmp_path / "projects" / name, ignore=shutil.ignore_patterns("runs", "eval"))
    shutil.copytree(DEMO.parents[1] / "envs", tmp_path / "envs")
    held_out = {}
    for name in ("demo-preference", "demo-dpo"):
        result = atr("data", str(tmp_path / "projects" / name), cwd=tmp_path)
        assert result.code == 0, result.text
        assert "splits: train 182, valid 39, test 39" in result.out
        test_split = tmp_path / "datasets" / name / "test.jsonl"
        held_out[name] = [json.loads(line)["reference"] for line in test_split.read_text().splitlines()]
    assert held_out["demo-dpo"] == held_out["demo-preference"] and len(held_out["demo-dpo"]) == 39
    check = atr("check", str(tmp_path / "projects" / "demo-dpo"), cwd=tmp_path)
    assert check.code == 0, check.text
    assert "trainer:  dpo (preference pairs" in check.out and "beta 0.1; loss sigmoid,sft;" in check.out
    assert "builds:   table: preference pairs for TRAINER=dpo" in check.out

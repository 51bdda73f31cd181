"""Today's LLM families (tiny random models from transformers' own config classes) through the real
`atr data`, `atr train` (AutoTrain's trainer via the engine) and `atr eval`, on CPU.

CI trains at least `catalog.CI_FAMILIES`: `pytest tests/test_families.py -k "llama3 or qwen3 or gemma3 or exaone4"`.
"""

import json

import pytest

from autotrain_runner.families import catalog, harness
from helpers import atr

NAMES = list(catalog.FAMILIES)


@pytest.mark.parametrize("name", NAMES)
def test_tiny_model_loads_with_auto_classes_and_ends_turns_with_eos(tmp_path, name):
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    family = catalog.FAMILIES[name]
    folder = harness.build(name, tmp_path / name)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert type(model).__name__ == family.model_class
    assert isinstance(model.config, getattr(transformers, family.config_class))
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size <= 64
    assert tokenizer.eos_token == family.eos and family.eos in tokenizer.all_special_tokens
    assert model.config.eos_token_id == tokenizer.eos_token_id == model.generation_config.eos_token_id
    assert set(family.specials) <= set(tokenizer.all_special_tokens)
    messages = catalog.chat_rows()[0]["messages"]
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    assert full.startswith(prompt) and full.rstrip("\n").endswith(family.eos)
    # every control token is one token, never split by the BPE
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    assert ids.count(tokenizer.eos_token_id) == full.count(family.eos)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_family_trains_and_evaluates(tmp_path, name):
    model = harness.build(name, tmp_path / "model")
    project = harness.write_project(tmp_path / "project", model, name)
    built = atr("data", str(project))
    assert built.code == 0, built.text[-2000:]

    result = atr("train", str(project), "--run-id", "r1")
    run_dir = project / "runs" / "r1"
    log = run_dir / "train.log"
    assert result.code == 0, result.text[-2000:] + (log.read_text()[-4000:] if log.exists() else "")
    assert f"succeeded: run folder {run_dir}" in result.out
    assert (run_dir / harness.project_name(name) / "adapter_model.safetensors").stat().st_size > 0
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "succeeded"
    assert isinstance(record["train_loss"], float) and record["train_loss"] > 0
    assert record["template"]["name"] == "tokenizer"

    evaluated = atr("eval", str(project), "--run", "r1")
    assert evaluated.code == 0, evaluated.text[-3000:]
    figures = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert figures["n"] > 0
    assert 0 <= figures["chrf"] <= 100 and 0 <= figures["eos_rate"] <= 1
    assert figures["valid_loss"] > 0, "the held-out answers' loss: the chat template's answer span was found"
    assert figures["signature"]["template"]["name"] == "tokenizer"
    assert figures["signature"]["adapter"].endswith(f"r1/{harness.project_name(name)}")
    rows = [json.loads(line) for line in (run_dir / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == figures["n"]
    assert rows[0]["request"] in rows[0]["prompt"] != rows[0]["request"], "the prompt is the rendered chat template"

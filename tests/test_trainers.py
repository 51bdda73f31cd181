"""AutoTrain's default, reward, dpo and orpo trainers on the pinned stack: each fix shown failing
without it and working with it, and each trainer training a tiny model through `atr train`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from autotrain_runner.training import engine, trainer_fixes
from helpers import atr, write


def _fix(name: str) -> engine.Fix:
    return next(f for f in engine.FIXES if f.name == name)


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow  # two fresh interpreters importing TRL
def test_orpo_is_where_trl_keeps_it_now():
    """TRL 1.x moved ORPO to trl.experimental.orpo: AutoTrain's trainer module does not import."""
    bare = _python("import autotrain.trainers.clm.train_clm_orpo")
    assert bare.returncode != 0 and "cannot import name 'ORPOConfig' from 'trl'" in bare.stderr
    fixed = _python(
        "from autotrain_runner.training import engine; engine.apply_fixes()\n"
        "import autotrain.trainers.clm.train_clm_orpo as m\n"
        "from trl.experimental.orpo import ORPOTrainer\n"
        "assert issubclass(m.ORPOTrainer, ORPOTrainer)\n"
        "assert m.ORPOConfig(output_dir='o', max_prompt_length=128, max_length=64, bf16=False).max_length == 64\n"
    )
    assert fixed.returncode == 0, fixed.stderr[-2000:]


def test_dpo_config_drops_the_lengths_trl_removed(tmp_path):
    from trl import DPOConfig

    asked = {"output_dir": str(tmp_path), "max_length": 64, "max_prompt_length": 32, "max_target_length": 16}
    asked["bf16"] = False  # TRL's default, which a CPU refuses (the training-args fix sets it as asked)
    with pytest.raises(TypeError, match="max_prompt_length"):
        DPOConfig(**asked)
    assert _fix("dpo-config").wrap(DPOConfig)(**asked).max_length == 64


def test_dpo_loss_reaches_the_dpo_config_autotrain_builds_without_one(tmp_path):
    from trl import DPOConfig

    from autotrain_runner.training.options import OPTIONS

    asked = {"output_dir": str(tmp_path), "max_length": 64, "bf16": False}
    assert _fix("dpo-config").wrap(DPOConfig)(**asked).loss_type == ["sigmoid"]  # DPO_LOSS unset: TRL's own
    OPTIONS.update({"dpo_loss": ["sigmoid", "sft"]})
    try:
        assert _fix("dpo-config").wrap(DPOConfig)(**asked).loss_type == ["sigmoid", "sft"]
    finally:
        OPTIONS.update({"dpo_loss": None})


def test_dpo_loss_names_are_the_ones_trl_takes():
    import re

    from trl import DPOConfig

    from autotrain_runner.config.value_checks import DPO_LOSSES, check_dpo_loss

    help_text = DPOConfig.__dataclass_fields__["loss_type"].metadata["help"]
    listed = help_text.split("Possible values are:")[1].split("If multiple")[0]
    assert tuple(re.findall(r"'([a-z_]+)'", listed)) == DPO_LOSSES
    assert check_dpo_loss("sigmoid, sft") is None
    assert "got 'dpo'" in check_dpo_loss("dpo") and "twice" in check_dpo_loss("sft,sft")


def test_default_trainer_takes_its_tokenizer_as_processing_class(tmp_path, tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model)
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    with pytest.raises(TypeError, match="unexpected keyword argument 'tokenizer'"):
        Trainer(model=model, args=args, tokenizer=tokenizer)
    fixed = _fix("processing-class").wrap(Trainer)(model=model, args=args, tokenizer=tokenizer)
    assert fixed.processing_class is tokenizer


def test_reward_model_loads_with_autotrains_flash_attention_flag(tiny_model):
    from transformers import AutoModelForSequenceClassification

    with pytest.raises(TypeError, match="use_flash_attention_2"):
        AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=1, use_flash_attention_2=False)
    loader = _fix("from-pretrained").wrap(AutoModelForSequenceClassification)
    assert loader.from_pretrained(tiny_model, num_labels=1, use_flash_attention_2=False).config.num_labels == 1


def _config(tmp_path, tiny_model, trainer: str):
    from autotrain.trainers.clm.params import LLMTrainingParams

    return LLMTrainingParams(
        model=str(tiny_model), project_name="p", data_path=str(tmp_path), trainer=trainer, prompt_text_column="prompt"
    )


def test_pairs_become_the_renderers_ids_for_each_preference_trainer(tmp_path, tiny_model):
    """AutoTrain tokenized pairs as text with the tokenizer's special tokens (its reward step) or left
    them to TRL; here each is the prompt as generation encodes it, then each answer with its end."""
    from autotrain.trainers.clm.utils import get_tokenizer, preprocess_reward
    from datasets import Dataset

    from autotrain_runner.config.templates import NAMED
    from autotrain_runner.rendering import Renderer

    history = [
        {"role": "user", "content": "1+1은?"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "2+2는?"},
    ]
    rows = {
        "prompt": [json.dumps(history, ensure_ascii=False), "안녕"],
        "chosen": ["4", "네~*"],
        "rejected": ["몰라", "싫어"],
    }
    config = _config(tmp_path, tiny_model, "dpo")
    tokenizer = get_tokenizer(config)
    renderer = Renderer(tokenizer, NAMED["tokenizer"])
    engine.OPTIONS.template = NAMED["tokenizer"].describe()
    try:
        dpo = trainer_fixes.rendered_pairs(config, tokenizer, Dataset.from_dict(rows))
        config.trainer = "reward"
        reward = trainer_fixes.rendered_pairs(config, tokenizer, Dataset.from_dict(rows))
    finally:
        engine.OPTIONS.template = None
    assert dpo.column_names == ["prompt_ids", "chosen_ids", "rejected_ids"]
    assert dpo[0]["prompt_ids"] == renderer.prompt_ids(history)
    assert tokenizer.decode(dpo[0]["chosen_ids"]) == "4</s>"
    assert dpo[1]["prompt_ids"] == renderer.prompt_ids([{"role": "user", "content": "안녕"}])
    assert reward[0]["chosen_ids"] == dpo[0]["prompt_ids"] + dpo[0]["chosen_ids"]

    # AutoTrain's reward step reads text columns the ids replaced; fixed, it hands the ids on
    with pytest.raises(KeyError, match="chosen"):
        reward.map(preprocess_reward, batched=True, fn_kwargs={"tokenizer": tokenizer})
    fixed = reward.map(_fix("reward-ids").wrap(preprocess_reward), batched=True, fn_kwargs={"tokenizer": tokenizer})
    assert fixed["input_ids_chosen"] == reward["chosen_ids"]

    # ORPO's row: the prompt masked in the labels, an answer cut where prompt and answer pass max_length
    row = trainer_fixes.orpo_row(dpo[0], max_length=len(dpo[0]["prompt_ids"]) + 1)
    assert row["chosen_input_ids"] == dpo[0]["prompt_ids"] + dpo[0]["chosen_ids"][:1]
    assert row["chosen_labels"] == [-100] * len(dpo[0]["prompt_ids"]) + dpo[0]["chosen_ids"][:1]


PAIRS_ENV = """\
MODEL={model}
DATA_BUILDER=alpaca
RAW_DATA=pairs.json
PROMPT_TEMPLATE=tokenizer
TRAINER={trainer}
SPLIT=0.7,0.15,0.15
MAX_NEW_TOKENS=8
EVAL_BATCH_SIZE=4
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


def _pairs(n: int = 20) -> list[dict]:
    return [
        {"instruction": f"오늘 날씨 어때? {i}", "chosen": f"맑아여~* {i}", "rejected": f"The weather is fine. {i}"}
        for i in range(n)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["dpo", "orpo", "reward", "default"])
def test_each_trainer_trains_through_atr_train(tmp_path, tiny_model, trainer):
    project = tmp_path / "projects" / "pairs"
    write(project / "pairs.json", json.dumps(_pairs(), ensure_ascii=False))
    env = PAIRS_ENV.format(model=tiny_model, trainer=trainer)
    if trainer == "orpo":  # a text layout: the trainer process renders with the run's template, not a default
        env = env.replace("PROMPT_TEMPLATE=tokenizer", "PROMPT_TEMPLATE=instruct-ko")
    if trainer == "dpo":  # DPO plus the chosen answers' NLL (DPO_LOSS), as projects/demo-dpo trains
        env += "DPO_LOSS=sigmoid,sft\n"
    # the default trainer reads text: the chosen answers, as sft would (PREFERENCE=chosen), in blocks
    # small enough that the three held-out samples fill one (a partial block is dropped, as AutoTrain does)
    write(project / "project.env", env + ("PREFERENCE=chosen\nBLOCK_SIZE=16\n" if trainer == "default" else ""))
    result = atr("train", str(project), "--run-id", "r1")
    assert result.code == 0, result.text[-3000:]
    run = project / "runs" / "r1"
    record = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert record["status"] == "succeeded" and record["params"]["trainer"] == trainer
    assert record["trainer"].startswith(f"{trainer} (")
    assert record["train_loss"] is not None and record["eval_loss"] is not None  # the held-out split is kept
    if trainer == "dpo":  # DPO's own loss starts at ln 2 (0.69); the NLL of a random model's answers is far above
        first = (record["loss_history"] or [0])[0]
        assert "loss sigmoid,sft" in record["trainer"] and first > 2.0, record["loss_history"]
    assert (run / record["output_dir"] / "adapter_model.safetensors").is_file()
    metrics = json.loads((run / "train_metrics.json").read_text(encoding="utf-8"))
    assert metrics["steps"] >= 1 and metrics["tokens"] > 0  # both sides of every pair count
    if trainer == "reward":  # a score head, saved beside the adapter; scored, never asked to generate
        config = json.loads((run / record["output_dir"] / "adapter_config.json").read_text(encoding="utf-8"))
        assert config["task_type"] == "SEQ_CLS"
        evaluated = atr("eval", str(project), "--engine", "hf")
        assert evaluated.code == 0, evaluated.text[-3000:]
        figures = json.loads((run / "eval" / "metrics.json").read_text(encoding="utf-8"))
        assert figures["reward_n"] == 3 and 0 <= figures["reward_accuracy"] <= 1 and "chrf" not in figures
        chat = atr("chat", str(project))
        assert (
            chat.code == 2 and "is a reward model (TRAINER=reward): it scores texts and does not generate" in chat.err
        )
        return
    if trainer in ("dpo", "orpo"):  # held-out pairs: the chosen answer's log-probability margin, base and tuned
        evaluated = atr("eval", str(project), "--engine", "hf", "--compare-base")
        assert evaluated.code == 0, evaluated.text[-3000:]
        tuned = json.loads((run / "eval" / "metrics.json").read_text(encoding="utf-8"))
        assert tuned["pref_n"] == 3 and 0 <= tuned["pref_accuracy"] <= 1 and "chrf" in tuned
        compare = (run / "eval" / "compare.md").read_text(encoding="utf-8")
        assert "pref_accuracy" in compare and "pref_margin" in compare
        card = atr("push", str(project), "--repo", "me/pairs", "--dry-run")  # prints the card
        assert card.code == 0, card.text[-3000:]
        assert f"Trainer: {trainer} (preference pairs" in card.out and "| pref_accuracy |" in card.out


@pytest.mark.slow
def test_bench_trainers_times_each_trainer_against_sft():
    result = atr("bench", "trainers", "--trainers", "sft,dpo", "--pairs", "12")
    assert result.code == 0, result.text[-3000:]
    figures = json.loads(result.out)
    assert [r["trainer"] for r in figures["rows"]] == ["sft", "dpo"]
    sft, dpo = figures["rows"]
    assert sft["wall_vs_sft"] == 1.0 and dpo["wall_vs_sft"] == round(dpo["wall_s"] / sft["wall_s"], 2)
    assert all(r["steps"] >= 1 and r["train_loss"] is not None and r["s_per_step"] > 0 for r in figures["rows"])
    assert sft["step_vs_sft"] == 1.0 and dpo["tokens_per_s"] > 0
    assert figures["cpu"]


def test_default_trainer_texts_are_the_renderers_ids(tmp_path, tiny_model):
    """AutoTrain's default trainer appended the EOS as text and tokenized the stored value as it is: a
    built conversation was trained as its JSON. Fixed, it is the conversation rendered whole."""
    from autotrain.trainers.clm import train_clm_default, utils
    from datasets import Dataset

    from autotrain_runner.config.templates import NAMED
    from autotrain_runner.rendering import Renderer

    conversation = [{"role": "user", "content": "안녕"}, {"role": "assistant", "content": "반가워여~*"}]
    config = _config(tmp_path, tiny_model, "default")
    config.text_column = "messages"
    tokenizer = utils.get_tokenizer(config)
    rows = Dataset.from_dict({"messages": [json.dumps(conversation, ensure_ascii=False)]})
    bare = train_clm_default.process_data(rows, tokenizer, config)
    assert bare["messages"][0].startswith('[{"role": "user"') and bare["messages"][0].endswith("</s>")

    engine.OPTIONS.template = NAMED["tokenizer"].describe()
    try:
        fixed = _fix("default-data").wrap(train_clm_default.process_data)(rows, tokenizer, config)
    finally:
        engine.OPTIONS.template = None
    expected = Renderer(tokenizer, NAMED["tokenizer"]).whole(conversation)
    assert fixed["messages"][0] == expected and expected[-1] == tokenizer.eos_token_id
    tokenized = _fix("default-tokenize").wrap(utils.tokenize)(fixed[:1], tokenizer, config)
    assert tokenized["input_ids"] == [expected] and tokenized["attention_mask"] == [[1] * len(expected)]


def test_a_pair_counts_the_tokens_of_both_its_sides():
    from datasets import Dataset

    from autotrain_runner.training.measure import dataset_tokens

    dpo = Dataset.from_dict({"prompt_ids": [[1, 2, 3]], "chosen_ids": [[4, 5]], "rejected_ids": [[6]]})
    orpo = Dataset.from_dict({"chosen_input_ids": [[1, 2, 3, 4, 5]], "rejected_input_ids": [[1, 2, 3, 6]]})
    reward = Dataset.from_dict({"chosen_ids": [[1, 2, 3, 4, 5]], "rejected_ids": [[1, 2, 3, 6]]})
    assert dataset_tokens(dpo) == dataset_tokens(orpo) == dataset_tokens(reward) == 9
    assert dataset_tokens(Dataset.from_dict({"input_ids": [[1, 2], [3]]})) == 3
    assert dataset_tokens(Dataset.from_dict({"text": ["a"]})) is None

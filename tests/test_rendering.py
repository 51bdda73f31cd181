"""One renderer, on the real chat templates and tokenizer settings of the families people fine-tune.

`tests/fixtures/templates/*.json` are the published templates (each file names where it was taken
from); every test here builds a tiny model with one of them (`families.real.build`) and compares
token ids, never strings, across the paths that touch a model.
"""

import json

import pytest

from autotrain_runner.config.templates import NAMED
from autotrain_runner.evaluation.evaluate import evenly
from autotrain_runner.families import real
from autotrain_runner.rendering import Renderer, generation_eos_ids, special_affixes
from helpers import atr, write

SPECS = {spec.name: spec for spec in real.load_all()}
CONVERSATION = [
    {"role": "user", "content": "오늘 날씨 어때?"},
    {"role": "assistant", "content": "맑고 따뜻해여~*"},
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folders = {}

    def get(name: str):
        if name not in folders:
            folders[name] = real.build(SPECS[name], tmp_path_factory.mktemp(name))
        return folders[name]

    return get


def _renderer(folder, thinking: str = "off") -> Renderer:
    from transformers import AutoTokenizer

    return Renderer(AutoTokenizer.from_pretrained(folder), NAMED["tokenizer"], thinking, generation_eos_ids(folder))


def test_the_gathered_templates_cover_the_families_and_name_their_sources():
    assert len(SPECS) >= 15
    for family in ("llama-3.1", "gemma-3", "qwen-3", "exaone-4", "hyperclovax-seed", "mistral-small-3", "phi-4"):
        assert family in SPECS
    for spec in SPECS.values():
        assert spec.source.startswith("https://"), spec.name
        assert "{%" in spec.chat_template and spec.eos


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_family_renders_one_bos_the_same_ids_everywhere_and_loss_on_the_answer(built, name):
    """Training (the engine's tokenization), generation (the HF backend's encoding of the rendered
    prompt) and the held-out loss give the same prompt ids; one BOS; the loss on the answer and its end."""
    result = real.conformance(SPECS[name], built(name))
    assert result.ok, result.checks


@pytest.mark.parametrize("name", ["llama-3.1", "gemma-3", "mistral-small-3"])
def test_unfixed_a_rendered_prompt_tokenized_with_special_tokens_starts_with_two_bos(built, name):
    """What TRL does with a rendered prompt string (AutoTrain's answer-only path): the template's BOS
    and the tokenizer's. The renderer keeps one."""
    renderer = _renderer(built(name))
    tokenizer = renderer.tokenizer
    text = renderer.prompt_text(CONVERSATION[:1])
    assert text.startswith(tokenizer.bos_token)
    assert tokenizer(text)["input_ids"][:2] == [tokenizer.bos_token_id] * 2
    ids = renderer.prompt_ids(CONVERSATION[:1])
    assert ids[0] == tokenizer.bos_token_id != ids[1]


def test_a_template_without_bos_on_a_tokenizer_that_adds_one_gets_it(built):
    """SOLAR's layout (EEVE) writes no BOS; its tokenizer adds `<s>`; and no end marker: the EOS ends the answer."""
    renderer = _renderer(built("eeve"))
    tokenizer = renderer.tokenizer
    assert special_affixes(tokenizer)[0] == [tokenizer.bos_token_id]
    assert not renderer.prompt_text(CONVERSATION[:1]).startswith("<s>")
    sample = renderer.sample(CONVERSATION)
    assert sample.ids[0] == tokenizer.bos_token_id and sample.ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(sample.ids[sample.answer_start :]) == "맑고 따뜻해여~*</s>"


def test_hyperclovax_answers_end_with_both_of_its_markers(built):
    """Its template ends a turn with `<|im_end|>`, its EOS is `<|endofturn|>`: training ends each answer
    `<|im_end|><|endofturn|>`, as the model card's own format; generation stops at either."""
    renderer = _renderer(built("hyperclovax-seed"))
    sample = renderer.sample(CONVERSATION)
    tail = renderer.tokenizer.convert_ids_to_tokens(sample.ids[-2:])
    assert tail == ["<|im_end|>", "<|endofturn|>"]
    assert set(renderer.end_markers()) == {"<|im_end|>", "<|endofturn|>"}


@pytest.mark.parametrize("name", ["qwen-3", "exaone-4"])
def test_thinking_is_rendered_the_same_in_training_and_generation(built, name):
    """THINKING=off (the default): the empty think block is in the prompt that training and generation
    share, and not in the answer; THINKING=on: the answer carries the (empty) thinking, which it closes."""
    off, on = _renderer(built(name), "off"), _renderer(built(name), "on")
    prompt_off = off.prompt_text(CONVERSATION[:1])
    assert prompt_off.rstrip().endswith("</think>")
    sample = off.sample(CONVERSATION)
    assert sample.ids[: sample.answer_start] == off.prompt_ids(CONVERSATION[:1])
    assert "<think>" not in off.tokenizer.decode(sample.ids[sample.answer_start :])
    assert "</think>" not in on.prompt_text(CONVERSATION[:1])
    thought = on.sample(CONVERSATION)
    answer = on.tokenizer.decode(thought.ids[thought.answer_start :])
    assert "</think>" in answer and answer.endswith("맑고 따뜻해여~*" + on.end_markers()[0])
    assert "enable_thinking" not in _renderer(built(name), "template").template_kwargs()


def test_reasoning_in_the_data_is_dropped_with_thinking_off_and_trained_with_it_on(built):
    """Qwen3 data with `reasoning_content`: off trains on the answer alone, with the prompt generation
    sees; on trains on the reasoning as the template renders it, then the answer."""
    thought = [CONVERSATION[0], {**CONVERSATION[1], "reasoning_content": "날씨를 떠올려 본다"}]
    off, on = _renderer(built("qwen-3"), "off"), _renderer(built("qwen-3"), "on")
    sample = off.sample(thought)
    assert sample.ids[: sample.answer_start] == off.prompt_ids(CONVERSATION[:1])
    assert "날씨를 떠올려" not in off.tokenizer.decode(sample.ids)
    inline = [CONVERSATION[0], {"role": "assistant", "content": "<think>\n생각\n</think>\n\n맑고 따뜻해여~*"}]
    assert off.sample(inline).ids == sample.ids
    reasoned = on.sample(thought)
    answer = on.tokenizer.decode(reasoned.ids[reasoned.answer_start :])
    assert "날씨를 떠올려 본다" in answer and answer.index("</think>") < answer.index("맑고 따뜻해여~*")


def test_a_template_that_moves_the_system_prompt_trains_on_the_inference_prompt(built):
    """Mistral v0.3 writes the system prompt only before a last user message: inside the whole
    conversation it is gone. The sample is the prompt inference sees, then the rendered answer."""
    renderer = _renderer(built("mistral-7b-v0.3"))
    messages = [{"role": "system", "content": "짧게 답해 주세요."}, *CONVERSATION]
    sample = renderer.sample(messages)
    prompt = renderer.tokenizer.decode(sample.ids[: sample.answer_start])
    assert "짧게 답해 주세요." in prompt and prompt.endswith("[/INST]")
    assert renderer.tokenizer.decode(sample.ids[sample.answer_start :]).strip() == "맑고 따뜻해여~*</s>"


def test_limit_samples_evenly():
    items = list(range(10))
    assert evenly(items, 3) == [0, 4, 9]  # round(4.5) is 4
    assert evenly(items, 1) == [0] and evenly(items, None) == items and evenly(items, 20) == items
    assert len(evenly(items, 7)) == 7 == len(set(evenly(items, 7)))


def test_eval_on_the_train_split_works_for_chat_and_text_datasets(tmp_path, tiny_model, style_project):
    """`atr eval --split train` read records without id or reference and crashed; every builder's
    dataset now has the train split in the shape of the others."""
    assert atr("data", str(style_project)).code == 0
    out = tmp_path / "train-eval"
    result = atr("eval", str(style_project), "--base", "--split", "train", "--limit", "3", "--out", str(out))
    assert result.code == 0, result.text[-2000:]
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert rows[0]["id"] == "train-00000" and len(rows) == 3
    assert all(r["reference"] for r in rows)

    chat = tmp_path / "chat"
    lines = [json.dumps({"messages": CONVERSATION}, ensure_ascii=False)] * 6
    write(chat / "chat.jsonl", "\n".join(lines) + "\n")
    write(
        chat / "project.env",
        f"MODEL={tiny_model}\nDATA_BUILDER=messages\nRAW_DATA=chat.jsonl\nPROMPT_TEMPLATE=tokenizer\nMAX_NEW_TOKENS=4\n",
    )
    assert atr("data", str(chat)).code == 0
    result = atr("eval", str(chat), "--base", "--split", "train", "--out", str(tmp_path / "chat-eval"))
    assert result.code == 0, result.text[-2000:]
    figures = json.loads((tmp_path / "chat-eval" / "metrics.json").read_text())
    assert figures["n"] >= 1 and "chrf" in figures


@pytest.mark.slow
@pytest.mark.parametrize("name", ["llama-3.1", "qwen-3"])
def test_family_pipeline_with_its_real_template(tmp_path, name):
    """`atr data`, `atr train` (answer-only), `atr eval --split train` after memorising a few pairs,
    `atr chat` for two turns and `atr serve`, on a tiny model with the family's real template: no
    sample with two BOS (read from the run's own loss record), loss on the answers and their end
    markers only, the memorised answers back whole and ended. The whole matrix: `atr bench families --real`."""
    result = real.pipeline(SPECS[name], tmp_path)
    assert not result.problems, result.problems
    assert result.ok, (result.checks, result.figures)

"""Metrics on small hand-checked cases, and against sacrebleu's own numbers."""

import pytest
import sacrebleu

from autotrain_runner.config import templates
from autotrain_runner.evaluation import metrics

HYPS = ["오늘 하늘이 넘 맑아여~*", "떡볶이 먹으러 가여", ""]
REFS = ["오늘 하눌이 넘넘 맑아여~*", "떡볶이 어때여?!", "굿나잇 ^^"]


def test_chrf_and_bleu_equal_sacrebleus_own():
    scores = metrics.corpus_scores(HYPS, REFS, tokenize="char")
    assert scores["chrf"] == round(sacrebleu.corpus_chrf(HYPS, [REFS]).score, 2)
    assert scores["bleu"] == round(sacrebleu.corpus_bleu(HYPS, [REFS], tokenize="char").score, 2)
    assert "tok:char" in scores["signatures"]["bleu"] and "nrefs:1" in scores["signatures"]["chrf"]
    assert metrics.corpus_scores(REFS, REFS)["chrf"] == 100.0
    # word-level BLEU on Korean: near zero for a close paraphrase, which is why char is the default
    assert metrics.corpus_scores(HYPS[:1], REFS[:1], "13a")["bleu"] < scores["bleu"]


def test_rep_and_distinct_by_hand():
    assert metrics.rep_n("abab", 2) == round(1 - 2 / 3, 4)  # ab, ba, ab: one of three repeats
    assert metrics.rep_n("abcd", 2) == 0.0 and metrics.rep_n("a", 2) == 0.0
    assert metrics.distinct_n(["aaa", "ab"], 2) == round(2 / 3, 4)  # aa, aa, ab


@pytest.mark.parametrize(
    ("text", "loops"),
    [
        ("좋아여~* 좋아여~* 좋아여~* 좋아여~*", True),
        ("한 줄\n한 줄\n한 줄", True),
        ("오늘 날씨 좋아 오늘 날씨 좋아 오늘 날씨 좋아", True),
        ("오늘 하늘이 넘 맑아여~* 창밖 보면서 설레는 하루에여 ^^*", False),
    ],
)
def test_repetition_flag(text, loops):
    assert metrics.repeats(text) is loops


@pytest.mark.parametrize("name", ["instruct-ko", "instruct-en"])
def test_leak_detection_for_each_text_template(name):
    template = templates.NAMED[name]
    leaked = template.render([{"role": "user", "content": "다음 질문"}], add_generation_prompt=True)
    markers = template.markers()
    assert metrics.leaks("네 좋아요 " + leaked, markers)
    assert metrics.leaks("네 좋아요", markers) == []


def test_leak_detection_for_chat_special_tokens():
    markers = ["<|im_start|>", "<|im_end|>"]
    assert metrics.leaks("좋아요<|im_end|>\n<|im_start|>user", markers) == markers
    assert metrics.leaks("좋아요", markers) == []


def test_echo():
    assert metrics.echoes("주말에 뭐 할지 추천해 줘 라고 하셨죠", "주말에 뭐 할지 추천해 줘")
    assert not metrics.echoes("미니홈피 꾸며요", "주말에 뭐 할지 추천해 줘")
    assert not metrics.echoes("안녕 안녕", "안녕"), "too short to call an echo"


def test_tfidf_cosine():
    same, other = metrics.tfidf_cosine(["오늘 날씨 맑음", "오늘 날씨 맑음"], ["오늘 날씨 맑음", "떡볶이 최고"])
    assert same == pytest.approx(1.0) and other < 0.2

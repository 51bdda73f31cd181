"""Metrics: strings in, numbers out. No model, no files.

chrF and BLEU come from sacrebleu (0-100 scale) with their signatures, so a number can be
reproduced. BLEU tokenizes by character by default: Korean has no spaces between many
morphemes, and `13a` word tokens make most Korean BLEU scores zero. Repetition, leak, echo and
empty-output checks are per sample and flag the failure modes of over-trained models: printing
the prompt template back, looping on one phrase.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

REPETITION_RATE = 0.5  # rep-4 above this is a loop, not style
_WORD = re.compile(r"\S+")


def bleu_tokenizers() -> list[str]:
    from sacrebleu.metrics.bleu import BLEU

    return list(BLEU.TOKENIZERS)


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "char") -> dict[str, Any]:
    """Corpus chrF and BLEU (sacrebleu, 0-100) and their signatures."""
    from sacrebleu.metrics import BLEU, CHRF

    chrf, bleu = CHRF(), BLEU(tokenize=tokenize, effective_order=True)
    chrf_score = chrf.corpus_score(list(hypotheses), [list(references)])
    bleu_score = bleu.corpus_score(list(hypotheses), [list(references)])
    return {
        "chrf": round(chrf_score.score, 2),
        "bleu": round(bleu_score.score, 2),
        "bleu_tokenize": tokenize,
        "signatures": {"chrf": str(chrf.get_signature()), "bleu": str(bleu.get_signature())},
    }


def sentence_chrf(hypothesis: str, reference: str) -> float:
    from sacrebleu.metrics import CHRF

    return round(CHRF().sentence_score(hypothesis, [reference]).score, 2)


def char_ngrams(text: str, n: int) -> list[str]:
    return [text[i : i + n] for i in range(len(text) - n + 1)]


def rep_n(text: str, n: int) -> float:
    """Share of character n-grams that repeat an earlier one in the same text (0 = none)."""
    grams = char_ngrams(text, n)
    return 0.0 if not grams else round(1 - len(set(grams)) / len(grams), 4)


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique character n-grams over all n-grams of all texts (1 = no two alike)."""
    grams = [g for t in texts for g in char_ngrams(t, n)]
    return 0.0 if not grams else round(len(set(grams)) / len(grams), 4)


def repeats(text: str) -> bool:
    """A line or a three-word phrase said three or more times, or a loop by rep-4."""
    lines = Counter(line.strip() for line in text.splitlines() if line.strip())
    if lines and max(lines.values()) >= 3:
        return True
    words = _WORD.findall(text)
    phrases = Counter(tuple(words[i : i + 3]) for i in range(len(words) - 2))
    if phrases and max(phrases.values()) >= 3:
        return True
    return rep_n(text, 4) > REPETITION_RATE


def leaks(text: str, markers: Sequence[str]) -> list[str]:
    """The template's role markers or special tokens that appear in an answer."""
    return [m for m in markers if m and m in text]


def echoes(output: str, prompt: str) -> bool:
    """The answer repeats the user's request (at least 10 characters of it) instead of answering."""
    request = " ".join(prompt.split())
    said = " ".join(output.split())
    return len(request) >= 10 and request in said


def tfidf_cosine(hypotheses: Sequence[str], references: Sequence[str]) -> list[float]:
    """Character 2-4-gram TF-IDF cosine: the offline stand-in when no embedding model loads."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import paired_cosine_distances

    texts = [*hypotheses, *references]
    if not any(t.strip() for t in texts):
        return [0.0] * len(hypotheses)
    matrix = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4)).fit_transform(texts)
    n = len(hypotheses)
    return [round(float(1 - d), 4) for d in paired_cosine_distances(matrix[:n], matrix[n:])]


def mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0

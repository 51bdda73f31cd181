"""The figures an evaluation writes into metrics.json, in one table: the scale each is on, which way
is better, and where it is shown. SWEEP_METRIC's choices, the leaderboards' columns, the report's
evaluations table, the model card, `atr eval`'s summary line and its base-vs-tuned comparison are
views of this table, in its order; adding a figure is adding a row.

The sample count `n` and the throughput `samples_per_s` are counts, not figures of quality: a view
that shows them places them itself.
"""

from __future__ import annotations

from dataclasses import dataclass

# the views
RANK = "rank"  # SWEEP_METRIC may name it: a sweep ranks its trials by it
LEADERBOARD = "leaderboard"  # a metric column of the leaderboards, and a heatmap
REPORT = "report"  # a column of report.html's evaluations table
HEADLINE = "headline"  # in the one line `atr eval` prints per model
CARD = "card"  # in the model card's evaluation table
COMPARE = "compare"  # a row of `atr eval --compare-base`'s comparison

_ALL = frozenset({RANK, LEADERBOARD, REPORT, HEADLINE, CARD, COMPARE})


@dataclass(frozen=True)
class Figure:
    name: str  # its key in metrics.json
    scale: str  # as the model card states it
    shown: frozenset[str]
    label: str = ""  # the leaderboard's heading (LEADERBOARD figures)
    lower_is_better: bool = False
    pairs: bool = False  # measured on held-out preference pairs: a table shows it where an evaluation has one


def _in(*views: str) -> frozenset[str]:
    return frozenset(views)


FIGURES = (
    Figure("chrf", "0-100 (sacrebleu)", _ALL, "chrF (0-100)"),
    Figure("bleu", "0-100 (sacrebleu)", _ALL, "BLEU (0-100)"),
    Figure("cosine", "-1..1", _ALL, "cosine similarity"),
    Figure("valid_loss", "nats/token", _ALL, "held-out loss", lower_is_better=True),
    Figure("perplexity", "", _in(CARD, COMPARE)),
    Figure(
        "pref_accuracy",
        "0-1: chosen likelier than rejected, held-out pairs",
        _in(RANK, LEADERBOARD, REPORT, CARD, COMPARE),
        "preference accuracy (0-1)",
        pairs=True,
    ),
    Figure(
        "pref_margin",
        "nats: log p(chosen) - log p(rejected)",
        _in(RANK, LEADERBOARD, REPORT, CARD, COMPARE),
        "preference margin (nats)",
        pairs=True,
    ),
    Figure("reward_accuracy", "0-1: chosen scored above rejected, held-out pairs", _in(REPORT, CARD), pairs=True),
    Figure("reward_margin", "score difference", _in(REPORT, CARD), pairs=True),
    Figure("rep_2", "0-1", _in(CARD, COMPARE)),
    Figure("rep_4", "0-1", _in(COMPARE)),
    Figure("distinct_2", "0-1", _in(CARD, COMPARE)),
    Figure("leak_rate", "0-1", _in(LEADERBOARD, REPORT, HEADLINE, CARD, COMPARE), "template-leak rate", True),
    Figure("repetition_rate", "0-1", _in(LEADERBOARD, REPORT, HEADLINE, CARD, COMPARE), "repetition rate", True),
    Figure("empty_rate", "0-1", _in(CARD, COMPARE)),
    Figure("eos_rate", "0-1", _in(REPORT, HEADLINE, CARD, COMPARE)),
    Figure("echo_rate", "0-1", _in(COMPARE)),
    Figure("mean_chars", "characters", _in(REPORT, CARD, COMPARE)),
)
BY_NAME = {figure.name: figure for figure in FIGURES}


def shown_in(view: str) -> tuple[Figure, ...]:
    return tuple(figure for figure in FIGURES if view in figure.shown)


def names(view: str) -> tuple[str, ...]:
    return tuple(figure.name for figure in shown_in(view))


def pair_figures() -> tuple[str, ...]:
    return tuple(figure.name for figure in FIGURES if figure.pairs)

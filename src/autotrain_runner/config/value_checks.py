"""The checks a key's value must pass beyond its type: ranges with upper bounds (where a value stops
being a setting and becomes a typo), block sizes, parameter counts, encodings and Hub repo ids.
Each returns None for a good value, else what is wrong with it in a phrase."""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], str | None]
# The longest context of any open model today is 10M tokens (Llama 4 Scout); a model's own limit is
# checked against its config where the config can be read (`inputs.model_context`).
MAX_CONTEXT = 10_000_000


_PARAM_COUNT = re.compile(r"^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmbt]?)\s*$", re.IGNORECASE)
_SCALE = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def parse_param_count(text: str) -> float | None:
    """`13B` -> 1.3e10, `135M`, `10.8b`, `7e9`; None when it is not a parameter count."""
    match = _PARAM_COUNT.match(str(text))
    if not match:
        return None
    params = float(match[1]) * _SCALE[match[2].lower()]
    # 1e999 reads as inf: no model has that many, and the arithmetic after would not survive it
    return params if 1 <= params <= 1e15 else None


def check_param_count(value: Any) -> str | None:
    if parse_param_count(value) is None:
        return f"must be a parameter count like 13B, 10.8B, 135M or 7e9, got {value!r}"
    return None


def above(limit: float, inclusive: bool = False) -> Check:
    def check(v: Any) -> str | None:
        ok = v >= limit if inclusive else v > limit
        return None if ok else f"must be {'>=' if inclusive else '>'} {limit:g}, got {v:g}"

    return check


def within(lo: float, hi: float, hi_inclusive: bool) -> Check:
    def check(v: Any) -> str | None:
        ok = lo <= v <= hi if hi_inclusive else lo <= v < hi
        return None if ok else f"must be in [{lo:g}, {hi:g}{']' if hi_inclusive else ')'}, got {v:g}"

    return check


def between(lo: float, hi: float, *, lo_open: bool = False) -> Check:
    """From `lo` (excluded with lo_open) to `hi` included: the upper bound is where a value stops
    being a setting and becomes a typo (EPOCHS=1e32, LR=1e308), refused before a run starts."""

    def check(v: Any) -> str | None:
        ok = (v > lo if lo_open else v >= lo) and v <= hi
        return None if ok else f"must be in {'(' if lo_open else '['}{lo:g}, {hi:g}], got {v:g}"

    return check


def repo_id(v: Any) -> str | None:
    """owner/name as the Hub accepts it (huggingface_hub's own rule: no `--` or `..`, ...), the
    check `atr push` makes, made by `atr check` already."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        if str(v).count("/") != 1:
            raise HFValidationError("it must name the owner: OWNER/NAME")
        validate_repo_id(str(v))
    except HFValidationError as exc:
        return f"{str(v)[:80]!r} is not a Hub repo id ({exc})"
    return None


def encoding(v: Any) -> str | None:
    try:
        codecs.lookup(str(v))
    except LookupError:
        return f"is not an encoding Python knows (utf-8, utf-16, cp949, euc-kr, shift_jis, ...), got {v!r}"
    return None


def block_size(v: Any) -> str | None:
    if isinstance(v, list):
        # LLMTrainingParams accepts a list, but the LLM trainer compares it with an int and crashes
        return f"AutoTrain's LLM trainer takes one block size (a list crashes it), got {','.join(map(str, v))}"
    if v == -1 or 0 < v <= MAX_CONTEXT:
        return None
    return f"must be a number of tokens from 1 to {MAX_CONTEXT:,} (or -1 for the model's maximum), got {v}"


_EVERY_PART = re.compile(r"^(?:(epoch)|(\d+)(?:\s*steps?)?|(\d+(?:\.\d+)?)\s*(m|min|minutes?|h|hours?))$")


def checkpoint_interval(value: Any) -> dict[str, Any] | None:
    """CHECKPOINT_EVERY as {"epoch": bool, "steps": int | None, "minutes": float | None}, or None for
    `no`: `epoch`, a step count (`200`), a time (`30m`, `2h`), or several of them (`epoch,30m`).
    Raises ValueError naming the part it cannot read."""
    text = str(value).strip().lower()
    if text in ("no", "none", "0", "off", "false"):
        return None
    found: dict[str, Any] = {"epoch": False, "steps": None, "minutes": None}
    for part in (p.strip() for p in text.split(",")):
        match = _EVERY_PART.match(part)
        if not match or (match[2] and int(match[2]) < 1) or (match[3] and float(match[3]) <= 0):
            raise ValueError(f"{part!r} is not epoch, a step count (200), a time (30m, 2h) or no")
        if match[1]:
            found["epoch"] = True
        elif match[2]:
            found["steps"] = int(match[2])
        else:
            found["minutes"] = float(match[3]) * (60 if match[4].startswith("h") else 1)
    return found


def check_checkpoint_interval(value: Any) -> str | None:
    try:
        checkpoint_interval(value)
    except ValueError as exc:
        return str(exc)
    return None


# TRL 1.16's DPOConfig.loss_type values (its help text; `test_trainers` checks the list against it)
DPO_LOSSES = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)


def dpo_losses(value: str) -> list[str]:
    """`sigmoid, sft` -> ["sigmoid", "sft"]."""
    return [part.strip() for part in str(value).split(",") if part.strip()]


def check_dpo_loss(value: Any) -> str | None:
    parts = dpo_losses(value)
    unknown = [part for part in parts if part not in DPO_LOSSES]
    if not parts or unknown:
        return f"must be TRL's DPO loss types, comma-separated ({', '.join(DPO_LOSSES)}), got {value!r}"
    if len(set(parts)) != len(parts):
        return f"names a loss type twice: {value!r}"
    return None

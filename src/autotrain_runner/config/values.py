"""Text -> typed values: what an env file's text means as a boolean, a number, a list or a model size.

Pure functions; a value that does not parse is reported as a `Problem` where it was written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from autotrain_runner.config.value_checks import Check
from autotrain_runner.errors import Level, Problem

TRUE = {"1", "true", "yes", "on", "y", "t"}
FALSE = {"0", "false", "no", "off", "n", "f"}
INVALID = object()  # what `typed` returns for text that is not a value of its kind (reported)


class KeyKind(StrEnum):
    """What a key's text means; each kind but STR has its parser in `_PARSERS`."""

    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STR = "str"
    BLOCK_SIZE = "block_size"  # one size, or several comma-separated
    INT_LIST = "int_list"
    FLOAT_LIST = "float_list"


@dataclass(frozen=True)
class Key:
    name: str
    kind: KeyKind  # written as its string in the key tables; a misspelt kind fails at import
    help: str
    field: str | None = None  # the LLMTrainingParams field it sets, if any
    default: Any = None
    nullable: bool = False
    choices: tuple[str, ...] | None = None
    check: Check | None = None
    group: str = "training"

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", KeyKind(self.kind))


def finite(value: float) -> float:
    """inf, 1e999 and nan parse as floats; no setting means them."""
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return value


def _bool(text: str) -> bool:
    if text.lower() in TRUE:
        return True
    if text.lower() in FALSE:
        return False
    raise ValueError("write true or false")


def _block_size(text: str) -> int | list[int]:
    sizes = [int(s) for s in text.split(",")]
    return sizes[0] if len(sizes) == 1 else sizes


def _float(text: str) -> float:
    return finite(float(text))


def _list_of(item: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    return lambda text: [item(s) for s in text.split(",") if s.strip()]


# kind -> (parser of the stripped text, what the error says a value must be)
_PARSERS: dict[str, tuple[Callable[[str], Any], str]] = {
    KeyKind.BOOL: (_bool, "true or false"),
    KeyKind.INT: (int, "a whole number"),
    KeyKind.FLOAT: (_float, "a number"),
    KeyKind.BLOCK_SIZE: (_block_size, "a whole number of tokens"),
    KeyKind.INT_LIST: (_list_of(int), "a comma-separated list of whole numbers"),
    KeyKind.FLOAT_LIST: (_list_of(_float), "a comma-separated list of numbers"),
}


def typed(text: str, kind: str, spec: Key, where: str, name: str, problems: list[Problem]) -> Any:
    """`text` as a value of `kind` within `spec`'s choices; INVALID (and a problem) when it is not."""
    stripped = text.strip()
    if spec.nullable and stripped.lower() in ("", "none", "null") and kind != KeyKind.BOOL:
        return None
    if kind in _PARSERS:
        parse, expected = _PARSERS[kind]
        try:
            return parse(stripped)
        except ValueError as exc:
            detail = "" if "invalid literal" in str(exc) or "could not convert" in str(exc) else f" ({exc})"
            problems.append(Problem(Level.ERROR, where, name, f"{text!r} is not {expected}{detail}"))
            return INVALID
    if spec.choices is not None:
        if stripped.lower() not in spec.choices:
            problems.append(Problem(Level.ERROR, where, name, f"{text!r} is not one of: {', '.join(spec.choices)}"))
            return INVALID
        stripped = stripped.lower()
        if stripped == "none" and spec.nullable:
            return None
    return stripped

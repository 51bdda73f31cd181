"""Text -> typed values: what an env file's text means as a boolean, a number, a list or a model size.

Pure functions; a value that does not parse is reported as a `Problem` where it was written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autotrain_runner.errors import Level, Problem

if TYPE_CHECKING:
    from autotrain_runner.config.keys import Key

TRUE = {"1", "true", "yes", "on", "y", "t"}
FALSE = {"0", "false", "no", "off", "n", "f"}
INVALID = object()  # what `typed` returns for text that is not a value of its kind (reported)

_EXPECTED = {
    "bool": "true or false",
    "int": "a whole number",
    "float": "a number",
    "block_size": "a whole number of tokens",
    "int_list": "a comma-separated list of whole numbers",
    "float_list": "a comma-separated list of numbers",
}


def typed(text: str, kind: str, spec: Key, where: str, name: str, problems: list[Problem]) -> Any:
    """`text` as a value of `kind` within `spec`'s choices; INVALID (and a problem) when it is not."""
    stripped = text.strip()
    if spec.nullable and stripped.lower() in ("", "none", "null") and kind != "bool":
        return None
    try:
        if kind == "bool":
            if stripped.lower() in TRUE:
                return True
            if stripped.lower() in FALSE:
                return False
            raise ValueError("write true or false")
        if kind == "int":
            return int(stripped)
        if kind == "float":
            return finite(float(stripped))
        if kind == "block_size":
            sizes = [int(s) for s in stripped.split(",")]
            return sizes[0] if len(sizes) == 1 else sizes
        if kind in ("int_list", "float_list"):
            item = int if kind == "int_list" else (lambda s: finite(float(s)))
            return [item(s) for s in stripped.split(",") if s.strip()]
    except ValueError as exc:
        detail = "" if "invalid literal" in str(exc) or "could not convert" in str(exc) else f" ({exc})"
        problems.append(Problem(Level.ERROR, where, name, f"{text!r} is not {_EXPECTED[kind]}{detail}"))
        return INVALID
    if spec.choices is not None:
        if stripped.lower() not in spec.choices:
            problems.append(Problem(Level.ERROR, where, name, f"{text!r} is not one of: {', '.join(spec.choices)}"))
            return INVALID
        stripped = stripped.lower()
        if stripped == "none" and spec.nullable:
            return None
    return stripped


def finite(value: float) -> float:
    """inf, 1e999 and nan parse as floats; no setting means them."""
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return value

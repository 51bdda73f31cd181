"""How a measured figure reads wherever it is shown."""

from __future__ import annotations

from typing import Any


def number(value: Any) -> str:
    """The one way a measured figure reads in a table, the report and the card: 4 significant
    digits; a missing figure is blank, a flag that is set reads "yes"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)

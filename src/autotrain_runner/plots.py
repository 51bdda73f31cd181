"""PNG charts with matplotlib (headless): numbers in, a file out.

Korean labels need a font with Hangul. The first installed one of `HANGUL_FONTS` is used (Debian:
`apt install fonts-nanum`); without one, `font_note()` says so and the labels fall back to
DejaVu Sans, whose missing glyphs show as boxes.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from autotrain_runner import layout

HANGUL_FONTS = (
    "NanumGothic",
    "NanumBarunGothic",
    "Noto Sans CJK KR",
    "Noto Sans KR",
    "Source Han Sans KR",
    "UnDotum",
    "Baekmuk Gulim",
    "Malgun Gothic",
    "AppleGothic",
)


@cache
def _pyplot():
    os.environ.setdefault("MPLCONFIGDIR", str(Path(tempfile.gettempdir()) / "atr-matplotlib"))
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager
    from matplotlib import pyplot as plt

    installed = {f.name for f in font_manager.fontManager.ttflist}
    if not any(name in installed for name in HANGUL_FONTS):
        # matplotlib caches its font list: a font installed since (apt install fonts-nanum) is not in it
        for path in font_manager.findSystemFonts():
            if any(part in Path(path).name for part in ("Nanum", "NotoSansCJK", "NotoSansKR", "UnDotum")):
                font_manager.fontManager.addfont(path)
        installed = {f.name for f in font_manager.fontManager.ttflist}
    hangul = [name for name in HANGUL_FONTS if name in installed]
    plt.rcParams["font.family"] = "sans-serif"
    plt.rcParams["font.sans-serif"] = [*hangul, "DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False  # Hangul fonts often lack U+2212
    return plt, hangul[0] if hangul else None


def font_note() -> str | None:
    """None when Korean renders; otherwise what to install."""
    _, font = _pyplot()
    if font:
        return None
    return "no font with Hangul found: Korean labels show as boxes (Debian: apt install fonts-nanum)"


def heatmap(
    path: Path,
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    panels: dict[str, list[list[float | None]]],
    row_label: str,
    column_label: str,
    lower_is_better: bool = False,
) -> Path:
    """One heatmap per panel (e.g. per learning rate), all on one colour scale so that a colour
    means the same value in every panel; missing cells are grey and say so."""
    plt, _ = _pyplot()
    fig, axes = plt.subplots(
        1, len(panels), figsize=(1.6 + 1.3 * len(columns) * len(panels), 1.4 + 0.7 * len(rows)), squeeze=False
    )
    cmap = plt.get_cmap("viridis_r" if lower_is_better else "viridis").copy()
    cmap.set_bad("#dddddd")
    known = [v for cells in panels.values() for row in cells for v in row if v is not None and not math.isnan(v)]
    scale = {"vmin": min(known), "vmax": max(known)} if known else {}
    for ax, (panel, cells) in zip(axes[0], panels.items(), strict=True):
        values = [[math.nan if v is None else v for v in row] for row in cells]
        image = ax.imshow(values, cmap=cmap, aspect="auto", **scale)
        ax.set_xticks(range(len(columns)), columns)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel(column_label)
        ax.set_ylabel(row_label)
        if panel:
            ax.set_title(panel, fontsize=9)
        for i, row in enumerate(cells):
            for j, value in enumerate(row):
                # white on the dark end of the colormap, black on the light end
                dark = value is not None and sum(cmap(image.norm(value))[:3]) < 1.5
                text = "missing" if value is None else f"{value:.3g}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def lines(
    path: Path,
    title: str,
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    x_label: str,
    y_label: str,
    reference: tuple[str, float] | None = None,
) -> Path:
    """Several (x, y) lines on one chart, optionally with a dashed reference level (the base model)."""
    plt, _ = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o" if len(xs) < 12 else None, markersize=4, label=label)
    if reference is not None:
        ax.axhline(reference[1], linestyle="--", color="grey", label=reference[0])
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if series or reference:
        ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    """Written atomically: a half-written PNG is never left where a report would embed it."""
    plt, _ = _pyplot()
    try:
        with layout.atomic_path(path) as tmp:
            fig.tight_layout()
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return path

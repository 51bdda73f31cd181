"""Files as `layout` writes them: atomic, with the mode any new file gets; inputs hashed per version."""

from __future__ import annotations

import os
import stat

from autotrain_runner import layout
from autotrain_runner.data import _sha256


def test_an_atomic_write_gets_the_mode_of_any_new_file_under_the_umask_of_the_moment(tmp_path):
    before = os.umask(0o027)
    try:
        layout.write_text_atomic(tmp_path / "report.md", "for the team\n")
        os.umask(0o022)
        layout.write_text_atomic(tmp_path / "card.md", "for everyone\n")
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "report.md").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "card.md").stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.md", "report.md"]  # no temporary file left


def test_an_input_changed_in_place_is_hashed_again(tmp_path):
    data = tmp_path / "style.txt"
    data.write_text("first version\n", encoding="utf-8")
    first = _sha256(data)
    assert _sha256(data) == first
    data.write_text("other version\n", encoding="utf-8")  # the same size
    os.utime(data, ns=(data.stat().st_atime_ns, data.stat().st_mtime_ns + 1_000_000))
    assert _sha256(data) == layout.sha256_file(data) != first


def test_every_figure_of_the_table_is_a_field_of_metrics_json_and_every_ranking_one_has_a_label():
    import dataclasses

    from autotrain_runner.config.keys import KEYS
    from autotrain_runner.layout import figures
    from autotrain_runner.layout.records import Metrics

    fields = {f.name for f in dataclasses.fields(Metrics)}
    assert [f.name for f in figures.FIGURES if f.name not in fields] == []
    assert KEYS["SWEEP_METRIC"].choices == figures.names(figures.RANK)
    assert all(f.label for f in figures.shown_in(figures.LEADERBOARD))
    assert set(figures.names(figures.RANK)) <= set(figures.names(figures.LEADERBOARD))


def test_data_builder_choices_are_the_builders_there_are():
    from autotrain_runner.config.keys import KEYS
    from autotrain_runner.data import BUILDERS

    assert KEYS["DATA_BUILDER"].choices == tuple(BUILDERS)

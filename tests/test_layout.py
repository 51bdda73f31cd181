"""Files as `layout` writes them: atomic, with the mode any new file gets; inputs hashed per version."""

from __future__ import annotations

import json
import os
import stat

from autotrain_runner import layout
from autotrain_runner.data.build import _sha256


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


def test_a_resumed_trainers_log_lines_read_as_the_history_it_restored(tmp_path):
    from autotrain_runner.layout.history import read_log_history

    log = tmp_path / "train_log.jsonl"
    assert read_log_history(log) is None
    lines = [
        {"event": "train_begin", "step": 0},
        *({"loss": 3.0 - s / 10, "epoch": s / 4, "step": s} for s in (1, 2, 3)),
        {"eval_loss": 2.5, "epoch": 1.0, "step": 4},
        {"loss": 2.6, "epoch": 1.0, "step": 4},  # logged after the eval; the checkpoint was saved at step 2
        {"event": "train_begin", "step": 2},
        {"loss": 2.65, "epoch": 0.75, "step": 3},
        {"loss": 2.55, "epoch": 1.0, "step": 4},
    ]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"loss": 2.5, "st')  # cut by a kill
    assert read_log_history(log) == [*lines[1:3], *lines[7:9]]

"""`atr sweep`: real AutoTrain trials of the tiny model, evaluated, ranked, plotted, resumed."""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from autotrain_runner.layout.records import Metrics, SweepRecord
from autotrain_runner.sweep.results import leaderboard
from helpers import CANARY, STYLE_ENV, atr, start_atr, style_txt, write

HOOKS = Path(__file__).parent / "hooks"
PROMPTS = "오늘 기분 어때?\n주말에 뭐 할까?\n"


def make_project(root: Path, model: Path) -> Path:
    project = root / "projects" / "style"
    write(project / "style.txt", style_txt())
    write(project / "prompts.txt", PROMPTS)
    write(project / "project.env", STYLE_ENV.format(model=model) + "MAX_NEW_TOKENS=12\nEVAL_PROMPTS=prompts.txt\n")
    assert atr("data", str(project)).code == 0
    return project


def sweep_json(project: Path) -> dict:
    (found,) = list((project / "sweeps").glob("*/sweep.json"))
    return json.loads(found.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny_model):
    project = make_project(tmp_path_factory.mktemp("sweep"), tiny_model)
    result = atr("sweep", str(project), "--epochs", "1,2", "--lora-r", "4,8")
    return project, result


def test_two_by_two_sweep_trains_evaluates_and_ranks_four_trials(swept):
    project, result = swept
    assert result.code == 0, result.text[-3000:]
    record = sweep_json(project)
    assert record["status"] == "succeeded"
    assert [(t["epochs"], t["lora_r"], t["lora_alpha"]) for t in record["trials"]] == [
        (1, 4, 8),
        (2, 4, 8),
        (1, 8, 16),
        (2, 8, 16),
    ]
    folder = project / "sweeps" / record["id"]
    for trial in record["trials"]:  # each trial is an ordinary run, evaluated on the split and the prompt list
        run = json.loads((project / "runs" / trial["run_id"] / "run.json").read_text(encoding="utf-8"))
        assert run["status"] == "succeeded"
        assert run["params"]["epochs"] == trial["epochs"] and run["params"]["lora_r"] == trial["lora_r"]
        assert run["params"]["lora_alpha"] == 2 * trial["lora_r"]  # the default alpha ratio
        assert run["loss_history"] and len(run["loss_epochs"]) == len(run["loss_history"])
        metrics = json.loads((folder / "trials" / trial["trial"] / "metrics.json").read_text(encoding="utf-8"))
        assert trial["run_id"] in str(metrics["signature"]["adapter"])  # this trial's adapter was evaluated
        assert (folder / "trials" / trial["trial"] / "prompts" / "predictions.jsonl").is_file()
    assert (folder / "base" / "metrics.json").is_file()  # the base model, once per sweep

    with (folder / "leaderboard.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    assert [r["best"] for r in rows] == ["True", "False", "False", "False"]
    assert all(r["chrf"] != "" and r["valid_loss"] != "" for r in rows)
    board = (folder / "leaderboard.md").read_text(encoding="utf-8")
    assert f"★ **{rows[0]['trial']}**" in board and "base (reference)" in board

    outputs = (folder / "outputs.md").read_text(encoding="utf-8")
    for prompt in PROMPTS.split():  # every prompt of the list, each model's answer beside it
        assert prompt in outputs
    for name in ["base", *(t["trial"] for t in record["trials"])]:
        assert outputs.count(f"| {name} |") >= 2 + 1  # two prompts and at least one test sample

    for png in ("heatmap-chrf.png", "heatmap-valid-loss.png", "valid-loss.png", "train-loss.png"):
        with Image.open(folder / png) as image:
            image.verify()
        with Image.open(folder / png) as image:
            assert image.format == "PNG" and image.width > 200 and image.height > 150
            assert len(set(image.convert("L").getdata())) > 10  # drawn on, not a blank canvas
    timing = record["timing"]
    assert timing["total_s"] >= timing["work_s"] > 0 and timing["overhead_s"] is not None


def test_rerunning_a_finished_sweep_reuses_everything(swept):
    project, first = swept
    assert first.code == 0
    runs_before = {p.name: (p / "run.json").stat().st_mtime for p in (project / "runs").iterdir()}
    again = atr("sweep", str(project), "--epochs", "1,2", "--lora-r", "4,8")
    assert again.code == 0, again.text[-2000:]
    assert "0 to train, 0 to evaluate, 4 done" in again.out
    runs_after = {p.name: (p / "run.json").stat().st_mtime for p in (project / "runs").iterdir()}
    assert runs_after == runs_before


@pytest.mark.slow
def test_interrupted_trial_is_the_only_one_rerun(tmp_path, tiny_model):
    project = make_project(tmp_path, tiny_model)
    # 6 epochs: the second trial trains long enough (seconds) to be caught mid-training
    child = start_atr("sweep", str(project), "--epochs", "6", "--lora-r", "4,8")
    deadline = time.monotonic() + 300
    second = None
    while time.monotonic() < deadline and second is None:  # wait until the second trial is training
        time.sleep(0.2)
        for log in (project / "runs").glob("*-e6-r8-a16/train.log"):
            second = log.parent if "'loss'" in log.read_text(encoding="utf-8", errors="replace") else None
    assert second is not None, "the second trial never started training"
    child.send_signal(signal.SIGINT)
    code, output = child.finish(timeout=120)
    assert code == 130, output[-2000:]
    record = sweep_json(project)
    assert record["status"] == "interrupted"
    assert [t["status"] for t in record["trials"]] == ["succeeded", "interrupted"]
    assert json.loads((second / "run.json").read_text(encoding="utf-8"))["status"] == "interrupted"
    first_run = project / "runs" / record["trials"][0]["run_id"] / "run.json"
    first_mtime = first_run.stat().st_mtime

    resumed = atr("sweep", str(project), "--epochs", "6", "--lora-r", "4,8")
    assert resumed.code == 0, resumed.text[-2000:]
    assert "1 to train, 0 to evaluate, 1 done" in resumed.out
    record = sweep_json(project)
    assert [t["status"] for t in record["trials"]] == ["succeeded", "succeeded"]
    retried = record["trials"][1]
    assert retried["attempts"] == [second.name, f"{second.name}-2"] and retried["run_id"] == f"{second.name}-2"
    assert first_run.stat().st_mtime == first_mtime  # the finished trial was not touched


@pytest.mark.slow
def test_a_failing_trial_is_isolated_and_reported(tmp_path, tiny_model):
    """Two trials at once on the CPU cores; AutoTrain dies at start for one of them. A token given
    on the command line reaches the workers and no file."""
    project = make_project(tmp_path, tiny_model)
    env = {"PYTHONPATH": str(HOOKS), "ATR_TEST_FAIL_LORA_R": "8"}
    grid = ("--epochs", "1", "--lora-r", "4,8", "--parallel", "2", "--set", f"HF_TOKEN={CANARY}")
    result = atr("sweep", str(project), *grid, env=env)
    assert result.code == 1, result.text[-3000:]
    assert CANARY not in result.text
    for path in project.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    record = sweep_json(project)
    assert record["status"] == "failed" and record["parallel"] == 2
    ok, failed = record["trials"]
    assert ok["status"] == "succeeded" and failed["status"] == "failed"
    assert "lora_r=8 rejected" in failed["error"]
    folder = project / "sweeps" / record["id"]
    board = (folder / "leaderboard.md").read_text(encoding="utf-8")
    assert "## Missing" in board and f"`{failed['trial']}`: failed" in board
    with (folder / "leaderboard.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["trial"], r["rank"], r["status"]) for r in rows] == [
        (ok["trial"], "1", "succeeded"),
        (failed["trial"], "", "failed"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing to sweep"),
        (("--lora-r", "8,16", "--lora-alpha", "16"), "1 alphas for 2 ranks"),
        (("--epochs", "1,x"), "SWEEP_EPOCHS: '1,x' is not a comma-separated list of whole numbers"),
        (("--epochs", "0,1"), "SWEEP_EPOCHS: must be in [1, 1000]"),
    ],
)
def test_bad_grids_are_one_line_errors(style_project, args, message):
    result = atr("sweep", str(style_project), *args)
    assert result.code == 2, result.text
    assert message in result.err and "Traceback" not in result.text


def test_a_reward_model_is_not_swept(style_project):
    result = atr("sweep", str(style_project), "--epochs", "1,2", "--set", "TRAINER=reward")
    assert result.code == 2 and "Traceback" not in result.text
    assert "TRAINER=reward: a sweep ranks what its trials generate, and a reward model does not generate" in result.err
    assert not (style_project / "sweeps").exists()


def test_sweep_needs_something_to_evaluate(tiny_project):
    result = atr("sweep", str(tiny_project), "--epochs", "1,2")
    assert result.code == 2
    assert "EVAL_PROMPTS" in result.err and "test split" in result.err


def _record(metric: str = "chrf", **fields) -> SweepRecord:
    trials = [
        {"trial": name, "epochs": e, "lora_r": 8, "lora_alpha": 16, "lr": 2e-4, "status": status, "run_id": name}
        for name, e, status in (("a", 1, "succeeded"), ("b", 2, "succeeded"), ("c", 3, "succeeded"), ("d", 5, "failed"))
    ]
    return SweepRecord.from_json({"id": "s", "metric": metric, "flag_limit": 0.05, "trials": trials, **fields})


def _evals(figures: dict[str, dict[str, dict]]) -> dict[str, dict[str, Metrics]]:
    """Per trial, its evaluations ("split", "prompts") as metrics.json records."""
    return {t: {kind: Metrics.from_json({"n": 5, **f}) for kind, f in found.items()} for t, found in figures.items()}


def test_flagged_trials_rank_below_clean_ones_and_missing_come_last():
    evals = _evals(
        {
            "a": {"split": {"chrf": 30.0, "valid_loss": 1.5, "leak_rate": 0.0, "repetition_rate": 0.0}},
            "b": {"split": {"chrf": 45.0, "valid_loss": 1.2, "leak_rate": 0.3, "repetition_rate": 0.0}},  # leaks
            "c": {"split": {"chrf": 20.0, "valid_loss": 1.9, "leak_rate": 0.0, "repetition_rate": 0.0}},
        }
    )
    rows = leaderboard(_record(), evals)
    assert [(r["trial"], r["rank"], r["flagged"], r["best"]) for r in rows] == [
        ("a", 1, False, True),
        ("c", 2, False, False),
        ("b", 3, True, False),
        ("d", None, False, False),
    ]
    by_loss = leaderboard(_record("valid_loss"), {k: v for k, v in evals.items() if k != "b"})
    assert [r["trial"] for r in by_loss] == ["a", "c", "b", "d"]  # lower loss first; b lost its files


def test_nan_scores_and_missing_scores_never_win():
    record = _record("valid_loss", evaluation={"split": "test"})
    evals = _evals(
        {
            "a": {"split": {"valid_loss": float("nan"), "leak_rate": 0.0, "repetition_rate": 0.0}},  # diverged
            "b": {"split": {"valid_loss": 2.0, "leak_rate": 0.0, "repetition_rate": 0.0}},
            "c": {"prompts": {"leak_rate": 0.0, "repetition_rate": 0.0}},  # outputs only: no score
        }
    )
    rows = leaderboard(record, evals)
    assert [(r["trial"], r["score"], r["best"]) for r in rows[:3]] == [
        ("b", 2.0, True),
        ("a", None, False),
        ("c", None, False),
    ]


def test_preference_trials_rank_by_held_out_pairs_in_every_table():
    """SWEEP_METRIC=pref_accuracy ranked nothing: the rows carried no preference figure, and the
    report's table, which shows every metric, failed on them."""
    from autotrain_runner.sweep.results import METRICS, leaderboard_csv, leaderboard_md

    grid = {"epochs": [1, 2, 3, 5], "lora_r": [8], "alpha": "2r", "lr": [2e-4]}
    record = _record("pref_accuracy", evaluation={"split": "test"}, grid=grid)
    evals = _evals(
        {
            "a": {"split": {"pref_accuracy": 0.6, "pref_margin": 1.5, "leak_rate": 0.0, "repetition_rate": 0.0}},
            "b": {"split": {"pref_accuracy": 0.9, "pref_margin": 4.0, "leak_rate": 0.0, "repetition_rate": 0.0}},
            "c": {"split": {"pref_accuracy": 0.3, "pref_margin": -2.0, "leak_rate": 0.0, "repetition_rate": 0.0}},
        }
    )
    rows = leaderboard(record, evals)
    assert [(r["trial"], r["score"], r["best"]) for r in rows[:3]] == [
        ("b", 0.9, True),
        ("a", 0.6, False),
        ("c", 0.3, False),
    ]
    assert all(set(METRICS) <= set(row) for row in rows)  # the report shows each of them
    assert "pref_accuracy,pref_margin" in leaderboard_csv(rows).splitlines()[0]
    table = leaderboard_md(record, rows, {})
    assert "| valid_loss | pref_accuracy | pref_margin | leak_rate |" in table


def test_the_sweep_id_follows_what_the_trials_train_on(style_project):
    from autotrain_runner.config.load import load_config
    from autotrain_runner.sweep.grid import grid, sweep_identity

    def identity(*sets: str) -> str:
        config = load_config(style_project, ["SWEEP_EPOCHS=1,2", *sets])
        return sweep_identity(config, grid(config))

    assert identity() == identity("SWEEP_EPOCHS=2,1")  # the same grid in another order
    assert identity() != identity("LR=5e-4")  # not swept, so it is part of what the trials train on
    assert identity("SWEEP_LR=1e-4,2e-4") == identity("SWEEP_LR=1e-4,2e-4", "LR=5e-4")  # swept: LR is unused
    assert identity() != identity("BATCH_SIZE=4")


def test_a_named_sweep_refuses_another_config(swept):
    project, first = swept
    assert first.code == 0
    record = sweep_json(project)
    again = atr("sweep", str(project), "--epochs", "1,2", "--lora-r", "4,8", "--name", record["id"], "--set", "LR=5e-3")
    assert again.code == 2
    assert f"sweep {record['id']} was run with another grid, training config, model or data" in again.err


def test_an_env_file_sweep_needs_no_flags(style_project):
    with (style_project / "project.env").open("a", encoding="utf-8") as handle:
        handle.write("SWEEP_EPOCHS=1,2,3,5\nSWEEP_LORA_R=8,16\nSWEEP_LORA_ALPHA=16,32,64\n")
    result = atr("sweep", str(style_project))
    assert result.code == 2
    assert f"{style_project / 'project.env'}:16: SWEEP_LORA_ALPHA: 3 alphas for 2 ranks" in result.err


def test_report_is_self_contained_and_renders_in_headless_chromium(swept, chromium, tmp_path):
    project, result = swept
    assert result.code == 0
    made = atr("report", str(project))
    assert made.code == 0, made.text
    page = project / "report.html"
    assert made.out.strip() == f"wrote {page}"
    html = page.read_text(encoding="utf-8")
    record = sweep_json(project)
    assert record["id"] in html and all(t["trial"] in html for t in record["trials"])
    assert "오늘 기분 어때?" in html  # the prompt list's Korean, side by side
    sources = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)  # nothing outside the file

    shot = tmp_path / "report.png"
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            f"--screenshot={shot}",
            "--window-size=1280,2000",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # no script errors, no blocked or failed resources
    with Image.open(shot) as image:
        grey = image.convert("L")
        histogram = grey.histogram()
        assert image.size == (1280, 2000)
        assert sum(histogram[:200]) > 0.02 * grey.width * grey.height  # text, tables and charts drawn
        assert len([n for n in histogram if n]) > 50


def test_the_report_fits_1280_pixels_with_paths_cut_to_what_tells_them_apart(swept, chromium, tmp_path):
    """Model and adapter paths (a cache folder, the project's runs/) made the evaluation table
    overflow sideways; each cell now shows the differing tail and the whole path on hover."""
    from playwright.sync_api import sync_playwright

    project, result = swept
    assert result.code == 0
    assert atr("report", str(project)).code == 0
    adapters = [p for p in (project / "runs").glob("*/*") if (p / "adapter_config.json").is_file()]
    assert len(adapters) >= 2
    shot = tmp_path / "evaluations.png"
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((project / "report.html").as_uri())
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        table = page.locator("h2:text('Evaluations') + table")
        box = table.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 1280
        hover = dict(table.locator("td.path[title]").evaluate_all("cs => cs.map(c => [c.title, c.textContent])"))
        table.screenshot(path=str(shot))
        browser.close()
    for adapter in adapters:  # the full path on hover, a short tail in the cell
        shown = hover.get(str(adapter.resolve())) or hover[str(adapter)]
        assert shown.startswith("…/") and shown.endswith(adapter.name) and len(shown) < len(str(adapter)) / 2
    with Image.open(shot) as image:
        assert image.width <= 1280
        right = image.convert("L").crop((image.width - 3, 0, image.width, image.height))
        assert min(right.get_flattened_data()) < 230  # the table's right border is in the picture, not cut off


def test_the_model_card_of_a_trial_carries_its_sweep_evaluation(swept):
    project, result = swept
    assert result.code == 0
    best = next(t for t in sweep_json(project)["trials"] if t["status"] == "succeeded")
    plan = atr("push", str(project), "--run", best["run_id"], "--repo", "me/style", "--dry-run")
    assert plan.code == 0, plan.text[-2000:]
    assert "| chrf |" in plan.out and "No evaluation was recorded" not in plan.out


def test_heatmap_panels_share_one_colour_scale(tmp_path):
    """The same value has the same colour in every panel (per learning rate): 2.0 is the middle of
    the common range 1..3 in both panels, so two whole cells are viridis' middle colour."""
    from matplotlib import colormaps

    from autotrain_runner import plots

    path = plots.heatmap(
        tmp_path / "h.png", "t", ["1", "2"], ["r8"], {"a": [[1.0], [2.0]], "b": [[2.0], [3.0]]}, "e", "r"
    )
    image = Image.open(path).convert("RGB")
    middle = tuple(round(255 * c) for c in colormaps["viridis"](0.5)[:3])
    pixels = image.get_flattened_data()
    near = sum(1 for pixel in pixels if sum(abs(a - b) for a, b in zip(pixel, middle, strict=True)) < 12)
    cell = image.width * image.height / 40  # far less than one cell, far more than the colour bars' stripes
    assert near > 2 * cell, near

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import (
    LEGACY_ENV,
    STYLE_ENV,
    TINY_ENV,
    TRAINED_ENV,
    atr,
    offline_env,
    style_project_in,
    style_rows,
    write,
    write_csv,
)
from tinymodel import build_tiny_model


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    offline_env(monkeypatch, tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_model_vllm(tmp_path_factory) -> Path:
    """The tiny Llama with attention heads of 32, a size vLLM's CPU attention has."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model-vllm"), hidden_size=64, heads=2, kv_heads=1)


@pytest.fixture
def legacy_project(tmp_path) -> Path:
    """The DESIGN.md env file in a project folder, with its data file present."""
    write(tmp_path / "project.env", LEGACY_ENV)
    write_csv(tmp_path / "src/202021013/dataset/output.csv", style_rows(4))
    return tmp_path


@pytest.fixture
def tiny_project(tmp_path, tiny_model) -> Path:
    project = tmp_path / "tiny"
    write(project / "project.env", TINY_ENV.format(model=tiny_model))
    write_csv(project / "style.csv", style_rows())
    return project


@pytest.fixture
def style_project(tmp_path, tiny_model) -> Path:
    """A txt style corpus built by `atr data` into instruction/response text (instruct-ko)."""
    return style_project_in(tmp_path, STYLE_ENV.format(model=tiny_model))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_model) -> Path:
    """The project folder (under ROOT/projects/style, its dataset in ROOT/datasets/style) with one
    succeeded run `r1`, trained once per session. Read only: a test that changes anything in it
    takes `trained_copy`."""
    project = style_project_in(tmp_path_factory.mktemp("trained"), TRAINED_ENV.format(model=tiny_model))
    with pytest.MonkeyPatch.context() as patch:  # the autouse `_offline` is per test: not set up yet
        offline_env(patch, tmp_path_factory.getbasetemp())
        built = atr("data", str(project))
        assert built.code == 0, built.text[-3000:]
        trained = atr("train", str(project), "--run-id", "r1")
        assert trained.code == 0, trained.text[-3000:]
    return project


@pytest.fixture
def trained_copy(trained_run, tmp_path) -> Path:
    """A copy of the shared trained project (its root: projects/ and datasets/), free to change."""
    shutil.copytree(trained_run.parents[1], tmp_path / "root")
    return tmp_path / "root" / "projects" / "style"


# Fixtures that train or start a Ray cluster: every test that uses one, here or in a module, is in
# the slow lane, marked here so that none can be left out of it.
TRAINING_FIXTURES = {"trained_run", "trained_copy", "swept", "ray_swept", "cluster"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items):
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium for headless rendering, with a Hangul font. They are system packages:
    .ci/run installs them before the suite; a fixture does not."""
    found = shutil.which("chromium")
    has_font = (
        shutil.which("fc-list")
        and subprocess.run(["fc-list", ":lang=ko"], capture_output=True, text=True, check=False).stdout.strip()
    )
    missing = " ".join(name for name, ok in (("chromium", found), ("fonts-nanum", has_font)) if not ok)
    if missing:
        pytest.fail(
            f"the browser tests need {missing}: `sudo apt-get install -y --no-install-recommends {missing}`"
            " (.ci/run installs them)",
            pytrace=False,
        )
    return found

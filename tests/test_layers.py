"""The package's shape: the layers in pyproject.toml hold, no import cycle, no module too long."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "autotrain_runner"
LONGEST = 500  # lines: past that a module does several jobs


def test_import_linter_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    kept = [line for line in done.stdout.splitlines() if line.endswith(" KEPT")]
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"][
        "contracts"
    ]
    assert len(kept) == len(contracts) > 0, done.stdout  # every contract written down was read and checked


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph("autotrain_runner")
    modules = sorted(graph.modules)
    cycles = []
    for module in modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if imported == module or imported.startswith(module + "."):
                continue  # a package and its own modules
            if module.startswith(imported + ".") and imported.count(".") < module.count("."):
                continue  # a module and its package's __init__
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back and not any(m.startswith(module + ".") for m in back):
                cycles.append(" -> ".join([module, *back]))
    assert cycles == []


def test_no_module_is_longer_than_about_500_lines():
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > LONGEST
    }
    assert long == {}


def test_environment_variables_are_read_in_settings_only_and_documented():
    import re

    from autotrain_runner import settings

    by_name = re.compile(r"os\.(environ\.get|getenv)\(|os\.environ\[")
    elsewhere = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "settings.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if by_name.search(line)
    ]
    assert elsewhere == [], "read it through autotrain_runner.settings"
    assert settings.markdown_table() in (ROOT / "docs" / "environment.md").read_text(encoding="utf-8")

"""The user manual (README.md) and the documentation site (docs/, mkdocs.yml) stay whole.

Fast and offline: no model, no training. The site build runs mkdocs itself, as a user would
(`mkdocs build --strict`), so a broken link, a page missing from the nav or a bad anchor fails here.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"

README_LIMIT = 30_000
SETUP_COMMANDS = ["./run.sh", "./run.sh test"]
# The commands the README documents, one heading each.
COMMANDS = [
    *("check", "keys", "command", "data", "train", "sweep", "eval"),
    *("chat", "serve", "push", "report", "runs", "bench"),
]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(?:.+?)\1")


def closes(marker: str, fence: str) -> bool:
    """A fence closes with the same character, at least as many times."""
    return marker[0] == fence[0] and len(marker) >= len(fence)


def split_fences(text: str) -> tuple[list[str], list[list[str]]]:
    """The lines outside fenced code blocks, and the blocks themselves (their inner lines)."""
    prose: list[str] = []
    blocks: list[list[str]] = []
    fence: str | None = None
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence is None:
            if match:
                fence = match.group(1)
                blocks.append([])
            else:
                prose.append(line)
        elif match and closes(match.group(1), fence) and not line.strip(fence[0] + " "):
            fence = None
        else:
            blocks[-1].append(line)
    return prose, blocks


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def relative_links(path: Path) -> list[str]:
    prose, _ = split_fences(path.read_text(encoding="utf-8"))
    targets = []
    for line in prose:
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
                continue  # http(s), mailto, ...; or an anchor on the same page
            targets.append(target)
    return targets


def headings(path: Path) -> list[str]:
    prose, _ = split_fences(path.read_text(encoding="utf-8"))
    return [line.lstrip("#").strip() for line in prose if re.match(r"^#{1,6} ", line)]


def nav_pages(nav: object) -> list[str]:
    """Every page file named anywhere in mkdocs.yml's nav."""
    if isinstance(nav, str):
        return [] if re.match(r"^[a-z]+://", nav) else [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return []


def test_readme_is_short() -> None:
    size = len(README.read_bytes())
    assert size < README_LIMIT, f"README.md is {size} bytes; keep it under {README_LIMIT} (move detail to docs/)"


def test_readme_has_exactly_the_setup_commands() -> None:
    _, blocks = split_fences(README.read_text(encoding="utf-8"))
    commands = [[line.split("#", 1)[0].strip() for line in block if line.split("#", 1)[0].strip()] for block in blocks]
    assert SETUP_COMMANDS in commands, f"README.md needs a code block with exactly {SETUP_COMMANDS}"


def test_every_command_has_one_heading() -> None:
    found = [m.group(1) for h in headings(README) if (m := re.match(r"^`?atr ([a-z][a-z-]*)", h))]
    for command in COMMANDS:
        assert found.count(command) == 1, f"README.md has {found.count(command)} headings for `atr {command}`"
    repeated = sorted({c for c in found if found.count(c) > 1})
    assert not repeated, f"README.md repeats the headings of {repeated}"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files(path: Path) -> None:
    missing = []
    for target in relative_links(path):
        file = target.split("#", 1)[0]
        if file and not (path.parent / file).exists():
            missing.append(target)
    assert not missing, f"{path.relative_to(ROOT)} links to files that do not exist: {missing}"


def test_every_docs_page_is_in_the_nav() -> None:
    try:
        import yaml
    except ImportError:
        pytest.fail("PyYAML is not installed; it comes with mkdocs (requirements/lock.txt)")
    config = yaml.safe_load(MKDOCS_YML.read_text(encoding="utf-8"))
    assert config.get("docs_dir", "docs") == "docs"
    listed = nav_pages(config.get("nav"))
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert pages, "docs/ has no pages"
    unlisted = [p for p in pages if p not in listed]
    assert not unlisted, f"pages missing from mkdocs.yml's nav: {unlisted}"
    dangling = [p for p in listed if p not in pages]
    assert not dangling, f"nav entries with no page in docs/: {dangling}"


def test_site_builds_strictly(tmp_path: Path) -> None:
    for module, package in (("mkdocs", "mkdocs"), ("material", "mkdocs-material")):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"{package} is not installed in {sys.executable}: it is in requirements/lock.txt (./run.sh)")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{output}"
    warnings = [line for line in output.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert not warnings, "mkdocs build --strict warned:\n" + "\n".join(warnings)
    assert (tmp_path / "site" / "index.html").is_file()

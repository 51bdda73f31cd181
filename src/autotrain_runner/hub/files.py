"""What a push uploads: an allowlist (weights, adapter and model configs, tokenizer) and, for
everything else in the run folder, the reason it stays here. Only allowlisted files are uploaded;
the table of reasons explains, it does not decide."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotrain_runner import layout

CARD = "README.md"  # the generated model card's name in the repo
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "spiece.model",
    "chat_template.json",
    "chat_template.jinja",
)
_FULL_WEIGHTS = re.compile(
    r"^(model(-\d+-of-\d+)?\.safetensors|model\.safetensors\.index\.json|config\.json|generation_config\.json)$"
)
# Why an entry of a run folder is not uploaded.
_NOT_UPLOADED = {
    "autotrain-data": "AutoTrain's copy of the training data",
    "training_params.json": "AutoTrain's parameters (it writes the token there); the hyperparameters are in the card",
    "training_args.bin": "pickled trainer arguments, not needed to load the model",
    CARD: "AutoTrain's generic card; replaced by the generated one",
    layout.RUN_JSON: "the run record (local paths, the whole config); its hyperparameters are in the card",
    layout.TRAIN_LOG: "the training log",
    layout.STAGED_DATA_DIR: "the staged training data",
    layout.EVAL_DIR: "evaluation outputs: the predictions quote the held-out data; the metrics are in the card",
    "adapter_model.bin": "pickle weights: only safetensors are uploaded",
    "pytorch_model.bin": "pickle weights: only safetensors are uploaded",
}


@dataclass(frozen=True)
class Upload:
    name: str  # the path in the repo
    source: Path | bytes  # a file, or the generated card
    note: str = ""

    @property
    def size(self) -> int:
        return len(self.source) if isinstance(self.source, bytes) else self.source.stat().st_size


@dataclass(frozen=True)
class Excluded:
    name: str  # relative to the run folder; folders end with "/"
    reason: str


def run_kind(output: Path) -> str | None:
    """What AutoTrain's output folder holds: "adapter", "full" (weights), or None when neither is complete."""
    if all((output / name).is_file() for name in ADAPTER_FILES):
        return "adapter"
    if (output / "config.json").is_file() and any(output.glob("model*.safetensors")):
        return "full"
    return None


def base_name(model: dict[str, Any]) -> str:
    """The base model as a card may name it: a Hub id, or a local model's name without its path."""
    return Path(model["spec"]).name if model["kind"] in ("folder", "gguf") else model["spec"]


def collect(run_dir: Path, output: Path, merged_dir: Path | None) -> tuple[list[Upload], list[Excluded]]:
    """What is uploaded (allowlisted files only) and, for everything else in the run, why not."""
    files: list[Upload] = []
    excluded: list[Excluded] = []
    for entry in sorted(run_dir.iterdir()):
        if entry in (output, merged_dir):
            continue
        if entry.name.startswith("merged-"):
            reason = "merged weights in another precision" if merged_dir else "merged weights (--merged uploads them)"
        else:
            reason = _why_not(entry.name, entry.is_dir(), "run folder")
        excluded.append(Excluded(_shown(entry, run_dir), reason))
    for entry in sorted(output.iterdir()):
        name = entry.name
        if _leaves(entry, run_dir):
            excluded.append(Excluded(_shown(entry, run_dir), "a link to a file outside the run folder"))
        elif entry.is_file() and (
            name in TOKENIZER_FILES or (merged_dir is None and (name in ADAPTER_FILES or _FULL_WEIGHTS.match(name)))
        ):
            files.append(Upload(name, entry))
        elif merged_dir is not None and name in ADAPTER_FILES:
            excluded.append(Excluded(_shown(entry, run_dir), "merged into the weights (--merged)"))
        else:
            excluded.append(Excluded(_shown(entry, run_dir), _why_not(name, entry.is_dir(), "model folder")))
    if merged_dir is not None:
        for entry in sorted(merged_dir.iterdir()):
            if _leaves(entry, run_dir):
                excluded.append(Excluded(_shown(entry, run_dir), "a link to a file outside the run folder"))
            elif entry.is_file() and _FULL_WEIGHTS.match(entry.name):
                files.append(Upload(entry.name, entry, f"from {merged_dir.name}/"))
            else:
                excluded.append(Excluded(_shown(entry, run_dir), _why_not(entry.name, entry.is_dir(), "model folder")))
    return files, excluded


def _leaves(entry: Path, run_dir: Path) -> bool:
    """A symbolic link (or a file reached through one) that resolves outside the run folder: what it
    points at (~/.ssh/id_rsa, another run) is nobody's choice to publish."""
    try:
        return not entry.resolve().is_relative_to(run_dir.resolve())
    except (OSError, RuntimeError):  # a link loop
        return True


def _why_not(name: str, is_dir: bool, where: str) -> str:
    if name in _NOT_UPLOADED:
        return _NOT_UPLOADED[name]
    if name.startswith("."):
        return "hidden or temporary"
    if is_dir and name.startswith("checkpoint-"):
        return "an intermediate checkpoint"
    if name.endswith(".log"):
        return "a log"
    if name.endswith(".env"):
        return "an env file"
    if where == "run folder":
        return "run folder file; only the model is published"
    return "not a weight, model config or tokenizer file"


def _shown(entry: Path, run_dir: Path) -> str:
    return str(entry.relative_to(run_dir)) + ("/" if entry.is_dir() else "")


def public_adapter_config(upload: Upload, model: dict[str, Any]) -> Upload:
    """adapter_config.json names the base it was trained from; a local path means nothing to a
    reader and tells where files live here: name the model instead, every other byte as it is."""
    assert isinstance(upload.source, Path)
    text = upload.source.read_text(encoding="utf-8")
    path, name = json.loads(text).get("base_model_name_or_path"), base_name(model)
    if not path or path == name:
        return upload
    public = text.replace(json.dumps(path), json.dumps(name))
    return Upload(upload.name, public.encode("utf-8"), f"base_model_name_or_path: {name} (was a local path)")


def stale(existing: Sequence[str], uploading: set[str]) -> list[str]:
    """Model files in the repo that this upload does not replace: left from a push of the other kind
    (transformers loads an adapter_config.json it finds beside merged weights) or from more shards."""
    publishable = set(ADAPTER_FILES) | set(TOKENIZER_FILES)
    return [
        name
        for name in existing
        if name not in uploading and (name in publishable or _FULL_WEIGHTS.match(name) is not None)
    ]

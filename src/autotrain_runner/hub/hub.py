"""`atr push`: publish a run to the Hugging Face Hub, its LoRA adapter or the weights merged with it.

Reads top to bottom: resolve the repo id and the token, each with where it came from -> pick the run
-> collect the files (an allowlist: weights, adapter and model configs, tokenizer; everything else
in the run folder is listed as not uploaded, with the reason) -> build the model card -> scan every
file and the card for secrets -> upload everything in one commit. `--dry-run` stops before the
upload and needs neither network nor a token.

Repo id: `--repo`, then `HUB_REPO` (the legacy `REPO_ID` is read as `HUB_REPO`), then
`USERNAME/<project name>`. Token: `HF_TOKEN` (environment > project.local.env > project.env, as
for every key), then the token `huggingface-cli login` stored. Run: `--run`, else the succeeded
run that finished last.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotrain_runner import layout
from autotrain_runner.config import models, templates
from autotrain_runner.config.envfile import display_path
from autotrain_runner.config.keys import KEYS
from autotrain_runner.config.project import Config, load_config, local_env_file
from autotrain_runner.errors import ConfigError, HubError, RunnerError, SecretFoundError, WorkError
from autotrain_runner.redact import Redactor, SecretMatcher, as_text, hide_credentials, is_secret_key

CARD = "README.md"
DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
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
# Why an entry of a run folder is not uploaded. Only allowlisted files are, so this table explains;
# it does not decide.
_NOT_UPLOADED = {
    "autotrain-data": "AutoTrain's copy of the training data",
    "training_params.json": "AutoTrain's parameters (it writes the token there); the hyperparameters are in the card",
    "training_args.bin": "pickled trainer arguments, not needed to load the model",
    "README.md": "AutoTrain's generic card; replaced by the generated one",
    layout.RUN_JSON: "the run record (local paths, the whole config); its hyperparameters are in the card",
    "train.log": "the training log",
    "data": "the staged training data",
    "eval": "evaluation outputs: the predictions quote the held-out data; the metrics are in the card",
    "adapter_model.bin": "pickle weights: only safetensors are uploaded",
    "pytorch_model.bin": "pickle weights: only safetensors are uploaded",
}
# Hyperparameters the card shows even when the run left them to AutoTrain's default.
_KEY_HYPERPARAMETERS = (
    "trainer",
    "epochs",
    "lr",
    "batch_size",
    "gradient_accumulation",
    "block_size",
    "model_max_length",
    "scheduler",
    "optimizer",
    "warmup_ratio",
    "weight_decay",
    "max_grad_norm",
    "seed",
    "peft",
    "quantization",
    "mixed_precision",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
)
# Parameters in run.json that are paths, names or switches of the runner, not hyperparameters.
_NOT_HYPERPARAMETERS = {
    "project_name",
    "data_path",
    "train_split",
    "valid_split",
    "model",
    "username",
    "token",
    "push_to_hub",
    "text_column",
    "prompt_text_column",
    "rejected_text_column",
    "log",
}


@dataclass(frozen=True)
class Chosen:
    value: str
    source: str  # said to the user: "--repo", "HUB_REPO (projects/x/project.env:3)", ...


@dataclass(frozen=True)
class Token:
    secret: str = field(repr=False)
    source: str


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


@dataclass
class Plan:
    repo: Chosen
    token: Token | None
    run_id: str
    run_dir: Path
    kind: str  # "adapter", "merged" or "full"
    private: bool
    files: list[Upload]
    excluded: list[Excluded]
    card: str
    base: str = ""
    notes: list[str] = field(default_factory=list)
    url: str | None = None  # the commit, once uploaded


def push(
    project: Path | str,
    overrides: Sequence[str] = (),
    run_id: str | None = None,
    *,
    merged: bool = False,
    dtype: str | None = None,
    private: bool = False,
    repo: str | None = None,
    dry_run: bool = False,
    if_enabled: bool = False,
    echo: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
) -> Plan | None:
    config = load_config(project, overrides)
    if if_enabled and not config.push:
        echo(f"PUSH_TO_HUB is not true for {config.display_name}: nothing to push")
        return None
    if dtype is not None and not merged:
        raise ConfigError(f"--dtype {dtype}: the precision of merged weights; it needs --merged")

    # --- resolve the repo id and the token
    repo_id = resolve_repo(config, repo)
    token = resolve_token(config)
    for line in token_warnings(config):
        warn(line)
    if token is None and not dry_run:
        raise ConfigError(
            f"{display_path(config.env_file)}: HF_TOKEN: no Hub token; put HF_TOKEN=... in "
            f"{local_env_file(config.env_file).name} or the environment, or run `huggingface-cli login` "
            "(--dry-run needs none)"
        )
    if not dry_run:
        _require_network()
    run_dir, record = pick_run(config, run_id)

    # --- collect the files
    output = run_dir / record["output_dir"]
    trained = _run_kind(output)
    if trained is None:
        raise ConfigError(
            f"{output}: neither adapter_model.safetensors with adapter_config.json nor "
            "model*.safetensors with config.json: nothing to publish"
        )
    if merged and trained == "full":
        raise ConfigError(f"run {run_dir.name} holds full weights already (no adapter to merge); drop --merged")
    merged_dir = merge(config, run_dir, output, record, dtype, echo) if merged else None
    files, excluded = collect(run_dir, output, merged_dir)
    files = [_public_adapter_config(f, record["model"]) if f.name == "adapter_config.json" else f for f in files]
    kind = "merged" if merged_dir else trained
    notes = _notes(record, kind)

    # --- the model card
    card = model_card(config, record, run_dir, repo_id.value, kind, merged_dir)
    files.insert(0, Upload(CARD, card.encode("utf-8"), "generated model card"))

    # --- the secret scan: every byte that would leave this machine
    hits = scan(files, known_secrets(config, token))
    if hits:
        lines = [f"secret scan: {hit}" for hit in hits]
        if any(hit.where.startswith(f"{CARD}:") for hit in hits):
            lines.append(
                "the card is written from the run's run.json and eval/metrics.json, the dataset manifest "
                "and SYSTEM_PROMPT: the section named above says which"
            )
        lines.append("nothing was uploaded: remove it from there (and revoke it if it is a real secret)")
        raise SecretFoundError("\n".join(lines))
    plan = Plan(
        repo_id, token, run_dir.name, run_dir, kind, private, files, excluded, card, record["model"]["spec"], notes
    )
    if dry_run:
        return plan

    # --- upload
    assert token is not None
    plan.url = upload(plan, token)
    return plan


# --------------------------------------------------------------------------------------------------
# The repo id and the token


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
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        if chosen.value.count("/") != 1:
            raise HFValidationError("it must name the owner: OWNER/NAME")
        validate_repo_id(chosen.value)
    except HFValidationError as exc:
        raise ConfigError(
            ": ".join(p for p in (where, key, f"{chosen.value!r} is not a Hub repo id ({exc})") if p)
        ) from None
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
    if os.environ.get("HUGGING_FACE_HUB_TOKEN"):
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


def pick_run(config: Config, run_id: str | None) -> tuple[Path, dict[str, Any]]:
    """The named run, or the succeeded one that finished last."""
    return layout.succeeded_run(config.project_dir, run_id, "push")


# --------------------------------------------------------------------------------------------------
# The files


def _run_kind(output: Path) -> str | None:
    if all((output / name).is_file() for name in ADAPTER_FILES):
        return "adapter"
    if (output / "config.json").is_file() and any(output.glob("model*.safetensors")):
        return "full"
    return None


def merge(
    config: Config, run_dir: Path, output: Path, record: dict[str, Any], dtype: str | None, echo: Callable[[str], None]
) -> Path:
    """The adapter merged into the base weights with PEFT's merge_and_unload, in `dtype` (default:
    the base model's own), saved once as `<run>/merged-<dtype>/` and reused by later pushes."""
    spec = record["model"]["spec"]
    if record["model"]["kind"] in ("gguf", "bundled") and config.model.spec == spec:
        models.ensure_converted(config.model, log=echo)
    base = record["model"]["path"]
    trust = bool(config.get("TRUST_REMOTE_CODE"))
    try:
        from transformers import AutoConfig

        if dtype is None:
            own = str(AutoConfig.from_pretrained(base, trust_remote_code=trust).dtype or "float32")
            dtype = next((k for k, v in DTYPES.items() if own.endswith(v)), "fp32")
        target = run_dir / f"merged-{dtype}"
        if (target / "config.json").is_file():
            echo(f"merged weights: {display_path(target)} (made by an earlier push)")
            return target
        echo(f"merging the adapter into {spec} in {dtype} on the CPU (PEFT merge_and_unload)")
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tmp = Path(tempfile.mkdtemp(prefix=f".merged-{dtype}.", dir=run_dir))
        try:
            model = AutoModelForCausalLM.from_pretrained(
                base, dtype=getattr(torch, DTYPES[dtype]), low_cpu_mem_usage=True, trust_remote_code=trust
            )
            # the run's tokenizer: chatml/zephyr training adds tokens, and the adapter then holds the
            # resized embeddings
            tokenizer = AutoTokenizer.from_pretrained(output)
            if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
                model.resize_token_embeddings(len(tokenizer))
            model = PeftModel.from_pretrained(model, str(output)).merge_and_unload()
            model.config._name_or_path = base_name(record["model"])  # not this machine's path
            model.save_pretrained(tmp, safe_serialization=True, max_shard_size="5GB")
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise WorkError(f"could not merge run {run_dir.name} into {spec}: {type(exc).__name__}: {exc}") from exc
    echo(f"merged weights: {display_path(target)}")
    return target


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
        if entry.is_file() and (
            name in TOKENIZER_FILES or (merged_dir is None and (name in ADAPTER_FILES or _FULL_WEIGHTS.match(name)))
        ):
            files.append(Upload(name, entry))
        elif merged_dir is not None and name in ADAPTER_FILES:
            excluded.append(Excluded(_shown(entry, run_dir), "merged into the weights (--merged)"))
        else:
            excluded.append(Excluded(_shown(entry, run_dir), _why_not(name, entry.is_dir(), "model folder")))
    if merged_dir is not None:
        for entry in sorted(merged_dir.iterdir()):
            if entry.is_file() and _FULL_WEIGHTS.match(entry.name):
                files.append(Upload(entry.name, entry, f"from {merged_dir.name}/"))
            else:
                excluded.append(Excluded(_shown(entry, run_dir), _why_not(entry.name, entry.is_dir(), "model folder")))
    return files, excluded


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


def _notes(record: dict[str, Any], kind: str) -> list[str]:
    notes = []
    if record["model"]["kind"] != "hub":
        notes.append(
            f"the base model {record['model']['spec']} is not a Hub id: the card names it, but its weights are "
            "not on the Hub, and the card's metadata has no base_model"
        )
    return notes


def _public_adapter_config(upload: Upload, model: dict[str, Any]) -> Upload:
    """adapter_config.json names the base it was trained from; a local path means nothing to a
    reader and tells where files live here: name the model instead, every other byte as it is."""
    assert isinstance(upload.source, Path)
    text = upload.source.read_text(encoding="utf-8")
    path, name = json.loads(text).get("base_model_name_or_path"), base_name(model)
    if not path or path == name:
        return upload
    public = text.replace(json.dumps(path), json.dumps(name))
    return Upload(upload.name, public.encode("utf-8"), f"base_model_name_or_path: {name} (was a local path)")


# --------------------------------------------------------------------------------------------------
# The model card


def model_card(
    config: Config, record: dict[str, Any], run_dir: Path, repo_id: str, kind: str, merged_dir: Path | None
) -> str:
    from huggingface_hub import ModelCardData

    model = record["model"]
    base = base_name(model)
    on_hub = model["kind"] == "hub"
    params = record.get("params", {})
    quantization = params.get("quantization")
    template = _template(record)
    adapter = kind == "adapter"
    data = ModelCardData(
        base_model=base if on_hub else None,
        library_name="peft" if adapter else "transformers",
        language=_languages(run_dir, template),
        pipeline_tag="text-generation",
        tags=[
            "autotrain",
            "autotrain-runner",
            "qlora" if quantization in ("int4", "int8") else "lora" if params.get("peft") else "full-fine-tune",
            *(["merged"] if kind == "merged" else []),
            "text-generation",
        ],
    )
    versions = record.get("versions", {})
    at = f"AutoTrain Advanced {versions.get('autotrain-advanced') or ''}".strip()
    if kind == "adapter":
        what = f"A LoRA adapter for `{base}`, fine-tuned with {at} ({params.get('trainer', 'sft')})"
    elif kind == "merged":
        dtype = merged_dir.name.removeprefix("merged-") if merged_dir else ""
        what = (
            f"`{base}` with a LoRA adapter merged into its weights (PEFT `merge_and_unload`, saved in {dtype}), "
            f"fine-tuned with {at} ({params.get('trainer', 'sft')})"
        )
    else:
        what = f"`{base}` fully fine-tuned with {at} ({params.get('trainer', 'sft')})"
    lines = [
        "---",
        data.to_yaml(),
        "---",
        "",
        f"# {repo_id.split('/')[-1]}",
        "",
        f"{what}, run `{record['id']}` of autotrain-runner.",
        "",
        "## Base model",
        "",
        _base_line(model),
    ]
    if kind == "merged" and quantization in ("int4", "int8"):
        lines += ["", f"Trained with {quantization} quantization (QLoRA); merged into the unquantized base weights."]
    lines += ["", "## Training data", "", *_data_lines(config, record)]
    lines += ["", "## Training", "", *_hyperparameter_lines(params), ""]
    if record.get("loss_on"):
        lines += [f"Loss on: {record['loss_on']}.", ""]
    if record.get("train_loss") is not None:
        lines.append(f"Final training loss {record['train_loss']:.4f}, in {record.get('duration_s', '?')} s.")
    lines.append(
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v) + f"; CUDA: {bool(record.get('cuda'))}."
    )
    lines += ["", "## Evaluation", "", *_eval_lines(run_dir, base)]
    lines += ["", "## Prompt template", "", *_template_lines(template, config)]
    lines += ["", "## How to use", "", *_usage_lines(repo_id, model, template, kind)]
    return "\n".join(lines).rstrip() + "\n"


def base_name(model: dict[str, Any]) -> str:
    """The base model as a card may name it: a Hub id, or a local model's name without its path."""
    return Path(model["spec"]).name if model["kind"] in ("folder", "gguf") else model["spec"]


def _languages(run_dir: Path, template: templates.PromptTemplate) -> list[str]:
    """The card's languages, from the letters of the staged training data: Korean where Hangul is
    a fifth of them or more, English where Latin letters are half or more; by the template if no data."""
    staged = sorted((run_dir / "data").glob("train.*"))
    text = staged[0].read_text(encoding="utf-8", errors="replace")[:2_000_000] if staged else ""
    if staged and staged[0].suffix == ".jsonl":  # the contents, not the JSON keys and roles
        text = " ".join(_contents(line) for line in text.splitlines())
    hangul = sum("\uac00" <= ch <= "\ud7a3" or "\u3131" <= ch <= "\u318e" for ch in text)
    latin = sum(ch.isascii() and ch.isalpha() for ch in text)
    letters = hangul + latin
    if not letters:
        return ["en" if template.name == "instruct-en" else "ko"]
    found = [code for code, count, share in (("ko", hangul, 0.2), ("en", latin, 0.5)) if count >= share * letters]
    return found or ["ko" if hangul >= latin else "en"]


def _contents(line: str) -> str:
    try:
        value = json.loads(line)
    except ValueError:
        return ""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(v for k, v in item.items() if k != "role")
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            found.append(item)
    return " ".join(found)


def _hyperparameter_lines(params: dict[str, Any]) -> list[str]:
    """What the run set, then AutoTrain's defaults for the hyperparameters it left alone."""
    rows = [(k, v, "config") for k, v in params.items() if k not in _NOT_HYPERPARAMETERS]
    lora = ("lora_r", "lora_alpha", "lora_dropout", "target_modules")
    for name in _KEY_HYPERPARAMETERS:
        if name not in params and (params.get("peft") or name not in lora):
            rows.append((name, KEYS[name.upper()].default, "AutoTrain default"))
    return [
        "| hyperparameter | value | source |",
        "|---|---|---|",
        *(f"| {k} | {_cell(v)} | {how} |" for k, v, how in rows),
    ]


def _template(record: dict[str, Any]) -> templates.PromptTemplate:
    fields = {k: v for k, v in record["template"].items() if k != "chat_template"}
    return templates.PromptTemplate(**{**fields, "stop": tuple(fields.get("stop", ()))})


def _base_line(model: dict[str, Any]) -> str:
    spec = model["spec"]
    if model["kind"] == "hub":
        return f"[`{spec}`](https://huggingface.co/{spec})"
    if model["kind"] == "bundled":
        package, filename = models.BUNDLED.get(spec.removeprefix("bundled:"), ("?", "?"))
        return (
            f"`{filename}`, shipped in the Python package `{package.replace('_', '-')}` and converted to a model "
            "folder by transformers; not on the Hub as such: load the adapter on the same weights."
        )
    return f"A local model (`{Path(spec).name}`), not on the Hub: load the adapter on the same weights."


def _data_lines(config: Config, record: dict[str, Any]) -> list[str]:
    data = record.get("data") or {}
    if data.get("kind") == "hub":
        return [f"The Hub dataset `{data.get('source')}`."]
    source = Path(str(data.get("source", "")))
    sha = data.get("sha256", "")
    lines = [f"Training file `{source.name}`, sha256 `{sha}`."]
    manifest = layout.read_json(config.dataset_dir / layout.MANIFEST_JSON)
    if manifest is None:
        return lines
    built = config.dataset_dir / str(manifest.get("train_file", ""))
    if not built.is_file() or layout.sha256_file(built) != sha:  # rebuilt since, or another dataset
        return [*lines, f"(The dataset in {config.dataset_dir.name}/ now differs from it: no summary.)"]
    rows = manifest.get("rows", {})
    dropped = ", ".join(f"{k} {v}" for k, v in rows.get("dropped", {}).items()) or "none"
    splits = manifest.get("splits", {})
    inputs = ", ".join(f"`{Path(i['path']).name}` (sha256 `{i['sha256'][:12]}`)" for i in manifest.get("inputs", []))
    return [
        *lines,
        "",
        f"Built by `atr data` with the `{manifest.get('builder')}` builder from {inputs}: "
        f"{rows.get('read')} rows read, {rows.get('kept')} kept, dropped: {dropped}.",
        f"Splits (seed {manifest.get('seed')}): " + ", ".join(f"{k} {v}" for k, v in splits.items()) + ".",
    ]


_FIGURES = {
    "chrf": "0-100 (sacrebleu)",
    "bleu": "0-100 (sacrebleu)",
    "cosine": "-1..1",
    "valid_loss": "nats/token",
    "perplexity": "",
    "rep_2": "0-1",
    "distinct_2": "0-1",
    "leak_rate": "0-1",
    "repetition_rate": "0-1",
    "empty_rate": "0-1",
    "eos_rate": "0-1",
    "mean_chars": "characters",
    "n": "samples",
}


def _eval_lines(run_dir: Path, base: str) -> list[str]:
    evaluated = layout.run_evaluation(run_dir)  # a sweep trial's evaluation is kept with the sweep
    figures = layout.read_metrics(evaluated) if evaluated else None
    if figures is None:
        return [f"No evaluation was recorded for this run (`atr eval PROJECT --run {run_dir.name}` writes one)."]
    lines = ["| metric | value | scale |", "|---|---|---|"]
    lines += [f"| {k} | {figures[k]} | {scale} |" for k, scale in _FIGURES.items() if k in figures]
    if "cosine_method" in figures:
        lines += ["", f"Cosine similarity: {figures['cosine_method']}."]
    signature = dict(figures.get("signature", {}))
    # local paths say nothing to a reader of the card: name the base model and this repository instead
    signature["model"] = base
    signature["adapter"] = "this run" if signature.get("adapter") else None
    lines += ["", "Signature (what reproduces these numbers):", ""]
    lines += [f"- {name}: `{text}`" for name, text in figures.get("signatures", {}).items()]
    lines += ["", "```json", json.dumps(signature, ensure_ascii=False, indent=1), "```"]
    return lines


def _template_lines(template: templates.PromptTemplate, config: Config) -> list[str]:
    system = config.get("SYSTEM_PROMPT")
    if template.kind == "chat":
        lines = [
            f"Trained on conversations rendered by the tokenizer's chat template (`{template.name}`); it is in "
            "`tokenizer_config.json`: use `tokenizer.apply_chat_template(messages, add_generation_prompt=True)`."
        ]
    else:
        example = template.render([{"role": "user", "content": "{question}"}], add_generation_prompt=True)
        lines = [
            f"Trained on text in the `{template.name}` layout; a prompt must use it exactly and end where the "
            "answer begins:",
            "",
            "```text",
            example,
            "```",
        ]
        if template.stop:
            lines += ["", "Cut the answer at " + ", ".join(f"`{s}`" for s in template.stop) + " as well as at EOS."]
    if system:
        lines += ["", f"System prompt used with it: {system}"]
    return lines


def _usage_lines(repo_id: str, model: dict[str, Any], template: templates.PromptTemplate, kind: str) -> list[str]:
    base = model["spec"] if model["kind"] == "hub" else "path/to/the/same/base-model"
    if template.kind == "chat":
        prompt = [
            'messages = [{"role": "user", "content": "안녕하세요?"}]',
            "prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)",
            'inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False, return_token_type_ids=False)',
        ]
    else:
        rendered = template.render([{"role": "user", "content": "안녕하세요?"}], add_generation_prompt=True)
        prompt = [
            f"prompt = {rendered!r}",
            'inputs = tokenizer(prompt, return_tensors="pt", return_token_type_ids=False)',
        ]
    if kind == "adapter":
        load = [
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")',
            f'model = AutoModelForCausalLM.from_pretrained("{base}", dtype="auto", device_map="auto")',
            "if len(tokenizer) > model.get_input_embeddings().num_embeddings:",
            "    model.resize_token_embeddings(len(tokenizer))",
            f'model = PeftModel.from_pretrained(model, "{repo_id}")',
        ]
    else:
        load = [
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")',
            f'model = AutoModelForCausalLM.from_pretrained("{repo_id}", dtype="auto", device_map="auto")',
        ]
    answer = "answer = tokenizer.decode(output[0, inputs.input_ids.shape[1]:], skip_special_tokens=True)"
    if template.stop:
        answer += f".split({template.stop[0]!r})[0]"
    return [
        "```python",
        *load,
        "",
        *prompt,
        "output = model.generate(**inputs.to(model.device), max_new_tokens=128, do_sample=False)",
        answer,
        "print(answer.strip())",
        "```",
    ]


def _cell(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).replace("|", "\\|")


# --------------------------------------------------------------------------------------------------
# The secret scan

# What a secret looks like is redact.SecretMatcher's: token shapes anywhere (inside words, next to
# any script), after JSON and \uXXXX unescaping, and configured values with their sanitized forms.
# Text files only: in binary data such a pattern is noise.
_ASSIGNMENT = re.compile(
    r"(?i)\b(?:api[_-]?key|secret[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token|password|passwd)"
    r"[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9_\-./+=]{12,}"
)
_TEXT_SUFFIXES = (".json", ".txt", ".md", ".jinja")
_CHUNK = 16 << 20
_MIN_SECRET = 8  # shorter configured values would match by chance


@dataclass(frozen=True)
class Hit:
    where: str  # "adapter_config.json:3", "tokenizer.model (byte 1024)"
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def known_secrets(config: Config, token: Token | None) -> dict[str, str]:
    """Secret values this process knows, each with a name to report instead of the value."""
    found = {}
    for name, value in os.environ.items():
        if is_secret_key(name) and len(value) >= _MIN_SECRET:
            found[value] = f"the value of the environment variable {name}"
    for key, value in config.values.items():
        if is_secret_key(key) and isinstance(value.value, str) and len(value.value) >= _MIN_SECRET:
            found[value.value] = f"the value of {key}"
    if token is not None and len(token.secret) >= _MIN_SECRET:
        found.setdefault(token.secret, "the Hub token")
    return found


def scan(files: Sequence[Upload], secrets: dict[str, str]) -> list[Hit]:
    hits: list[Hit] = []
    for upload in files:
        if isinstance(upload.source, bytes):  # the card, or a file with a local path taken out
            text = upload.source.decode("utf-8")
            label = functools.partial(_card_section, text) if upload.name == CARD else None
            hits += scan_text(upload.name, text, secrets, label)
        elif upload.name.endswith(".safetensors"):
            hits += _scan_safetensors(upload.name, upload.source, secrets)
        elif upload.name.endswith(_TEXT_SUFFIXES):
            decoded = as_text(upload.source.read_bytes())  # UTF-8, or UTF-16/32 by BOM or NUL bytes
            if decoded is None:
                hits += _scan_bytes(upload.name, upload.source, secrets)
            else:
                hits += scan_text(upload.name, decoded, secrets)
        else:
            hits += _scan_bytes(upload.name, upload.source, secrets)
    return hits


def scan_text(name: str, text: str, secrets: dict[str, str], label: Callable[[int], str] | None = None) -> list[Hit]:
    matcher = SecretMatcher(secrets, min_length=_MIN_SECRET)
    hits = []
    for number, line in enumerate(_lines(text), 1):
        found = [hit.what for hit in matcher.find(line)]
        if _ASSIGNMENT.search(line):
            found.append("a secret assignment (api_key=..., password=...)")
        where = f"{name}:{number}" + (f" ({label(number)})" if label else "")
        hits += [Hit(where, what) for what in dict.fromkeys(found)]
    return hits


def _lines(text: str) -> list[str]:
    """Lines as an editor numbers them: only at \\n, \\r\\n or \\r (str.splitlines also splits at
    U+2028, U+0085 and other characters that JSON strings hold)."""
    lines = re.split(r"\r\n|\r|\n", text)
    return lines[:-1] if lines[-1] == "" else lines


def _card_section(card: str, number: int) -> str:
    """Where a line of the card comes from, for a reader who is not shown the card."""
    lines = _lines(card)[:number]
    headings = [line.removeprefix("## ") for line in lines if line.startswith("## ")]
    return "the generated model card, " + (f"section {headings[-1]!r}" if headings else "its metadata or title")


def _scan_safetensors(name: str, path: Path, secrets: dict[str, str]) -> list[Hit]:
    """The header (tensor names, shapes and the free-form __metadata__) is the only text in a
    safetensors file; the rest is numbers, where a match would be chance, so only the header is read."""
    with path.open("rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        if size <= 0 or size > min(path.stat().st_size, 100 << 20):
            return [Hit(name, "not a readable safetensors file (header length); not uploaded unchecked")]
        header = handle.read(size).decode("utf-8", errors="replace")
    try:  # the metadata as its writer gave it, escapes decoded: a value is scanned whatever its JSON spelling
        metadata = json.loads(header).get("__metadata__") or {}
    except (ValueError, AttributeError):
        metadata = {}
    texts = [header, *(str(v) for pair in metadata.items() for v in pair)] if isinstance(metadata, dict) else [header]
    found = [hit.what for text in texts for hit in scan_text(name, text, secrets)]
    return [Hit(f"{name} (safetensors header)", what) for what in dict.fromkeys(found)]


def _scan_bytes(name: str, path: Path, secrets: dict[str, str]) -> list[Hit]:
    """A binary file, 16 MiB at a time, as latin-1 (one character a byte, so offsets are bytes);
    UTF-16 text inside it (NUL bytes between ASCII letters) is read with the NULs taken out."""
    matcher = SecretMatcher(
        {s.encode("utf-8").decode("latin-1"): w for s, w in secrets.items()}, min_length=_MIN_SECRET
    )
    overlap = 512
    hits, seen = [], set()
    with path.open("rb") as handle:
        offset, tail = 0, b""
        while chunk := handle.read(_CHUNK):
            data, start = tail + chunk, offset - len(tail)
            text = data.decode("latin-1")
            found = [(hit.what, f"byte {start + hit.start}") for hit in matcher.find(text)]
            if "\x00" in text:
                found += [
                    (hit.what, f"UTF-16 text near byte {start}") for hit in matcher.find(text.replace("\x00", ""))
                ]
            for what, at in found:
                if what not in seen:
                    seen.add(what)
                    hits.append(Hit(f"{name} ({at})", what))
            tail, offset = data[-overlap:], offset + len(chunk)
    return hits


# --------------------------------------------------------------------------------------------------
# The upload: the one place Hub failures become errors that say what to do next


def upload(plan: Plan, token: Token) -> str:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    api = HfApi(token=token.secret)
    repo_id = plan.repo.value
    with hub_errors(repo_id, token):
        api.create_repo(repo_id, private=True if plan.private else None, exist_ok=True)
        if plan.private and not api.model_info(repo_id).private:
            raise ConfigError(
                f"--private: {repo_id} exists and is public; nothing was uploaded. Make it private in its "
                "settings on the Hub, or push without --private"
            )
        names = {f.name for f in plan.files}
        operations: list[Any] = [CommitOperationAdd(f.name, f.source) for f in plan.files]
        operations += [CommitOperationDelete(name) for name in stale(api.list_repo_files(repo_id), names)]
        commit = api.create_commit(
            repo_id, operations, commit_message=f"{plan.kind} of run {plan.run_id} (autotrain-runner)"
        )
    return commit.commit_url


def stale(existing: Sequence[str], uploading: set[str]) -> list[str]:
    """Model files in the repo that this upload does not replace: left from a push of the other kind
    (transformers loads an adapter_config.json it finds beside merged weights) or from more shards."""
    publishable = set(ADAPTER_FILES) | set(TOKENIZER_FILES)
    return [
        name
        for name in existing
        if name not in uploading and (name in publishable or _FULL_WEIGHTS.match(name) is not None)
    ]


def _require_network() -> None:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise _offline()


def _offline() -> HubError:
    return HubError(
        "push needs network, and HF_HUB_OFFLINE=1 (or TRANSFORMERS_OFFLINE=1) is set: "
        "unset it (`unset HF_HUB_OFFLINE`) to upload; `atr push --dry-run` shows the plan offline"
    )


@contextlib.contextmanager
def hub_errors(repo_id: str, token: Token) -> Iterator[None]:
    try:
        yield
    except RunnerError:
        raise
    except Exception as exc:  # every Hub failure ends here, mapped to what to do next
        raise hub_error(exc, repo_id, token) from exc


def hub_error(exc: Exception, repo_id: str, token: Token) -> RunnerError:
    import httpx2  # huggingface_hub's HTTP client since 2.0
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    redact = Redactor([token.secret])
    owner = repo_id.split("/")[0]
    if isinstance(exc, OfflineModeIsEnabled):
        return _offline()
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        detail = redact(exc.server_message or str(exc).splitlines()[0])
        if status == 401:
            message = (
                f"the Hub rejected the token from {token.source} (401): make sure you are authenticated: "
                "`huggingface-cli login`, or a valid HF_TOKEN in project.local.env or the environment"
            )
        elif status == 403:
            message = (
                f"the token from {token.source} may not write to {owner} (403): use a token with write access "
                f"(a fine-grained token needs write permission on {owner}), or push to your own namespace "
                "with --repo YOUR-NAME/NAME"
            )
        elif status == 404:
            message = f"{repo_id} not found (404): check the owner ({owner}) in the repo name"
        elif status == 429 or (status or 0) >= 500:
            message = f"the Hub is unavailable or limiting requests (HTTP {status}); try again later"
        else:
            message = f"the Hub refused the upload to {repo_id} (HTTP {status})"
        return HubError(f"{message}; the Hub said: {detail}")
    if isinstance(exc, httpx2.TransportError):  # refused, unresolvable, timed out
        endpoint = hide_credentials(constants.ENDPOINT)  # HF_ENDPOINT may carry a user and password
        return HubError(f"cannot reach {endpoint}: check the network (or HF_ENDPOINT); nothing was uploaded")
    return HubError(f"upload to {repo_id} failed: {type(exc).__name__}: {redact(str(exc))}")


# --------------------------------------------------------------------------------------------------
# What `atr push` prints


def describe(plan: Plan) -> list[str]:
    token = plan.token.source if plan.token else "none found (needed to upload; not for --dry-run)"
    kinds = {"adapter": "LoRA adapter (library: peft)", "merged": "merged weights", "full": "full weights"}
    lines = [
        f"repo:   {plan.repo.value} (from {plan.repo.source})",
        f"run:    {plan.run_id}: {kinds[plan.kind]} of {plan.base}",
        "visibility: private" if plan.private else "visibility: public (--private for a private repo)",
        f"token:  {token}",
        "upload:",
    ]
    width = max(len(f.name) for f in plan.files)
    lines += [f"  {f.name:<{width}}  {_size(f.size):>9}  {f.note}".rstrip() for f in plan.files]
    lines.append("not uploaded:")
    width = max((len(e.name) for e in plan.excluded), default=0)
    lines += [f"  {e.name:<{width}}  {e.reason}" for e in plan.excluded]
    lines += [f"note: {note}" for note in plan.notes]
    lines.append(f"secret scan: {len(plan.files)} files (card included), nothing found")
    return lines


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"

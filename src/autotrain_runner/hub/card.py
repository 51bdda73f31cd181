"""The model card (`README.md` in the repo): `card.md.j2` lays it out; this module computes what it
shows from the run's record, the dataset's manifest, the run's evaluation and the config."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from autotrain_runner import layout
from autotrain_runner.config import models, templates
from autotrain_runner.config.keys import KEYS
from autotrain_runner.config.records import Config
from autotrain_runner.hub.files import base_name
from autotrain_runner.layout import figures as figure_table
from autotrain_runner.layout.records import Manifest, Metrics, RunRecord

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
# The metrics the card lists, in this order, each with its scale.
_FIGURES = {**{f.name: f.scale for f in figure_table.shown_in(figure_table.CARD)}, "n": "samples"}
_QUESTION = "안녕하세요?"  # the user's turn in the card's example


@cache
def _card_template():
    import jinja2

    # markdown, not HTML: nothing is escaped; a name the template does not get is an error
    environment = jinja2.Environment(
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.from_string((Path(__file__).parent / "card.md.j2").read_text(encoding="utf-8"))


def model_card(
    config: Config,
    record: RunRecord,
    run_dir: Path,
    repo_id: str,
    kind: str,
    merged_dir: Path | None,
    epoch: int | None = None,
) -> str:
    model, params, versions = record.model, record.params, record.versions
    template = templates.PromptTemplate.from_record(record.template)
    return _card_template().render(
        metadata=_metadata(record, run_dir, template, kind),
        title=repo_id.split("/")[-1],
        kind=kind,
        base=base_name(model),
        autotrain=f"AutoTrain Advanced {versions.get('autotrain-advanced') or ''}".strip(),
        trainer=params.get("trainer", "sft"),
        dtype=merged_dir.name.removeprefix("merged-") if merged_dir else "",
        run_id=record.id,
        run_folder=run_dir.name,
        model=_base_model(model),
        quantization=params.get("quantization"),
        data=_data(config, record),
        hyperparameters=_hyperparameters(params),
        trained_on=record.trainer or None,
        loss_on=record.loss_on or None,
        weights=record.weights or None,
        train_loss=None if record.train_loss is None else f"{record.train_loss:.4f}",
        duration="?" if record.duration_s is None else record.duration_s,
        resumed=[int(s.get("from_step") or 0) for s in record.segments[1:] if isinstance(s, dict)],
        stopped=record.stopped,
        epoch=epoch,
        schedule=params.get("epochs"),
        versions=[f"{k} {v}" for k, v in versions.items() if v],
        cuda=bool(record.cuda),
        evaluation=_evaluation(layout.run_evaluation(run_dir, epoch), base_name(model)),
        prompt=_prompt(template, config),
        usage=_usage(repo_id, model, template),
    )


def _metadata(record: RunRecord, run_dir: Path, template: templates.PromptTemplate, kind: str) -> str:
    """The YAML front matter the Hub reads, as huggingface_hub writes it."""
    from huggingface_hub import ModelCardData

    model, params = record.model, record.params
    quantization = params.get("quantization")
    return ModelCardData(
        base_model=base_name(model) if model["kind"] == "hub" else None,
        library_name="peft" if kind == "adapter" else "transformers",
        language=_languages(run_dir, template),
        pipeline_tag="text-generation",
        tags=[
            "autotrain",
            "autotrain-runner",
            "qlora" if quantization in ("int4", "int8") else "lora" if params.get("peft") else "full-fine-tune",
            *(["merged"] if kind == "merged" else []),
            "text-generation",
        ],
    ).to_yaml()


def _languages(run_dir: Path, template: templates.PromptTemplate) -> list[str]:
    """The card's languages, from the letters of the staged training data: Korean where Hangul is
    a fifth of them or more, English where Latin letters are half or more; by the template if no data."""
    staged = sorted((run_dir / layout.STAGED_DATA_DIR).glob("train.*"))
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


def _base_model(model: dict[str, Any]) -> dict[str, str]:
    """Where the base model's weights come from: the Hub, a Python package, or a local folder."""
    spec = model["spec"]
    shown = {"kind": model["kind"], "spec": spec, "name": Path(spec).name, "package": "", "filename": ""}
    if model["kind"] == "bundled":
        package, filename = models.BUNDLED.get(spec.removeprefix("bundled:"), ("?", "?"))
        shown.update(package=package.replace("_", "-"), filename=filename)
    return shown


def _data(config: Config, record: RunRecord) -> dict[str, Any]:
    """The training file, and the dataset's manifest when it still describes that file."""
    data = record.data or {}
    shown: dict[str, Any] = {
        "hub": data.get("kind") == "hub",
        "source": data.get("source"),
        "file": Path(str(data.get("source", ""))).name,
        "sha256": data.get("sha256", ""),
        "dataset": config.dataset_dir.name,
        "changed": False,
        "built": None,
    }
    if shown["hub"]:
        return shown
    manifest = layout.read_manifest(config.dataset_dir)
    if manifest is None:
        return shown
    built = config.dataset_dir / (manifest.train_file or "")
    if not built.is_file() or layout.sha256_file(built) != shown["sha256"]:  # rebuilt since, or another dataset
        return {**shown, "changed": True}
    return {**shown, "built": _built(manifest)}


def _built(manifest: Manifest) -> dict[str, Any]:
    rows = manifest.rows
    return {
        "builder": manifest.builder,
        "inputs": [f"`{Path(i['path']).name}` (sha256 `{i['sha256'][:12]}`)" for i in manifest.inputs],
        "read": rows.get("read"),
        "kept": rows.get("kept"),
        "dropped": [f"{k} {v}" for k, v in rows.get("dropped", {}).items()],
        "seed": manifest.seed,
        "splits": [f"{k} {v}" for k, v in manifest.splits.items()],
    }


def _hyperparameters(params: dict[str, Any]) -> list[tuple[str, str, str]]:
    """What the run set, then AutoTrain's defaults for the hyperparameters it left alone."""
    rows = [(k, v, "config") for k, v in params.items() if k not in _NOT_HYPERPARAMETERS]
    lora = ("lora_r", "lora_alpha", "lora_dropout", "target_modules")
    for name in _KEY_HYPERPARAMETERS:
        if name not in params and (params.get("peft") or name not in lora):
            rows.append((name, KEYS[name.upper()].default, "AutoTrain default"))
    return [(k, _cell(v), how) for k, v, how in rows]


def _evaluation(evaluated: Path | None, base: str) -> dict[str, Any] | None:
    """The run's evaluation (`evaluated`: its own, or the one its sweep made), or None when it has none."""
    metrics: Metrics | None = layout.read_metrics(evaluated) if evaluated else None
    if metrics is None:
        return None
    signature = dict(metrics.signature)
    # local paths say nothing to a reader of the card: name the base model and this repository instead
    signature["model"] = base
    signature["adapter"] = "this run" if signature.get("adapter") else None
    figures = {k: metrics.figure(k) for k in _FIGURES}
    return {
        "figures": [(k, str(figures[k]), scale) for k, scale in _FIGURES.items() if figures[k] is not None],
        "cosine": metrics.cosine_method,
        "signatures": [(name, str(text)) for name, text in metrics.signatures.items()],
        "signature": json.dumps(signature, ensure_ascii=False, indent=1),
    }


def _prompt(template: templates.PromptTemplate, config: Config) -> dict[str, Any]:
    """The layout the model was trained with: the tokenizer's chat template, or a text layout."""
    chat = template.is_chat
    return {
        "name": template.name,
        "chat": chat,
        "example": "" if chat else template.render([{"role": "user", "content": "{question}"}], True),
        "stop": list(template.stop),
        "system": config.get("SYSTEM_PROMPT") or None,
    }


def _usage(repo_id: str, model: dict[str, Any], template: templates.PromptTemplate) -> dict[str, Any]:
    """The values of the card's Python example (the template writes the code)."""
    chat = template.is_chat
    rendered = "" if chat else template.render([{"role": "user", "content": _QUESTION}], add_generation_prompt=True)
    return {
        "repo_id": repo_id,
        "base": model["spec"] if model["kind"] == "hub" else "path/to/the/same/base-model",
        "chat": chat,
        "question": _QUESTION,
        "prompt": repr(rendered),
        "stop": repr(template.stop[0]) if template.stop else None,
    }


def _cell(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).replace("|", "\\|")

"""`atr push`: publish a run to the Hugging Face Hub, its LoRA adapter or the weights merged with it.

Reads top to bottom: resolve the repo id and the token, each with where it came from (`repo`) ->
pick the run -> collect the files (`files`: an allowlist of weights, adapter and model configs,
tokenizer; everything else in the run folder is listed as not uploaded, with the reason; `merge`
for `--merged`) -> build the model card (`card`) -> scan every file and the card for secrets
(`scan`) -> upload everything in one commit (`upload`). `--dry-run` stops before the upload and
needs neither network nor a token. Run: `--run`, else the succeeded run that finished last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from autotrain_runner import layout
from autotrain_runner.config.envfile import display_path
from autotrain_runner.config.files import local_env_file
from autotrain_runner.config.load import load_config
from autotrain_runner.config.records import Config
from autotrain_runner.errors import ConfigError, SecretFoundError
from autotrain_runner.hub.card import model_card
from autotrain_runner.hub.files import ADAPTER_FILES, CARD, Upload, collect, public_adapter_config, run_kind
from autotrain_runner.hub.merge import merge
from autotrain_runner.hub.plan import Plan
from autotrain_runner.hub.repo import resolve_repo, resolve_token, token_warnings
from autotrain_runner.hub.scan import TRAINED_ON, known_secrets, scan, scan_training_data
from autotrain_runner.hub.upload import require_network, upload
from autotrain_runner.layout import checkpoints
from autotrain_runner.layout.records import RunRecord


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
    epoch: int | None = None,
    echo: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
) -> Plan | None:
    config = load_config(project, overrides)
    if if_enabled and not config.push:
        echo(f"PUSH_TO_HUB is not true for {config.display_name}: nothing to push")
        return None
    if dtype is not None and not merged:
        raise ConfigError(f"--dtype {dtype}: the precision of merged weights; it needs --merged")
    if epoch is not None and merged:
        raise ConfigError(f"--epoch {epoch} pushes the adapter the run kept at that epoch; drop --merged")

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
        require_network()
    run_dir, record = pick_run(config, run_id)

    # --- collect the files
    output = run_dir / record.output_dir
    trained = run_kind(output)
    if trained is None:
        raise ConfigError(
            f"{output}: neither adapter_model.safetensors with adapter_config.json nor "
            "model*.safetensors with config.json: nothing to publish"
        )
    if merged and trained == "full":
        raise ConfigError(f"run {run_dir.name} holds full weights already (no adapter to merge); drop --merged")
    merged_dir = merge(config, run_dir, output, record, dtype, echo) if merged else None
    files, excluded = collect(run_dir, output, merged_dir)
    if epoch is not None:  # that epoch's adapter, with the run's tokenizer
        kept = checkpoints.kept_adapter(run_dir.name, output, epoch, record.params.get("epochs"))
        files = [Upload(f.name, kept / f.name) if f.name in ADAPTER_FILES else f for f in files]
    files = [public_adapter_config(f, record.model) if f.name == "adapter_config.json" else f for f in files]
    kind = "merged" if merged_dir else trained
    notes = _notes(record, kind)

    # --- the model card
    card = model_card(config, record, run_dir, repo_id.value, kind, merged_dir, epoch)
    files.insert(0, Upload(CARD, card.encode("utf-8"), "generated model card"))

    # --- the secret scan: every byte that would leave this machine
    secrets = known_secrets(config, token)
    hits = scan(files, secrets) + scan_training_data(run_dir, record, secrets)
    if hits:
        lines = [f"secret scan: {hit}" for hit in hits]
        if any(hit.where.startswith(TRAINED_ON) for hit in hits):
            lines.append("the run trained on a secret, and its weights can recite it: train again without it")
        if any(hit.where.startswith(f"{CARD}:") for hit in hits):
            lines.append(
                f"the card is written from the run's {layout.RUN_JSON} and {layout.EVAL_DIR}/{layout.METRICS_JSON}, "
                "the dataset manifest and SYSTEM_PROMPT: the section named above says which"
            )
        lines.append("nothing was uploaded: remove it from there (and revoke it if it is a real secret)")
        raise SecretFoundError("\n".join(lines))
    plan = Plan(repo_id, token, run_dir.name, run_dir, kind, private, files, excluded, card, record.model_spec, notes)
    if dry_run:
        return plan

    # --- upload
    assert token is not None
    plan.url = upload(plan, token)
    return plan


def pick_run(config: Config, run_id: str | None) -> tuple[Path, RunRecord]:
    """The named run, or the succeeded one that finished last."""
    return layout.succeeded_run(config.project_dir, run_id, "push")


def _notes(record: RunRecord, kind: str) -> list[str]:
    notes = []
    if record.model["kind"] != "hub":
        notes.append(
            f"the base model {record.model_spec} is not a Hub id: the card names it, but its weights are "
            "not on the Hub, and the card's metadata has no base_model"
        )
    return notes


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

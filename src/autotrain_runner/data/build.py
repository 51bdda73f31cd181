"""`atr data`: raw shapes -> `datasets/<project>/` (train file, valid/test splits, manifest).

Reads top to bottom: find inputs -> skip when the manifest says nothing changed -> read with the
builder (bad rows collected) -> drop exact duplicates -> split by dialogue -> render with the
prompt template -> lint -> write everything into a temporary folder and swap it into place, so
a failed build leaves the previous dataset as it was.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotrain_runner import __version__, layout, progress
from autotrain_runner.config.autotrain_keys import PAIR_TRAINERS
from autotrain_runner.config.dataset_dir import raw_base
from autotrain_runner.config.envfile import display_path
from autotrain_runner.config.keys import KEYS
from autotrain_runner.config.load import load_config
from autotrain_runner.config.records import Config
from autotrain_runner.data import emotion, instruct, outputs, summary, table, txt
from autotrain_runner.data.base import BadRows, Builder, Options, Sample
from autotrain_runner.data.lint import lint
from autotrain_runner.data.readers import FORCED_ENCODING, decode, find_inputs
from autotrain_runner.errors import ConfigError, Level, Problem
from autotrain_runner.redact import SecretMatcher, is_secret_key

BUILDERS: dict[str, tuple[Builder, tuple[str, ...]]] = {
    "table": (table.build, table.SUFFIXES),
    "txt": (txt.build, txt.SUFFIXES),
    "alpaca": (instruct.alpaca, instruct.SUFFIXES),
    "sharegpt": (instruct.sharegpt, instruct.SUFFIXES),
    "messages": (instruct.messages, instruct.SUFFIXES),
    "emotion_dialogue": (emotion.build, emotion.SUFFIXES),
    "dialogue_summary": (summary.build, summary.SUFFIXES),
}
DATA_KEYS = [k.name for k in KEYS.values() if k.group == "data" and k.name not in ("DATASET_DIR", "DATA_FILE")] + [
    "SEED"
]
PAIR_KEYS = ("TRAINER", "CHOSEN_COLUMN", "REJECTED_COLUMN")  # options of a pair build only (sft builds as before)


def data_options(config: Config) -> dict[str, Any]:
    """The keys a build reads: the data keys, and for the dpo/orpo/reward trainers the trainer and the
    pair columns (a build of pairs, not conversations)."""
    pairs = config.get("TRAINER") in PAIR_TRAINERS
    return {key: config.get(key) for key in [*DATA_KEYS, "TRAINER"] if pairs or key not in PAIR_KEYS}


@dataclass
class DataResult:
    status: str  # "built", "up to date", "no builder"
    out_dir: Path | None
    manifest: dict[str, Any] | None


def build_data(
    target: Path | str, overrides: Sequence[str] = (), force: bool = False, echo: Callable[[str], None] = print
) -> DataResult:
    config = load_config(target, overrides)
    builder_name = config.get("DATA_BUILDER")
    if not builder_name:
        return DataResult("no builder", None, None)
    builder, suffixes = BUILDERS[builder_name]
    out_dir = config.dataset_dir  # load_config checked it: a new folder, or one atr made, apart from the inputs
    outputs.remove_stale(out_dir)  # what a killed build left beside it
    base = raw_base(config)
    inputs = find_inputs(str(config.get("RAW_DATA")), base, suffixes, exclude=outputs.excluded(config))
    options = data_options(config)
    fingerprint = _fingerprint(builder_name, options, config, inputs)
    previous = _read_manifest(out_dir)
    if not force and previous and previous.get("fingerprint") == fingerprint and _outputs_exist(out_dir, previous):
        return DataResult("up to date", out_dir, previous)

    # --- read
    started = time.monotonic()
    bad = BadRows(config.get("ON_BAD_ROWS"))
    forced = FORCED_ENCODING.set(config.get("ENCODING"))
    samples: list[Sample] = []

    def so_far() -> str:  # read from another thread: the list only grows
        return f"{len(samples)} samples, at {samples[-1].where}" if samples else "no sample yet"

    try:
        reading = Options(options, base)
        with progress.waiting(f"reading {len(inputs)} input file(s)", echo, detail=so_far):
            samples.extend(builder(inputs, reading, bad))
        # each input as read: its encoding, and what the builder noted (the sheets of a workbook)
        described = [{**_describe_input(path), **reading.read.get(path, {})} for path in inputs]
    finally:
        FORCED_ENCODING.reset(forced)
    samples = _without_secrets(samples, config, bad)
    bad.raise_if_any()
    read = len(samples) + len(bad.rows)
    if not samples:
        raise ConfigError(f"RAW_DATA {config.get('RAW_DATA')}: no usable samples in {len(inputs)} file(s)")

    # --- dedupe and split
    samples, duplicates = _dedupe(samples)
    splits = _split(samples, config.get("SPLIT"), config.get("SEED"))

    # --- render, lint, write
    everything = splits["train"] + splits["valid"] + splits["test"]
    # the builders already dropped empty turns and broken role orders: lint the rest
    checks = lint([(None, _text(s.messages, config)) for s in everything], config)
    manifest = {
        "version": __version__,
        "fingerprint": fingerprint,
        "builder": builder_name,
        "options": options,
        "inputs": described,
        "rows": {
            "read": read,
            "kept": sum(len(s) for s in splits.values()),
            "dropped": {**dict(bad.reasons), **({"duplicate": duplicates} if duplicates else {})},
        },
        "splits": {name: len(items) for name, items in splits.items()},
        "seed": config.get("SEED"),
        "template": config.template.describe(),
        "train_file": Path(str(config.get("DATA_FILE"))).name,
        "text_column": config.get("TEXT_COLUMN"),
        "lint": checks,
        "seconds": None,
        # relative to the dataset folder: a project copied or moved with its datasets stays the owner
        "env_file": os.path.relpath(config.env_file.resolve(), out_dir.resolve()),
    }
    _write_atomically(out_dir, splits, manifest, config, builder_name, started)
    return DataResult("built", out_dir, manifest)


def ensure_built(target: Path | str, overrides: Sequence[str] = (), echo: Callable[[str], None] = print) -> DataResult:
    """What `atr train` and `atr sweep` do first, as make would: build the dataset when it is missing
    or older than its inputs and options, and say so; nothing when it is up to date."""
    result = build_data(target, overrides, echo=echo)
    if result.status == "built":
        for line in summarize(result):
            echo(f"atr data: {line}")
    return result


def _fingerprint(builder: str, options: dict[str, Any], config: Config, inputs: list[Path]) -> str:
    payload = {
        "builder": builder,
        "options": options,
        "template": config.template.describe(),
        "text_column": config.get("TEXT_COLUMN"),
        "inputs": [(str(p), _sha256(p)) for p in inputs],
        "version": __version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _sha256(path: Path) -> str:
    """The file's hash, computed once per version of it: fingerprint and manifest both hash every input,
    and a file changed since (another size, time or inode) is hashed again."""
    stat = path.stat()
    return _sha256_of(path, stat.st_size, stat.st_mtime_ns, stat.st_ino)


@functools.lru_cache(maxsize=256)
def _sha256_of(path: Path, size: int, mtime_ns: int, inode: int) -> str:
    return layout.sha256_file(path)


def _describe_input(path: Path) -> dict[str, Any]:
    if path.suffix.lower() == ".xlsx":
        encoding = "xlsx"
    else:
        with path.open("rb") as handle:
            head = handle.read(1 << 16)
        try:
            encoding = decode(head)[1]
        except UnicodeDecodeError:
            encoding = decode(path.read_bytes())[1]  # a multi-byte character cut at the boundary
    return {"path": display_path(path), "sha256": _sha256(path), "bytes": path.stat().st_size, "encoding": encoding}


def _read_manifest(out_dir: Path) -> dict[str, Any] | None:
    manifest = layout.read_manifest(out_dir)
    return manifest.to_json() if manifest else None


def _outputs_exist(out_dir: Path, manifest: dict[str, Any]) -> bool:
    return all((out_dir / name).is_file() for name in (manifest.get("train_file", ""), "valid.jsonl", "test.jsonl"))


def _without_secrets(samples: list[Sample], config: Config, bad: BadRows) -> list[Sample]:
    """A token shape or a configured secret's value in a sample is a bad row: refused (ON_BAD_ROWS=
    error) or dropped and counted (skip), never trained on, for a model can recite what it learned.
    Never masked silently either: `***` in an answer would teach the model to print `***`."""
    known = {value: f"the value of {key}" for key, value in secret_values(config).items()}
    matcher = SecretMatcher(known, min_length=8, urls=False)
    kept = []
    for sample in samples:
        said = [(m["role"], m["content"]) for m in sample.messages]
        said += [("rejected", sample.rejected)] if sample.rejected is not None else []
        found = next(((role, f) for role, text in said for f in matcher.find(text)[:1]), None)
        if found is None:
            kept.append(sample)
        else:
            role, what = found[0], found[1].what
            bad.add(sample.where, f"secret: {what} in the {role} message; take it out (a model can recite it)")
    return kept


def secret_values(config: Config) -> dict[str, str]:
    """The secrets configured (HF_TOKEN, *_API_KEY, ...), in the project or the environment."""
    found = {key: value for key, value in os.environ.items() if value and is_secret_key(key)}
    found.update(
        {
            key: str(v.value)
            for key, v in config.values.items()
            if is_secret_key(key) and isinstance(v.value, str) and v.value
        }
    )
    return found


def _dedupe(samples: list[Sample]) -> tuple[list[Sample], int]:
    """Exact duplicates dropped, the first kept as written; text that differs only in its Unicode
    normal form (a Hangul syllable precomposed, or as its jamo) is the same text."""
    from unicodedata import normalize

    seen: set[tuple[tuple[str, str], ...]] = set()
    kept = []
    for sample in samples:
        key = tuple((m["role"], normalize("NFC", m["content"])) for m in sample.messages)
        key += (("rejected", normalize("NFC", sample.rejected)),) if sample.rejected is not None else ()
        if key not in seen:
            seen.add(key)
            kept.append(sample)
    return kept, len(samples) - len(kept)


def _split(samples: list[Sample], fractions: str, seed: int) -> dict[str, list[Sample]]:
    """Deterministic for a seed; whole dialogues (groups) go to one split."""
    train_f, valid_f, _ = (float(x) for x in fractions.split(","))
    groups: dict[str, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(sample.group, []).append(sample)
    order = sorted(groups, key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).digest())
    n = len(order)
    cut_train = max(1, round(n * train_f)) if n else 0
    cut_valid = min(n, cut_train + round(n * valid_f))
    names = {g: ("train" if i < cut_train else "valid" if i < cut_valid else "test") for i, g in enumerate(order)}
    splits: dict[str, list[Sample]] = {"train": [], "valid": [], "test": []}
    for sample in samples:  # keep the source order inside each split
        splits[names[sample.group]].append(sample)
    return splits


def _write_atomically(
    out_dir: Path,
    splits: dict[str, list[Sample]],
    manifest: dict[str, Any],
    config: Config,
    builder: str,
    started: float,
) -> None:
    problem = outputs.folder_problem(out_dir)  # checked up front; again here, in case it changed since
    if problem:
        raise ConfigError([Problem(Level.ERROR, display_path(out_dir), "DATASET_DIR", problem)])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-{os.getpid()}-", dir=out_dir.parent))
    old: Path | None = None
    try:
        (tmp / layout.DATASET_MARKER).write_text(outputs.MARKER_TEXT, encoding="utf-8")  # first: a leftover is ours
        _write_train(tmp / manifest["train_file"], splits["train"], config)
        for name in ("valid", "test"):
            _write_eval_split(tmp / f"{name}.jsonl", splits[name], config, name)
        _write_eval_split(tmp / layout.TRAIN_EVAL_JSONL, splits["train"], config, "train")
        if builder == "txt":  # the intermediate pairs, to inspect or hand-edit (DATA_BUILDER=alpaca)
            pairs = [_as_alpaca(s) for split in splits.values() for s in split]
            (tmp / "pairs.json").write_text(json.dumps(pairs, ensure_ascii=False, indent=1), encoding="utf-8")
        manifest["seconds"] = round(time.monotonic() - started, 3)
        layout.write_manifest(tmp, manifest)
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        # interrupted between the two renames: the dataset it was replacing goes back (a kill -9
        # there is repaired by the next build, `outputs.remove_stale`)
        if not out_dir.exists() and old is not None and old.is_dir():
            os.replace(old, out_dir)
        shutil.rmtree(tmp, ignore_errors=True)


def _write_train(path: Path, samples: list[Sample], config: Config) -> None:
    write_training_file(path, [s.messages for s in samples], config, [s.rejected for s in samples])


def write_training_file(
    path: Path,
    conversations: list[list[dict[str, str]]],
    config: Config,
    rejected: Sequence[str | None] = (),
) -> None:
    """Conversations in the training file's format: `messages` JSONL for chat templates, else a text CSV;
    preference pairs (a rejected answer beside each) as JSONL of prompt messages, chosen and rejected,
    which the trainer renders with the template."""
    column = config.get("TEXT_COLUMN")
    with path.open("w", encoding="utf-8", newline="") as handle:
        if config.get("TRAINER") in PAIR_TRAINERS:
            for messages, other in zip(conversations, rejected, strict=True):
                pair = {
                    config.get("PROMPT_TEXT_COLUMN"): messages[:-1],
                    column: messages[-1]["content"],
                    config.get("REJECTED_TEXT_COLUMN"): other,
                }
                handle.write(json.dumps(pair, ensure_ascii=False) + "\n")
        elif config.template.is_chat:
            for messages in conversations:
                handle.write(json.dumps({column: messages}, ensure_ascii=False) + "\n")
        else:
            writer = csv.writer(handle)
            writer.writerow([column])
            writer.writerows([config.template.render(messages)] for messages in conversations)


def validation_samples(config: Config) -> list[tuple[list[dict[str, str]], str | None]]:
    """The held-out split of the dataset that DATA_FILE belongs to, as (whole conversation, rejected
    answer or None); [] if none. Only a dataset that `atr data` built (its manifest names DATA_FILE)
    is known to have one."""
    if config.data_file is None:
        return []
    folder = config.data_file.parent
    manifest = _read_manifest(folder)
    if not manifest or manifest.get("train_file") != config.data_file.name:
        return []
    try:
        lines = (folder / "valid.jsonl").read_text(encoding="utf-8").split("\n")
    except OSError:
        return []
    records = [json.loads(line) for line in lines if line.strip()]
    return [([*r["messages"], {"role": "assistant", "content": r["reference"]}], r.get("rejected")) for r in records]


def _write_eval_split(path: Path, samples: list[Sample], config: Config, split: str) -> None:
    """One line per sample: id, the conversation without its final answer, the answer as reference."""
    with path.open("w", encoding="utf-8") as handle:
        for index, sample in enumerate(samples):
            record: dict[str, Any] = {
                "id": f"{split}-{index:05d}",
                "messages": sample.messages[:-1],
                "reference": sample.messages[-1]["content"],
                "source": sample.where,
            }
            if sample.rejected is not None:
                record["rejected"] = sample.rejected
            if not config.template.is_chat:
                record["prompt"] = config.template.render(sample.messages[:-1], add_generation_prompt=True)
            if sample.meta:
                record["meta"] = sample.meta
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def _text(messages: list[dict[str, str]], config: Config) -> str:
    if not config.template.is_chat:
        return config.template.render(messages)
    return "\n".join(f"<|{m['role']}|>\n{m['content']}" for m in messages)  # close to chat templates


def _as_alpaca(sample: Sample) -> dict[str, str]:
    record = {"instruction": sample.messages[-2]["content"], "output": sample.messages[-1]["content"]}
    if sample.messages[0]["role"] == "system":
        record["system"] = sample.messages[0]["content"]
    return record


def built_shape(config: Config) -> str:
    """What `atr data` builds for the project's trainer (`atr check` says it before anything is built)."""
    trainer, builder = config.get("TRAINER"), config.get("DATA_BUILDER")
    if trainer in PAIR_TRAINERS:
        return f"{builder}: preference pairs for TRAINER={trainer}: the prompt, a chosen and a rejected answer each"
    chosen = "the chosen answer of a preference record" if config.get("PREFERENCE") == "chosen" else None
    return f"{builder}: conversations for TRAINER={trainer}, each ending with its answer" + (
        f" ({chosen}: PREFERENCE=chosen)" if chosen else ""
    )


def summarize(result: DataResult) -> list[str]:
    """The lines `atr data` prints."""
    m = result.manifest or {}
    if result.status == "no builder":
        return ["no DATA_BUILDER in this project: nothing to build (DATA_FILE is used as it is)"]
    lines = [f"{result.status}: {display_path(result.out_dir)}"]
    rows = m["rows"]
    dropped = ", ".join(f"{k} {v}" for k, v in rows["dropped"].items()) or "none"
    lines.append(f"rows read {rows['read']}, kept {rows['kept']}, dropped: {dropped}")
    lines.append("splits: " + ", ".join(f"{k} {v}" for k, v in m["splits"].items()) + f" (seed {m['seed']})")
    trainer = m["options"].get("TRAINER")
    if trainer in PAIR_TRAINERS:
        lines.append(f"preference pairs for TRAINER={trainer}: the prompt, a chosen and a rejected answer each")
    lines.append("inputs: " + ", ".join(f"{i['path']} ({i['encoding']})" for i in m["inputs"]))
    lines += [f"lint: {line}" for line in m["lint"]["messages"]]
    return lines

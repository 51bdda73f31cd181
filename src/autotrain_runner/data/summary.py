"""`dialogue_summary`: the AI Hub Korean dialogue-summarization corpus (one or many topic files).

Each item's utterances are merged into turns (consecutive utterances of one participant are one
turn), rendered as speaker-labelled lines under `SUMMARY_INSTRUCTION`, with the item's summary
as the answer. Masking tokens (`#@이름#`, `#@주소#`, ...) are kept (`MASKING=keep`, default) or
replaced (`MASKING=map`, with `MASK_MAP=#@이름#=민수,...` over the defaults below).

An item whose fields have another shape (an utterance that is no text, a `dialogue` that is no
list, an utterance without its `participantID`) is a bad row naming the item and the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import StrictStr
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict from Python 3.12 only

from autotrain_runner.config.envfile import display_path
from autotrain_runner.data.base import BadRows, Ident, Options, Sample, Strict, is_blank, parse, with_system
from autotrain_runner.data.readers import loads, read_text
from autotrain_runner.errors import ConfigError

SUFFIXES = (".json",)
DEFAULT_INSTRUCTION = "다음 대화를 요약해 주세요."
MASK_TOKEN = re.compile(r"#@[^#\s]+(?:#[^#\s]+)*#")
DEFAULT_MASK_MAP = {
    "#@이름#": "OO",
    "#@주소#": "OO시",
    "#@전번#": "010-0000-0000",
    "#@URL#": "(링크)",
    "#@계정#": "(계정)",
    "#@시스템#사진#": "(사진)",
    "#@시스템#동영상#": "(동영상)",
    "#@이모티콘#": "(이모티콘)",
}


def mask_map(options: Options) -> dict[str, str] | None:
    if options.get("MASKING", "keep") == "keep":
        return None
    mapping = dict(DEFAULT_MASK_MAP)
    for pair in filter(None, (p.strip() for p in str(options.get("MASK_MAP", "")).split(","))):
        token, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"MASK_MAP: {pair!r} is not TOKEN=VALUE")
        mapping[token.strip()] = value.strip()
    return mapping


def unmask(text: str, mapping: dict[str, str]) -> str:
    return MASK_TOKEN.sub(lambda m: mapping.get(m.group(0), m.group(0).strip("#@").replace("#", " ")), text)


class _Utterance(TypedDict):  # validated as a dict, not made a model: a corpus has millions
    utterance: StrictStr
    participantID: StrictStr


class _DialogueInfo(Strict):
    dialogueID: Ident | None = None
    topic: StrictStr | None = None


class _Header(Strict):
    dialogueInfo: _DialogueInfo | None = None


class _Body(Strict):
    dialogue: list[_Utterance]
    summary: StrictStr | None = None  # None: counted as an empty summary


class _Item(Strict):
    """The fields of an item the builder uses; the rest (participantsInfo, utteranceID, ...) is not read."""

    header: _Header
    body: _Body


def build(inputs: list[Path], options: Options, bad: BadRows) -> Iterator[Sample]:
    instruction = options.get("SUMMARY_INSTRUCTION", DEFAULT_INSTRUCTION)
    system = options.get("SYSTEM_PROMPT")
    mapping = mask_map(options)
    for path in inputs:
        name = display_path(path)
        text, _ = read_text(path)
        data = loads(text, name)
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ConfigError(f'{name}: not the summarization corpus: expected {{"numberOfItems", "data": [...]}}')
        if items and not any(
            isinstance(i, dict) and isinstance(i.get("body"), dict) and "summary" in i["body"] for i in items
        ):
            raise ConfigError(
                f"{name}: no item has body.summary: this looks like the SNS dialogue corpus (same header, "
                "no summaries); dialogue_summary needs the summarization corpus"
            )
        for index, item in enumerate(items):
            where = f"{name}[item {index}]"
            parsed = parse(_Item, item, where, bad)
            sample = _sample(parsed, where, instruction, system, mapping, bad) if parsed else None
            if sample:
                yield sample


def _sample(item: _Item, where: str, instruction: str, system, mapping, bad: BadRows) -> Sample | None:
    summary = item.body.summary
    if summary is None or is_blank(summary):
        bad.add(where, "empty summary")
        return None
    dialogue = item.body.dialogue
    for speaker in {u["participantID"] for u in dialogue}:
        if is_blank(speaker):
            index = next(i for i, u in enumerate(dialogue) if u["participantID"] == speaker)
            bad.invalid(where, f"body.dialogue[{index}].participantID", "empty")
            return None
    turns: list[list[str]] = []  # [speaker, text]
    for utterance in dialogue:
        speaker, said = utterance["participantID"], utterance["utterance"].strip()
        if is_blank(said):
            continue
        if turns and turns[-1][0] == speaker:
            turns[-1][1] += " " + said
        else:
            turns.append([speaker, said])
    if not turns:
        bad.add(where, "empty dialogue")
        return None
    lines = "\n".join(f"{speaker}: {said}" for speaker, said in turns)
    if mapping is not None:
        lines, summary = unmask(lines, mapping), unmask(summary, mapping)
    messages = with_system(
        system,
        [
            {"role": "user", "content": f"{instruction}\n\n{lines}"},
            {"role": "assistant", "content": summary.strip()},
        ],
    )
    info = item.header.dialogueInfo or _DialogueInfo()
    meta = {"topic": info.topic, "turns": len(turns), "utterances": len(dialogue)}
    return Sample(messages, info.dialogueID or where, where, meta)

"""`dialogue_summary`: the AI Hub Korean dialogue-summarization corpus (one or many topic files).

Each item's utterances are merged into turns (consecutive utterances of one participant are one
turn), rendered as speaker-labelled lines under `SUMMARY_INSTRUCTION`, with the item's summary
as the answer. Masking tokens (`#@이름#`, `#@주소#`, ...) are kept (`MASKING=keep`, default) or
replaced (`MASKING=map`, with `MASK_MAP=#@이름#=민수,...` over the defaults below).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from autotrain_runner.config.envfile import display_path
from autotrain_runner.data.base import BadRows, Options, Sample, with_system
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
        if items and not any(isinstance(i, dict) and "summary" in (i.get("body") or {}) for i in items):
            raise ConfigError(
                f"{name}: no item has body.summary: this looks like the SNS dialogue corpus (same header, "
                "no summaries); dialogue_summary needs the summarization corpus"
            )
        for index, item in enumerate(items):
            where = f"{name}[item {index}]"
            sample = _sample(item, where, instruction, system, mapping, bad)
            if sample:
                yield sample


def _sample(item, where: str, instruction: str, system, mapping, bad: BadRows) -> Sample | None:
    try:
        header, body = item["header"], item["body"]
        dialogue, summary = body["dialogue"], body.get("summary")
        info = header.get("dialogueInfo") or {}
    except (KeyError, TypeError):
        bad.add(where, "missing header or body.dialogue")
        return None
    if not isinstance(summary, str) or not summary.strip():
        bad.add(where, "empty summary")
        return None
    turns: list[list[str]] = []  # [speaker, text]
    for utterance in dialogue:
        speaker, said = utterance.get("participantID"), (utterance.get("utterance") or "").strip()
        if not said:
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
    meta = {"topic": info.get("topic"), "turns": len(turns), "utterances": len(dialogue)}
    return Sample(messages, str(info.get("dialogueID") or where), where, meta)

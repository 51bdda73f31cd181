"""`emotion_dialogue`: the AI Hub emotional-dialogue corpus, both distributions, to chat messages.

- xlsx/csv (often cp949), one dialogue per row: `사람문장N` user turns and `시스템응답N` (or,
  in some releases, `시스템문장N`) system turns, N = 1..4; later turns may be empty.
- json: records with `profile.emotion.type` (E10-E69) and `talk.content` `HS0N`/`SS0N`; a record
  whose fields have another shape is a bad row naming the record and the field.

Turns pair by their whole number (`사람문장10` with `시스템응답10`, `HS10` with `SS10`).

Each dialogue becomes one conversation under `SYSTEM_PROMPT` (default: respond with empathy),
ending at the last complete user/system pair; the labels are kept as metadata.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field, StrictStr

from autotrain_runner.config.envfile import display_path
from autotrain_runner.data.base import BadRows, Ident, Options, Sample, Strict, is_blank, parse, with_system
from autotrain_runner.data.readers import TABLE_SUFFIXES, json_records, read_text, table_rows
from autotrain_runner.errors import ConfigError

SUFFIXES = (*TABLE_SUFFIXES, ".json", ".jsonl")
DEFAULT_SYSTEM = (
    "당신은 사용자의 감정에 공감하며 따뜻하게 대화하는 상담 도우미입니다. "
    "사용자의 마음을 먼저 알아주고 부드럽게 답하세요."
)
EMOTION_GROUPS = {1: "분노", 2: "슬픔", 3: "불안", 4: "상처", 5: "당황", 6: "기쁨"}  # E10-19 anger ... E60-69 joy
_LABELS = ("연령", "성별", "상황키워드", "신체질환", "감정_대분류", "감정_소분류")


def build(inputs: list[Path], options: Options, bad: BadRows) -> Iterator[Sample]:
    system = options.get("SYSTEM_PROMPT", DEFAULT_SYSTEM)
    for path in inputs:
        if path.suffix.lower() in TABLE_SUFFIXES:
            yield from _table(path, system, options, bad)
        else:
            yield from _json(path, system, bad)


def _pairs_to_sample(
    pairs: list[tuple[str | None, str | None]], system: str, group: str, where: str, meta, bad: BadRows
) -> Sample | None:
    turns = []
    for user, reply in pairs:
        if user is None or reply is None or is_blank(user) or is_blank(reply):
            break  # the dialogue ends at its first incomplete pair
        turns += [{"role": "user", "content": user.strip()}, {"role": "assistant", "content": reply.strip()}]
    if not turns:
        bad.add(where, "no complete user/system turn")
        return None
    return Sample(with_system(system, turns), group, where, meta)


def _table(path: Path, system: str, options: Options, bad: BadRows) -> Iterator[Sample]:
    table = table_rows(path, options.get("SHEET"))
    if table.sheets:
        options.read[path] = {"sheets": list(table.sheets)}
    # turns pair by their whole number: 사람문장10 with 시스템응답10, never with 시스템응답1
    users: dict[int, str] = {}
    replies: dict[int, str] = {}
    for column in table.header:
        match = re.fullmatch(r"사람문장([0-9]+)|시스템(?:응답|문장)([0-9]+)", column)
        if not match:
            continue
        columns, number = (users, int(match[1])) if match[1] else (replies, int(match[2]))
        if number in columns:
            raise ConfigError(
                f"{display_path(path)}: columns {columns[number]!r} and {column!r} are the same turn; "
                "remove or rename one"
            )
        columns[number] = column
    if not users or not replies:
        raise ConfigError(
            f"{display_path(path)}: not the emotional-dialogue table: needs 사람문장N and 시스템응답N "
            f"(or 시스템문장N) columns (columns found: {', '.join(table.header) or 'none'})"
        )
    id_column = next((c for c in ("번호", "index", "id", "ID") if c in table.header), None)
    for row in table.rows:
        r = row.record
        pairs = [(r.get(users[n]), r.get(replies[n]) if n in replies else None) for n in sorted(users)]
        group = f"{path.name}:{r.get(id_column) if id_column else row.where}"
        meta = {k: r[k] for k in _LABELS if r.get(k)}
        sample = _pairs_to_sample(pairs, system, group, row.where, meta, bad)
        if sample:
            yield sample


class _Emotion(Strict):
    type: StrictStr | None = None  # E10-E69
    situation: list[StrictStr] | None = None


class _Profile(Strict):
    emotion: _Emotion | None = None


class _TalkId(Strict):
    talk_id: Ident | None = Field(None, alias="talk-id")
    dialogue_id: Ident | None = Field(None, alias="dialogue-id")


class _Talk(Strict):
    id: _TalkId | None = None
    content: dict[str, StrictStr | None]  # HS01/SS01 ...: text, or "" or null where unused


class _Record(Strict):
    """The fields of a record the builder uses; the rest (persona, emotion-id, ...) is not read.
    The labels (`profile`) are optional; where they are given they have their shape."""

    profile: _Profile | None = None
    talk: _Talk


def _json(path: Path, system: str, bad: BadRows) -> Iterator[Sample]:
    for row in json_records(path, read_text(path)[0]):
        record = parse(_Record, row.record, row.where, bad)
        if record is None:
            continue
        pairs = _turns(record.talk.content, row.where, bad)
        if pairs is None:
            continue
        emotion = (record.profile.emotion if record.profile else None) or _Emotion()
        talk_id = record.talk.id or _TalkId()
        group = talk_id.talk_id or talk_id.dialogue_id or row.where
        meta = {"emotion": emotion.type, "situation": emotion.situation}
        if emotion.type and re.fullmatch(r"E[0-9][0-9]", emotion.type):
            meta["emotion_group"] = EMOTION_GROUPS.get(int(emotion.type[1]))
        sample = _pairs_to_sample(pairs, system, group, row.where, meta, bad)
        if sample:
            yield sample


def _turns(content: dict[str, str | None], where: str, bad: BadRows) -> list[tuple[str | None, str | None]] | None:
    """HS<n>/SS<n> paired by the whole number n (HS10 with SS10), in order; None: recorded as bad."""
    said: dict[tuple[str, int], str] = {}  # (H or S, n) -> key
    for key in content:
        match = re.fullmatch(r"([HS])S([0-9]+)", key)
        if not match:
            continue
        turn = (match[1], int(match[2]))
        if turn in said:
            bad.invalid(where, "talk.content", f"{said[turn]} and {key} are the same turn")
            return None
        said[turn] = key
    pairs = []
    for n in sorted({n for _, n in said}):
        user, reply = said.get(("H", n)), said.get(("S", n))
        pairs.append((content[user] if user else None, content[reply] if reply else None))
    return pairs

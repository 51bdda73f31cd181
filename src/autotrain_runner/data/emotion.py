"""`emotion_dialogue`: the AI Hub emotional-dialogue corpus, both distributions, to chat messages.

- xlsx/csv (often cp949), one dialogue per row: `사람문장N` user turns and `시스템응답N` (or,
  in some releases, `시스템문장N`) system turns, N = 1..4; later turns may be empty.
- json: records with `profile.emotion.type` (E10-E69) and `talk.content` `HS0N`/`SS0N`.

Each dialogue becomes one conversation under `SYSTEM_PROMPT` (default: respond with empathy),
ending at the last complete user/system pair; the labels are kept as metadata.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from autotrain_runner.config.envfile import display_path
from autotrain_runner.data.base import BadRows, Options, Sample, with_system
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
            yield from _table(path, system, bad)
        else:
            yield from _json(path, system, bad)


def _pairs_to_sample(pairs: list[tuple[str, str]], system: str, group: str, where: str, meta, bad: BadRows):
    turns = []
    for user, reply in pairs:
        user, reply = (user or "").strip(), (reply or "").strip()
        if not user or not reply:
            break  # the dialogue ends at its first incomplete pair
        turns += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    if not turns:
        bad.add(where, "no complete user/system turn")
        return None
    return Sample(with_system(system, turns), group, where, meta)


def _table(path: Path, system: str, bad: BadRows) -> Iterator[Sample]:
    header, rows, _ = table_rows(path)
    users = sorted((c for c in header if re.fullmatch(r"사람문장\d+", c)), key=lambda c: int(c[4:]))
    replies = {c[-1]: c for c in header if re.fullmatch(r"시스템(응답|문장)\d+", c)}
    if not users or not replies:
        raise ConfigError(
            f"{display_path(path)}: not the emotional-dialogue table: needs 사람문장N and 시스템응답N "
            f"(or 시스템문장N) columns (columns found: {', '.join(header) or 'none'})"
        )
    id_column = next((c for c in ("번호", "index", "id", "ID") if c in header), None)
    for row in rows:
        r = row.record
        pairs = [(r.get(u, ""), r.get(replies.get(u[4:], ""), "")) for u in users]
        group = f"{path.name}:{r.get(id_column) if id_column else row.where}"
        meta = {k: r[k] for k in _LABELS if r.get(k)}
        sample = _pairs_to_sample(pairs, system, group, row.where, meta, bad)
        if sample:
            yield sample


def _json(path: Path, system: str, bad: BadRows) -> Iterator[Sample]:
    for row in json_records(path, read_text(path)[0]):
        r = row.record
        content = (r.get("talk") or {}).get("content") if isinstance(r, dict) else None
        if not isinstance(content, dict):
            bad.add(row.where, "no talk.content (HS01/SS01 ...)")
            continue
        numbers = sorted({k[2:] for k in content if re.fullmatch(r"[HS]S\d+", k)})
        pairs = [(content.get(f"HS{n}") or "", content.get(f"SS{n}") or "") for n in numbers]
        emotion = (r.get("profile") or {}).get("emotion") or {}
        talk_id = (r.get("talk") or {}).get("id") or {}
        group = (
            str(talk_id.get("talk-id") or talk_id.get("dialogue-id") or row.where)
            if isinstance(talk_id, dict)
            else str(talk_id)
        )
        meta = {"emotion": emotion.get("type"), "situation": emotion.get("situation")}
        code = str(emotion.get("type") or "")
        if re.fullmatch(r"E\d\d", code):
            meta["emotion_group"] = EMOTION_GROUPS.get(int(code[1]))
        sample = _pairs_to_sample(pairs, system, group, row.where, meta, bad)
        if sample:
            yield sample

"""The JSON shapes of public instruction datasets: `alpaca`, `sharegpt` and `messages`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .base import BadRows, Options, Sample, conversation_problem, with_system
from .readers import JSON_SUFFIXES, json_records, read_text

SUFFIXES = JSON_SUFFIXES
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def _records(inputs: list[Path], bad: BadRows):
    for path in inputs:
        for located in json_records(path, read_text(path)[0]):
            if isinstance(located.record, dict):
                yield located
            else:
                bad.add(located.where, "not an object")


def _checked(messages, where: str, bad: BadRows, options: Options, meta=None) -> Sample | None:
    """The conversation under SYSTEM_PROMPT when it has no system message of its own, validated."""
    first = messages[0] if messages else None
    if isinstance(first, dict) and first.get("role") != "system":
        messages = with_system(options.get("SYSTEM_PROMPT"), messages)
    problem = conversation_problem(messages)
    if problem:
        bad.add(where, problem)
        return None
    return Sample(messages, where, where, meta or {})


def alpaca(inputs: list[Path], options: Options, bad: BadRows) -> Iterator[Sample]:
    """{instruction, input?, output, system?, history?: [[question, answer], ...]}"""
    for row in _records(inputs, bad):
        r = row.record
        instruction, extra = str(r.get("instruction") or "").strip(), str(r.get("input") or "").strip()
        prompt = f"{instruction}\n\n{extra}" if instruction and extra else instruction or extra
        turns = []
        history = r.get("history") or []
        if not isinstance(history, list) or any(not isinstance(h, list | tuple) or len(h) != 2 for h in history):
            bad.add(row.where, "history must be a list of [question, answer] pairs")
            continue
        for question, answer in history:
            turns += [{"role": "user", "content": str(question)}, {"role": "assistant", "content": str(answer)}]
        turns += [{"role": "user", "content": prompt}, {"role": "assistant", "content": str(r.get("output") or "")}]
        sample = _checked(with_system(r.get("system"), turns), row.where, bad, options)
        if sample:
            yield sample


def sharegpt(inputs: list[Path], options: Options, bad: BadRows) -> Iterator[Sample]:
    """{conversations: [{from: human|gpt|system, value}, ...]}"""
    for row in _records(inputs, bad):
        turns = row.record.get("conversations")
        if not isinstance(turns, list):
            bad.add(row.where, "no 'conversations' list")
            continue
        try:
            messages = [{"role": _SHAREGPT_ROLES[t["from"]], "content": str(t["value"])} for t in turns]
        except (KeyError, TypeError):
            bad.add(row.where, "each turn needs from (human, gpt, system) and value")
            continue
        sample = _checked(messages, row.where, bad, options, {"id": row.record.get("id")})
        if sample:
            yield sample


def messages(inputs: list[Path], options: Options, bad: BadRows) -> Iterator[Sample]:
    """{messages: [{role, content}, ...]}, the OpenAI chat form, validated."""
    for row in _records(inputs, bad):
        msgs = row.record.get("messages")
        if not isinstance(msgs, list):
            bad.add(row.where, "no 'messages' list")
            continue
        sample = _checked(msgs, row.where, bad, options)
        if sample:
            yield sample

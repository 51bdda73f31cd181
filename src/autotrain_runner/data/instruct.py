"""The JSON shapes of public instruction datasets: `alpaca`, `sharegpt` and `messages`.

Also the shapes beside them that people bring: self-instruct records (KULLM, the seed tasks:
`{instruction, instances: [{input, output}]}`), one sample per instance, under `alpaca`;
preference pairs (`chosen`/`rejected` beside `conversations`, `instruction` or `messages`, or an
alpaca `output` list [chosen, rejected]): built as pairs for the dpo, orpo and reward trainers, as
the chosen answer under `PREFERENCE=chosen` (sft), and otherwise refused with what to do; tool-use
turns (`function_call`, `observation`, `tool`, `tool_calls`), refused by record as bad rows.

Text fields must be strings: a number, list, object or null where text is expected is a bad row
naming the field (`conversations[1].value: expected a string, got null`), never its printed form.
Optional fields (`input`, `system`, an alpaca `instruction` beside its `input`) may be null or missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from autotrain_runner.data.base import (
    BadRows,
    Options,
    Sample,
    conversation_problem,
    is_blank,
    json_type,
    pair_problem,
    pairs_wanted,
    with_system,
)
from autotrain_runner.data.readers import JSON_SUFFIXES, json_records, read_text
from autotrain_runner.errors import ConfigError, Level, Problem

SUFFIXES = JSON_SUFFIXES
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
# Tool use as ShareGPT (glaive, ToolACE, LLaMA-Factory) and OpenAI chat write it.
_TOOL_TURNS = {"function_call", "observation", "tool", "function", "tool_call", "tool_response", "function_response"}


def _tools_refused(what: str) -> str:
    """A bad row's reason (counted by the text before its first colon)."""
    return (
        f"tool turns are not supported: {what}; atr trains on user and assistant text only, "
        "so remove the records with tool calls"
    )


def _said(turn: Any, key: str) -> str | None:
    """A turn's `from` or `role`, when it is text (anything else is no speaker)."""
    value = turn.get(key) if isinstance(turn, dict) else None
    return value if isinstance(value, str) else None


def _records(inputs: list[Path], bad: BadRows):
    for path in inputs:
        for located in json_records(path, read_text(path)[0]):
            if isinstance(located.record, dict):
                yield located
            else:
                bad.add(located.where, "not an object")


def _checked(
    messages, where: str, bad: BadRows, options: Options, meta=None, group: str | None = None, rejected=None
) -> Sample | None:
    """The conversation under SYSTEM_PROMPT when it has no system message of its own, validated."""
    first = messages[0] if messages else None
    if isinstance(first, dict) and first.get("role") != "system":
        messages = with_system(options.get("SYSTEM_PROMPT"), messages)
    problem = conversation_problem(messages)
    if problem:
        bad.add(where, problem)
        return None
    return Sample(messages, group or where, where, meta or {}, rejected)


def _is_preference(record: dict) -> bool:
    return "chosen" in record and "rejected" in record


def _preference_refused(where: str, beside: str) -> ConfigError:
    """Preference pairs given to a builder for SFT: say what the file is and the two ways on."""
    return ConfigError(
        [
            Problem(
                Level.ERROR,
                where,
                "PREFERENCE",
                f"this is preference data (chosen/rejected answers beside {beside}), which supervised fine-tuning "
                "does not train as it is: set TRAINER=dpo (or orpo, reward) to train the pairs, or "
                "PREFERENCE=chosen to train on the chosen answers",
            )
        ]
    )


def _preference_answers(
    chosen: Any, rejected: Any, where: str, beside: str, options: Options, bad: BadRows
) -> tuple[str, str | None] | None:
    """A preference record's answers: (chosen, rejected) for a pair trainer, (chosen, None) under
    PREFERENCE=chosen; None when the row is bad (recorded). Otherwise the record is refused, saying what it is."""
    if pairs_wanted(options):
        chosen, rejected = _chosen_answer(chosen), _chosen_answer(rejected)
        problem = pair_problem(chosen, rejected)
        if problem:
            bad.add(where, problem)
            return None
        return chosen, rejected
    if options.get("PREFERENCE") != "chosen":
        raise _preference_refused(where, beside)
    answer = _chosen_answer(chosen)
    if answer is None:
        bad.add(where, "chosen is not an answer (text, or a {from: gpt, value} turn)")
        return None
    return answer, None


def _chosen_answer(value: Any) -> str | None:
    """The chosen answer: text, one turn ({from: gpt, value} or {role: assistant, content}), or a list of
    turns ending with it."""
    if isinstance(value, list):
        value = value[-1] if value else None
    if isinstance(value, dict):
        speaker = value.get("from", value.get("role", "assistant"))
        if not isinstance(speaker, str) or _SHAREGPT_ROLES.get(speaker) != "assistant":
            return None
        value = value.get("value", value.get("content"))
    return value if isinstance(value, str) else None


def _alpaca_turns(instruction: str | None, extra: str | None, output: str) -> list[dict[str, str]]:
    instruction, extra = (instruction or "").strip(), (extra or "").strip()
    instruction, extra = ("" if is_blank(instruction) else instruction), ("" if is_blank(extra) else extra)
    prompt = f"{instruction}\n\n{extra}" if instruction and extra else instruction or extra
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]


def _not_text(fields: Iterable[tuple[str, Any]]) -> tuple[str, str] | None:
    """The first (field, value) whose value is not a string, as (field, why); `...` is a missing value."""
    for path, value in fields:
        if not isinstance(value, str):
            return path, "missing" if value is ... else f"expected a string, got {json_type(value)}"
    return None


def _given(record: dict, *keys: str) -> list[tuple[str, Any]]:
    """The optional fields a record gives (null is not given)."""
    return [(key, record[key]) for key in keys if record.get(key) is not None]


def alpaca(inputs: list[Path], options: Options, bad: BadRows) -> Iterator[Sample]:
    """{instruction, input?, output, system?, history?: [[question, answer], ...]}; also self-instruct's
    {instruction, instances: [{input, output}, ...]} (KULLM, the seed tasks), one sample per instance,
    and preference pairs {instruction, input?, chosen, rejected} with PREFERENCE=chosen."""
    for row in _records(inputs, bad):
        r = row.record
        history = r.get("history") or []
        if not isinstance(history, list) or any(not isinstance(h, list | tuple) or len(h) != 2 for h in history):
            bad.add(row.where, "history must be a list of [question, answer] pairs")
            continue
        preference, instances = _is_preference(r), r.get("instances") is not None
        ranked = not preference and isinstance(r.get("output"), list)  # LLaMA-Factory's [chosen, rejected]
        if ranked and len(r["output"]) != 2:
            bad.invalid(row.where, "output", f"a list of {len(r['output'])}: a ranked output is [chosen, rejected]")
            continue
        fields = _given(r, "instruction", "input", "system") + (
            [] if preference or instances or ranked else [("output", r.get("output", ...))]
        )
        fields += [(f"history[{i}][{j}]", said) for i, pair in enumerate(history) for j, said in enumerate(pair)]
        wrong = _not_text(fields)
        if wrong:
            bad.invalid(row.where, *wrong)
            continue
        turns = []
        for question, answer in history:
            turns += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        if instances:
            yield from _instances(row.where, r, turns, options, bad)
            continue
        output, rejected = r.get("output"), None
        if preference or ranked:
            pair = (r["chosen"], r["rejected"]) if preference else r["output"]
            answers = _preference_answers(*pair, row.where, "instruction", options, bad)
            if answers is None:
                continue
            output, rejected = answers
        turns += _alpaca_turns(r.get("instruction"), r.get("input"), output)
        sample = _checked(with_system(r.get("system"), turns), row.where, bad, options, rejected=rejected)
        if sample:
            yield sample


def _instances(where: str, record: dict, history: list[dict[str, str]], options: Options, bad: BadRows):
    """Self-instruct: one sample per instance; the instances of one task stay in one split."""
    instances = record["instances"]
    if not isinstance(instances, list) or not instances:
        bad.add(where, "instances must be a non-empty list of {input, output} objects")
        return
    for index, instance in enumerate(instances):
        located = f"{where}[instance {index}]"
        if not isinstance(instance, dict):
            bad.add(located, "an instance is not an object {input, output}")
            continue
        wrong = _not_text([*_given(instance, "input"), ("output", instance.get("output", ...))])
        if wrong:
            bad.invalid(located, *wrong)
            continue
        turns = history + _alpaca_turns(record.get("instruction"), instance.get("input"), instance.get("output"))
        sample = _checked(with_system(record.get("system"), turns), located, bad, options, group=where)
        if sample:
            yield sample


def sharegpt(inputs: list[Path], options: Options, bad: BadRows) -> Iterator[Sample]:
    """{conversations: [{from: human|gpt|system, value}, ...]}; preference pairs (chosen/rejected beside
    conversations that end with the question) with PREFERENCE=chosen. Tool turns are refused."""
    for row in _records(inputs, bad):
        r = row.record
        turns = r.get("conversations")
        if not isinstance(turns, list):
            bad.add(row.where, "no 'conversations' list")
            continue
        tools = sorted({_said(t, "from") for t in turns} & _TOOL_TURNS)
        if tools:
            bad.add(row.where, _tools_refused(f"turns from {', '.join(tools)}"))
            continue
        unknown = next((t for t in turns if _said(t, "from") not in _SHAREGPT_ROLES), None)
        if unknown is not None or any("value" not in t for t in turns):
            reason = "each turn needs from (human, gpt, system) and value"
            bad.add(row.where, f"{reason}: got from {unknown.get('from')!r}" if isinstance(unknown, dict) else reason)
            continue
        wrong = _not_text((f"conversations[{i}].value", t["value"]) for i, t in enumerate(turns))
        if wrong:
            bad.invalid(row.where, *wrong)
            continue
        messages = [{"role": _SHAREGPT_ROLES[t["from"]], "content": t["value"]} for t in turns]
        rejected = None
        if _is_preference(r):
            answered = _answered(messages, r, row.where, "conversations", options, bad)
            if answered is None:
                continue
            messages, rejected = answered
        sample = _checked(messages, row.where, bad, options, {"id": r.get("id")}, rejected=rejected)
        if sample:
            yield sample


def _answered(messages: list, record: dict, where: str, beside: str, options: Options, bad: BadRows):
    """A preference record's prompt (ending with the question) and its answers: (conversation ending
    with the chosen answer, the rejected answer or None); None when the row is bad (recorded)."""
    answers = _preference_answers(record["chosen"], record["rejected"], where, beside, options, bad)
    if answers is None:
        return None
    if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
        bad.add(where, f"{beside} end with an answer: for a preference pair they end with the question answered")
        return None
    return [*messages, {"role": "assistant", "content": answers[0]}], answers[1]


def _prompt_of(record: dict) -> tuple[Any, str | None]:
    """A preference record's prompt messages, or why there are none: `messages`, TRL's `prompt` (messages,
    or a text that is one user message), or what an implicit-prompt pair's chosen and rejected
    conversations share before their last turn (TRL's hh-rlhf form)."""
    chosen, rejected = record.get("chosen"), record.get("rejected")
    if isinstance(chosen, list) and isinstance(rejected, list) and len(chosen) > 1:  # whole conversations
        if chosen[:-1] == rejected[:-1]:
            return chosen[:-1], None
        return None, "chosen and rejected do not share their prompt"
    if "prompt" in record:
        prompt = record["prompt"]
        return ([{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt), None
    if "messages" in record:
        return record["messages"], None
    return None, "no prompt: 'messages', 'prompt', or chosen and rejected conversations"


def messages(inputs: list[Path], options: Options, bad: BadRows) -> Iterator[Sample]:
    """{messages: [{role, content}, ...]}, the OpenAI chat form, validated; preference pairs with
    chosen/rejected beside `messages` (or TRL's `prompt`, or sharing their prompt). Tool turns are refused."""
    for row in _records(inputs, bad):
        preference = _is_preference(row.record)
        msgs, why = _prompt_of(row.record) if preference else (row.record.get("messages"), None)
        if why:
            bad.add(row.where, why)
            continue
        if not isinstance(msgs, list):
            bad.add(row.where, "no 'messages' list")
            continue
        tools = [m for m in msgs if _said(m, "role") in _TOOL_TURNS or (isinstance(m, dict) and _calls(m))]
        if tools:
            bad.add(row.where, _tools_refused("a tool message, or tool_calls in a message"))
            continue
        wrong = _not_text(
            (f"messages[{i}].content", m.get("content", ...)) for i, m in enumerate(msgs) if isinstance(m, dict)
        )
        if wrong:
            bad.invalid(row.where, *wrong)
            continue
        rejected = None
        if preference:
            answered = _answered(msgs, row.record, row.where, "messages", options, bad)
            if answered is None:
                continue
            msgs, rejected = answered
        sample = _checked(msgs, row.where, bad, options, rejected=rejected)
        if sample:
            yield sample


def _calls(message: dict) -> bool:
    return bool(message.get("tool_calls") or message.get("function_call"))

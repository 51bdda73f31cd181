"""`table`: csv, tsv, xlsx, json or jsonl rows with a prompt and a response column; for the dpo,
orpo and reward trainers, a prompt, a chosen and a rejected column (CHOSEN_COLUMN, REJECTED_COLUMN).

A spreadsheet cell is text whatever it holds (a cell 5 is "5"); in json and jsonl records the
prompt, response and system fields must be strings: a number, list or object there is a bad row
naming the field, never trained as its printed form. A null or missing field is empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autotrain_runner.config.envfile import display_path
from autotrain_runner.data.base import (
    BadRows,
    Options,
    Sample,
    is_blank,
    json_type,
    pair_problem,
    pairs_wanted,
    with_system,
)
from autotrain_runner.data.readers import JSON_SUFFIXES, TABLE_SUFFIXES, json_records, read_text, table_rows
from autotrain_runner.errors import ConfigError

SUFFIXES = TABLE_SUFFIXES + JSON_SUFFIXES


def build(inputs: list[Path], options: Options, bad: BadRows) -> Iterator[Sample]:
    pairs = pairs_wanted(options)
    prompt_col = options.get("PROMPT_COLUMN", "prompt")
    response_col = options.get("CHOSEN_COLUMN", "chosen") if pairs else options.get("RESPONSE_COLUMN", "response")
    rejected_col = options.get("REJECTED_COLUMN", "rejected") if pairs else None
    system_col = options.get("SYSTEM_COLUMN")
    columns = (prompt_col, response_col, rejected_col, system_col)
    names = "PROMPT_COLUMN / CHOSEN_COLUMN / REJECTED_COLUMN" if pairs else "PROMPT_COLUMN / RESPONSE_COLUMN"
    system_prompt = options.get("SYSTEM_PROMPT")
    for path in inputs:
        if path.suffix.lower() in JSON_SUFFIXES:
            rows = list(json_records(path, read_text(path)[0]))
            header = sorted({k for r in rows if isinstance(r.record, dict) for k in r.record})
        else:
            table = table_rows(path, options.get("SHEET"))
            header, rows = table.header, table.rows
            if table.sheets:
                options.read[path] = {"sheets": list(table.sheets)}
        missing = [c for c in columns if c and c not in header]
        if missing:
            raise ConfigError(
                f"{display_path(path)}: no column {', '.join(repr(c) for c in missing)} "
                f"(columns found: {', '.join(header) or 'none'}); set {names}"
            )
        for row in rows:
            record = row.record
            if not isinstance(record, dict):
                bad.add(row.where, "not an object")
                continue
            wrong = next((c for c in columns if c and not _is_text(record.get(c))), None)
            if wrong:
                bad.invalid(row.where, wrong, f"expected a string, got {json_type(record[wrong])}")
                continue
            prompt, response = (record.get(prompt_col) or "").strip(), (record.get(response_col) or "").strip()
            rejected = (record.get(rejected_col) or "").strip() if rejected_col else None
            if is_blank(prompt):
                bad.add(row.where, "empty prompt")
                continue
            problem = pair_problem(response, rejected) if pairs else "empty response" if is_blank(response) else None
            if problem:
                bad.add(row.where, problem)
                continue
            system = (record.get(system_col) or "").strip() if system_col else system_prompt
            system = None if system is None or is_blank(system) else system  # an empty cell: no system message
            turns = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
            yield Sample(with_system(system, turns), row.where, row.where, rejected=rejected)


def _is_text(value: Any) -> bool:
    return value is None or isinstance(value, str)

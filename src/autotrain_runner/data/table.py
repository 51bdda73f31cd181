"""`table`: csv, tsv, xlsx, json or jsonl rows with a prompt and a response column."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from autotrain_runner.config.envfile import display_path
from autotrain_runner.data.base import BadRows, Options, Sample, with_system
from autotrain_runner.data.readers import JSON_SUFFIXES, TABLE_SUFFIXES, json_records, read_text, table_rows
from autotrain_runner.errors import ConfigError

SUFFIXES = TABLE_SUFFIXES + JSON_SUFFIXES


def build(inputs: list[Path], options: Options, bad: BadRows) -> Iterator[Sample]:
    prompt_col = options.get("PROMPT_COLUMN", "prompt")
    response_col = options.get("RESPONSE_COLUMN", "response")
    system_col = options.get("SYSTEM_COLUMN")
    system_prompt = options.get("SYSTEM_PROMPT")
    for path in inputs:
        if path.suffix.lower() in JSON_SUFFIXES:
            rows = list(json_records(path, read_text(path)[0]))
            header = sorted({k for r in rows if isinstance(r.record, dict) for k in r.record})
        else:
            header, rows, _ = table_rows(path)
        missing = [c for c in (prompt_col, response_col, system_col) if c and c not in header]
        if missing:
            raise ConfigError(
                f"{display_path(path)}: no column {', '.join(repr(c) for c in missing)} "
                f"(columns found: {', '.join(header) or 'none'}); set PROMPT_COLUMN / RESPONSE_COLUMN"
            )
        for row in rows:
            record = row.record
            if not isinstance(record, dict):
                bad.add(row.where, "not an object")
                continue
            prompt, response = str(record.get(prompt_col) or "").strip(), str(record.get(response_col) or "").strip()
            if not prompt or not response:
                bad.add(row.where, f"empty {'prompt' if not prompt else 'response'}")
                continue
            system = str(record.get(system_col) or "").strip() if system_col else system_prompt
            turns = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
            yield Sample(with_system(system, turns), row.where, row.where)

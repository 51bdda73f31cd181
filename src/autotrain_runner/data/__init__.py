"""Raw files of many shapes -> one dataset folder: `build.py` runs `atr data` (find, read, split,
render, lint, write), one module per input shape reads the rows (`table`, `txt`, `instruct`,
`emotion`, `summary`, behind `base.py`), `readers.py` decodes files, `outputs.py` says what may be
replaced and `lint.py` checks the rendered samples."""

from autotrain_runner.data.build import (
    BUILDERS,
    DataResult,
    build_data,
    ensure_built,
    secret_values,
    summarize,
    validation_samples,
    write_training_file,
)

__all__ = [
    "BUILDERS",
    "DataResult",
    "build_data",
    "ensure_built",
    "secret_values",
    "summarize",
    "validation_samples",
    "write_training_file",
]

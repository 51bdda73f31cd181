"""One module per command, each owning its arguments (`add`) and its run (`run`). `COMMANDS` is the
order `atr --help` lists them in; the parser is assembled from it (`cli.main`)."""

from __future__ import annotations

from autotrain_runner.cli.commands import (
    bench,
    chat,
    check,
    command,
    data,
    evaluate,
    keys,
    push,
    report,
    runs,
    serve,
    sweep,
    train,
)

COMMANDS = {
    "check": check,
    "keys": keys,
    "command": command,
    "train": train,
    "data": data,
    "eval": evaluate,
    "sweep": sweep,
    "chat": chat,
    "serve": serve,
    "bench": bench,
    "push": push,
    "report": report,
    "runs": runs,
}

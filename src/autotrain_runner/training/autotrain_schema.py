"""What the installed AutoTrain accepts, known without importing it.

Importing `autotrain` imports torch (about 5 s cold), too slow for `atr check`. So the field
schema of `LLMTrainingParams` and the backend names are kept in `autotrain_fields.json`, made by
`snapshot_live()` from the pinned AutoTrain; a test compares it with the live model so that the
two cannot drift. `train` and `command` still validate the final object with the live model.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SNAPSHOT = "autotrain_fields.json"


@cache
def snapshot() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath(SNAPSHOT).read_text(encoding="utf-8"))


def fields() -> dict[str, dict[str, Any]]:
    return snapshot()["fields"]


def backends() -> list[str]:
    return snapshot()["backends"]


def snapshot_live() -> dict[str, Any]:
    """The same record, read from the installed AutoTrain (slow: imports torch)."""
    import autotrain
    from autotrain.backends.base import AVAILABLE_HARDWARE
    from autotrain.trainers.clm.params import LLMTrainingParams

    props = LLMTrainingParams.model_json_schema()["properties"]
    return {
        "autotrain_version": autotrain.__version__,
        "fields": {
            name: {
                "types": [t["type"] for t in prop.get("anyOf", [prop]) if "type" in t],
                "default": prop.get("default"),
                "help": prop.get("title", ""),
            }
            for name, prop in props.items()
        },
        "backends": sorted(AVAILABLE_HARDWARE),
    }


def validate_live(params: dict[str, Any]) -> None:
    """Validate with AutoTrain's own `LLMTrainingParams`; raises pydantic's ValidationError/ValueError."""
    import logging

    from autotrain import logger
    from autotrain.trainers.clm.params import LLMTrainingParams

    # AutoTrain logs a long "not supplied, set to default" warning on every construction.
    logger.disable("autotrain")
    try:
        LLMTrainingParams(**params)
    finally:
        logger.enable("autotrain")
        logging.getLogger().handlers.clear()


if __name__ == "__main__":  # python -m autotrain_runner.training.autotrain_schema > autotrain_fields.json
    print(json.dumps(snapshot_live(), indent=1, ensure_ascii=False))

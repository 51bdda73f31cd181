"""AutoTrain's own view of the parameters, read from the installed package (slow: imports torch).

`snapshot_live()` makes `config/autotrain_fields.json`, which `atr check` reads instead;
`train` and `command` validate the final parameters with the live model.
"""

from __future__ import annotations

import json
from typing import Any


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


if __name__ == "__main__":  # python -m autotrain_runner.training.autotrain_schema > config/autotrain_fields.json
    print(json.dumps(snapshot_live(), indent=1, ensure_ascii=False))

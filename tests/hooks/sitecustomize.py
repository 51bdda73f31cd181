"""Observes a real AutoTrain run from inside its trainer process (tests only; PYTHONPATH=tests/hooks).

With ATR_TEST_FAIL_LORA_R set, a trainer process whose params.json has that `lora_r` dies at
start with an error, as AutoTrain does when it rejects a value at run time: a sweep test uses it
to make one trial fail while the others succeed.

With ATR_TEST_DUMP_ENV set, the trainer process writes its environment there as JSON.

With ATR_TEST_DUMP_PACKED set (no TOKEN in its name: such variables never reach the child),
the packed training sequences that TRL's SFTTrainer is about to train on (input ids and labels,
-100 where a token carries no loss) are written there as JSON, so a test can check what the model
really saw. Nothing is changed: the original `train` runs right after.
"""

import os
import sys

_fail_rank = os.environ.get("ATR_TEST_FAIL_LORA_R")


def _lora_r() -> str | None:
    import json

    for arg in sys.argv:
        if arg.endswith("params.json") and os.path.isfile(arg):
            with open(arg, encoding="utf-8") as handle:
                return str(json.load(handle).get("lora_r"))
    return None


if _fail_rank and _lora_r() == _fail_rank:
    print(f"ERROR | ValueError: lora_r={_fail_rank} rejected (test hook)", flush=True)
    os._exit(1)

_env_dump = os.environ.get("ATR_TEST_DUMP_ENV")
if _env_dump and any(arg.endswith("params.json") for arg in sys.argv):  # the trainer process only
    import json

    with open(_env_dump, "w", encoding="utf-8") as handle:
        json.dump(dict(os.environ), handle)

_target = os.environ.get("ATR_TEST_DUMP_PACKED")

if _target:
    import builtins

    _real_import = builtins.__import__

    def _import(name, *args, **kwargs):
        module = _real_import(name, *args, **kwargs)
        if name == "trl" and not getattr(builtins, "_atr_hooked", False):
            builtins._atr_hooked = True
            import json

            from trl import SFTTrainer

            original = SFTTrainer.train

            def train(self, *a, **k):
                ids = [list(map(int, row)) for row in self.train_dataset["input_ids"]]
                labels = [list(map(int, row)) for row in self.train_dataset["labels"]]
                seen = {"input_ids": ids, "labels": labels, "eos_token_id": self.processing_class.eos_token_id}
                with open(_target, "w", encoding="utf-8") as handle:
                    json.dump(seen, handle)
                return original(self, *a, **k)

            SFTTrainer.train = train
        return module

    builtins.__import__ = _import

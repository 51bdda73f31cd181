"""`atr push --merged`: the run's LoRA adapter merged into the base weights (PEFT's merge_and_unload)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from autotrain_runner import gguf
from autotrain_runner.config.envfile import display_path
from autotrain_runner.config.records import Config
from autotrain_runner.errors import WorkError
from autotrain_runner.hub.files import base_name
from autotrain_runner.layout.records import RunRecord

DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


def merge(
    config: Config, run_dir: Path, output: Path, record: RunRecord, dtype: str | None, echo: Callable[[str], None]
) -> Path:
    """The adapter merged into the base weights with PEFT's merge_and_unload, in `dtype` (default:
    the base model's own), saved once as `<run>/merged-<dtype>/` and reused by later pushes."""
    spec = record.model["spec"]
    if record.model["kind"] in ("gguf", "bundled") and config.model.spec == spec:
        gguf.ensure_converted(config.model, log=echo)
    base = record.model["path"]
    trust = bool(config.get("TRUST_REMOTE_CODE"))
    try:
        from transformers import AutoConfig

        if dtype is None:
            own = str(AutoConfig.from_pretrained(base, trust_remote_code=trust).dtype or "float32")
            dtype = next((k for k, v in DTYPES.items() if own.endswith(v)), "fp32")
        target = run_dir / f"merged-{dtype}"
        if (target / "config.json").is_file():
            echo(f"merged weights: {display_path(target)} (made by an earlier push)")
            return target
        echo(f"merging the adapter into {spec} in {dtype} on the CPU (PEFT merge_and_unload)")
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        # a folder of weights: written whole in a temporary folder, then renamed, so that a merge
        # that fails or is interrupted leaves no folder a later push would reuse
        tmp = Path(tempfile.mkdtemp(prefix=f".merged-{dtype}.", dir=run_dir))
        try:
            model = AutoModelForCausalLM.from_pretrained(
                base, dtype=getattr(torch, DTYPES[dtype]), low_cpu_mem_usage=True, trust_remote_code=trust
            )
            # the run's tokenizer: chatml/zephyr training adds tokens, and the adapter then holds the
            # resized embeddings
            tokenizer = AutoTokenizer.from_pretrained(output)
            if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
                model.resize_token_embeddings(len(tokenizer))
            model = PeftModel.from_pretrained(model, str(output)).merge_and_unload()
            model.config._name_or_path = base_name(record.model)  # not this machine's path
            model.save_pretrained(tmp, safe_serialization=True, max_shard_size="5GB")
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise WorkError(f"could not merge run {run_dir.name} into {spec}: {type(exc).__name__}: {exc}") from exc
    echo(f"merged weights: {display_path(target)}")
    return target

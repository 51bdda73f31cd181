#!/usr/bin/env bash
# The GPU check: on one CUDA card with no network, within about 8 minutes, one JSON of figures:
#   - `atr bench train` on a model of Llama 3.1 8B's shape with random weights: atr train against plain
#     TRL for a bf16 LoRA, an int4 QLoRA (bitsandbytes' CUDA kernels), Liger kernels and an fp16 LoRA:
#     tokens/s, s/step, peak memory (max_memory_allocated) beside the preflight's estimate, last loss;
#   - HF batched generation on the same model (the evaluation path), tokens/s;
#   - the host CPU, where it multiplies bf16 natively: a bf16 against an fp32 base (SmolLM2-135M's shape).
# scripts/gpu-check.sh [OUT.json]   (default gpu-check.json; wheels/gpu/ from scripts/gpu-wheels.sh)
# GPU_CHECK_SHAPE=tiny GPU_CHECK_CONFIGS=fp32 runs the same steps on a CPU in a minute: the dry run the tests do.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=$(realpath -m "${1:-gpu-check.json}")
py=${PYTHON:-python3}
started=$SECONDS
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
wheels=${GPU_CHECK_WHEELS:-wheels/gpu}  # none: use what the Python has (the dry run)
if [[ $wheels != none ]] && compgen -G "$wheels/*.whl" >/dev/null; then
  "$py" -m pip install --quiet --no-index --no-deps --no-compile --target "$site" "$wheels"/*.whl
fi
export PYTHONPATH="$site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
shape=${GPU_CHECK_SHAPE:-llama-3.1-8b}
# each part is written as it goes, beside OUT: a check cut short keeps what it measured
parts=${out%.json}-parts
rm -rf "$parts" && mkdir -p "$parts"
# rows not started by then are skipped, leaving time for generation and the CPU rows
"$py" -m autotrain_runner bench train --shape "$shape" --configs "${GPU_CHECK_CONFIGS:-bf16,int4,fp16,liger,fp32}" \
  --steps "${GPU_CHECK_STEPS:-10}" --batch-size 2 --block-size "${GPU_CHECK_BLOCK:-1024}" \
  --deadline "${GPU_CHECK_DEADLINE:-270}" --generate "${GPU_CHECK_PROMPTS:-64}" --out "$parts/train.json" >/dev/null \
  || echo "gpu-check: bench train failed" >&2
cpu_shape=${GPU_CHECK_CPU_SHAPE:-smollm2-135m}
if [[ $cpu_shape != none ]] && "$py" -c 'import sys; from autotrain_runner import hardware; sys.exit(not hardware.cpu_bf16())'; then
  CUDA_VISIBLE_DEVICES="" "$py" -m autotrain_runner bench train --shape "$cpu_shape" --configs fp32,bf16 \
    --tools atr --steps 4 --batch-size 2 --block-size 256 --out "$parts/cpu.json" >/dev/null \
    || echo "gpu-check: the CPU bf16 run failed" >&2
fi
"$py" - "$parts" "$out" "$((SECONDS - started))" <<'PY'
import json, sys
from datetime import datetime, timezone
from pathlib import Path
parts, out, seconds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
read = lambda name: json.loads((parts / name).read_text()) if (parts / name).is_file() else None
figures = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seconds": seconds,
           "train": read("train.json"), "cpu_bf16": read("cpu.json")}
out.write_text(json.dumps(figures, indent=1))
print(f"gpu-check: wrote {out} in {seconds} s")
PY

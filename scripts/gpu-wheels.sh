#!/usr/bin/env bash
# Prepare wheels/gpu/: what scripts/gpu-check.sh installs on a CUDA machine that has no network.
# Run it where PyPI is reachable. The target has Python 3.12 with torch (CUDA), transformers, peft,
# accelerate, huggingface_hub, pandas, pyarrow, sacrebleu, rich and jinja2 (docs/gpu.md); these are
# the packages it lacks, at the lock's versions, built for CPython 3.12 on Linux x86_64. Together
# with the repository they stay under 64 MiB (bitsandbytes alone is 43 MB).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dest=wheels/gpu
py=${PYTHON:-python3}
# not in the lock: Liger's kernels are CUDA-only (LIGER_KERNEL=true); pure Python over Triton
liger=liger-kernel==0.8.5
names=(trl datasets autotrain-advanced bitsandbytes pydantic pydantic_core annotated-types typing-inspection
  loguru python-dotenv dill multiprocess)
pins=()
for name in "${names[@]}"; do
  pin=$(grep -iE "^${name//[-_]/[-_]}==" requirements/lock.txt) || { echo "gpu-wheels: $name is not in requirements/lock.txt" >&2; exit 1; }
  pins+=("$pin")
done
rm -rf "$dest" && mkdir -p "$dest"
"$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -d "$dest" "${pins[@]}" "$liger"
echo "gpu-wheels: $(ls "$dest" | wc -l) wheels, $(du -sh "$dest" | cut -f1) in $dest"

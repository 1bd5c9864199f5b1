#!/usr/bin/env bash
# Every CUDA figure in one run: see scripts/gpu_check.py (the steps, the options, what it writes).
#
#   bash scripts/gpu_check.sh                       # installs, then all steps; results in gpu_check_results/
#   bash scripts/gpu_check.sh --out "$OUT"          # e.g. on a lent GPU machine, results where they come back
#   bash scripts/gpu_check.sh --dry-run --no-install --out /tmp/gpu_dry   # the same steps on the CPU, < 2 min
#
# The Python is $PYTHON, else python3 (an activated venv's, where one is active).
set -u
py="${PYTHON:-python3}"  # on the lent GPU machines, python3 is the one with torch
export PYTHONUNBUFFERED=1
exec "$py" "$(dirname "$0")/gpu_check.py" "$@"

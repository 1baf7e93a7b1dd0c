#!/usr/bin/env bash
# Install hierarchy with its development extras and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
# torch first, pinned: the CPU build; a looser requirement would pull CUDA packages.
"$PYTHON" -m pip install --quiet "torch==2.13.0"
"$PYTHON" -m pip install --quiet -e ".[dev]"
"$PYTHON" -m pytest -q -p no:cacheprovider "$@"

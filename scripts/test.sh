#!/usr/bin/env bash
# Install hierarchy with its development extras and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" -m pip install --quiet -e ".[dev]"
"$PYTHON" -m pytest -q -p no:cacheprovider "$@"

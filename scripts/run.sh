#!/usr/bin/env bash
# Install hierarchy and run its main job on the embedded default: every baseline scheduler
# evaluated on the `small` scenario, three episodes each (results in results/small/).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" -m pip install --quiet -e ".[sim]"
exec "$PYTHON" -m hierarchy evaluate --scenario small --policies all --episodes 3 --out results/small "$@"

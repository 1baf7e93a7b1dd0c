#!/usr/bin/env bash
# Install hierarchy and run its main job on the embedded default: the shipped learned scheduler
# and every baseline evaluated on the `default` scenario, three episodes each (results/default/).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" -m pip install --quiet -e ".[sim]"
exec "$PYTHON" -m hierarchy evaluate --scenario default --policies learned,all --episodes 3 --out results/default "$@"

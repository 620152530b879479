#!/usr/bin/env bash
# The main job on the embedded default: set up (once), train or reuse the digits CNN, run discovery.
# Re-running continues an interrupted run or, if it finished, prints its summary again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/fadejax discover --config configs/digits.yaml --out runs/digits --resume "$@"

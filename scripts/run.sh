#!/usr/bin/env bash
# The main job on the embedded default: set up (once), train or reuse the digits CNN, run discovery,
# then write the interactive report (runs/digits/report/report.html).
# Re-running continues an interrupted run or, if it finished, reprints its summary and rewrites the report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/fadejax discover --config configs/digits.yaml --out runs/digits --resume "$@"
exec .venv/bin/fadejax summarize runs/digits

#!/usr/bin/env bash
# The main job on the embedded default, all the way through the paper's pipeline:
#   set up (once) -> train or reuse the digits CNN -> discover (runs/digits)
#   -> summarize (runs/digits/report/report.html)
#   -> restructure on the top failure mode: fine-tune, rediscover, shift report (runs/digits-restructured/)
# Re-running continues an interrupted run and reuses every finished stage.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/fadejax discover --config configs/digits.yaml --out runs/digits --resume "$@"
.venv/bin/fadejax summarize runs/digits
exec .venv/bin/fadejax restructure runs/digits --top 1 --out runs/digits-restructured

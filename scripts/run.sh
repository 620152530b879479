#!/usr/bin/env bash
# The main job on the embedded default, all the way through the paper's pipeline:
#   set up (once) -> train or reuse the digits CNN -> discover (runs/digits)
#   -> summarize (runs/digits/report/report.html)
#   -> fade: rounds of fine-tune on the worst modes + rediscovery, until the target, the
#      clean-accuracy guard or the round limit stops it (runs/digits-fade/fade_report.md)
# Re-running continues an interrupted run and reuses every finished stage.
# Extra arguments (--set FIELD=VALUE, --quiet) go to discover and fade alike.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/fadejax discover --config configs/digits.yaml --out runs/digits --resume "$@"
.venv/bin/fadejax summarize runs/digits
exec .venv/bin/fadejax fade --config configs/digits.yaml --from runs/digits --out runs/digits-fade --rounds 2 "$@"

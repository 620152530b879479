#!/usr/bin/env bash
# The test suite: set up (once), then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The report test opens the HTML report in a real headless browser: Debian's chromium.
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (Debian package, once) for the report's browser test ..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
# The architecture's contracts (.importlinter): layers, no import circles, bridges apart from audits.
.venv/bin/lint-imports --no-cache >/dev/null || { .venv/bin/lint-imports --no-cache; exit 1; }
# The documentation site, warnings as errors: a broken link or a stale API name fails here.
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
# Two worker processes, one test file each at a time (module fixtures are built once), sharing
# one JAX compilation cache (tests/conftest.py): compiling is most of the suite's time and is
# single-threaded, so two workers use both cores. `-n 0` (as an argument) runs in one process.
# Each worker's torch (OpenMP) threads are its share of the cores (tests/conftest.py).
# --no-loadscope-reorder keeps the files in tests/conftest.py's slowest-first order.
exec .venv/bin/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder "$@"

#!/usr/bin/env bash
# Create .venv and install fadejax with its pinned dependencies, once.
# A second run finds the stamp for the current pyproject.toml + constraints.txt and installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${FADEJAX_VENV:-.venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
stamp="$VENV/.fadejax-installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi
echo "setting up $VENV (first run only) ..."
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# torch first and exactly 2.13.0: on a CPU-only machine this takes the CPU wheel, not a CUDA build.
# A torch already in the venv (e.g. a CUDA build a GPU user installed) is left as it is.
"$VENV/bin/python" -c "import torch" 2>/dev/null || "$VENV/bin/pip" install --disable-pip-version-check -q "torch==2.13.0"
"$VENV/bin/pip" install --disable-pip-version-check -q -c constraints.txt -e ".[test,text,diffusion,rl]"
# The reference common corruptions the tests check fadejax's against (and the frost images the
# frost corruption reads): without its dependencies, which ask for the GUI build of OpenCV
# (the test extra has the headless one).
"$VENV/bin/pip" install --disable-pip-version-check -q -c constraints.txt --no-deps imagecorruptions
echo "$want" > "$stamp"

#!/usr/bin/env bash
# Install facecast and everything it needs into ./.venv (Python 3.11).
#   scripts/install.sh          runtime only (CLI, server)
#   scripts/install.sh --test   plus what the tests need (CPU torch, Chromium for browser tests)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "facecast needs Python 3.11"'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)

"${PIP[@]}" --upgrade pip
"${PIP[@]}" -r requirements/base.txt
# mediapipe 0.10.21 is the last release whose wheel ships its models. Its metadata
# pulls jax and the GUI OpenCV; its real needs are in requirements/base.txt.
"${PIP[@]}" --no-deps mediapipe==0.10.21
"${PIP[@]}" --no-deps -e .

if [ "${1:-}" = "--test" ]; then
  "${PIP[@]}" -r requirements/test.txt
  for extra in requirements/test-*.txt; do
    [ -f "$extra" ] && "${PIP[@]}" -r "$extra"
  done
  if [ -x scripts/install-browser.sh ]; then scripts/install-browser.sh; fi
fi
echo "facecast installed in .venv"

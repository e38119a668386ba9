#!/usr/bin/env bash
# Install facecast and everything it needs into ./.venv (Python 3.11).
#   scripts/install.sh          runtime only (CLI, server)
#   scripts/install.sh --test   plus what the tests need (CPU torch, Chromium for browser tests)
# With requirements/lock.txt (lock-test.txt for --test) present, exactly the locked versions are
# installed, every file checked against its hash (scripts/lock.sh writes them); without, the pinned
# requirements/*.txt are resolved.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "facecast needs Python 3.11"'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)

"${PIP[@]}" --upgrade pip
LOCK=requirements/lock.txt
if [ "${1:-}" = "--test" ]; then LOCK=requirements/lock-test.txt; fi
MEDIAPIPE=$(sed -n 's/^MEDIAPIPE = "\(.*\)"$/\1/p' src/facecast/deps.py)
if [ -f "$LOCK" ]; then
  # A lock is complete (resolved with every dependency), so --no-deps; it holds mediapipe too.
  "${PIP[@]}" --require-hashes --no-deps -r "$LOCK"
else
  "${PIP[@]}" -r requirements/base.txt -r requirements/server.txt
  # mediapipe 0.10.21 is the last release whose wheel ships its models. Its metadata
  # pulls jax and the GUI OpenCV; its real needs are in requirements/base.txt.
  "${PIP[@]}" --no-deps "$MEDIAPIPE"
  if [ "${1:-}" = "--test" ]; then
    "${PIP[@]}" -r requirements/test.txt
    for extra in requirements/test-*.txt; do
      [ -f "$extra" ] && "${PIP[@]}" -r "$extra"
    done
  fi
fi
"${PIP[@]}" --no-deps -e .

if [ "${1:-}" = "--test" ] && [ -x scripts/install-browser.sh ]; then scripts/install-browser.sh; fi
echo "facecast installed in .venv"

#!/usr/bin/env bash
# Regenerate the hashed lock files that scripts/install.sh installs with --require-hashes:
#   requirements/lock.txt        scripts/install.sh          (runtime: base + server, and mediapipe)
#   requirements/lock-test.txt   scripts/install.sh --test   (plus test, test-gpu, test-web, test-ray)
# Needs pip-tools (pip-compile) in $PIP_TOOLS_VENV (default /tmp/pip-tools, made when missing) and
# the pip configuration this machine has: torch==2.13.0 resolves to the local CPU wheel (find-links).
# mediapipe cannot be resolved (its metadata pulls jax and the GUI OpenCV): its pinned wheel is
# hashed on its own and appended; install.sh installs the lock with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${PIP_TOOLS_VENV:-/tmp/pip-tools}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x "$VENV/bin/pip-compile" ] || { "$PYTHON" -m venv "$VENV" && "$VENV/bin/pip" install -q pip-tools; }
MEDIAPIPE=$(sed -n 's/^MEDIAPIPE = "\(.*\)"$/\1/p' src/facecast/deps.py)

compile() {  # compile OUTPUT INPUT...
  local out=$1; shift
  CUSTOM_COMPILE_COMMAND="scripts/lock.sh" "$VENV/bin/pip-compile" -q --generate-hashes --allow-unsafe --no-emit-index-url --no-emit-find-links \
    --no-strip-extras --resolver=backtracking -o "$out" "$@"
}

wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
"$VENV/bin/pip" download -q --no-deps --only-binary=:all: -d "$wheels" "$MEDIAPIPE"
append_mediapipe() {
  {
    echo "# installed with --no-deps (its metadata pulls jax and the GUI OpenCV; its needs are above)"
    echo "$MEDIAPIPE \\"
    for whl in "$wheels"/*.whl; do
      echo "    --hash=sha256:$(sha256sum "$whl" | cut -d' ' -f1)"
    done
  } >> "$1"
}

compile requirements/lock.txt requirements/base.txt requirements/server.txt
append_mediapipe requirements/lock.txt
compile requirements/lock-test.txt requirements/base.txt requirements/server.txt requirements/test.txt \
  requirements/test-gpu.txt requirements/test-web.txt requirements/test-ray.txt requirements/test-agents.txt
append_mediapipe requirements/lock-test.txt
echo "wrote requirements/lock.txt and requirements/lock-test.txt"

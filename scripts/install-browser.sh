#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (tests/test_web*.py). Idempotent: does nothing
# when /usr/bin/chromium exists. Playwright drives this system browser; `playwright install`
# (which downloads its own browser builds) is never used.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
/usr/bin/chromium --version

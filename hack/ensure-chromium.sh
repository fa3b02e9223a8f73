#!/usr/bin/env bash
# The board's browser tests drive headless Chromium (tests/e2e/cdp.py). CI runs on a fresh
# machine, so nothing may rely on a browser installed by hand: when chromium is missing and we
# are root, install the Debian package (never a downloaded browser); otherwise say what to do.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "chromium is missing: installing the Debian package (apt-get install chromium)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends chromium >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null; }
    command -v chromium >/dev/null
    exit 0
fi
echo "chromium is missing and this is not root with apt-get: install it (sudo apt-get install chromium)," \
    "or the browser tests of kubectl oncall board fail under CI and skip elsewhere" >&2
exit 1

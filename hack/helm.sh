#!/usr/bin/env bash
# Builds helm at a pinned version from the Go module proxy into a cache folder, like
# hack/k8s-control-plane.sh does for the control plane, and prints its path. The chart tests
# (charts/ramp) run it for `helm lint` and `helm template`; the Kubernetes e2e for the install.
#
#   hack/helm.sh          build if missing, then print the binary's path
#   hack/helm.sh --print  only print the path (builds nothing)
#
# Cold build: about 3 minutes on 2 cores. The project's go.mod is left alone.
set -euo pipefail

HELM_VERSION=v4.3.2
GO=${GO:-go}
CACHE_ROOT="${RAMP_CACHE:-$HOME/.cache/ramp}"
DEST="$CACHE_ROOT/helm-$HELM_VERSION"
BIN="$DEST/helm"

if [[ "${1:-}" == "--print" || -x "$BIN" ]]; then echo "$BIN"; exit 0; fi

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/helm-$HELM_VERSION.lock"
flock 9
if [[ -x "$BIN" ]]; then echo "$BIN"; exit 0; fi
echo "helm: building helm $HELM_VERSION into $DEST" >&2
mkdir -p "$DEST"
# GOFLAGS=-mod=mod: outside any module, `go install pkg@version` builds the version's own go.mod.
(cd "${TMPDIR:-/tmp}" && GOBIN="$DEST" GOFLAGS= $GO install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION")
"$BIN" version --short >&2
echo "$BIN"

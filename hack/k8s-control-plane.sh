#!/usr/bin/env bash
# Builds the Kubernetes control plane the Kubernetes-mode tests run on, from the Go module proxy:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok, into a cache
# folder keyed by the pinned versions. test/k8senv runs them (with its own kwok stages).
#
#   hack/k8s-control-plane.sh          build if missing, then print the bin folder
#   hack/k8s-control-plane.sh --print  only print the bin folder (builds nothing)
#
# A second run with the stamp present returns at once. The build happens in a throwaway module
# in a temp dir (Kubernetes' staging modules pinned there with `replace`), never in the
# project's go.mod; the Go build cache and module cache are the user's usual ones.
# Cold build: 10 to 40 minutes on 2 cores (39 minutes on a busy one), about 470 MB of binaries.
set -euo pipefail

K8S_VERSION=v1.37.2       # k8s.io/kubernetes
STAGING_VERSION=v0.37.2   # k8s.io/client-go, k8s.io/api, ... matching K8S_VERSION
ETCD_VERSION=v3.7.0       # go.etcd.io/etcd/server/v3, the one K8S_VERSION's go.mod requires
KWOK_VERSION=v0.8.0       # sigs.k8s.io/kwok
GO=${GO:-go}

KEY="k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}-kwok-${KWOK_VERSION}"
CACHE_ROOT="${RAMP_CACHE:-$HOME/.cache/ramp}"
DEST="$CACHE_ROOT/$KEY"
BIN="$DEST/bin"
STAMP="$DEST/stamp"
STAMP_TEXT="$KEY recipe=2"
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

up_to_date() {
	[[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_TEXT" ]] || return 1
	for b in "${BINARIES[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
}

if [[ "${1:-}" == "--print" ]]; then echo "$BIN"; exit 0; fi
if up_to_date; then echo "$BIN"; exit 0; fi

mkdir -p "$CACHE_ROOT"
# One build at a time per cache folder; a second caller waits and then finds the stamp.
exec 9>"$CACHE_ROOT/$KEY.lock"
flock 9
if up_to_date; then echo "$BIN"; exit 0; fi

log() { echo "k8s-control-plane: $*" >&2; }
start=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/ramp-k8s-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
out="$work/bin"
mkdir -p "$out"
log "building $KEY into $BIN (10 to 40 minutes on 2 cores, depending on load)"

# The throwaway module. Kubernetes' go.mod replaces its staging modules with ./staging/...
# paths, which only work inside its repo; pin each to the published staging version instead.
cd "$work"
cat >go.mod <<GOMOD
module ramp.dev/k8s-control-plane-build

go 1.26.0
GOMOD
k8smod=$($GO mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
[[ -f "$k8smod" ]] || { log "cannot find go.mod of k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
replaces=$(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$k8smod")
[[ -n "$replaces" ]] || { log "no staging replaces found in $k8smod"; exit 1; }
for m in $replaces; do echo "replace $m => $m $STAGING_VERSION" >>go.mod; done
echo 'package tools' >tools.go

export GOFLAGS="${GOFLAGS:-} -mod=mod"
log "resolving modules (go get)"
$GO get "k8s.io/kubernetes@$K8S_VERSION" \
	"k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" \
	"k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION" \
	"k8s.io/kubernetes/cmd/kube-scheduler@$K8S_VERSION" \
	"k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION" \
	"go.etcd.io/etcd/server/v3@$ETCD_VERSION" 2>"$work/get.log" || { cat "$work/get.log" >&2; exit 1; }
for pin in "k8s.io/kubernetes $K8S_VERSION" "go.etcd.io/etcd/server/v3 $ETCD_VERSION"; do
	got=$($GO list -m ${pin% *})
	[[ "$got" == "$pin" ]] || { log "version drift: want $pin, got $got"; exit 1; }
done

ver="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
ver="$ver -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
major=${K8S_VERSION#v}; minor=${major#*.}; major=${major%%.*}; minor=${minor%%.*}
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ver="$ver -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done
build() { # name package
	local t=$SECONDS
	$GO build -trimpath -ldflags "-s -w $ver" -o "$out/$1" "$2"
	log "built $1 in $((SECONDS - t))s"
}
build etcd go.etcd.io/etcd/server/v3
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kubectl k8s.io/kubernetes/cmd/kubectl

# kwok has its own go.mod (no replaces), so go install builds it as released.
t=$SECONDS
GOFLAGS= GOBIN="$out" $GO install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
log "built kwok in $((SECONDS - t))s"

# Publish atomically: a half-built folder never carries a stamp.
rm -rf "$DEST"
mkdir -p "$DEST"
mv "$out" "$BIN"
echo "$STAMP_TEXT" >"$STAMP"
log "done in $((SECONDS - start))s: $(du -sh "$BIN" | cut -f1) in $BIN"
echo "$BIN"

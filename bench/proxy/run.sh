#!/bin/sh
# Side-by-side proxy benchmark: installs nginx, haproxy and wrk from Debian (once), then runs
# bench/proxy. Extra arguments go to it (e.g. -rounds 5 -cpuprofile /tmp/ramp.pprof).
set -eu
cd "$(dirname "$0")/../.."
need=""
for c in nginx haproxy wrk taskset curl; do command -v "$c" >/dev/null 2>&1 || need="$need $c"; done
if [ -n "$need" ]; then
	echo "installing:$need" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light haproxy wrk util-linux curl >/dev/null
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/bench-proxy" ./bench/proxy
"$bin/bench-proxy" "$@"

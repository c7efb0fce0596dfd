#!/usr/bin/env bash
# Installs Debian's prometheus package when no `prometheus` binary is on PATH, so that the
# prometheus analysis provider is tested against a real Prometheus (make test calls this).
# Quick and quiet when prometheus is already there; a no-op with RAMP_SKIP_PROMETHEUS=1.
set -euo pipefail
if [[ "${RAMP_SKIP_PROMETHEUS:-}" == 1 ]]; then
	exit 0
fi
if command -v prometheus >/dev/null 2>&1; then
	exit 0
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
	sudo=(sudo)
fi
echo "installing Debian's prometheus package for the analysis provider tests" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
# --no-install-recommends: the server only, no node exporter or web assets.
"${sudo[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package starts a system service on :9090 where systemd runs; the tests start their own.
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
	"${sudo[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v prometheus >/dev/null

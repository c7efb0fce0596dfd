#!/usr/bin/env bash
# Installs Debian's chromium package when no chromium (or chromium-browser) is on PATH, so that
# the dashboard's browser test (test/e2e/dashboard_test.go) drives a real headless Chromium
# (make test calls this). Quick and quiet when it is already there; a no-op with
# RAMP_SKIP_CHROMIUM=1.
set -euo pipefail
if [[ "${RAMP_SKIP_CHROMIUM:-}" == 1 ]]; then
	exit 0
fi
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
	exit 0
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
	sudo=(sudo)
fi
echo "installing Debian's chromium package for the dashboard's browser test" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
# --no-install-recommends: the browser only, no fonts or extras beyond what it needs.
"${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null

#!/usr/bin/env bash
# Installs what the MSL check (loom msl-check, package metal/mslcheck and
# the metal tests) needs on Linux: g++, which compiles Metal kernels as C++
# through metal/mslcheck/shim. Does nothing when g++ is already there.
set -euo pipefail
if command -v g++ >/dev/null 2>&1; then
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-msl-check: g++ is missing and apt-get is not available; install g++ by hand" >&2
	exit 1
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends g++

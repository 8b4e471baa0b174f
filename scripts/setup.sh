#!/bin/sh
# Installs the Debian packages canaryd needs (when missing) and builds it.
#   scripts/setup.sh            release build in build/
#   scripts/setup.sh --asan     also a sanitizer build in build-asan/
set -eu

cd "$(dirname "$0")/.."

PACKAGES="build-essential cmake pkg-config libwebsockets-dev libwebsockets-evlib-ev libev-dev libwebsockets-evlib-uv libuv1-dev liblmdb-dev
libmsgpack-dev libjansson-dev libidn2-dev libloc-dev libloc-database
libinih-dev libcurl4-openssl-dev libssl-dev openssl python3
python3-websockets python3-yaml python3-jsonschema lmdb-utils curl clang libclang-rt-14-dev
python3-msgpack libmosquitto-dev libhiredis-dev"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
# The web console is built with npm. Debian 12's nodejs (18) builds it and
# runs its browser tests: playwright-core is pinned to 1.61, the last
# release that supports Node.js 18.
if ! command -v npm >/dev/null 2>&1; then
	missing="$missing nodejs npm"
fi
if [ -n "$missing" ]; then
	echo "setup: installing Debian packages:$missing"
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: installing packages needs root; run this script as root or with sudo" >&2
		exit 1
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi

# The web console's npm packages (esbuild, uPlot, playwright-core), pinned
# in console/package-lock.json; the build bundles them into console/dist.
# No install scripts run: esbuild finds its binary in its platform package.
if command -v npm >/dev/null 2>&1; then
	if [ ! console/node_modules/.package-lock.json -nt console/package-lock.json ]; then
		echo "setup: installing the web console's npm packages"
		(cd console && npm ci --ignore-scripts --no-audit --no-fund)
	fi
else
	echo "setup: npm not found: the web console is not built" >&2
fi

jobs=$(nproc 2>/dev/null || echo 2)

echo "setup: building in build/"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"

if [ "${1:-}" = "--asan" ]; then
	echo "setup: building with AddressSanitizer and UBSan in build-asan/"
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCANARY_SANITIZE=ON >/dev/null
	cmake --build build-asan -j "$jobs"
fi

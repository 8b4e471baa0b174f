#!/bin/sh
# Installs what is missing, builds with the sanitizers and runs every test:
# C unit tests and integration tests against real canaryd processes on
# loopback ports, all registered with ctest.
set -eu

cd "$(dirname "$0")/.."
scripts/setup.sh --asan

# The web console's browser tests drive Debian's chromium. canaryd needs no
# browser, so only the test path installs it.
if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
	if [ "$(id -u)" -eq 0 ]; then
		echo "test: installing Debian's chromium for the browser tests"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
	else
		echo "test: chromium is missing and installing it needs root; the browser tests will fail" >&2
	fi
fi

# LeakSanitizer reports leaks at exit; UBSan stops at the first fault.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

cd build-asan
ctest --output-on-failure --timeout 600 "$@"
cd ..

# A short libFuzzer run of each fuzz target over its seed corpus, in a
# clang build of its own (about two minutes); scripts/fuzz.sh runs longer.
CC=clang cmake -S . -B build-fuzz -DCANARY_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j "$(nproc 2>/dev/null || echo 2)" --target fuzz_targets
ctest --test-dir build-fuzz -L fuzz -j 2 --output-on-failure

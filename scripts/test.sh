#!/bin/sh
# Installs what is missing, builds with the sanitizers and runs every test:
# C unit tests and integration tests against real canaryd processes on
# loopback ports, all registered with ctest.
set -eu

cd "$(dirname "$0")/.."
scripts/setup.sh --asan

# LeakSanitizer reports leaks at exit; UBSan stops at the first fault.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

cd build-asan
ctest --output-on-failure --timeout 600 "$@"

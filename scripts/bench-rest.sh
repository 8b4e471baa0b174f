#!/bin/sh
# REST read benchmark: builds canaryd in Release mode (no sanitizers) and
# runs scripts/bench_rest.py, which prints p50 and p99 of GET
# /v1/canary/stats and of filtered signal pages at 10,000 and 1,000,000
# stored signals. Loading a million signals takes minutes; this is not
# part of the test suite.
#
# usage: scripts/bench-rest.sh [--sizes 10000,1000000] [--requests 1000]
# BENCH_BUILD_DIR sets the build directory (default build-bench).
set -eu

cd "$(dirname "$0")/.."
build="${BENCH_BUILD_DIR:-build-bench}"

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCANARY_SANITIZE=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target canaryd >/dev/null
exec /usr/bin/python3 scripts/bench_rest.py --bin-dir "$build" "$@"

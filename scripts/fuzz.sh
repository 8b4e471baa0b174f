#!/bin/sh
# Builds the libFuzzer targets with clang and runs each one for a while.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     default 600
# Environment: FUZZ_JOBS targets at a time (default 2), FUZZ_BUILD_DIR
# (default build-fuzz), FUZZ_TARGETS (default: every target).
# Each target starts from its seed corpus in tests/fuzz/corpus/<name>/ and
# keeps what it finds in $FUZZ_BUILD_DIR/fuzz-corpus/<name>/; crashes,
# leaks and timeouts are written to $FUZZ_BUILD_DIR/fuzz-artifacts/. Copy
# a fixed finding into the seed corpus as regression-<what>.
set -eu

cd "$(dirname "$0")/.."
seconds=${1:-600}
jobs=${FUZZ_JOBS:-2}
build=${FUZZ_BUILD_DIR:-build-fuzz}
targets=${FUZZ_TARGETS:-"batch_json msgpack filter subscribe sensor_cowrie sensor_opencanary"}

CC=clang cmake -S . -B "$build" -DCANARY_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# A target that fails to build is skipped, never run from an older binary.
for t in $targets; do
	rm -f "$build/tests/fuzz/fuzz_$t"
	cmake --build "$build" -j "$jobs" --target "fuzz_$t" >/dev/null ||
		echo "fuzz: building fuzz_$t failed; it will be skipped" >&2
done

mkdir -p "$build/fuzz-corpus" "$build/fuzz-artifacts" "$build/fuzz-logs"
status=0
running=0
pids=""
for t in $targets; do
	bin="$build/tests/fuzz/fuzz_$t"
	if [ ! -x "$bin" ]; then
		echo "fuzz: $bin was not built; skipping $t" >&2
		continue
	fi
	mkdir -p "$build/fuzz-corpus/$t" "$build/fuzz-artifacts/$t"
	echo "fuzz: running $t for $seconds s (log: $build/fuzz-logs/$t.log)"
	ASAN_OPTIONS=detect_leaks=1 "$bin" -max_total_time="$seconds" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$build/fuzz-artifacts/$t/" \
		"$build/fuzz-corpus/$t" "tests/fuzz/corpus/$t" \
		>"$build/fuzz-logs/$t.log" 2>&1 &
	pids="$pids $!:$t"
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		for p in $pids; do
			wait "${p%%:*}" || { echo "fuzz: ${p#*:} found a fault; see $build/fuzz-logs/${p#*:}.log" >&2; status=1; }
		done
		pids=""
		running=0
	fi
done
for p in $pids; do
	wait "${p%%:*}" || { echo "fuzz: ${p#*:} found a fault; see $build/fuzz-logs/${p#*:}.log" >&2; status=1; }
done

printf '%-20s %12s %10s\n' target executions artifacts
for t in $targets; do
	log="$build/fuzz-logs/$t.log"
	[ -f "$log" ] || continue
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	found=$(ls "$build/fuzz-artifacts/$t" 2>/dev/null | wc -l)
	printf '%-20s %12s %10s\n' "$t" "${execs:-?}" "$found"
done
exit $status

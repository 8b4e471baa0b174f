#!/bin/sh
# Soak canaryd: ingest, resuming subscribers, slow clients, reconnects and
# restarts (SIGTERM and SIGKILL) for a set time, then a JSON report of RSS,
# file descriptors, lost and duplicated signals. Stops by itself.
#
#   scripts/soak.sh --duration SECONDS [--report FILE] [--seed N]
#
# Uses the binaries in build/ (scripts/setup.sh makes them), or those in
# CANARY_BIN_DIR. Exits 0 only when nothing acknowledged was lost, no
# subscriber saw a duplicate or a gap, and RSS and descriptors stayed flat.
set -eu

cd "$(dirname "$0")/.."

duration=""
prev=""
for arg in "$@"; do
	if [ "$prev" = "--duration" ]; then
		duration="$arg"
	fi
	prev="$arg"
done
case "$duration" in
'' | *[!0-9]*)
	echo "soak: --duration SECONDS is required (a whole number of seconds)" >&2
	exit 2
	;;
esac

export CANARY_BIN_DIR="${CANARY_BIN_DIR:-$(pwd)/build}"
if [ ! -x "$CANARY_BIN_DIR/server/canaryd" ]; then
	echo "soak: $CANARY_BIN_DIR/server/canaryd not found; run scripts/setup.sh first or set CANARY_BIN_DIR" >&2
	exit 2
fi

# The driver stops by itself after the duration and a drain; the timeout
# is a guard against a hang, not the normal end.
exec timeout --kill-after=30 $((duration + 900)) /usr/bin/python3 tests/soak/soak.py "$@"

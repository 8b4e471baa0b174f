#!/bin/sh
# Runs the benchmark scenarios against canaryd, mosquitto and Redis on
# loopback ports and prints each run's JSON line and the medians.
#
#   scripts/bench.sh [SCENARIO...]
#
# Scenarios: memory memory-connections fanout1k fanout10k latency1k
# latency10k ingest matching replay (default: all, memory first, while the
# store is empty). The latency scenarios also run bench_fanout_floor: the
# same fan-out over loopback with plain sends and no broker in between. Environment:
#   BUILD_DIR   release build to use or make (default build-bench in the
#               source tree, which scripts/bench-rest.sh uses too)
#   RUNS        runs per scenario and target (default 3)
#   DURATION    seconds per fan-out and latency run (default 5)
#   DURABILITY  canaryd's durability setting: full, nometasync or nosync
#               (default full)
#   PEERS       peers to compare with (default "mosquitto redis")
#   OUT         file that collects every JSON line (default $BUILD_DIR/bench.jsonl)
#
# The peers come from Debian's packages mosquitto and redis-server; a peer
# that is not installed is skipped. Every process listens on 127.0.0.1 only
# and is stopped when the script exits.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
DURABILITY=${DURABILITY:-full}
PEERS=${PEERS:-"mosquitto redis"}
OUT=${OUT:-$BUILD_DIR/bench.jsonl}
SCENARIOS=${*:-"memory memory-connections fanout1k fanout10k latency1k latency10k ingest matching replay"}

# The peer brokers are needed here only, so they are installed here and
# not by scripts/setup.sh.
for pkg in mosquitto redis-server; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
		if [ "$(id -u)" -eq 0 ]; then
			echo "bench.sh: installing Debian's $pkg for the peer comparison"
			apt-get update -qq
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg"
		fi
	fi
done

WORK=$(mktemp -d /tmp/canary-bench.XXXXXX)
PIDS=""

cleanup() {
	for pid in $PIDS; do
		kill "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# One process keeps tens of thousands of sockets open, so the soft limit
# goes up to the hard one (and the hard one too where that is permitted).
ulimit -Hn 120000 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
	for _ in $(seq 1 100); do
		if /usr/bin/python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "bench.sh: nothing listens on port $1 after 10 s" >&2
	return 1
}

# ---- build ----

if [ ! -x "$BUILD_DIR/clients/canary-bench" ] || [ "${REBUILD:-1}" = 1 ]; then
	cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DCANARY_SANITIZE=OFF >/dev/null
	cmake --build "$BUILD_DIR" -j2 --target canaryd canary-bench bench_matcher bench_fanout_floor >/dev/null
fi
BENCH=$BUILD_DIR/clients/canary-bench
CANARYD=$BUILD_DIR/server/canaryd
FLOOR=$BUILD_DIR/tests/bench_fanout_floor
# Arguments of bench_fanout_floor for the scenario being run; empty when
# the scenario has no floor run.
FLOOR_ARGS=""
: >"$OUT"

# ---- servers ----

CANARY_PORT=$(free_port)
mkdir -p "$WORK/var"
KEY=$("$CANARYD" keys create --data-dir "$WORK/var" --scopes ingest,subscribe,read 2>/dev/null)
"$CANARYD" --listen "127.0.0.1:$CANARY_PORT" --data-dir "$WORK/var" \
	--set log_level=warn --set durability="$DURABILITY" \
	--set max_connections=200000 --set max_connections_per_key=200000 \
	--set rate_limit_per_s=10000000 --set rate_limit_burst=10000000 \
	--set outbound_queue_bytes=8388608 >"$WORK/canaryd.log" 2>&1 &
CANARY_PID=$!
PIDS="$PIDS $CANARY_PID"
wait_port "$CANARY_PORT"

MQTT_PORT=""
REDIS_PORT=""
for peer in $PEERS; do
	case $peer in
	mosquitto)
		if command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then
			MQTT_PORT=$(free_port)
			printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n' \
				"$MQTT_PORT" >"$WORK/mosquitto.conf"
			/usr/sbin/mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
			PIDS="$PIDS $!"
			MQTT_PID=$!
			wait_port "$MQTT_PORT"
		else
			echo "bench.sh: mosquitto is not installed (apt-get install mosquitto); skipping it" >&2
		fi
		;;
	redis)
		if command -v redis-server >/dev/null; then
			REDIS_PORT=$(free_port)
			# Subscribers connect from several 127.0.0.X addresses,
			# which protected mode would reject; the server still
			# listens on 127.0.0.1 only.
			redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode no \
				--save '' --appendonly no --maxclients 100000 --daemonize no \
				>"$WORK/redis.log" 2>&1 &
			PIDS="$PIDS $!"
			REDIS_PID=$!
			wait_port "$REDIS_PORT"
		else
			echo "bench.sh: redis-server is not installed (apt-get install redis-server); skipping it" >&2
		fi
		;;
	esac
done

# ---- running ----

# run LABEL TARGET ARGS...: one run, its JSON line tagged with the label.
run() {
	label=$1
	target=$2
	shift 2
	case $target in
	canaryd) line=$("$BENCH" --url "ws://127.0.0.1:$CANARY_PORT" --key "$KEY" "$@" || true) ;;
	canaryd-msgpack) line=$("$BENCH" --url "ws://127.0.0.1:$CANARY_PORT" --key "$KEY" --format msgpack "$@" || true) ;;
	mosquitto) line=$("$BENCH" --peer mosquitto --peer-url "mqtt://127.0.0.1:$MQTT_PORT" "$@" || true) ;;
	redis) line=$("$BENCH" --peer redis --peer-url "redis://127.0.0.1:$REDIS_PORT" "$@" || true) ;;
	# shellcheck disable=SC2086 # FLOOR_ARGS is a list of arguments
	loopback-floor) line=$("$FLOOR" $FLOOR_ARGS --duration "$DURATION" || true) ;;
	esac
	line=${line:-'{"error":"no output"}'}
	echo "{\"scenario\":\"$label\",\"load\":\"$(cut -d' ' -f1 /proc/loadavg)\",\"result\":$line}" | tee -a "$OUT"
}

targets() {
	echo canaryd canaryd-msgpack
	[ -n "$MQTT_PORT" ] && echo mosquitto
	[ -n "$REDIS_PORT" ] && echo redis
	[ -n "$FLOOR_ARGS" ] && echo loopback-floor
	true
}

# Runs a scenario RUNS times, the targets taking turns within each round
# so that every comparison is made side by side under the same load.
rounds() {
	label=$1
	shift
	for i in $(seq 1 "$RUNS"); do
		for t in $(targets); do
			run "$label" "$t" "$@"
		done
	done
}

for s in $SCENARIOS; do
	case $s in
	fanout1k) rounds fanout1k --subscribers 1000 --match-ratio 0.1 --rate 0 --duration "$DURATION" ;;
	fanout10k) rounds fanout10k --subscribers 10000 --match-ratio 0.01 --rate 0 --duration "$DURATION" ;;
	latency1k)
		FLOOR_ARGS="--sockets 1000 --fanout 100 --rate 500"
		rounds latency1k --subscribers 1000 --match-ratio 0.1 --rate 500 --duration "$DURATION"
		FLOOR_ARGS=""
		;;
	latency10k)
		# The floor opens both ends of every socket in one process
		# before it forks, so it needs two descriptors per socket.
		[ "$(ulimit -n)" -gt 20200 ] && FLOOR_ARGS="--sockets 10000 --fanout 100 --rate 300"
		rounds latency10k --subscribers 10000 --match-ratio 0.01 --rate 300 --duration "$DURATION"
		FLOOR_ARGS=""
		;;
	ingest)
		for i in $(seq 1 "$RUNS"); do
			# One subscriber of 100 domains: almost nothing to fan out.
			run ingest canaryd --subscribers 1 --match-ratio 0.01 --rate 0 \
				--batch 2000 --window 1000000 --duration "$DURATION"
		done
		;;
	matching)
		for i in $(seq 1 "$RUNS"); do
			echo "{\"scenario\":\"matching\",\"load\":\"$(cut -d' ' -f1 /proc/loadavg)\",\"result\":$("$BUILD_DIR/matcher/bench_matcher")}" | tee -a "$OUT"
		done
		;;
	memory)
		# 50,000 subscriptions with filters, 4 per connection: one
		# process may hold only as many sockets as the open file limit
		# (ulimit -Hn) allows, for canaryd and canary-bench alike.
		for i in $(seq 1 "$RUNS"); do
			run memory canaryd --subscribers 12500 --subscriptions-per-connection 4 \
				--match-ratio 0.0001 --rate 10 --duration 2 --rss-pid "$CANARY_PID"
		done
		;;
	memory-connections)
		# As many idle subscriber connections (one filter each) as the
		# open file limit lets one process hold, from which the
		# benchmark page extrapolates the resident size per connection.
		conns=$(( $(ulimit -n) - 1000 ))
		[ "$conns" -gt 50000 ] && conns=50000
		for i in $(seq 1 "$RUNS"); do
			run memory-connections canaryd --subscribers "$conns" \
				--match-ratio 0.0001 --rate 10 --duration 2 --rss-pid "$CANARY_PID"
		done
		;;
	replay)
		for i in $(seq 1 "$RUNS"); do
			run replay canaryd --replay 1000000 --batch 2000
		done
		;;
	*)
		echo "bench.sh: unknown scenario $s" >&2
		exit 2
		;;
	esac
done

# ---- medians ----

/usr/bin/python3 - "$OUT" <<'EOF'
import json, statistics, sys
from collections import defaultdict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
groups = defaultdict(list)
for r in rows:
    res = r["result"]
    key = (r["scenario"], res.get("target", "bench_matcher") + ("/" + res["format"] if res.get("format") == "msgpack" else ""))
    groups[key].append(res)

def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None

print("\nmedians (scenario, target, runs):")
for (scenario, target), runs in sorted(groups.items()):
    # A failed run's figures are zeros: the medians leave it out.
    rs = [r for r in runs if "error" not in r]
    out = {"runs": len(rs)}
    for f in ("ingested_per_s", "delivered_per_s", "lost", "server_rss_before_kib",
              "server_rss_kib", "server_rss_anon_kib", "replay_per_s"):
        if any(f in r for r in rs):
            out[f] = med([r.get(f) for r in rs])
    if any("latency_us" in r for r in rs):
        out["latency_us"] = {p: med([r["latency_us"][p] for r in rs if "latency_us" in r])
                             for p in ("p50", "p99", "p999", "max")}
    if any("indexed" in r for r in rs):
        out["indexed_ns"] = med([r["indexed"]["ns_per_match"] for r in rs])
        out["with_scan_ns"] = med([r["with_scan"]["ns_per_match"] for r in rs])
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        out["errors"] = errors[:2]
    print(scenario, target, json.dumps(out))
EOF

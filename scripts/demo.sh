#!/bin/sh
# Installs what is missing, builds, and runs canaryd on 127.0.0.1:8080 with
# its store in ./var, replays the bundled real Cowrie honeypot log through
# canary-sensor and shows the live stream with canary-tail.
#
#   scripts/demo.sh             replay 600 times faster than recorded
#   SPEED=60 scripts/demo.sh    slower (the log covers about 10 hours)
#   LISTEN=127.0.0.1:9090 scripts/demo.sh
#
# When standard input is a terminal, canaryd keeps running after the
# replay until Ctrl-C, so that you can try the URLs it prints.
set -eu

cd "$(dirname "$0")/.."
scripts/setup.sh

LISTEN=${LISTEN:-127.0.0.1:8080}
SPEED=${SPEED:-600}
DOMAIN=${DOMAIN:-demo-bank.example}
LOG=data/tpot-cowrie-gcp-2025-10/cowrie.json
BIN=build

mkdir -p var
chmod 700 var
if [ ! -s var/demo.key ]; then
	umask 077
	$BIN/server/canaryd keys create --data-dir var --scopes ingest,subscribe,read,admin \
		--name demo > var/demo.key
fi
KEY=$(cat var/demo.key)

if curl -s -o /dev/null "http://$LISTEN/healthz"; then
	echo "demo: $LISTEN is already in use; stop that server or set LISTEN=HOST:PORT" >&2
	exit 1
fi

server_pid=""
tail_pid=""
# Stops canary-tail before canaryd, so that it does not try to reconnect.
cleanup() {
	for pid in $tail_pid $server_pid; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

$BIN/server/canaryd --data-dir var --listen "$LISTEN" 2>var/canaryd.log &
server_pid=$!

tries=0
until curl -s -o /dev/null "http://$LISTEN/healthz"; do
	tries=$((tries + 1))
	if [ $tries -gt 100 ]; then
		echo "demo: canaryd did not start; see var/canaryd.log:" >&2
		tail -n 20 var/canaryd.log >&2
		exit 1
	fi
	sleep 0.1
done

cat <<INFO
------------------------------------------------------------------------
canaryd is running (log: var/canaryd.log, store: var/)
  key (all scopes, saved in var/demo.key):
    $KEY
  health:   http://$LISTEN/healthz
  console:  http://$LISTEN/
  stream:   ws://$LISTEN/v1/canary/stream
  REST:     curl -H "Authorization: Bearer \$(cat var/demo.key)" \\
              "http://$LISTEN/v1/canary/signals?limit=5&threat_only=true&since_hours=24"
Replaying $LOG at ${SPEED}x as domain $DOMAIN;
the signals below are printed by canary-tail as they arrive.
------------------------------------------------------------------------
INFO

CANARY_KEY=$KEY $BIN/clients/canary-tail --url "ws://$LISTEN" \
	--cursor-file var/demo-tail.cursor &
tail_pid=$!
sleep 0.5

started=$(date +%s)
CANARY_KEY=$KEY $BIN/clients/canary-sensor --url "http://$LISTEN" --format cowrie \
	--domain "$DOMAIN" --speed "$SPEED" --hmac-key-file var/sensor-hmac.key "$LOG"
sleep 1
echo "------------------------------------------------------------------------"
echo "demo: replay finished in $(( $(date +%s) - started )) s; the store now holds:"
curl -s "http://$LISTEN/healthz"
echo

if [ -t 0 ]; then
	echo "demo: canaryd keeps running on $LISTEN; press Ctrl-C to stop it."
	wait "$server_pid"
fi

#!/usr/bin/python3
"""Measures the delay from posting a signal to canary-tail printing it.

Starts canary-tail against a running canaryd, posts single signals one at a
time over one HTTP connection, and prints the p50, p99 and max delay from
the start of each POST until the signal's line appears on canary-tail's
standard output, next to the POST's own round trip (which includes the
durable commit).

    scripts/tail_latency.py --port 8080 --key-file var/demo.key \
        --tail build/clients/canary-tail --count 200
"""

import argparse
import http.client
import json
import os
import subprocess
import threading
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8080, help="canaryd port on 127.0.0.1")
    ap.add_argument("--key-file", required=True, help="file holding a key with ingest and subscribe")
    ap.add_argument("--tail", default="build/clients/canary-tail", help="canary-tail binary")
    ap.add_argument("--count", type=int, default=200, help="signals to post")
    args = ap.parse_args()

    key = open(args.key_file).read().strip()
    tail = subprocess.Popen([args.tail, "--url", "ws://127.0.0.1:%d" % args.port,
                             "--domain", "latency.example"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, CANARY_KEY=key), text=True)
    printed = {}

    def read_lines():
        for line in tail.stdout:
            printed[json.loads(line)["seq"]] = time.perf_counter()

    threading.Thread(target=read_lines, daemon=True).start()
    time.sleep(1.0)

    conn = http.client.HTTPConnection("127.0.0.1", args.port)
    body = json.dumps({"event_type": "fraud_test", "confidence": "high",
                       "source_region": "JP", "proxy_type": "tor", "threat_stage": "ATTACK",
                       "related_domain": "latency.example", "timestamp": "2026-12-04T00:00:00Z",
                       "recommended_action": "block"})
    to_tail, to_reply = [], []
    for _ in range(args.count):
        started = time.perf_counter()
        conn.request("POST", "/v1/canary/signals", body,
                     {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
        reply = conn.getresponse()
        seq = json.loads(reply.read())["first_seq"]
        replied = time.perf_counter()
        while seq not in printed and time.perf_counter() - started < 5:
            time.sleep(0.0001)
        if seq in printed:
            to_tail.append((printed[seq] - started) * 1000)
        to_reply.append((replied - started) * 1000)
        time.sleep(0.01)
    tail.terminate()

    def pct(values, p):
        values = sorted(values)
        return values[min(len(values) - 1, int(len(values) * p))]

    print(json.dumps({"signals": args.count, "lost": args.count - len(to_tail),
                      "post_to_tail_ms": {"p50": round(pct(to_tail, 0.5), 2),
                                          "p99": round(pct(to_tail, 0.99), 2),
                                          "max": round(max(to_tail), 2)},
                      "post_to_202_ms": {"p50": round(pct(to_reply, 0.5), 2),
                                         "p99": round(pct(to_reply, 0.99), 2)}}))


main()

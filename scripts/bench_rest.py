"""Measures REST read latency of canaryd at two store sizes.

For each size it starts canaryd on a loopback port with a fresh data
directory and loads that many signals through POST /v1/canary/signals in
batches of 10,000 (observed times spread over the last 23 hours, 50
domains, random fields). Then it times GET /v1/canary/stats and filtered
GET /v1/canary/signals pages over one kept-alive connection and prints
p50 and p99. Run it through scripts/bench-rest.sh."""

import argparse
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

EVENT_TYPES = ["credential_testing", "account_probe", "sim_recon", "fraud_test"]
CONFIDENCES = ["low", "medium", "high"]
PROXIES = ["datacenter", "residential", "mobile", "tor"]
STAGES = ["TESTING", "ATTACK"]
ACTIONS = ["monitor", "step_up", "block", "alert_soc"]
REGIONS = ["JP", "US", "DE", "BR", "FR", "GB", "NL", "ZZ"]
DOMAINS = ["d%d.example" % i for i in range(50)]
BATCH = 10000

# (name, path)
QUERIES = [
    ("stats", "/v1/canary/stats?since_hours=24&bucket=hour"),
    ("signals threat_only",
     "/v1/canary/signals?threat_only=true&limit=50"),
    ("signals domain+min_confidence",
     "/v1/canary/signals?domain=d7.example&min_confidence=medium&limit=50"),
    ("signals event_type+stage",
     "/v1/canary/signals?event_type=sim_recon&stage=ATTACK&limit=50"),
]


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_batch(rng, n, now):
    out = []
    for _ in range(n):
        t = now - rng.uniform(0, 23 * 3600)
        out.append({
            "event_type": rng.choice(EVENT_TYPES),
            "confidence": rng.choice(CONFIDENCES),
            "source_region": rng.choice(REGIONS),
            "proxy_type": rng.choice(PROXIES),
            "threat_stage": rng.choice(STAGES),
            "related_domain": rng.choice(DOMAINS),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "Z",
            "recommended_action": rng.choice(ACTIONS),
            "sensor": "bench-%d" % rng.randrange(8),
        })
    return out


def request(conn, method, path, key, body=None, ctype=None):
    headers = {"Authorization": "Bearer " + key}
    if ctype:
        headers["Content-Type"] = ctype
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, data


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def run_size(bin_dir, size, requests):
    tmp = tempfile.mkdtemp(prefix="canary-bench-")
    data_dir = os.path.join(tmp, "var")
    port = free_port()
    canaryd = os.path.join(bin_dir, "server", "canaryd")
    key = subprocess.run([canaryd, "keys", "create", "--data-dir", data_dir, "--scopes",
                          "ingest,read"], check=True, capture_output=True, text=True).stdout.strip()
    log = open(os.path.join(tmp, "canaryd.log"), "wb")
    proc = subprocess.Popen([canaryd, "--listen", "127.0.0.1:%d" % port, "--data-dir", data_dir,
                             "--set", "rate_limit_per_s=10000000", "--set", "rate_limit_burst=10000000",
                             "--set", "max_body_bytes=64M", "--set", "log_level=warn"],
                            stdout=log, stderr=log)
    try:
        deadline = time.time() + 20
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

        rng = random.Random(size)
        now = time.time()
        started = time.time()
        post_s = 0.0
        for done in range(0, size, BATCH):
            body = json.dumps(make_batch(rng, min(BATCH, size - done), now)).encode()
            t = time.time()
            status, data = request(conn, "POST", "/v1/canary/signals", key, body, "application/json")
            post_s += time.time() - t
            if status != 202:
                raise RuntimeError("ingest returned %d: %s" % (status, data[:300]))
        load_s = time.time() - started
        print("%d signals: loaded in %.1f s (%.1f s in POST, %.0f signals/s through POST)"
              % (size, load_s, post_s, size / post_s), flush=True)

        for name, path in QUERIES:
            request(conn, "GET", path, key)          # warm the page cache
            times = []
            total = None
            for _ in range(requests):
                t = time.perf_counter()
                status, data = request(conn, "GET", path, key)
                times.append((time.perf_counter() - t) * 1000)
                if status != 200:
                    raise RuntimeError("%s returned %d: %s" % (path, status, data[:300]))
                doc = json.loads(data)
                total = doc.get("total", doc.get("total_count"))
            print("  %-34s p50 %7.2f ms  p99 %7.2f ms  (total %s, %d requests)"
                  % (name, percentile(times, 50), percentile(times, 99), total, len(times)),
                  flush=True)
        size_mb = sum(os.path.getsize(os.path.join(data_dir, f)) for f in os.listdir(data_dir)) / 1e6
        print("  store files: %.0f MB" % size_mb, flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin-dir", required=True, help="CMake build directory with server/canaryd")
    ap.add_argument("--sizes", default="10000,1000000", help="store sizes, comma-separated")
    ap.add_argument("--requests", type=int, default=1000, help="timed requests per query")
    args = ap.parse_args()
    for size in [int(x) for x in args.sizes.split(",")]:
        run_size(args.bin_dir, size, args.requests)


if __name__ == "__main__":
    sys.exit(main())

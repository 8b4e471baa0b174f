"""A short canary-bench run against a real canaryd: the result object has
every field, the counts add up and nothing is lost. Peers are not needed;
the full benchmark is scripts/bench.sh."""

import json
import os
import re
import subprocess

from canary import BIN_DIR, Canaryd, check, check_eq, run_tests, test

BENCH = os.path.join(BIN_DIR, "clients", "canary-bench")


def bench(srv, key, *args):
    proc = subprocess.run([BENCH, "--url", "ws://127.0.0.1:%d" % srv.port, "--key", key,
                           "--drain", "5", *args],
                          capture_output=True, text=True, timeout=120)
    check_eq(proc.returncode, 0, "canary-bench exit status (stderr: %s)" % proc.stderr[-300:])
    lines = proc.stdout.splitlines()
    check_eq(len(lines), 1, "one output line")
    if not lines:
        return {}
    # Reals such as 0.10000000000000001 or 2.0007178560000001 mean that
    # the output was printed at full double precision.
    long_reals = re.findall(r"\d\.\d{7,}", lines[0])
    check_eq(long_reals, [], "reals with more than 6 decimals in %s" % lines[0])
    return json.loads(lines[0])


def check_shape(res, subscribers):
    for field in ("target", "subscribers", "rate_offered", "ingested_per_s",
                  "delivered_per_s", "latency_us", "lost"):
        check(field in res, "result has %s" % field)
    check_eq(res.get("target"), "canaryd", "target")
    check_eq(res.get("subscribers"), subscribers, "subscribers")
    check_eq(res.get("match_ratio"), 0.5, "match_ratio")
    check_eq(res.get("lost"), 0, "lost")
    lat = res.get("latency_us", {})
    check(0 < lat.get("p50", 0) <= lat.get("p99", -1) <= lat.get("p999", -1) <= lat.get("max", -1),
          "latency percentiles ordered: %r" % lat)
    check(res.get("ingested", 0) > 0, "signals ingested")
    # Two domains (match ratio 0.5): each signal reaches half the subscribers.
    check_eq(res.get("delivered"), res.get("ingested", 0) * subscribers // 2, "deliveries")
    check("error" not in res, "no error: %s" % res.get("error"))


@test
def bench_json_paced():
    with Canaryd() as srv:
        key = srv.key()
        res = bench(srv, key, "--subscribers", "20", "--match-ratio", "0.5",
                    "--rate", "200", "--duration", "2")
        check_shape(res, 20)
        check(300 <= res.get("ingested", 0) <= 420, "about 400 signals sent at 200/s: %r"
              % res.get("ingested"))


@test
def bench_msgpack_saturated():
    with Canaryd() as srv:
        key = srv.key()
        res = bench(srv, key, "--subscribers", "10", "--match-ratio", "0.5",
                    "--rate", "0", "--duration", "2", "--format", "msgpack", "--window", "2000")
        check_shape(res, 10)
        check_eq(res.get("format"), "msgpack", "format")


@test
def bench_usage_errors():
    for args in (["--match-ratio", "0"], ["--format", "xml"], ["--peer", "kafka"],
                 ["--peer", "redis"]):
        proc = subprocess.run([BENCH, "--url", "ws://127.0.0.1:1", "--key", "k", *args],
                              capture_output=True, text=True, timeout=20)
        check_eq(proc.returncode, 2, "exit status for %r" % args)
        check(proc.stderr.strip() != "", "a message for %r" % args)

    # Limits print as plain decimals, not as 1e+06 or 1e-06.
    for args, limits in ((["--rate", "-1"], "from 0 to 1000000000"),
                         (["--subscribers", "0"], "from 1 to 1000000"),
                         (["--match-ratio", "2"], "from 0.000001 to 1"),
                         (["--duration", "0"], "from 0.1 to 86400")):
        proc = subprocess.run([BENCH, "--url", "ws://127.0.0.1:1", "--key", "k", *args],
                              capture_output=True, text=True, timeout=20)
        check_eq(proc.returncode, 2, "exit status for %r" % args)
        check(limits in proc.stderr, "%r names the limits %r: %r" % (args, limits, proc.stderr))


run_tests()

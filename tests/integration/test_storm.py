"""Reconnect storms: thousands of clients connect at once with old cursors
and each gets its complete replay followed by live signals, while canaryd's
memory stays bounded and /healthz keeps responding quickly. canary-tail
spreads its reconnects with full jitter."""

import asyncio
import json
import os
import random
import re
import subprocess
import sys
import textwrap
import time

import websockets

from canary import CANARYD, TAIL, Canaryd, check, check_eq, free_port, make_signal, run_tests, test
from reliability import limit_asan_quarantine, describe_seqs, percentile, post_batch, raise_fd_limit, rss_kib

# A canaryd built with -fsanitize=address links libasan.
SANITIZED = b"libasan" in subprocess.run(["ldd", CANARYD], capture_output=True).stdout

CLIENTS = 2000
STORE = 300
LIVE = 50

# Runs in its own process, so that the storm's Python clients cannot delay
# the measurement: GETs /healthz every 50 ms and samples canaryd's RSS,
# printing one JSON line per sample until it is terminated.
SAMPLER = textwrap.dedent("""
    import json, sys, time, urllib.request
    url, pid = sys.argv[1], int(sys.argv[2])
    while True:
        started = time.time()
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                r.read()
                ok = r.status == 200
        except Exception:
            ok = False
        ms = (time.time() - started) * 1000
        with open("/proc/%d/status" % pid) as f:
            rss = [int(l.split()[1]) for l in f if l.startswith("VmRSS:")][0]
        print(json.dumps({"at": started, "ms": ms, "ok": ok, "rss": rss}), flush=True)
        time.sleep(0.05)
""")


async def storm_client(srv, key, cursor, final_head, results, started_evt):
    """Connects, subscribes from cursor and reads until final_head."""
    seqs = []
    gaps = []
    error = None
    # Clients back off with full jitter before reconnecting, as
    # canary-tail does; the storm still arrives within one second.
    await asyncio.sleep(random.uniform(0, 1.0))
    try:
        ws = await websockets.connect(srv.ws, subprotocols=["canary.v1.json"],
                                      extra_headers={"Authorization": "Bearer " + key},
                                      max_size=16 << 20, open_timeout=60, ping_interval=None)
        await ws.send(json.dumps({"op": "subscribe", "id": "s", "since_seq": cursor}))
        replay_done = False
        while not seqs or seqs[-1] < final_head[0]:
            frame = await asyncio.wait_for(ws.recv(), 90)
            for line in frame.split("\n"):
                if not line:
                    continue
                if line.startswith('{"type":"signal"'):
                    # The seq sits in the signal object; parse only what is needed.
                    seqs.append(json.loads(line)["signal"]["seq"])
                else:
                    msg = json.loads(line)
                    if msg["type"] == "replay_done":
                        replay_done = True
                        started_evt.append(1)
                    elif msg["type"] == "gap":
                        gaps.append(msg)
        await ws.close()
        if not replay_done:
            error = "no replay_done"
    except Exception as e:
        error = "%s: %s" % (type(e).__name__, e)
    results.append((cursor, seqs, gaps, error))


limit_asan_quarantine()


@test
async def reconnect_storm_gets_complete_replays():
    raise_fd_limit()
    with Canaryd() as srv:
        key = srv.key()
        for i in range(0, STORE, 100):
            status, _ = post_batch(srv, key, [make_signal(i + j) for j in range(100)])
            check_eq(status, 202, "prefill")
        rss_idle = rss_kib(srv.proc.pid)
        sampler = subprocess.Popen([sys.executable, "-c", SAMPLER, srv.http + "/healthz",
                                    str(srv.proc.pid)], stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)

        rng = random.Random(5)
        final_head = [STORE + LIVE]
        results, replayed = [], []
        started = time.time()
        clients = [asyncio.ensure_future(storm_client(srv, key, rng.randrange(0, STORE - 50),
                                                      final_head, results, replayed))
                   for _ in range(CLIENTS)]

        # Live ingest continues while the storm replays.
        for i in range(LIVE // 10):
            await asyncio.sleep(0.5)
            status, _ = await asyncio.get_running_loop().run_in_executor(
                None, post_batch, srv, key, [make_signal(j) for j in range(10)])
            check_eq(status, 202, "ingest during the storm")
        await asyncio.wait(clients, timeout=240)
        elapsed = time.time() - started
        sampler.terminate()
        samples = [json.loads(line) for line in sampler.stdout.read().splitlines() if line]
        sampler.wait()

        errors = [r[3] for r in results if r[3]]
        wrong = [r for r in results if not r[3] and r[1] != list(range(r[0] + 1, final_head[0] + 1))]
        with_gaps = [r for r in results if r[2]]
        check_eq(len(results), CLIENTS, "clients that finished")
        check(not errors, "%d clients failed, first: %s" % (len(errors), errors[:3]))
        check(not wrong, "%d clients got an incomplete stream, first from %s: %s" % (
            len(wrong), wrong[0][0] if wrong else "-", describe_seqs(wrong[0][1]) if wrong else ""))
        check(not with_gaps, "%d clients got gaps" % len(with_gaps))

        ms = [s["ms"] for s in samples]
        failed = sum(1 for s in samples if not s["ok"])
        rss_max = max([s["rss"] for s in samples] + [rss_idle])
        delivered = sum(len(r[1]) for r in results)
        print("  %d clients, %d signals delivered in %.1f s" % (len(results), delivered, elapsed), flush=True)
        print("  /healthz during the storm: %d samples, p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d failed" % (
            len(ms), percentile(ms, 50), percentile(ms, 99), max(ms or [0]), failed), flush=True)
        print("  canaryd RSS: %d KiB idle, max %d KiB during the storm" % (rss_idle, rss_max), flush=True)
        slow = ["%.1f s: %.0f ms" % (s["at"] - started, s["ms"]) for s in samples if s["ms"] > 200]
        if slow:
            print("  slow /healthz answers (time after the storm began): " + ", ".join(slow), flush=True)
        check_eq(failed, 0, "/healthz requests that failed during the storm")
        # The storm's Python clients and canaryd keep both cores of a small
        # test machine busy; AddressSanitizer makes canaryd's replay work
        # several times slower. Hence the generous bounds, looser for a
        # sanitizer build. Serving every replay in one long pass per loop
        # turn gave a p99 of 3 to 10 s on 2 cores.
        p50_max, p99_max = (1000, 5000) if SANITIZED else (100, 2000)
        check(percentile(ms, 50) < p50_max, "/healthz p50 %.1f ms under %d ms" % (percentile(ms, 50), p50_max))
        check(percentile(ms, 99) < p99_max, "/healthz p99 %.1f ms under %d ms" % (percentile(ms, 99), p99_max))
        # Memory: per connection, lws and the outbound queue; 512 KiB per
        # client is a generous bound that a queue growing to its 8 MiB
        # limit on every connection would break.
        bound = rss_idle + CLIENTS * 512
        check(rss_max < bound, "RSS %d KiB under %d KiB" % (rss_max, bound))


@test
def tail_backoff_has_full_jitter():
    """Eight canary-tail processes retry against a closed port. Each delay
    must lie within its attempt's window, min(30 s, 0.5 s * 2^(n-1)), and
    the processes must not retry in step."""
    port = free_port()
    procs = [subprocess.Popen([TAIL, "--url", "ws://127.0.0.1:%d" % port, "--key", "ck_unused"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    time.sleep(4)
    delays = {}
    for p in procs:
        p.terminate()
        _, err = p.communicate(timeout=10)
        for m in re.finditer(r"reconnecting in (\d+)\.(\d{3}) s \(attempt (\d+)\)", err):
            attempt = int(m.group(3))
            delays.setdefault(attempt, []).append(int(m.group(1)) * 1000 + int(m.group(2)))
    check(len(delays.get(1, [])) == 8 and len(delays.get(2, [])) >= 6,
          "reconnect delays logged: %r" % {k: len(v) for k, v in delays.items()})
    for attempt, values in sorted(delays.items()):
        window = min(30000, 500 << (attempt - 1))
        check(all(0 <= v <= window for v in values),
              "attempt %d delays %r within 0..%d ms" % (attempt, values, window))
    for attempt in (1, 2):
        values = delays.get(attempt, [])
        print("  attempt %d delays (ms): %s" % (attempt, sorted(values)), flush=True)
        check(len(set(values)) >= len(values) - 1, "attempt %d delays differ: %r" % (attempt, values))
        check(values and max(values) - min(values) >= 100,
              "attempt %d delays spread over at least 100 ms: %r" % (attempt, values))


run_tests()

"""Slow and dead clients. Subscribers that stop reading are closed with
4008 at outbound_queue_bytes, while the other subscribers' latency stays
put and canaryd's memory stays bounded. A peer that never responds to
pings is dropped after idle_timeout_s. Every close is logged and counted by
reason in /metrics."""

import asyncio
import json
import socket
import time

from canary import Canaryd, Stream, check, check_eq, make_signal, run_tests, test
from reliability import (limit_asan_quarantine, RawReader, metrics, percentile, post_batch, rss_kib, ws_handshake,
                         ws_send_text)

# 200 rounds of 100 signals are about 8 MB, more than the outbound queue
# plus the loopback socket buffers (up to 4 MB) can hold for one client.
QUEUE = 256 * 1024
ROUNDS = 200
BATCH = 100
STALLED = 5


async def measure_rounds(srv, key, fasts, rss_samples):
    """Posts ROUNDS batches; for each, the time until every fast
    subscriber received the whole batch. Returns delays in ms."""
    delays = []
    for r in range(ROUNDS):
        batch = [make_signal(r * BATCH + i) for i in range(BATCH)]
        started = time.time()
        status, _ = await asyncio.get_running_loop().run_in_executor(
            None, post_batch, srv, key, batch)
        check_eq(status, 202, "ingest")
        for f in fasts:
            await f.signals(BATCH, timeout=20)
        delays.append((time.time() - started) * 1000)
        rss_samples.append(rss_kib(srv.proc.pid))
    return delays


def close_count(srv, reason):
    return metrics(srv).get('canary_ws_closes_total{reason="%s"}' % reason, 0)


limit_asan_quarantine()


@test
async def stalled_subscribers_do_not_slow_others():
    with Canaryd(settings={"outbound_queue_bytes": QUEUE}) as srv:
        key = srv.key()
        fasts = []
        for i in range(2):
            f = await Stream.open(srv, key)
            await f.recv_type("welcome")
            await f.subscribe("fast%d" % i)
            fasts.append(f)

        # Without a stalled client.
        base_rss = []
        base = await measure_rounds(srv, key, fasts, base_rss)

        # With STALLED clients that subscribe and never read.
        stalled = []
        for i in range(STALLED):
            sock, leftover = ws_handshake(srv.port, key, rcvbuf=4096)
            ws_send_text(sock, json.dumps({"op": "subscribe", "id": "stalled%d" % i}))
            stalled.append(RawReader(sock, leftover, pause=None))
        for r in stalled:
            r.start()
        rss_before = rss_kib(srv.proc.pid)
        load_rss = []
        load = await measure_rounds(srv, key, fasts, load_rss)

        # Drain the stalled sockets to read their close frames.
        for r in stalled:
            r.pause = 0.0
        for r in stalled:
            r.closed.wait(10)
        codes = [r.close_code for r in stalled]
        for r in stalled:
            r.stop()

        print("  fast subscriber delay without stalled clients: p50 %.1f ms, p99 %.1f ms" % (
            percentile(base, 50), percentile(base, 99)), flush=True)
        print("  fast subscriber delay with %d stalled clients:   p50 %.1f ms, p99 %.1f ms" % (
            STALLED, percentile(load, 50), percentile(load, 99)), flush=True)
        print("  canaryd RSS: %d KiB before the stalled clients, max %d KiB with them" % (
            rss_before, max(load_rss)), flush=True)
        check_eq(codes, [4008] * STALLED, "close codes of the stalled clients")
        check(percentile(load, 99) <= max(3 * percentile(base, 99), percentile(base, 99) + 100),
              "p99 delay %.1f ms with stalled clients against %.1f ms without" % (
                  percentile(load, 99), percentile(base, 99)))
        # Each stalled client may hold its queue limit until it is closed;
        # 32 MiB more covers allocator slack and the sanitizer.
        bound = rss_before + STALLED * QUEUE // 1024 + 32 * 1024
        check(max(load_rss) <= bound, "RSS %d KiB stays under %d KiB" % (max(load_rss), bound))
        check_eq(close_count(srv, "slow_consumer"), STALLED, "slow_consumer closes counted")
        check_eq(srv.read_log().count("with 4008: slow consumer"), STALLED, "slow_consumer closes logged")
        for f in fasts:
            await f.close()


@test
async def dead_peer_dropped_and_every_close_counted():
    with Canaryd(settings={"ping_interval_s": 1, "idle_timeout_s": 3}) as srv:
        key = srv.key()

        # A peer that never reads and so never responds to a ping.
        sock, leftover = ws_handshake(srv.port, key)
        dead = RawReader(sock, leftover, pause=None)
        dead.start()
        # A peer that closes politely, one that vanishes, and a bad one.
        polite = await Stream.open(srv, key)
        await polite.recv_type("welcome")
        await polite.close()
        vanished, _ = ws_handshake(srv.port, key)
        vanished.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        vanished.close()
        bad = await Stream.open(srv, key)
        await bad.ws.send("not json")

        started = time.time()
        while time.time() - started < 10 and close_count(srv, "idle") < 1:
            await asyncio.sleep(0.2)
        elapsed = time.time() - started
        check_eq(close_count(srv, "idle"), 1, "idle close counted")
        check(elapsed < 6, "dead peer dropped %.1f s after it went silent (idle_timeout_s 3)" % elapsed)
        dead.stop()

        counts = {r: close_count(srv, r) for r in ("peer", "bad_request", "idle")}
        check_eq(counts, {"peer": 2, "bad_request": 1, "idle": 1}, "closes by reason")
        log = srv.read_log()
        check("closed by the peer" in log, "polite close logged")
        check("went away without a close frame" in log, "vanished peer logged")
        check("with 4400" in log, "bad request close logged")
        check("silent for" in log, "idle drop logged")


@test
async def every_silent_peer_of_many_dropped():
    """The liveness check visits the connections a slice at a time. Each
    of many silent peers is still dropped after idle_timeout_s, and a peer
    that replies to the pings with pongs stays connected."""
    peers = 60
    with Canaryd(settings={"ping_interval_s": 1, "idle_timeout_s": 3}) as srv:
        key = srv.key()
        # Peers that never read, so they never send a pong.
        silent = [ws_handshake(srv.port, key)[0] for _ in range(peers)]
        # python3-websockets sends pongs by itself while the test waits.
        alive = await Stream.open(srv, key)
        await alive.recv_type("welcome")

        started = time.time()
        while time.time() - started < 15 and close_count(srv, "idle") < peers:
            await asyncio.sleep(0.2)
        elapsed = time.time() - started
        check_eq(close_count(srv, "idle"), peers, "silent peers dropped as idle")
        check(elapsed < 6, "last silent peer dropped %.1f s after they went silent "
              "(idle_timeout_s 3)" % elapsed)

        reply = await alive.subscribe("s1")
        check_eq(reply.get("type"), "subscribed", "peer that sends pongs can still subscribe")
        await alive.close()
        for sock in silent:
            sock.close()


@test
async def closing_peer_that_stops_reading_dropped():
    """A peer that sends a bad message with signals queued for it and
    never reads again cannot take the close frame: it is dropped after
    idle_timeout_s instead of holding its connection for good."""
    with Canaryd(settings={"ping_interval_s": 1, "idle_timeout_s": 3,
                           "outbound_queue_bytes": 64 * 1024 * 1024}) as srv:
        key = srv.key()
        sock, leftover = ws_handshake(srv.port, key, rcvbuf=4096)
        ws_send_text(sock, json.dumps({"op": "subscribe", "id": "s1"}))
        await asyncio.sleep(0.3)
        # About 8 MB, more than the socket buffers hold (up to 4 MB on
        # loopback), so part stays queued and the socket stays full.
        for r in range(40):
            status, _ = post_batch(srv, key, [make_signal(r * 500 + i) for i in range(500)])
            check_eq(status, 202, "batch accepted")
        ws_send_text(sock, "not json")

        started = time.time()
        while time.time() - started < 15 and \
                metrics(srv).get("canary_ws_connections", 1) > 0:
            await asyncio.sleep(0.2)
        elapsed = time.time() - started
        check_eq(metrics(srv).get("canary_ws_connections"), 0, "connection dropped")
        check(elapsed < 8, "dropped %.1f s after its close was due (idle_timeout_s 3)" % elapsed)
        sock.close()


run_tests()

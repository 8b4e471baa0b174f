"""Retention and LMDB hygiene: old signals are deleted by receive time in
small transactions while the event loop keeps serving; a cursor into
deleted history gets a gap with reason retention and the exact range, also
when retention overtakes a replay in progress; a slow replay does not pin
pages and grow the data file; reader slots of killed processes are
cleared at start."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

from canary import (Canaryd, check, check_eq, get_json, http_get, make_signal, run_tests,
                    test)
from reliability import (RawReader, describe_seqs, percentile, post_batch, replay_all,
                         ws_handshake, ws_send_text)


def ingest_n(srv, key, n, batch=500):
    """Ingests n signals; returns (first_seq, last_seq)."""
    first = last = None
    done = 0
    while done < n:
        size = min(batch, n - done)
        status, body = post_batch(srv, key, [make_signal(done + i) for i in range(size)])
        if status != 202:
            raise AssertionError("ingest answered %r: %r" % (status, body))
        first = first or body["first_seq"]
        last = body["last_seq"]
        done += size
    return first, last


def oldest_seq(srv, key):
    _, page = get_json(srv.http + "/v1/canary/signals?limit=1000", key)
    seqs = [s["seq"] for s in page["signals"]]
    return min(seqs) if seqs else None


@test
async def cursor_into_deleted_history_gets_gap():
    with Canaryd(settings={"retention_s": 4, "retention_check_s": 1}) as srv:
        key = srv.key()
        ingest_n(srv, key, 100)
        time.sleep(3)
        ingest_n(srv, key, 100)

        deadline = time.time() + 10
        while time.time() < deadline and oldest_seq(srv, key) != 101:
            time.sleep(0.1)
        check_eq(oldest_seq(srv, key), 101, "oldest retained seq after retention")

        signals, gaps = await replay_all(srv, key, since_seq=50)
        check_eq(gaps, [{"type": "gap", "sub": "all", "from": 51, "to": 100, "reason": "retention"}],
                 "gap for a cursor into deleted history")
        got = [s["seq"] for s in signals]
        check(got == list(range(101, 201)), "signals after the gap: %s" % describe_seqs(got))

        signals, gaps = await replay_all(srv, key, since_seq=0)
        check_eq(gaps, [], "since_seq 0 starts at the oldest retained signal, no gap")
        check_eq(len(signals), 100, "signals from since_seq 0")
        signals, gaps = await replay_all(srv, key, since_seq=100)
        check_eq(gaps, [], "a cursor just below the oldest retained signal")
        check_eq(len(signals), 100, "signals after seq 100")

        _, page = get_json(srv.http + "/v1/canary/signals?limit=10", key)
        check_eq(page["total_count"], 100, "REST total after retention")
        check("retention: deleted 100 signals" in srv.read_log(), "retention logs what it deleted")


@test
def large_deletion_keeps_event_loop_responsive():
    """30,000 signals expire at once; /healthz and ingest keep answering
    while retention deletes them in small transactions."""
    with Canaryd(settings={"retention_s": 3, "retention_check_s": 1}) as srv:
        key = srv.key()
        ingest_n(srv, key, 30000, batch=2000)
        health_ms, ingest_ms = [], []
        deadline = time.time() + 15
        while time.time() < deadline:
            started = time.time()
            status, _, _ = http_get(srv.http + "/healthz")
            health_ms.append((time.time() - started) * 1000)
            started = time.time()
            status, _ = post_batch(srv, key, [make_signal(1)])
            ingest_ms.append((time.time() - started) * 1000)
            check_eq(status, 202, "ingest during the deletion")
            if oldest_seq(srv, key) > 30000:
                break
            time.sleep(0.02)
        check(oldest_seq(srv, key) > 30000, "all 30,000 expired signals deleted")
        print("  during the deletion: /healthz p50 %.1f ms, p99 %.1f ms, max %.1f ms; "
              "ingest p50 %.1f ms, p99 %.1f ms" % (
                  percentile(health_ms, 50), percentile(health_ms, 99), max(health_ms),
                  percentile(ingest_ms, 50), percentile(ingest_ms, 99)), flush=True)
        check(max(health_ms) < 500, "/healthz stayed under 500 ms during the deletion")


@test
def slow_replay_does_not_grow_the_file():
    """A client replays from 0 very slowly while ingest and retention run.
    The data file must level off, and the replay reports what retention
    took from under it as a gap."""
    settings = {"retention_s": 4, "retention_check_s": 1, "replay_chunk_signals": 64,
                "outbound_queue_bytes": "64K"}
    with Canaryd(settings=settings) as srv:
        key = srv.key()
        data_file = os.path.join(srv.data_dir, "data.mdb")
        # More than loopback socket buffers hold, so the replay is still
        # running at the end.
        ingest_n(srv, key, 30000, batch=2000)

        sock, leftover = ws_handshake(srv.port, key, rcvbuf=4096)
        ws_send_text(sock, json.dumps({"op": "subscribe", "id": "slow", "since_seq": 0}))
        reader = RawReader(sock, leftover, step_bytes=2048, pause=0.02)
        reader.start()

        sizes = []
        started = time.time()
        while time.time() - started < 16:
            status, _ = post_batch(srv, key, [make_signal(i) for i in range(200)])
            check_eq(status, 202, "ingest during the slow replay")
            time.sleep(0.1)
            elapsed = time.time() - started
            if not sizes or elapsed - sizes[-1][0] >= 1:
                sizes.append((elapsed, os.path.getsize(data_file)))

        # Several MB sit in socket buffers between the server and the slow
        # reader; read them quickly to reach the gap the server sent.
        reader.step_bytes, reader.pause = 65536, 0.0
        deadline = time.time() + 20
        while time.time() < deadline and not any(m.get("type") == "gap" for m in reader.messages):
            time.sleep(0.1)
        reader.stop()

        mid = [size for t, size in sizes if 6 <= t < 9]
        end = [size for t, size in sizes if t >= 13]
        print("  data.mdb size (s, KiB): " + ", ".join(
            "%.0f:%d" % (t, size // 1024) for t, size in sizes), flush=True)
        check(mid and end, "file sizes sampled")
        if mid and end:
            check(max(end) <= max(mid) * 1.25 + 256 * 1024,
                  "data file grew from %d KiB to %d KiB while the slow replay ran" % (
                      max(mid) // 1024, max(end) // 1024))

        signals = [m["signal"]["seq"] for m in reader.messages if m.get("type") == "signal"]
        gaps = [m for m in reader.messages if m.get("type") == "gap"]
        check(signals, "the slow client received signals")
        check(any(g["reason"] == "retention" for g in gaps), "the slow replay was told about deleted history")
        covered = sorted(signals + [q for g in gaps for q in range(g["from"], g["to"] + 1)])
        check(covered == list(range(1, len(covered) + 1)),
              "signals and gaps cover every seq in order: %s" % describe_seqs(covered))
        print("  slow client: %d signals, gaps %s, close %s" % (
            len(signals), [(g["from"], g["to"]) for g in gaps], reader.close_code), flush=True)


HOLD_ENV = textwrap.dedent("""
    # Opens the store with liblmdb, optionally begins a read transaction,
    # prints "holding" and waits to be killed.
    import ctypes, sys, time
    lmdb = ctypes.CDLL("liblmdb.so.0")
    env = ctypes.c_void_p()
    txn = ctypes.c_void_p()
    MDB_RDONLY, MDB_NOTLS = 0x20000, 0x200000
    assert lmdb.mdb_env_create(ctypes.byref(env)) == 0
    lmdb.mdb_env_set_maxdbs(env, 16)
    lmdb.mdb_env_set_maxreaders(env, 512)
    rc = lmdb.mdb_env_open(env, sys.argv[1].encode(), MDB_RDONLY | MDB_NOTLS, 0o600)
    assert rc == 0, rc
    if sys.argv[2] == "txn":
        assert lmdb.mdb_txn_begin(env, None, MDB_RDONLY, ctypes.byref(txn)) == 0
    print("holding", flush=True)
    time.sleep(120)
""")


def hold_env(data_dir, with_txn):
    """Starts a process that keeps the environment open (and a read
    transaction, with_txn); returns it once it holds them."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_ENV, data_dir, "txn" if with_txn else "env"],
                            stdout=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != "holding":
        raise AssertionError("the LMDB helper did not start")
    return proc


def reader_pids(data_dir):
    """Process ids in the environment's reader table, from mdb_stat -r
    (which lists without clearing; -rr would clear stale slots)."""
    # mdb_stat (lmdb-utils 0.9.24) exits 1 after printing the table.
    out = subprocess.run(["mdb_stat", "-r", data_dir], capture_output=True, text=True)
    if "Reader Table Status" not in out.stdout:
        raise AssertionError("mdb_stat -r failed: %s" % out.stderr)
    pids = set()
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit():
            pids.add(int(parts[0]))
    return pids


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@test
def stale_reader_slot_cleared():
    """LMDB resets its reader table when the first process opens the
    environment, so a slot of a killed process stays behind only while
    another process keeps the environment open. Both cases canaryd must
    clean up: at start, and while it runs."""
    srv = Canaryd(settings={"retention_check_s": 1})
    srv.start()
    key = srv.key()
    post_batch(srv, key, [make_signal(1)])
    srv.stop()

    # At start: a live process keeps the environment open, a killed one
    # left its read slot.
    keeper = hold_env(srv.data_dir, with_txn=False)
    dead = hold_env(srv.data_dir, with_txn=True)
    kill(dead)
    check(dead.pid in reader_pids(srv.data_dir), "the killed reader's slot stays behind")
    srv.start()
    check(dead.pid not in reader_pids(srv.data_dir), "canaryd cleared the stale slot at start")
    kill(keeper)

    # While running: a reader is killed with canaryd holding the environment.
    dead = hold_env(srv.data_dir, with_txn=True)
    kill(dead)
    check(dead.pid in reader_pids(srv.data_dir), "the slot of a reader killed while canaryd runs")
    deadline = time.time() + 5
    while time.time() < deadline and dead.pid in reader_pids(srv.data_dir):
        time.sleep(0.2)
    check(dead.pid not in reader_pids(srv.data_dir), "canaryd cleared it within retention_check_s")
    check("cleared 1 LMDB reader slots left by dead processes" in srv.read_log(),
          "the clearing is logged")
    status, _ = post_batch(srv, key, [make_signal(2)])
    check_eq(status, 202, "ingest after the stale slots were cleared")
    srv.stop()


run_tests()

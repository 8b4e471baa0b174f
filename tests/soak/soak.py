"""Soak run for canaryd: ingest, resuming subscribers, slow clients,
reconnects and restarts (SIGTERM and SIGKILL) for a set time, then a
report of memory, file descriptors, lost and duplicated signals.

    soak.py --duration SECONDS [--report FILE] [--seed N]

Binaries come from CANARY_BIN_DIR (default: build/). The run stops by
itself after --duration plus a short drain. The exit status is 0 only if
no acknowledged signal was lost, no subscriber saw a duplicate or a gap,
and RSS and descriptors stayed flat (see resource_figures for the
bounds)."""

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

import websockets  # noqa: E402

from canary import Canaryd, Stream, make_signal  # noqa: E402
from reliability import (Producer, RawReader, check_acked_stored, fd_count,  # noqa: E402
                         limit_asan_quarantine, raise_fd_limit, replay_all, rss_kib,
                         ws_handshake, ws_send_text)

SUBSCRIBERS = 4
PRODUCERS = 2
SAMPLE_S = 2.0


class Soak:
    def __init__(self, duration, seed):
        self.duration = duration
        self.rng = random.Random(seed)
        self.srv = Canaryd(settings={"outbound_queue_bytes": "256K"})
        self.key = None
        self.samples = []            # (elapsed, pid, RssAnon KiB, fds, VmRSS KiB)
        self.acked = []
        self.restarts = {"term": 0, "kill": 0}
        self.slow_closes = {}
        self.reconnects = 0
        self.sub_state = [{"cursor": 0, "seen": set(), "dups": 0, "gaps": 0, "msgs": 0}
                          for _ in range(SUBSCRIBERS)]
        self.down = threading.Event()
        self.stop = threading.Event()
        self.lock = threading.Lock()

    # ---- workers ----

    def produce(self):
        """Runs producers in rounds: each round lasts until the server goes
        down, then waits for it to come back."""
        while not self.stop.is_set():
            while self.down.is_set() and not self.stop.is_set():
                time.sleep(0.05)
            producers = [Producer(self.srv, self.key, lambda i: make_signal(self.rng.randrange(1 << 20)),
                                  batch_max=40, pause=0.05, seed=self.rng.randrange(1 << 30))
                         for _ in range(PRODUCERS)]
            for p in producers:
                p.start()
            while not self.stop.is_set() and all(p.is_alive() for p in producers):
                time.sleep(0.1)
            for p in producers:
                p.stop()
            with self.lock:
                for p in producers:
                    self.acked.extend(p.acked)

    async def subscribe_loop(self, index):
        """A resuming subscriber: reconnects from its cursor after every
        drop, and on its own every few seconds."""
        state = self.sub_state[index]
        while not self.stop.is_set():
            if self.down.is_set():
                await asyncio.sleep(0.1)
                continue
            try:
                s = await Stream.open(self.srv, self.key)
                await s.recv_type("welcome")
                await s.subscribe("s%d" % index, since_seq=state["cursor"])
                until = time.time() + self.rng.uniform(3, 15)
                while time.time() < until and not self.stop.is_set():
                    try:
                        msg = await s.recv(0.5)
                    except asyncio.TimeoutError:
                        continue
                    if msg.get("type") == "gap":
                        state["gaps"] += msg["to"] - msg["from"] + 1
                        state["cursor"] = max(state["cursor"], msg["to"])
                    if msg.get("type") != "signal":
                        continue
                    seq = msg["signal"]["seq"]
                    state["msgs"] += 1
                    if seq in state["seen"]:
                        state["dups"] += 1
                    elif seq != state["cursor"] + 1:
                        state["gaps"] += seq - state["cursor"] - 1
                    state["seen"].add(seq)
                    state["cursor"] = max(state["cursor"], seq)
                await s.close()
            except (OSError, websockets.WebSocketException, asyncio.TimeoutError, AssertionError):
                pass
            self.reconnects += 1
            # Full jitter, as canary-tail does.
            await asyncio.sleep(self.rng.uniform(0, 0.5))

    def slow_clients(self):
        """Every few seconds a client subscribes and stops reading for
        30 s, live only or replaying from seq 0 in turn. A live one must
        be closed with 4008 once its queue is full; a replaying one is
        flow-controlled and may still be open at the end."""
        live = False
        while not self.stop.is_set():
            time.sleep(self.rng.uniform(3, 8))
            if self.down.is_set() or self.stop.is_set():
                continue
            live = not live
            subscribe = {"op": "subscribe", "id": "slow"}
            if not live:
                subscribe["since_seq"] = 0
            try:
                sock, leftover = ws_handshake(self.srv.port, self.key, rcvbuf=4096)
                ws_send_text(sock, json.dumps(subscribe))
            except (OSError, AssertionError):
                continue
            reader = RawReader(sock, leftover, pause=None)
            reader.start()
            deadline = time.time() + 30
            while time.time() < deadline and not self.stop.is_set() and not self.down.is_set():
                time.sleep(0.2)
            reader.pause = 0.0
            reader.closed.wait(5)
            code = reader.close_code
            reader.stop()
            kind = "%s %s" % ("live" if live else "replay", code)
            with self.lock:
                self.slow_closes[kind] = self.slow_closes.get(kind, 0) + 1

    def restarts_loop(self):
        """Restarts canaryd every 20 to 60 s (a sixth to a third of a
        shorter run), alternating SIGTERM and SIGKILL."""
        low, high = min(20, self.duration / 6), min(60, self.duration / 3)
        while not self.stop.wait(self.rng.uniform(low, high)):
            kind = "kill" if self.restarts["kill"] < self.restarts["term"] else "term"
            self.down.set()
            if kind == "kill":
                self.srv.kill()
            else:
                self.srv.stop()
            self.restarts[kind] += 1
            self.srv.start()
            self.down.clear()

    def sampler(self):
        started = time.time()
        while not self.stop.wait(SAMPLE_S):
            proc = self.srv.proc
            if proc is None or self.down.is_set():
                continue
            try:
                self.samples.append((time.time() - started, proc.pid, rss_kib(proc.pid, "RssAnon"),
                                     fd_count(proc.pid), rss_kib(proc.pid)))
            except (OSError, AssertionError):
                pass

    # ---- the run ----

    def run(self):
        raise_fd_limit()
        self.srv.start()
        self.key = self.srv.key()
        threads = [threading.Thread(target=f, daemon=True)
                   for f in (self.produce, self.slow_clients, self.restarts_loop, self.sampler)]
        for t in threads:
            t.start()

        async def subscribers():
            tasks = [asyncio.ensure_future(self.subscribe_loop(i)) for i in range(SUBSCRIBERS)]
            await asyncio.sleep(self.duration)
            self.stop.set()
            await asyncio.gather(*tasks)
        asyncio.run(subscribers())
        for t in threads:
            t.join(60)
        return self.finish()

    def finish(self):
        """Checks the store and the subscribers against what was
        acknowledged; returns the report."""
        # The subscribers catch up to the head once more.
        signals, gaps = asyncio.run(replay_all(self.srv, self.key, timeout=300))
        stored = {s["seq"]: s for s in signals}
        head = max(stored) if stored else 0
        problems = []
        checked = check_acked_stored(self.acked, stored, lambda ok, msg: ok or problems.append(msg))
        store_gaps = head - len(stored)

        async def catch_up(state, index):
            got, _ = await replay_all(self.srv, self.key, since_seq=state["cursor"], timeout=300)
            for sig in got:
                if sig["seq"] in state["seen"]:
                    state["dups"] += 1
                state["seen"].add(sig["seq"])
            state["cursor"] = head
        for i, state in enumerate(self.sub_state):
            asyncio.run(catch_up(state, i))
        sub_missing = [head - len(s["seen"]) for s in self.sub_state]
        sub_dups = [s["dups"] for s in self.sub_state]
        self.srv.stop()

        report = {
            "duration_s": self.duration,
            "acknowledged_signals": checked,
            "stored_head": head,
            "lost_acknowledged": len(problems),
            "store_seq_holes": store_gaps,
            "subscriber_missing": sub_missing,
            "subscriber_duplicates": sub_dups,
            "subscriber_messages": [s["msgs"] for s in self.sub_state],
            "subscriber_reconnects": self.reconnects,
            "restarts": self.restarts,
            "slow_client_close_codes": self.slow_closes,
            "problems": problems,
        }
        report.update(self.resource_figures())
        return report

    def resource_figures(self):
        """Private memory (RssAnon), VmRSS and descriptors: first sample
        after a warm-up, max and last, and the largest growth within one
        canaryd process. VmRSS also counts the mapped LMDB file, which
        grows with the store and is page cache, not canaryd's memory, so
        flatness is judged on RssAnon."""
        warm = [s for s in self.samples if s[0] >= 10] or self.samples
        if not warm:
            return {"rss_anon_kib": None, "fds": None, "flat": False}
        rss = [s[2] for s in warm]
        fds = [s[3] for s in warm]
        vm_rss = [s[4] for s in warm]
        # Each restart begins a new process; compare like with like.
        per_pid = {}
        for t, pid, r, f, _ in warm:
            per_pid.setdefault(pid, []).append((r, f))
        growth = []
        for pid, values in per_pid.items():
            if len(values) >= 5:
                growth.append((values[-1][0] - values[len(values) // 4][0],
                               values[-1][1] - values[len(values) // 4][1]))
        rss_growth = max([g[0] for g in growth] or [0])
        fd_growth = max([g[1] for g in growth] or [0])
        # Flat: no process grew by more than 64 MiB or 64 descriptors
        # after its first quarter, and the whole run stayed below 4x the
        # first warm sample plus 64 MiB.
        flat = rss_growth <= 64 * 1024 and fd_growth <= 64 and max(rss) <= 4 * rss[0] + 64 * 1024
        return {"rss_anon_kib": {"start": rss[0], "max": max(rss), "end": rss[-1],
                                 "max_growth_within_a_process": rss_growth},
                "vm_rss_kib": {"start": vm_rss[0], "max": max(vm_rss), "end": vm_rss[-1]},
                "fds": {"start": fds[0], "max": max(fds), "end": fds[-1],
                        "max_growth_within_a_process": fd_growth},
                "samples": len(warm), "flat": flat}


def main():
    parser = argparse.ArgumentParser(description="Soak canaryd for a set time and report.")
    parser.add_argument("--duration", type=int, required=True, help="seconds of load (at least 10)")
    parser.add_argument("--report", help="also write the report as JSON to this file")
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    args = parser.parse_args()
    if args.duration < 10:
        parser.error("--duration must be at least 10 seconds")

    limit_asan_quarantine()
    report = Soak(args.duration, args.seed).run()
    text = json.dumps(report, indent=2, sort_keys=True)
    print(text, flush=True)
    if args.report:
        with open(args.report, "w") as f:
            f.write(text + "\n")
    ok = (report["lost_acknowledged"] == 0 and report["store_seq_holes"] == 0
          and not any(report["subscriber_missing"]) and not any(report["subscriber_duplicates"])
          and report["flat"] and report["acknowledged_signals"] > 0)
    print("soak: %s" % ("PASS" if ok else "FAIL"), flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

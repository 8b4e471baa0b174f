"""Shutdown and reload: SIGTERM during ingest refuses new connections,
closes streams with 1001, exits 0 and keeps every acknowledged signal;
SIGHUP re-reads the configuration file with the same --set overrides and
applies limits and liveness settings to open connections without dropping
them."""

import asyncio
import json
import os
import signal
import subprocess
import time

from canary import (CANARYD, Canaryd, Stream, check, check_eq, expect_close, get_json,
                    http_get, make_signal, run_tests, test)
from reliability import (Producer, RawReader, check_acked_stored, post_batch, replay_all,
                         ws_handshake, ws_send_text)


class ConfigCanaryd(Canaryd):
    """A canaryd started with --config FILE as well as --set overrides."""

    def __init__(self, config_text, settings=None):
        super().__init__(settings=settings)
        self.config_path = os.path.join(self.tmp, "canaryd.conf")
        self.write_config(config_text)

    def write_config(self, text):
        with open(self.config_path, "w") as f:
            f.write(text)

    def start(self):
        os.makedirs(self.data_dir, exist_ok=True)
        cmd = [CANARYD, "--config", self.config_path, "--listen", "127.0.0.1:%d" % self.port,
               "--data-dir", self.data_dir]
        for k, v in self.settings.items():
            cmd += ["--set", "%s=%s" % (k, v)]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("canaryd exited at start:\n" + self.read_log())
            try:
                if http_get(self.http + "/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("canaryd did not answer /healthz within 20 s")

    def reload(self, marker):
        """Sends SIGHUP and waits until the log shows marker once more."""
        before = self.read_log().count(marker)
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline and self.read_log().count(marker) <= before:
            time.sleep(0.05)
        if self.read_log().count(marker) <= before:
            raise AssertionError("no %r in the log after SIGHUP" % marker)


def make_plain(i):
    return make_signal(i)


@test
async def sigterm_during_ingest_keeps_acknowledged():
    srv = Canaryd()
    srv.start()
    key = srv.key()
    streams = []
    for i in range(3):
        s = await Stream.open(srv, key)
        await s.recv_type("welcome")
        await s.subscribe("s%d" % i)
        streams.append(s)
    producers = [Producer(srv, key, make_plain, seed=p) for p in range(4)]
    for p in producers:
        p.start()
    await asyncio.sleep(1.0)

    srv.proc.send_signal(signal.SIGTERM)
    codes = [(await expect_close(s.ws, timeout=10))[0] for s in streams]
    check_eq(codes, [1001, 1001, 1001], "stream close codes on SIGTERM")

    # Shutdown has begun: a new connection is refused, not served.
    try:
        status, _, _ = http_get(srv.http + "/healthz")
    except OSError:
        status = None
    check(status is None, "a new connection after SIGTERM is refused (got %r)" % status)

    rc = srv.proc.wait(timeout=15)
    check_eq(rc, 0, "exit status after SIGTERM")
    srv.proc = None
    srv.log.close()
    for p in producers:
        p.stop()
    acked = [a for p in producers for a in p.acked]
    check(len(acked) > 10, "batches acknowledged before the stop: %d" % len(acked))

    srv.start()
    signals, _ = await replay_all(srv, key)
    checked = check_acked_stored(acked, {s["seq"]: s for s in signals}, check)
    print("  %d acknowledged signals all stored after SIGTERM and restart" % checked, flush=True)
    log = srv.read_log()
    check("stop requested" in log and "canaryd stopped" in log, "shutdown logged")
    srv.stop()


BASE_CONFIG = """
# canaryd test configuration
outbound_queue_bytes = 8M
max_subscriptions = 2
ping_interval_s = 30
idle_timeout_s = 75
max_batch_signals = 5
"""

# Limits, and one setting that needs a restart.
LIMITS_CONFIG = """
outbound_queue_bytes = 64K
max_subscriptions = 4
ping_interval_s = 30
idle_timeout_s = 75
max_batch_signals = 5
max_message_bytes = 2M
"""

# Liveness on top of the new limits.
LIVENESS_CONFIG = LIMITS_CONFIG.replace("ping_interval_s = 30", "ping_interval_s = 1") \
    .replace("idle_timeout_s = 75", "idle_timeout_s = 3")


async def subscribe_result(stream, sub_id, filter):
    await stream.send({"op": "subscribe", "id": sub_id, "filter": filter})
    while True:
        msg = await stream.recv()
        if msg.get("type") in ("subscribed", "error"):
            return msg


async def post(srv, key, batch):
    """post_batch off the event loop, so that the WebSocket clients of the
    test keep responding to pings meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(None, post_batch, srv, key, batch)


async def wait_closed(reader, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline and not reader.closed.is_set():
        await asyncio.sleep(0.1)
    return reader.closed.is_set()


@test
async def sighup_applies_limits_to_open_connections():
    # --set max_batch_signals wins over the file, before and after reload.
    srv = ConfigCanaryd(BASE_CONFIG, settings={"max_batch_signals": 500})
    srv.start()
    key = srv.key()
    rare = {"domains": ["rare.example"]}

    a = await Stream.open(srv, key)
    await a.recv_type("welcome")
    for sub_id in ("a1", "a2"):
        check_eq((await subscribe_result(a, sub_id, rare))["type"], "subscribed", sub_id)
    check_eq((await subscribe_result(a, "a3", rare)).get("code"), "too_many_subscriptions",
             "third subscription under max_subscriptions 2")

    # Opened before the reloads: one that stops reading, one that never
    # responds to pings.
    sock, leftover = ws_handshake(srv.port, key, rcvbuf=4096)
    ws_send_text(sock, json.dumps({"op": "subscribe", "id": "stalled"}))
    stalled = RawReader(sock, leftover, pause=None)
    stalled.start()
    sock, leftover = ws_handshake(srv.port, key)
    silent = RawReader(sock, leftover, pause=None)
    silent.start()
    await asyncio.sleep(0.3)

    # Reload 1: limits.
    srv.write_config(LIMITS_CONFIG)
    srv.reload("reload: outbound_queue_bytes")
    log = srv.read_log()
    check("max_message_bytes changed to 2097152 but needs a restart" in log,
          "restart-only setting warned about")

    status, _ = await post(srv, key, [make_signal(1, related_domain="rare.example")])
    check_eq(status, 202, "ingest after reload")
    got = await a.signals(2, timeout=10)
    check_eq(sorted(m["sub"] for m in got), ["a1", "a2"], "open connection still receives")
    for sub_id in ("a3", "a4"):
        check_eq((await subscribe_result(a, sub_id, rare))["type"], "subscribed",
                 "%s under max_subscriptions 4" % sub_id)
    check_eq((await subscribe_result(a, "a5", rare)).get("code"), "too_many_subscriptions",
             "fifth subscription")

    # The stalled connection hits the new 64 KiB queue limit. About 6 MB
    # of signals pass what loopback socket buffers hold. Batches of 500
    # pass because --set max_batch_signals=500 still overrides the file.
    for r in range(30):
        status, _ = await post(srv, key, [make_signal(r * 500 + i) for i in range(500)])
        check_eq(status, 202, "batch of 500 signals")
    stalled.pause = 0.0
    await wait_closed(stalled, 15)
    check_eq(stalled.close_code, 4008, "stalled connection closed under the reloaded queue limit")
    stalled.stop()

    # Reload 2: liveness. The silent connection is dropped, the live one stays.
    srv.write_config(LIVENESS_CONFIG)
    srv.reload("reload: outbound_queue_bytes")
    await asyncio.sleep(5)
    silent.pause = 0.0
    check(await wait_closed(silent, 5), "silent connection dropped under idle_timeout_s 3")
    silent.stop()
    status, _ = await post(srv, key, [make_signal(2, related_domain="rare.example")])
    got = await a.signals(4, timeout=10)
    check_eq(len(got), 4, "the connection that responds to pings still receives")

    # A configuration that does not parse keeps the running settings.
    srv.write_config("max_subscriptions = many\n")
    srv.reload("keeping the current settings")
    rejected = [line for line in srv.read_log().splitlines() if "keeping the current settings" in line]
    check(rejected and "ERROR" in rejected[-1] and "max_subscriptions" in rejected[-1],
          "the reload error is logged with its level and names the setting: %r" % rejected[-1:])
    check_eq((await subscribe_result(a, "a5", rare)).get("code"), "too_many_subscriptions",
             "limits unchanged after an invalid reload")
    # An invalid log_level rejects the whole file too, like any other value.
    srv.write_config("max_subscriptions = 64\nlog_level = loud\n")
    srv.reload("keeping the current settings")
    rejected = [line for line in srv.read_log().splitlines() if "keeping the current settings" in line]
    check("log_level" in rejected[-1], "invalid log_level named: %r" % rejected[-1:])
    check_eq((await subscribe_result(a, "a6", rare)).get("code"), "too_many_subscriptions",
             "max_subscriptions of a file with a bad log_level not applied")
    await a.send({"op": "ping"})
    check_eq((await a.recv_type("pong"))["type"], "pong", "connection alive after an invalid reload")
    await a.close()
    srv.stop()


run_tests()

"""Helpers for integration tests: a real canaryd process on a loopback port
with its own LMDB directory, keys made by `canaryd keys create`, and HTTP
and WebSocket clients (urllib and Debian's python3-websockets).

Every test script calls run_tests() at the end, which prints
"N passed, N failed" and exits non-zero on any failure.
"""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

import websockets

BIN_DIR = os.environ.get("CANARY_BIN_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SOURCE_DIR = os.environ.get("CANARY_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
CANARYD = os.path.join(BIN_DIR, "server", "canaryd")
SENSOR = os.path.join(BIN_DIR, "clients", "canary-sensor")
TAIL = os.path.join(BIN_DIR, "clients", "canary-tail")
COWRIE_LOG = os.path.join(SOURCE_DIR, "data", "tpot-cowrie-gcp-2025-10", "cowrie.json")

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Canaryd:
    """One canaryd process. Use as a context manager; stop() checks that it
    exits 0 on SIGTERM and that the sanitizers reported nothing."""

    def __init__(self, data_dir=None, settings=None):
        self.tmp = tempfile.mkdtemp(prefix="canary-it-")
        self.data_dir = data_dir or os.path.join(self.tmp, "var")
        self.port = free_port()
        self.settings = dict(settings or {})
        self.proc = None
        self.log_path = os.path.join(self.tmp, "canaryd.log")

    @property
    def http(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def ws(self):
        return "ws://127.0.0.1:%d/v1/canary/stream" % self.port

    def key(self, scopes="ingest,subscribe,read", domains=None, name=None):
        cmd = [CANARYD, "keys", "create", "--data-dir", self.data_dir, "--scopes", scopes]
        if domains:
            cmd += ["--domains", domains]
        if name:
            cmd += ["--name", name]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def start(self):
        os.makedirs(self.data_dir, exist_ok=True)
        cmd = [CANARYD, "--listen", "127.0.0.1:%d" % self.port, "--data-dir", self.data_dir]
        for k, v in self.settings.items():
            cmd += ["--set", "%s=%s" % (k, v)]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("canaryd exited at start:\n" + self.read_log())
            try:
                status, _, _ = http_get(self.http + "/healthz")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("canaryd did not answer /healthz within 20 s")

    def read_log(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        if not self.proc:
            return 0
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.log.close()
        log = self.read_log()
        for marker in SANITIZER_MARKERS:
            if marker in log:
                raise AssertionError("sanitizer report in canaryd log:\n" + log[-6000:])
        if sig == signal.SIGTERM and rc != 0:
            raise AssertionError("canaryd exited %d after SIGTERM:\n%s" % (rc, log[-4000:]))
        return rc

    def kill(self):
        """SIGKILL, as a crash would; no exit checks."""
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc:
            self.stop()


def http_request(method, url, body=None, headers=None, timeout=30):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def http_get(url, key=None):
    headers = {"Authorization": "Bearer " + key} if key else {}
    return http_request("GET", url, headers=headers)


def get_json(url, key):
    status, headers, body = http_get(url, key)
    return status, json.loads(body) if body else None


def ingest(server, key, signals, content_type="application/json", raw=None):
    """Posts signals (a list, or raw bytes). Returns (status, parsed body)."""
    body = raw if raw is not None else json.dumps(signals).encode()
    headers = {"Content-Type": content_type}
    if key:
        headers["Authorization"] = "Bearer " + key
    status, _, resp = http_request("POST", server.http + "/v1/canary/signals", body, headers)
    try:
        return status, json.loads(resp)
    except ValueError:
        return status, resp


# Observed times of make_signal: 12 hours before this module was loaded,
# plus i seconds (i modulo 12 hours). They stay in the past and inside the
# REST lists' default 24-hour window for a whole test run, on any date.
SIGNAL_TIME_BASE = int(time.time()) - 12 * 3600


def make_signal(i=0, **overrides):
    """A valid signal; fields vary with i so that filters can tell them apart."""
    sig = {
        "event_type": ["credential_testing", "account_probe", "sim_recon", "fraud_test"][i % 4],
        "confidence": ["low", "medium", "high"][i % 3],
        "source_region": ["JP", "US", "DE", "BR", "ZZ"][i % 5],
        "proxy_type": ["datacenter", "residential", "mobile", "tor"][i % 4],
        "threat_stage": ["TESTING", "ATTACK"][i % 2],
        "related_domain": ["bank.example", "shop.example", "login.bank.example"][i % 3],
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                   time.gmtime(SIGNAL_TIME_BASE + i % (12 * 3600))),
        "recommended_action": ["monitor", "step_up", "block", "alert_soc"][i % 4],
    }
    sig.update(overrides)
    return sig


def now_rfc3339(offset_s=0):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset_s))


class Stream:
    """A WebSocket client of the stream that splits frames into messages."""

    def __init__(self, ws):
        self.ws = ws
        self.pending = []

    @classmethod
    async def open(cls, server, key=None, subprotocol="canary.v1.json", auth_message=False, **kw):
        headers = {}
        if key and not auth_message:
            headers["Authorization"] = "Bearer " + key
        ws = await websockets.connect(server.ws, subprotocols=[subprotocol] if subprotocol else None,
                                      extra_headers=headers, max_size=16 << 20, **kw)
        s = cls(ws)
        if key and auth_message:
            await s.send({"op": "auth", "token": key})
        return s

    async def send(self, obj):
        await self.ws.send(json.dumps(obj))

    async def recv(self, timeout=10):
        while not self.pending:
            frame = await asyncio.wait_for(self.ws.recv(), timeout)
            if isinstance(frame, bytes):
                raise AssertionError("unexpected binary frame")
            self.pending.extend(json.loads(line) for line in frame.split("\n") if line)
        return self.pending.pop(0)

    async def recv_type(self, type_, timeout=10):
        deadline = time.time() + timeout
        while True:
            msg = await self.recv(max(0.01, deadline - time.time()))
            if msg.get("type") == type_:
                return msg

    async def subscribe(self, sub_id="s1", filter=None, **extra):
        msg = {"op": "subscribe", "id": sub_id}
        if filter is not None:
            msg["filter"] = filter
        msg.update(extra)
        await self.send(msg)
        # Signals of earlier subscriptions may come first; keep them, in
        # order, for the next recv().
        skipped = []
        while True:
            reply = await self.recv()
            if reply.get("type") in ("subscribed", "error"):
                break
            skipped.append(reply)
        self.pending[:0] = skipped
        if reply.get("type") != "subscribed":
            raise AssertionError("subscribe failed: %r" % reply)
        return reply

    async def signals(self, count, timeout=20):
        """Receives until count signal messages arrived; returns them."""
        out = []
        deadline = time.time() + timeout
        while len(out) < count:
            msg = await self.recv(max(0.01, deadline - time.time()))
            if msg.get("type") == "signal":
                out.append(msg)
        return out

    async def close(self):
        await self.ws.close()


async def expect_close(ws, timeout=10):
    """Waits for the server to close; returns (code, reason)."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed as e:
        return e.code, e.reason


# ---- a tiny test runner ----

_tests = []
_checks = {"passed": 0, "failed": 0}


def test(fn):
    _tests.append(fn)
    return fn


def check(cond, message):
    if cond:
        _checks["passed"] += 1
    else:
        _checks["failed"] += 1
        print("  check failed: " + message, flush=True)


def check_eq(actual, expected, what):
    check(actual == expected, "%s is %r, expected %r" % (what, actual, expected))


def run_tests():
    failed_tests = 0
    for fn in _tests:
        before = _checks["failed"]
        started = time.time()
        try:
            result = fn()
            if asyncio.iscoroutine(result):
                asyncio.run(result)
        except Exception:
            _checks["failed"] += 1
            traceback.print_exc()
        ok = _checks["failed"] == before
        failed_tests += 0 if ok else 1
        print("%s %s (%.1f s)" % ("ok  " if ok else "FAIL", fn.__name__, time.time() - started), flush=True)
    print("%d passed, %d failed" % (len(_tests) - failed_tests, failed_tests))
    sys.exit(1 if failed_tests else 0)

"""Helpers shared by the fault tests and the soak driver: a full replay of
the store over the stream, a signal producer thread, canaryd's memory and
file descriptors from /proc, /metrics parsing and percentiles."""

import asyncio
import http.client
import json
import resource
import threading
import time

from canary import Stream, http_get, http_request

# Fields a producer sends and the store must give back unchanged.
SIGNAL_FIELDS = ("event_type", "confidence", "source_region", "proxy_type",
                 "threat_stage", "related_domain", "timestamp", "recommended_action")


def limit_asan_quarantine():
    """Shrinks AddressSanitizer's quarantine of freed memory (256 MiB by
    default) for the canaryd processes this test starts, so that their RSS
    shows canaryd's own memory. No effect on a build without ASan."""
    import os
    options = os.environ.get("ASAN_OPTIONS", "")
    if "quarantine_size_mb" not in options:
        os.environ["ASAN_OPTIONS"] = (options + ":" if options else "") + "quarantine_size_mb=8"


def raise_fd_limit():
    """Raises this process's open-file limit to its hard limit; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_kib(pid, field="VmRSS"):
    """Resident set size of a process in KiB, from /proc/PID/status.
    VmRSS counts the pages of the LMDB file that canaryd maps and has
    read; RssAnon counts only its private memory (heap and stacks)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s line for pid %d" % (field, pid))


def fd_count(pid):
    """Open file descriptors of a process."""
    import os
    return len(os.listdir("/proc/%d/fd" % pid))


def metrics(server):
    """Returns /metrics as {"name{labels}": value}."""
    status, _, body = http_get(server.http + "/metrics")
    if status != 200:
        raise AssertionError("/metrics answered %d" % status)
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def describe_seqs(seqs):
    """A short description of a list of seqs for check messages."""
    if not seqs:
        return "no seqs"
    runs = []
    for q in seqs:
        if runs and q == runs[-1][1] + 1:
            runs[-1][1] = q
        else:
            runs.append([q, q])
    text = ", ".join("%d" % a if a == b else "%d-%d" % (a, b) for a, b in runs[:6])
    return "%d seqs: %s%s" % (len(seqs), text, ", ..." if len(runs) > 6 else "")


def percentile(values, p):
    """The p-th percentile (0-100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


async def replay_all(server, key, since_seq=0, filter=None, timeout=60):
    """Subscribes from since_seq and collects every signal until
    replay_done. Returns (signals in arrival order, gap messages)."""
    s = await Stream.open(server, key)
    await s.recv_type("welcome")
    await s.subscribe("all", filter=filter, since_seq=since_seq)
    signals, gaps = [], []
    deadline = time.time() + timeout
    while True:
        msg = await s.recv(max(0.01, deadline - time.time()))
        if msg.get("type") == "signal":
            signals.append(msg["signal"])
        elif msg.get("type") == "gap":
            gaps.append(msg)
        elif msg.get("type") == "replay_done":
            break
    await s.close()
    return signals, gaps


def post_batch(server, key, batch, timeout=10):
    """Posts one JSON batch. Returns (status, body) or (None, None) when the
    connection failed, as it does while the server is down."""
    try:
        status, _, resp = http_request(
            "POST", server.http + "/v1/canary/signals", json.dumps(batch).encode(),
            {"Content-Type": "application/json", "Authorization": "Bearer " + key},
            timeout=timeout)
    except (OSError, http.client.HTTPException):
        return None, None
    try:
        return status, json.loads(resp)
    except ValueError:
        return status, None


class Producer(threading.Thread):
    """Posts batches of make(i) signals until stopped or until a request
    fails to connect. Every 202 is recorded as (first_seq, last_seq,
    batch), so a test can check each acknowledged signal afterwards."""

    def __init__(self, server, key, make, batch_max=20, pause=0.0, seed=0):
        super().__init__(daemon=True)
        import random
        self.server, self.key, self.make = server, key, make
        self.batch_max, self.pause = batch_max, pause
        self.rng = random.Random(seed)
        self.acked = []
        self.statuses = {}
        self.stop_event = threading.Event()

    def run(self):
        n = 0
        while not self.stop_event.is_set():
            size = self.rng.randint(1, self.batch_max)
            batch = [self.make(n + i) for i in range(size)]
            n += size
            status, body = post_batch(self.server, self.key, batch)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status is None:
                break
            if status == 202:
                if body["last_seq"] - body["first_seq"] + 1 != len(batch):
                    raise AssertionError("202 for %d signals covers %r" % (len(batch), body))
                self.acked.append((body["first_seq"], body["last_seq"], batch))
            if self.pause:
                time.sleep(self.pause)

    def stop(self):
        self.stop_event.set()
        self.join(30)


def check_acked_stored(acked, stored, check):
    """Checks that every acknowledged signal is stored with the fields it
    was sent with. stored maps seq to the stored signal. Returns the
    number of signals checked."""
    checked = missing = changed = 0
    for first, last, batch in acked:
        for offset, sent in enumerate(batch):
            seq = first + offset
            checked += 1
            got = stored.get(seq)
            if got is None:
                missing += 1
                continue
            if any(got.get(f) != sent[f] for f in SIGNAL_FIELDS) or got.get("seq") != seq:
                changed += 1
    check(missing == 0, "%d of %d acknowledged signals are missing" % (missing, checked))
    check(changed == 0, "%d of %d acknowledged signals changed" % (changed, checked))
    return checked


def run_async(coro):
    """Runs a coroutine on a fresh event loop (for use inside threads)."""
    return asyncio.run(coro)


# ---- a raw WebSocket client for clients that read slowly or not at all ----

def ws_handshake(port, key, rcvbuf=None, timeout=10):
    """Opens a stream connection on a plain socket (subprotocol
    canary.v1.json, key in the Authorization header). rcvbuf shrinks the
    socket's receive buffer so that a client that stops reading is felt
    by the server soon. Returns the socket after the 101 response; bytes
    that came with the response stay in sock.leftover."""
    import base64
    import os
    import socket
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    nonce = base64.b64encode(os.urandom(16)).decode()
    request = ("GET /v1/canary/stream HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: canary.v1.json\r\n"
               "Authorization: Bearer %s\r\n\r\n" % (port, nonce, key))
    sock.sendall(request.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError("connection closed during the WebSocket handshake")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise AssertionError("handshake failed: %r" % head[:80])
    return sock, rest


def ws_send_text(sock, text):
    """Sends one masked text frame."""
    import os
    import struct
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    else:
        header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


class RawReader(threading.Thread):
    """Reads a raw stream connection at a set pace and collects its
    messages and close code. step_bytes are read, then the thread sleeps
    pause seconds; a pause of None means it never reads. Pings it reads
    get a pong, so a reading client looks alive to the server."""

    def __init__(self, sock, leftover=b"", step_bytes=65536, pause=0.0):
        super().__init__(daemon=True)
        self.sock, self.step_bytes, self.pause = sock, step_bytes, pause
        self.buffer = leftover
        self.messages = []
        self.close_code = None
        self.closed = threading.Event()
        self.stop_event = threading.Event()

    def run(self):
        import socket
        import struct
        try:
            while not self.stop_event.is_set():
                if self.pause is None:
                    time.sleep(0.05)
                    continue
                try:
                    chunk = self.sock.recv(self.step_bytes)
                except socket.timeout:
                    continue
                if not chunk:
                    break
                self.buffer += chunk
                while self._parse_frame(struct):
                    pass
                if self.close_code is not None:
                    break
                if self.pause:
                    time.sleep(self.pause)
        except OSError:
            pass
        self.closed.set()

    def _parse_frame(self, struct):
        data = self.buffer
        if len(data) < 2:
            return False
        opcode, length, offset = data[0] & 0x0F, data[1] & 0x7F, 2
        if length == 126:
            if len(data) < 4:
                return False
            length, offset = struct.unpack("!H", data[2:4])[0], 4
        elif length == 127:
            if len(data) < 10:
                return False
            length, offset = struct.unpack("!Q", data[2:10])[0], 10
        if len(data) < offset + length:
            return False
        payload = data[offset:offset + length]
        self.buffer = data[offset + length:]
        if opcode == 1:
            self.messages.extend(json.loads(line) for line in payload.decode().split("\n") if line)
        elif opcode == 8:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        elif opcode == 9:
            self._pong(payload)
        return True

    def _pong(self, payload):
        import os
        mask = os.urandom(4)
        frame = bytes([0x8A, 0x80 | len(payload)]) + mask + \
            bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        try:
            self.sock.sendall(frame)
        except OSError:
            pass

    def stop(self):
        self.stop_event.set()
        self.join(10)
        self.sock.close()

"""Guards of the stream: authentication paths and close codes, message size
and UTF-8 checks, slow consumers, dead peers, key revocation and shutdown."""

import asyncio
import base64
import os
import socket
import struct
import subprocess
import time

import websockets

from canary import (CANARYD, Canaryd, Stream, check, check_eq, expect_close,
                    get_json, ingest, make_signal, run_tests, test)


def raw_ws_connect(port, key=None, rcvbuf=None):
    """A WebSocket handshake on a plain socket, for clients that misbehave
    (no pong, invalid UTF-8, no reading) in ways a library will not."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    nonce = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET /v1/canary/stream HTTP/1.1", "Host: 127.0.0.1:%d" % port,
             "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: " + nonce, "Sec-WebSocket-Version: 13",
             "Sec-WebSocket-Protocol: canary.v1.json"]
    if key:
        lines.append("Authorization: Bearer " + key)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError("handshake closed")
        response += chunk
    if not response.startswith(b"HTTP/1.1 101"):
        raise AssertionError("handshake failed: %r" % response[:100])
    return sock


def raw_frame(opcode, payload):
    """A masked client frame."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    header = bytes([0x80 | opcode])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    else:
        header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    return header + mask + masked


def read_close_code(sock, timeout=10):
    """Reads frames until a close frame; returns its code, or None when the
    socket closed without one."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return None
        if not chunk:
            return None
        data += chunk
        while len(data) >= 2:
            opcode = data[0] & 0x0F
            length = data[1] & 0x7F
            offset = 2
            if length == 126:
                if len(data) < 4:
                    break
                length = struct.unpack("!H", data[2:4])[0]
                offset = 4
            elif length == 127:
                if len(data) < 10:
                    break
                length = struct.unpack("!Q", data[2:10])[0]
                offset = 10
            if len(data) < offset + length:
                break
            payload = data[offset:offset + length]
            data = data[offset + length:]
            if opcode == 8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
    return None


@test
async def authentication_paths():
    with Canaryd(settings={"auth_timeout_s": 1}) as srv:
        key = srv.key()
        no_scope = srv.key("read")

        s = await Stream.open(srv, key, auth_message=True)
        check_eq((await s.recv())["type"], "welcome", "first-message auth")
        await s.close()

        s = await Stream.open(srv, None)
        code, reason = await expect_close(s.ws)
        check_eq(code, 4401, "no auth within auth_timeout_s")

        s = await Stream.open(srv, "ck_bad")
        check_eq((await expect_close(s.ws))[0], 4401, "unknown key in the header")
        s = await Stream.open(srv, no_scope)
        check_eq((await expect_close(s.ws))[0], 4403, "key without the subscribe scope")
        s = await Stream.open(srv, None)
        await s.send({"op": "subscribe", "id": "x"})
        check_eq((await expect_close(s.ws))[0], 4401, "subscribe before auth")
        s = await Stream.open(srv, None)
        await s.ws.send("not json")
        check_eq((await expect_close(s.ws))[0], 4400, "a message that is not JSON")

        # No subprotocol requested: canary.v1.json is the default.
        ws = await websockets.connect(srv.ws, extra_headers={"Authorization": "Bearer " + key})
        check("welcome" in await ws.recv(), "default subprotocol")
        await ws.close()


@test
def message_size_and_utf8():
    with Canaryd(settings={"max_message_bytes": "4K"}) as srv:
        key = srv.key()
        sock = raw_ws_connect(srv.port, key)
        sock.sendall(raw_frame(1, b'{"op":"ping","pad":"' + b"x" * 5000 + b'"}'))
        check_eq(read_close_code(sock), 1009, "message over max_message_bytes")
        sock.close()

        sock = raw_ws_connect(srv.port, key)
        sock.sendall(raw_frame(1, b'{"op":"ping","x":"\xff\xfe"}'))
        check_eq(read_close_code(sock), 1007, "invalid UTF-8 in a text frame")
        sock.close()

        # A message in fragments below the limit is reassembled.
        msg = b'{"op":"ping","pad":"' + b"y" * 3000 + b'"}'
        sock = raw_ws_connect(srv.port, key)
        part1, part2 = msg[:1500], msg[1500:]
        mask = os.urandom(4)
        f1 = bytes([0x01, 0x80 | 126]) + struct.pack("!H", len(part1)) + mask + \
            bytes(b ^ mask[i % 4] for i, b in enumerate(part1))
        f2 = bytes([0x80, 0x80 | 126]) + struct.pack("!H", len(part2)) + mask + \
            bytes(b ^ mask[i % 4] for i, b in enumerate(part2))
        sock.sendall(f1 + f2)
        sock.settimeout(5)
        got = b""
        while b"pong" not in got:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        check(b'"type":"pong"' in got, "fragmented message answered")
        sock.close()


@test
async def slow_consumer_closed_with_4008():
    with Canaryd(settings={"outbound_queue_bytes": "64K"}) as srv:
        key = srv.key()
        slow = raw_ws_connect(srv.port, key, rcvbuf=4096)
        slow.sendall(raw_frame(1, b'{"op":"subscribe","id":"s"}'))
        fast = await Stream.open(srv, key)
        await fast.recv_type("welcome")
        await fast.subscribe("f")
        time.sleep(0.2)
        total = 0
        # Batches stay well under the queue limit, so only a subscriber
        # that stops reading can pass it. 15,000 signals are about 7 MB,
        # more than loopback socket buffers absorb.
        for round_ in range(300):
            status, body = ingest(srv, key, [make_signal(i) for i in range(50)])
            check_eq(status, 202, "ingest while a subscriber stalls")
            total += 50
            got = await fast.signals(50, timeout=30)
            check_eq(len(got), 50, "the fast subscriber keeps up")
        # The stalled socket never read; the server must have given up on it.
        code = read_close_code(slow, timeout=10)
        check_eq(code, 4008, "slow consumer close code")
        slow.close()
        _, metrics = get_json(srv.http + "/healthz", None)
        check_eq(metrics["head_seq"], total, "every signal stored")
        await fast.close()


@test
def dead_peer_dropped_after_idle_timeout():
    with Canaryd(settings={"ping_interval_s": 1, "idle_timeout_s": 3}) as srv:
        key = srv.key()
        sock = raw_ws_connect(srv.port, key)
        started = time.time()
        sock.settimeout(10)
        closed = False
        while time.time() - started < 10:
            try:
                if not sock.recv(65536):
                    closed = True
                    break
            except (ConnectionResetError, socket.timeout):
                closed = True
                break
        elapsed = time.time() - started
        check(closed, "silent peer dropped")
        check(2.5 < elapsed < 7, "dropped after about idle_timeout_s, took %.1f s" % elapsed)
        sock.close()


@test
async def live_peer_survives_pings():
    with Canaryd(settings={"ping_interval_s": 1, "idle_timeout_s": 3}) as srv:
        key = srv.key()
        s = await Stream.open(srv, key)
        await s.recv_type("welcome")
        await s.subscribe("s")
        await asyncio.sleep(5)
        ingest(srv, key, [make_signal(1)])
        got = await s.signals(1)
        check_eq(len(got), 1, "a client that answers pings stays connected")
        await s.close()


@test
async def revoked_key_closes_stream():
    with Canaryd() as srv:
        key = srv.key()
        s = await Stream.open(srv, key)
        await s.recv_type("welcome")
        started = time.time()
        subprocess.run([CANARYD, "keys", "revoke", "--data-dir", srv.data_dir, key.split("_")[1]],
                       check=True, capture_output=True)
        code, _ = await expect_close(s.ws, timeout=10)
        check_eq(code, 4403, "revoked key's stream closed")
        check(time.time() - started < 5, "within 5 seconds")


@test
async def shutdown_closes_with_1001():
    srv = Canaryd().start()
    key = srv.key()
    s = await Stream.open(srv, key)
    await s.recv_type("welcome")
    srv.proc.terminate()
    code, _ = await expect_close(s.ws, timeout=10)
    check_eq(code, 1001, "close code on SIGTERM")
    srv.stop()


run_tests()

"""A scripted stand-in for canaryd's WebSocket stream, for client tests.

It speaks the canary.v1.json stream protocol on a loopback port: a welcome,
then "subscribed", a replay of the stored signals above since_seq, batched
several messages to a text frame, "replay_done", then live signals added by
the test with add_signals(). Knobs make it misbehave the way a real server
or network may: drop a connection part-way, close with a given code,
fragment large messages, reject the filter.

The server runs its own asyncio loop in a background thread, so that a
synchronous test can start a client process and inspect what the server
received (subscribe_requests, connections).

Run it alone for manual checks:
    python3 fake_stream_server.py --port 8765 --signals 20
"""

import argparse
import asyncio
import http
import json
import threading
import time

import websockets

STREAM_PATH = "/v1/canary/stream"
SUBPROTOCOL = "canary.v1.json"


def make_signal(seq, pad_bytes=0):
    """Return a valid signal object with the given seq, in field order."""
    signal = {
        "id": f"sig_{seq}",
        "seq": seq,
        "event_type": "credential_testing",
        "confidence": "high",
        "source_region": "NL",
        "proxy_type": "datacenter",
        "threat_stage": "ATTACK",
        "related_domain": "example.com",
        "timestamp": "2026-01-03T04:05:06Z",
        "recommended_action": "block",
    }
    if pad_bytes:
        signal["campaign_id"] = "camp_" + "x" * pad_bytes
    return signal


class FakeStreamServer:
    """A loopback stream server whose behaviour a test sets per connection.

    key: the only accepted bearer key; other keys get close code 4401.
    epoch: the store id sent in each welcome.
    signals: how many stored signals (seq 1..N) exist at start.
    batch: messages per text frame.
    drop_after: on the connections listed in drop_connections (1-based),
        stop after sending this many signals, by closing with drop_code or,
        when drop_code is None, by cutting the TCP connection (code 1006).
    close_code: close every connection with this code right after welcome.
    reject_filter: reply to the subscribe with an invalid_filter error.
    big_seqs / big_pad_bytes / fragment_bytes: signals whose seq is in
        big_seqs carry big_pad_bytes of padding and are sent alone, as one
        message in fragments of fragment_bytes (0: one frame).
    http_status: reject the upgrade with this HTTP status instead.
    ignore_since: replay from seq 1 whatever the client asks, to test that
        the client drops signals it printed before.
    ssl_context: an ssl.SSLContext to serve wss:// instead of ws://.
    """

    def __init__(self, key="test-key", epoch="epoch-a", signals=0, batch=3,
                 drop_after=None, drop_connections=(1,), drop_code=None,
                 close_code=None, reject_filter=False, big_seqs=(),
                 big_pad_bytes=0, fragment_bytes=0, http_status=None,
                 ignore_since=False, ssl_context=None):
        self.key = key
        self.epoch = epoch
        self.batch = batch
        self.drop_after = drop_after
        self.drop_connections = set(drop_connections)
        self.drop_code = drop_code
        self.close_code = close_code
        self.reject_filter = reject_filter
        self.big_seqs = set(big_seqs)
        self.big_pad_bytes = big_pad_bytes
        self.fragment_bytes = fragment_bytes
        self.http_status = http_status
        self.ignore_since = ignore_since
        self.ssl_context = ssl_context

        self.store = [self._signal(seq) for seq in range(1, signals + 1)]
        self.subscribe_requests = []
        self.connections = 0
        self.auth_headers_seen = 0
        self.close_codes_received = []
        self.port = None

        self._loop = None
        self._thread = None
        self._server = None
        self._ready = threading.Event()
        self._stored = None  # asyncio.Condition, created in the loop

    def _signal(self, seq):
        pad = self.big_pad_bytes if seq in self.big_seqs else 0
        return make_signal(seq, pad)

    # Thread-safe API for tests.

    def start(self):
        """Start serving on 127.0.0.1 and return the chosen port."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake stream server did not start within 10 s")
        return self.port

    def stop(self):
        """Close every connection and stop the loop."""
        if self._loop:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)

    def add_signals(self, count):
        """Append count live signals with the next seq values."""
        future = asyncio.run_coroutine_threadsafe(self._append(count), self._loop)
        future.result(10)

    def wait_for(self, predicate, timeout=10.0):
        """Poll predicate() until it is true; return False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return False

    # Server internals, run in the server thread.

    def _run(self):
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._ready.set()
        self._loop.run_forever()
        self._server.close()
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.close()

    async def _serve(self):
        self._stored = asyncio.Condition()
        self._server = await websockets.serve(
            self._handle, "127.0.0.1", 0, subprotocols=[SUBPROTOCOL],
            process_request=self._check_request, max_size=1 << 20,
            ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _append(self, count):
        async with self._stored:
            head = len(self.store)
            self.store.extend(self._signal(seq)
                              for seq in range(head + 1, head + count + 1))
            self._stored.notify_all()

    async def _check_request(self, path, headers):
        if path.split("?")[0] != STREAM_PATH:
            return http.HTTPStatus.NOT_FOUND, [], b"no such path\n"
        if self.http_status:
            return http.HTTPStatus(self.http_status), [], b"rejected\n"
        return None

    async def _handle(self, ws, path):
        self.connections += 1
        session = asyncio.ensure_future(self._session(ws, self.connections))
        closed = asyncio.ensure_future(ws.wait_closed())
        # The session may wait for live signals, so watch for the close too.
        await asyncio.wait({session, closed}, return_when=asyncio.FIRST_COMPLETED)
        if not session.done():
            session.cancel()
        await asyncio.gather(session, return_exceptions=True)
        await ws.wait_closed()
        if ws.close_rcvd:
            self.close_codes_received.append(ws.close_rcvd.code)

    async def _session(self, ws, number):
        authorization = ws.request_headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            self.auth_headers_seen += 1
        if authorization != f"Bearer {self.key}":
            await ws.close(4401, "unauthenticated")
            return

        await ws.send(json.dumps({"type": "welcome", "server": "canaryd/fake",
                                  "epoch": self.epoch,
                                  "head_seq": len(self.store)}))
        if self.close_code:
            await ws.close(self.close_code, "closed by the test")
            return

        request = json.loads(await asyncio.wait_for(ws.recv(), 10))
        self.subscribe_requests.append(request)
        sub = request.get("id")
        if self.reject_filter:
            await ws.send(json.dumps({"type": "error", "code": "invalid_filter",
                                      "message": "unknown event type 'x'",
                                      "ref": sub}))
            await ws.wait_closed()
            return

        await ws.send(json.dumps({"type": "subscribed", "id": sub,
                                  "head_seq": len(self.store)}))
        if self.ignore_since:
            after = 0
        elif "since_seq" in request:
            after = request["since_seq"]
        elif "since_time" in request:
            after = 0
        else:
            after = len(self.store)
        drop_after = self.drop_after if number in self.drop_connections else None
        await self._stream(ws, sub, after, drop_after)

    async def _stream(self, ws, sub, after, drop_after):
        sent = 0
        replaying = True
        while True:
            async with self._stored:
                if not replaying:
                    await self._stored.wait_for(lambda: len(self.store) > after)
                pending = self.store[after:]
            frame = []
            for signal in pending:
                if drop_after is not None and sent >= drop_after:
                    await self._send_frame(ws, frame)
                    await self._drop(ws)
                    return
                message = json.dumps({"type": "signal", "sub": sub, "signal": signal})
                if signal["seq"] in self.big_seqs:
                    await self._send_frame(ws, frame)
                    frame = []
                    await self._send_fragmented(ws, message)
                else:
                    frame.append(message)
                if len(frame) >= self.batch:
                    await self._send_frame(ws, frame)
                    frame = []
                sent += 1
                after = signal["seq"]
            await self._send_frame(ws, frame)
            if replaying:
                await ws.send(json.dumps({"type": "replay_done", "sub": sub, "seq": after}))
                replaying = False

    async def _send_frame(self, ws, messages):
        if messages:
            await ws.send("\n".join(messages))
            messages.clear()

    async def _send_fragmented(self, ws, message):
        step = self.fragment_bytes
        if not step:
            await ws.send(message)
            return
        await ws.send([message[i:i + step] for i in range(0, len(message), step)])

    async def _drop(self, ws):
        if self.drop_code is None:
            ws.transport.abort()
        else:
            await ws.close(self.drop_code, "dropped by the test")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--signals", type=int, default=10)
    parser.add_argument("--key", default="test-key")
    args = parser.parse_args()

    server = FakeStreamServer(key=args.key, signals=args.signals)

    async def run():
        server._stored = asyncio.Condition()
        async with websockets.serve(server._handle, "127.0.0.1", args.port,
                                    subprotocols=[SUBPROTOCOL],
                                    process_request=server._check_request):
            print(f"serving ws://127.0.0.1:{args.port}{STREAM_PATH}", flush=True)
            await asyncio.Future()

    asyncio.run(run())


if __name__ == "__main__":
    main()

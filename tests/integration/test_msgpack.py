"""MessagePack on the wire: the canary.v1.msgpack stream subprotocol and
application/msgpack ingest, against a real canaryd."""

import asyncio
import json
import subprocess

import msgpack
import websockets

from canary import (SENSOR, TAIL, Canaryd, get_json, check, check_eq, expect_close, ingest, make_signal,
                    run_tests, test)


class MsgpackStream:
    """A canary.v1.msgpack client: binary frames of back-to-back maps."""

    def __init__(self, ws):
        self.ws = ws
        self.pending = []
        self.frames = 0

    @classmethod
    async def open(cls, server, key):
        ws = await websockets.connect(server.ws, subprotocols=["canary.v1.msgpack"],
                                      extra_headers={"Authorization": "Bearer " + key},
                                      max_size=16 << 20)
        return cls(ws)

    async def send(self, obj):
        await self.ws.send(msgpack.packb(obj))

    async def recv(self, timeout=10):
        while not self.pending:
            frame = await asyncio.wait_for(self.ws.recv(), timeout)
            if not isinstance(frame, bytes):
                raise AssertionError("text frame on canary.v1.msgpack: %r" % frame[:100])
            self.frames += 1
            unpacker = msgpack.Unpacker(raw=False, strict_map_key=True)
            unpacker.feed(frame)
            self.pending.extend(unpacker)
        return self.pending.pop(0)

    async def recv_type(self, type_, timeout=10):
        while True:
            msg = await self.recv(timeout)
            if msg.get("type") == type_:
                return msg


@test
async def stream_msgpack_welcome_and_signals():
    with Canaryd() as srv:
        key = srv.key()
        s = await MsgpackStream.open(srv, key)
        welcome = await s.recv()
        check_eq(welcome.get("type"), "welcome", "first message type")
        check(isinstance(welcome.get("head_seq"), int), "head_seq is an integer")
        check(welcome.get("server", "").startswith("canaryd/"), "server name")

        await s.send({"op": "subscribe", "id": "m1", "filter": {"domains": ["shop.example"]}})
        sub = await s.recv_type("subscribed")
        check_eq(sub.get("id"), "m1", "subscribed id")

        sigs = [make_signal(i) for i in range(30)]
        status, body = ingest(srv, key, sigs)
        check_eq(status, 202, "ingest status")
        want = [i for i in range(30) if sigs[i]["related_domain"] == "shop.example"]
        got = []
        while len(got) < len(want):
            msg = await s.recv_type("signal")
            check_eq(msg.get("sub"), "m1", "signal's sub")
            got.append(msg["signal"])
        check_eq([g["related_domain"] for g in got], ["shop.example"] * len(want), "domains")
        seqs = [g["seq"] for g in got]
        check(seqs == sorted(seqs), "seq order")
        check(all(isinstance(x, int) for x in seqs), "seq is an integer")
        check_eq(got[0]["id"], "sig_%d" % got[0]["seq"], "id field")
        check_eq(got[0]["event_type"], sigs[want[0]]["event_type"], "event_type")
        check_eq(got[0]["timestamp"], sigs[want[0]]["timestamp"], "timestamp")
        await s.ws.close()


@test
async def stream_msgpack_batches_under_load():
    """Many maps arrive back to back in one binary frame."""
    with Canaryd() as srv:
        key = srv.key()
        s = await MsgpackStream.open(srv, key)
        await s.recv_type("welcome")
        await s.send({"op": "subscribe", "id": "all"})
        await s.recv_type("subscribed")
        status, _ = ingest(srv, key, [make_signal(i) for i in range(500)])
        check_eq(status, 202, "ingest status")
        seqs = []
        while len(seqs) < 500:
            msg = await s.recv_type("signal")
            seqs.append(msg["signal"]["seq"])
        check_eq(seqs, list(range(seqs[0], seqs[0] + 500)), "500 consecutive seqs")
        check(s.frames < 500, "several maps per frame (%d frames)" % s.frames)
        await s.ws.close()


@test
async def stream_msgpack_replay_and_json_ops():
    """Replay works over msgpack, and a JSON text op is accepted too."""
    with Canaryd() as srv:
        key = srv.key()
        status, body = ingest(srv, key, [make_signal(i) for i in range(20)])
        check_eq(status, 202, "ingest status")
        s = await MsgpackStream.open(srv, key)
        await s.recv_type("welcome")
        await s.ws.send(json.dumps({"op": "subscribe", "id": "r", "since_seq": 0}))
        await s.recv_type("subscribed")
        seqs = []
        while len(seqs) < 20:
            seqs.append((await s.recv_type("signal"))["signal"]["seq"])
        check_eq(seqs, list(range(body["first_seq"], body["last_seq"] + 1)), "replayed seqs")
        done = await s.recv_type("replay_done")
        check_eq(done.get("seq"), body["last_seq"], "replay_done seq")
        await s.send({"op": "ping"})
        check_eq((await s.recv_type("pong")).get("type"), "pong", "pong")
        await s.ws.close()


@test
async def stream_msgpack_bad_input():
    with Canaryd() as srv:
        key = srv.key()
        # A filter error keeps the connection open.
        s = await MsgpackStream.open(srv, key)
        await s.recv_type("welcome")
        await s.send({"op": "subscribe", "id": "x", "filter": {"stages": ["attak"]}})
        err = await s.recv_type("error")
        check_eq(err.get("code"), "invalid_filter", "error code")
        await s.send({"op": "ping"})
        await s.recv_type("pong")
        # Garbage, integer map keys, duplicate keys and deep nesting close
        # with 4400.
        for bad in (b"\xc1", msgpack.packb({1: 2}), b"\x82\xa2op\xa4ping\xa2op\xa4ping",
                    b"\x91" * 100000 + b"\xc0", msgpack.packb([1, 2])):
            s2 = await MsgpackStream.open(srv, key)
            await s2.recv_type("welcome")
            await s2.ws.send(bad)
            code, _ = await expect_close(s2.ws)
            check_eq(code, 4400, "close code for %r" % bad[:12])
        # A binary frame on the JSON protocol is refused.
        ws = await websockets.connect(srv.ws, subprotocols=["canary.v1.json"],
                                      extra_headers={"Authorization": "Bearer " + key})
        await ws.recv()
        await ws.send(msgpack.packb({"op": "ping"}))
        code, _ = await expect_close(ws)
        check_eq(code, 4400, "binary frame on canary.v1.json")
        await s.ws.close()


@test
def ingest_msgpack_body():
    with Canaryd() as srv:
        key = srv.key()
        body = msgpack.packb([make_signal(i) for i in range(5)])
        status, resp = ingest(srv, key, None, content_type="application/msgpack", raw=body)
        check_eq(status, 202, "array of maps")
        check_eq(resp.get("accepted"), 5, "accepted")
        check_eq(resp.get("last_seq") - resp.get("first_seq"), 4, "seq range")

        status, resp = ingest(srv, key, None, content_type="application/msgpack",
                              raw=msgpack.packb(make_signal(7)))
        check_eq(status, 202, "one map")
        check_eq(resp.get("accepted"), 1, "accepted one")

        bad = [make_signal(0), make_signal(1, confidence="extreme")]
        status, resp = ingest(srv, key, None, content_type="application/msgpack",
                              raw=msgpack.packb(bad))
        check_eq(status, 400, "invalid item")
        errors = resp.get("errors", [])
        check_eq([e.get("index") for e in errors], [1], "bad item index")
        check_eq(errors[0].get("field") if errors else None, "confidence", "bad field")

        status, _ = ingest(srv, key, None, content_type="application/msgpack",
                           raw=msgpack.packb([make_signal(0)])[:-5])
        check_eq(status, 400, "truncated body")


@test
def tail_prints_msgpack_stream_as_json():
    with Canaryd() as srv:
        key = srv.key()
        sigs = [make_signal(i) for i in range(12)]
        status, body = ingest(srv, key, sigs)
        check_eq(status, 202, "ingest status")
        proc = subprocess.run([TAIL, "--url", "ws://127.0.0.1:%d" % srv.port, "--key", key,
                               "--format", "msgpack", "--since-seq", "0",
                               "--domain", "bank.example", "--max-signals", "4"],
                              capture_output=True, text=True, timeout=30)
        check_eq(proc.returncode, 0, "canary-tail exit status (stderr: %s)" % proc.stderr[-300:])
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line]
        check_eq(len(lines), 4, "printed signals")
        check_eq([x["related_domain"] for x in lines], ["bank.example"] * 4, "domains")
        check_eq([x["seq"] for x in lines], [body["first_seq"] + 3 * k for k in range(4)],
                 "seqs of bank.example")


@test
def sensor_posts_msgpack_bodies():
    with Canaryd() as srv:
        key = srv.key()
        lines = "".join(json.dumps(make_signal(i)) + "\n" for i in range(7))
        proc = subprocess.run([SENSOR, "--url", srv.http, "--key", key, "--format", "signals",
                               "--body", "msgpack", "--batch", "3"],
                              input=lines, capture_output=True, text=True, timeout=60)
        check_eq(proc.returncode, 0, "canary-sensor exit status (stderr: %s)" % proc.stderr[-300:])
        check("7 lines read, 7 signals sent in 3 batches" in proc.stderr,
              "summary: %s" % proc.stderr[-200:])
        status, listing = get_json(srv.http + "/v1/canary/signals?limit=10", key)
        check_eq(status, 200, "list status")
        check_eq(listing.get("total_count"), 7, "stored signals")
        got = sorted(x["timestamp"] for x in listing.get("signals", []))
        check_eq(got, sorted(make_signal(i)["timestamp"] for i in range(7)), "timestamps")



@test
def sensor_summary_singular_for_one():
    with Canaryd() as srv:
        key = srv.key()
        proc = subprocess.run([SENSOR, "--url", srv.http, "--key", key, "--format", "signals"],
                              input=json.dumps(make_signal(0)) + "\n",
                              capture_output=True, text=True, timeout=60)
        check_eq(proc.returncode, 0, "canary-sensor exit status (stderr: %s)" % proc.stderr[-300:])
        summary = proc.stderr[-300:]
        check("1 line read, 1 signal sent in 1 batch in " in proc.stderr, "summary: %s" % summary)
        check("0 retries" in proc.stderr, "plural for 0: %s" % summary)


run_tests()

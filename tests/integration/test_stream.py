"""The stream end to end: filtered push after commit, resume without gap or
duplicate while ingest continues, since_time, restart, and the errors a
subscriber can cause. The WebSocket client is Debian's python3-websockets."""

import asyncio
import threading
import time

from canary import (Canaryd, Stream, check, check_eq, get_json, ingest,
                    make_signal, run_tests, test)

CONF_ORDER = {"low": 0, "medium": 1, "high": 2}


def matches(sig, domains=None, min_confidence=None, stages=None):
    """The filter rule, written independently of the server's."""
    if domains is not None:
        ok = False
        for d in domains:
            if d.startswith("*."):
                ok = ok or sig["related_domain"].endswith(d[1:])
            else:
                ok = ok or sig["related_domain"] == d
        if not ok:
            return False
    if min_confidence and CONF_ORDER[sig["confidence"]] < CONF_ORDER[min_confidence]:
        return False
    if stages and sig["threat_stage"] not in stages:
        return False
    return True


@test
async def filtered_push_after_commit():
    with Canaryd() as srv:
        key = srv.key()
        s = await Stream.open(srv, key)
        welcome = await s.recv()
        check_eq(welcome["type"], "welcome", "first message type")
        check(welcome["server"].startswith("canaryd/"), "welcome names the server")
        check_eq(len(welcome["epoch"]), 32, "epoch length")
        flt = {"domains": ["*.bank.example"], "min_confidence": "medium"}
        await s.subscribe("watch", flt)

        batch = [make_signal(i) for i in range(60)]
        status, body = ingest(srv, key, batch)
        check_eq(status, 202, "ingest status")
        check_eq(body["accepted"], 60, "accepted")
        check_eq(body["last_seq"] - body["first_seq"], 59, "seq range")

        expected = [body["first_seq"] + i for i, sig in enumerate(batch)
                    if matches(sig, ["*.bank.example"], "medium")]
        got = await s.signals(len(expected))
        check_eq([m["signal"]["seq"] for m in got], expected, "pushed seqs")
        check(all(m["sub"] == "watch" for m in got), "sub id on every message")
        first = got[0]["signal"]
        check_eq(first["id"], "sig_%d" % first["seq"], "signal id")
        check_eq(first["related_domain"], "login.bank.example", "domain")
        # Nothing else may follow: the next message is our own pong.
        await s.send({"op": "ping"})
        check_eq((await s.recv())["type"], "pong", "no extra signal before pong")
        await s.close()


@test
async def resume_under_concurrent_ingest():
    with Canaryd(settings={"replay_chunk_signals": 16}) as srv:
        key = srv.key()
        status, first = ingest(srv, key, [make_signal(i) for i in range(500)])
        check_eq(status, 202, "initial ingest")

        stop = threading.Event()
        sent = []

        def produce():
            i = 500
            while not stop.is_set() and i < 6000:
                batch = [make_signal(j) for j in range(i, i + 50)]
                st, body = ingest(srv, key, batch)
                if st == 202:
                    sent.extend(zip(range(body["first_seq"], body["last_seq"] + 1), batch))
                i += 50

        producer = threading.Thread(target=produce)
        producer.start()
        await asyncio.sleep(0.2)

        flt = {"domains": ["bank.example", "*.bank.example"], "stages": ["ATTACK"]}
        cursor = 123
        s = await Stream.open(srv, key)
        await s.recv_type("welcome")
        await s.subscribe("all", None, since_seq=cursor)
        await s.subscribe("some", flt, since_seq=cursor)
        await asyncio.sleep(1.0)
        stop.set()
        producer.join()

        all_seqs = [first["first_seq"] + i for i in range(500)] + [q for q, _ in sent]
        all_sigs = {first["first_seq"] + i: make_signal(i) for i in range(500)}
        all_sigs.update(dict(sent))
        want_all = [q for q in all_seqs if q > cursor]
        want_some = [q for q in want_all if matches(all_sigs[q], flt["domains"], None, ["ATTACK"])]

        got = {"all": [], "some": []}
        deadline = time.time() + 60
        while (len(got["all"]) < len(want_all) or len(got["some"]) < len(want_some)) \
                and time.time() < deadline:
            msg = await s.recv(timeout=20)
            if msg["type"] == "signal":
                got[msg["sub"]].append(msg["signal"]["seq"])
        check_eq(got["all"], want_all, "every seq after the cursor, once, in order")
        check_eq(got["some"], want_some, "filtered resume")
        check(len(want_all) > 1000, "the producer ran during the replay (%d signals)" % len(want_all))
        await s.close()


@test
async def replay_done_then_live():
    with Canaryd() as srv:
        key = srv.key()
        _, body = ingest(srv, key, [make_signal(i) for i in range(10)])
        s = await Stream.open(srv, key)
        await s.recv_type("welcome")
        await s.subscribe("s1", None, since_seq=0)
        got = await s.signals(10)
        check_eq([m["signal"]["seq"] for m in got], list(range(1, 11)), "replay from the oldest")
        done = await s.recv()
        check_eq(done, {"type": "replay_done", "sub": "s1", "seq": 10}, "replay_done")
        _, body = ingest(srv, key, [make_signal(3)])
        live = await s.signals(1)
        check_eq(live[0]["signal"]["seq"], 11, "live after replay")
        await s.close()


@test
async def since_time_replays_by_observed_time():
    with Canaryd() as srv:
        key = srv.key()
        sigs = [make_signal(i, timestamp="2026-11-0%dT10:00:00+09:00" % d)
                for i, d in enumerate([3, 1, 4, 1, 5, 2, 6])]
        _, body = ingest(srv, key, sigs)
        s = await Stream.open(srv, key)
        await s.recv_type("welcome")
        await s.subscribe("t", None, since_time="2026-11-04T01:00:00Z")
        expect = [body["first_seq"] + i for i, d in enumerate([3, 1, 4, 1, 5, 2, 6]) if d >= 4]
        got = await s.signals(len(expect))
        check_eq([m["signal"]["seq"] for m in got], expect, "signals observed at or after since_time")
        check_eq(got[0]["signal"]["timestamp"], "2026-11-04T01:00:00Z", "offset converted to UTC")
        done = await s.recv()
        check_eq(done["type"], "replay_done", "replay_done after since_time replay")
        await s.close()


@test
async def restart_keeps_epoch_and_seq():
    srv = Canaryd().start()
    key = srv.key()
    ingest(srv, key, [make_signal(i) for i in range(5)])
    _, health = get_json(srv.http + "/healthz", None)
    srv.stop()
    srv.start()
    _, health2 = get_json(srv.http + "/healthz", None)
    check_eq(health2["epoch"], health["epoch"], "epoch after restart")
    check_eq(health2["head_seq"], 5, "head_seq after restart")
    status, body = ingest(srv, key, [make_signal(9)])
    check_eq(body["first_seq"], 6, "seq continues after restart")
    srv.stop()


@test
async def foreign_cursor_gets_epoch_gap():
    with Canaryd() as srv:
        key = srv.key()
        ingest(srv, key, [make_signal(i) for i in range(3)])
        s = await Stream.open(srv, key)
        await s.recv_type("welcome")
        await s.subscribe("e", None, since_seq=2, epoch="0" * 32)
        gap = await s.recv()
        check_eq((gap["type"], gap["reason"]), ("gap", "epoch"), "gap for a foreign epoch")
        got = await s.signals(3)
        check_eq([m["signal"]["seq"] for m in got], [1, 2, 3], "whole store follows the epoch gap")
        s2 = await Stream.open(srv, key)
        await s2.recv_type("welcome")
        await s2.subscribe("f", None, since_seq=99)
        gap = await s2.recv()
        check_eq(gap["reason"], "epoch", "cursor past the head is from another store")
        await s.close()
        await s2.close()


@test
async def subscription_errors_keep_connection():
    with Canaryd(settings={"max_subscriptions": 2}) as srv:
        key = srv.key()
        s = await Stream.open(srv, key)
        await s.recv_type("welcome")
        cases = [
            ({"op": "subscribe", "id": "a", "filter": {"colour": ["red"]}}, "invalid_filter"),
            ({"op": "subscribe", "id": "a", "filter": {"stages": ["NOPE"]}}, "invalid_filter"),
            ({"op": "subscribe", "id": "a", "filter": {"domains": ["exa mple.com"]}}, "invalid_filter"),
            ({"op": "subscribe", "id": "a", "since_seq": -1}, "invalid_request"),
            ({"op": "subscribe", "id": "a", "since_seq": 1.5}, "invalid_request"),
            ({"op": "subscribe", "id": "a", "since_time": "2026-01-01T00:00:00"}, "invalid_request"),
            ({"op": "subscribe"}, "invalid_request"),
            ({"op": "dance"}, "unknown_op"),
            ({"op": "unsubscribe", "id": "zz"}, "unknown_subscription"),
        ]
        for msg, code in cases:
            await s.send(msg)
            reply = await s.recv()
            check_eq((reply["type"], reply.get("code")), ("error", code), "reply to %r" % msg)
        await s.send({"op": "dance", "id": "d1"})
        reply = await s.recv()
        check("\"dance\"" in reply.get("message", ""), "unknown op quoted: %r" % reply)
        check_eq(reply.get("ref"), "d1", "unknown op error refers to its id")
        await s.subscribe("a")
        await s.subscribe("b")
        await s.send({"op": "subscribe", "id": "a"})
        check_eq((await s.recv()).get("code"), "duplicate_subscription", "duplicate id")
        await s.send({"op": "subscribe", "id": "c"})
        check_eq((await s.recv()).get("code"), "too_many_subscriptions", "subscription limit")
        await s.send({"op": "unsubscribe", "id": "a"})
        check_eq((await s.recv())["type"], "unsubscribed", "unsubscribe reply")
        await s.subscribe("c")
        await s.close()


@test
def replies_before_bad_message_delivered():
    """Messages that arrive together: the replies to those before a bad one
    are delivered before the 4400 close."""
    import json
    from reliability import RawReader, ws_handshake, ws_send_text

    class Frames:
        """Collects frames, to send them in one write."""
        def __init__(self):
            self.data = b""

        def sendall(self, data):
            self.data += data

    with Canaryd() as srv:
        key = srv.key()
        for _ in range(3):
            sock, leftover = ws_handshake(srv.port, key)
            frames = Frames()
            ws_send_text(frames, json.dumps({"op": "subscribe", "id": "s1"}))
            ws_send_text(frames, json.dumps({"op": "ping"}))
            ws_send_text(frames, "not json")
            sock.sendall(frames.data)
            reader = RawReader(sock, leftover)
            reader.start()
            check(reader.closed.wait(10), "connection closed")
            types = [m.get("type") for m in reader.messages]
            check_eq(reader.close_code, 4400, "close code")
            check("subscribed" in types, "subscribe reply delivered: %r" % types)
            check("pong" in types, "ping reply delivered: %r" % types)
            reader.stop()
            sock.close()


run_tests()

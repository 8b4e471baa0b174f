"""The canary.v1.ingest WebSocket subprotocol: batches in, acks out."""

import asyncio
import json

import msgpack
import websockets

from canary import (Canaryd, Stream, check, check_eq, expect_close, make_signal,
                    run_tests, test)


async def open_ingest(srv, key=None, auth_message=False, path="/v1/canary/signals"):
    headers = {}
    if key and not auth_message:
        headers["Authorization"] = "Bearer " + key
    ws = await websockets.connect("ws://127.0.0.1:%d%s" % (srv.port, path),
                                  subprotocols=["canary.v1.ingest"],
                                  extra_headers=headers, max_size=16 << 20)
    if key and auth_message:
        await ws.send(json.dumps({"op": "auth", "token": key}))
    return ws


async def reply(ws, timeout=10):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


@test
async def ingest_ws_acks_each_batch():
    with Canaryd() as srv:
        key = srv.key()
        ws = await open_ingest(srv, key)
        welcome = await reply(ws)
        check_eq(welcome.get("type"), "welcome", "welcome")

        await ws.send(json.dumps([make_signal(i) for i in range(10)]))
        ack = await reply(ws)
        check_eq(ack.get("type"), "ack", "ack type")
        check_eq(ack.get("accepted"), 10, "accepted")
        check_eq(ack.get("last_seq") - ack.get("first_seq"), 9, "seq range")

        ndjson = "\n".join(json.dumps(make_signal(i)) for i in range(3)) + "\n"
        await ws.send(ndjson)
        ack2 = await reply(ws)
        check_eq(ack2.get("first_seq"), ack["last_seq"] + 1, "next batch follows")
        check_eq(ack2.get("accepted"), 3, "ndjson accepted")

        await ws.send(json.dumps(make_signal(1)))
        check_eq((await reply(ws)).get("accepted"), 1, "single object")

        await ws.send(msgpack.packb([make_signal(i) for i in range(4)]))
        ack4 = await reply(ws)
        check_eq(ack4.get("type"), "ack", "msgpack batch acked")
        check_eq(ack4.get("accepted"), 4, "msgpack accepted")
        await ws.close()


@test
async def ingest_ws_pipelined_batches_in_order():
    with Canaryd() as srv:
        key = srv.key()
        ws = await open_ingest(srv, key)
        await reply(ws)
        for b in range(20):
            await ws.send(json.dumps([make_signal(b * 5 + i) for i in range(5)]))
        acks = [await reply(ws) for _ in range(20)]
        check(all(a.get("type") == "ack" for a in acks), "all acked")
        check_eq([a.get("batch") for a in acks], list(range(1, 21)), "batch numbers")
        firsts = [a["first_seq"] for a in acks]
        check_eq(firsts, list(range(firsts[0], firsts[0] + 100, 5)), "acks in order")
        await ws.close()


@test
async def ingest_ws_rejects_bad_batch_and_stays_open():
    with Canaryd() as srv:
        key = srv.key()
        ws = await open_ingest(srv, key)
        await reply(ws)
        bad = [make_signal(0), make_signal(1, threat_stage="LATER"), make_signal(2, timestamp="x")]
        await ws.send(json.dumps(bad))
        err = await reply(ws)
        check_eq(err.get("type"), "error", "error type")
        check_eq(err.get("code"), "invalid_batch", "error code")
        check_eq(sorted(e["index"] for e in err.get("errors", [])), [1, 2], "bad indexes")
        check_eq(err.get("error_count"), 2, "error_count")
        check_eq(err.get("batch"), 1, "batch number of the rejected message")

        await ws.send("not json at all")
        err2 = await reply(ws)
        check_eq(err2.get("code"), "invalid_batch", "unparsable text")

        await ws.send(b"\xc1\xc1")
        err3 = await reply(ws)
        check_eq(err3.get("code"), "invalid_batch", "bad msgpack")

        # Nothing of the rejected batches was stored: the next batch starts
        # at seq 1.
        far = make_signal(6, timestamp="2030-01-01T00:00:00Z")
        await ws.send(json.dumps([make_signal(5), far]))
        err4 = await reply(ws)
        check_eq([(e["index"], e["field"]) for e in err4.get("errors", [])], [(1, "timestamp")],
                 "a signal far ahead of the server's clock")

        await ws.send(json.dumps([make_signal(5)]))
        ack = await reply(ws)
        check_eq(ack.get("first_seq"), 1, "nothing stored before")
        await ws.close()


@test
async def ingest_ws_signals_reach_subscribers():
    with Canaryd() as srv:
        key = srv.key()
        sub = await Stream.open(srv, key)
        await sub.recv_type("welcome")
        await sub.subscribe("s1", {"domains": ["bank.example"]})
        ws = await open_ingest(srv, key, auth_message=True)
        check_eq((await reply(ws)).get("type"), "welcome", "welcome after auth message")
        await ws.send(json.dumps([make_signal(i) for i in range(9)]))
        ack = await reply(ws)
        got = await sub.signals(3)
        check_eq([g["signal"]["related_domain"] for g in got], ["bank.example"] * 3, "domains")
        check(all(ack["first_seq"] <= g["signal"]["seq"] <= ack["last_seq"] for g in got),
              "delivered seqs are in the acked range")
        await ws.close()
        await sub.close()


@test
async def ingest_ws_auth_and_scope():
    with Canaryd() as srv:
        reader = srv.key(scopes="read,subscribe")
        ws = await open_ingest(srv, reader)
        code, _ = await expect_close(ws)
        check_eq(code, 4403, "key without ingest scope")

        ws = await open_ingest(srv, "ck_0000000000000000_" + "0" * 64)
        code, _ = await expect_close(ws)
        check_eq(code, 4401, "unknown key")

        ws = await open_ingest(srv)
        await ws.send(json.dumps([make_signal(0)]))
        code, _ = await expect_close(ws)
        check_eq(code, 4401, "batch before auth")


@test
async def ingest_ws_tenant_domains():
    with Canaryd() as srv:
        key = srv.key(domains="bank.example")
        ws = await open_ingest(srv, key)
        await reply(ws)
        await ws.send(json.dumps([make_signal(0), make_signal(1)]))
        err = await reply(ws)
        check_eq(err.get("code"), "invalid_batch", "foreign domain rejected")
        check_eq([e["index"] for e in err.get("errors", [])], [1], "index of shop.example")
        await ws.send(json.dumps([make_signal(0)]))
        check_eq((await reply(ws)).get("type"), "ack", "own domain accepted")
        await ws.close()


@test
async def ingest_ws_oversized_message():
    with Canaryd(settings={"max_body_bytes": 65536}) as srv:
        key = srv.key()
        ws = await open_ingest(srv, key)
        await reply(ws)
        await ws.send(json.dumps([make_signal(i) for i in range(600)]))
        code, _ = await expect_close(ws)
        check_eq(code, 1009, "message too large")


@test
async def ingest_ws_rate_limited_batch():
    with Canaryd(settings={"rate_limit_per_s": 1, "rate_limit_burst": 2}) as srv:
        key = srv.key()
        ws = await open_ingest(srv, key)
        await reply(ws)
        for _ in range(3):
            await ws.send(json.dumps([make_signal(0)]))
        replies = [await reply(ws) for _ in range(3)]
        check_eq(sorted(r.get("type") for r in replies), ["ack", "ack", "error"], "two acks, one error")
        err = [r for r in replies if r.get("type") == "error"]
        check_eq(err[0].get("code") if err else None, "rate_limited", "error code")
        check_eq(err[0].get("batch") if err else None, 3, "the third batch")
        check(err and err[0].get("retry_after_s", 0) >= 1, "retry_after_s given")
        await ws.close()


run_tests()

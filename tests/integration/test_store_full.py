"""A full store: with a small map_size_max_bytes, ingest runs until 507
with a problem document; reads, streams, /healthz and /metrics keep
working; nothing uncommitted is pushed; and ingest recovers by itself once
retention deletes old signals."""

import asyncio
import json
import time

from canary import (Canaryd, Stream, check, check_eq, get_json, http_get, http_request,
                    make_signal, run_tests, test)
from reliability import describe_seqs, replay_all

BATCH = 200
RETENTION_S = 8


def post(srv, key, batch):
    status, headers, body = http_request(
        "POST", srv.http + "/v1/canary/signals", json.dumps(batch).encode(),
        {"Content-Type": "application/json", "Authorization": "Bearer " + key})
    return status, headers, json.loads(body) if body else None


@test
async def ingest_until_507_then_recover():
    settings = {"map_size_max_bytes": "2M", "retention_s": RETENTION_S, "retention_check_s": 1}
    with Canaryd(settings=settings) as srv:
        key = srv.key()
        live = await Stream.open(srv, key)
        await live.recv_type("welcome")
        await live.subscribe("live")

        # Fill the store with large batches until one is refused, then
        # with single signals until one is refused. LMDB may still find
        # room for a small batch after a refusal, as pages freed by
        # earlier transactions become reusable, so "full" means "refused
        # a batch of BATCH", not "refuses everything".
        started = time.time()
        head = 0
        refused = None
        size = BATCH
        for i in range(2000):
            status, headers, body = post(srv, key, [make_signal(i * BATCH + j) for j in range(size)])
            if status == 202:
                check_eq(body["first_seq"], head + 1, "first_seq of batch %d" % i)
                head = body["last_seq"]
                continue
            check_eq(status, 507, "status of ingest into a full store")
            if size == BATCH:
                refused = (status, headers, body)
                size = 1
            else:
                break
        fill_s = time.time() - started
        print("  store full after %d signals in %.1f s" % (head, fill_s), flush=True)
        check(refused is not None, "ingest reached 507")
        if refused is None:
            return
        status, headers, body = refused
        check_eq(headers.get("Content-Type"), "application/problem+json", "507 content type")
        check_eq(body.get("status"), 507, "problem status")
        check(all(body.get(f) for f in ("type", "title", "detail")), "problem has type, title, detail: %r" % body)
        check(fill_s < RETENTION_S / 2, "fill took %.1f s, less than half the retention" % fill_s)

        # Refused batches consume no seq.
        for _ in range(3):
            status, _, _ = post(srv, key, [make_signal(j) for j in range(BATCH)])
            check_eq(status, 507, "a batch of %d into the full store" % BATCH)
        _, health = get_json(srv.http + "/healthz", None)
        check_eq(health["head_seq"], head, "head after refused batches")

        # Reads keep working.
        status, page = get_json(srv.http + "/v1/canary/signals?limit=10", key)
        check_eq(status, 200, "REST list on a full store")
        check_eq(page["signals"][0]["seq"], head, "newest signal listed")
        status, _, _ = http_get(srv.http + "/metrics")
        check_eq(status, 200, "/metrics on a full store")
        status, _, _ = http_get(srv.http + "/v1/canary/stats?since_hours=24", key)
        check(status in (200, 404), "/v1/canary/stats on a full store answers %d" % status)
        signals, gaps = await replay_all(srv, key)
        got = [s["seq"] for s in signals]
        check(got == list(range(1, head + 1)), "replay of a full store: %s" % describe_seqs(got))

        # The live subscriber got exactly the committed signals, no more.
        got = [m["signal"]["seq"] for m in await live.signals(head, timeout=30)]
        check(got == list(range(1, head + 1)), "signals pushed live: %s" % describe_seqs(got))
        try:
            extra = await live.recv(0.5)
        except asyncio.TimeoutError:
            extra = None
        check_eq(extra, None, "no push after the store filled")

        # Retention frees room and ingest recovers without a restart: the
        # same batch that was refused is accepted once retention ran.
        recovered = None
        deadline = started + RETENTION_S + 20
        while time.time() < deadline:
            status, _, body = post(srv, key, [make_signal(j) for j in range(BATCH)])
            if status == 202:
                recovered = body
                break
            check_eq(status, 507, "status while waiting for retention")
            time.sleep(0.25)
        recovered_s = time.time() - started
        check(recovered is not None, "ingest recovered within %d s" % (RETENTION_S + 20))
        if recovered:
            print("  ingest recovered %.1f s after the fill started" % recovered_s, flush=True)
            check(recovered_s >= RETENTION_S - 1,
                  "recovery at %.1f s came from retention (%d s)" % (recovered_s, RETENTION_S))
            check_eq(recovered["first_seq"], head + 1, "first seq after recovery")
            got = [m["signal"]["seq"] for m in await live.signals(BATCH, timeout=10)]
            check(got == list(range(head + 1, head + BATCH + 1)),
                  "live push after recovery: %s" % describe_seqs(got))
        _, health = get_json(srv.http + "/healthz", None)
        check_eq(health["status"], "ok", "/healthz after recovery")
        await live.close()


run_tests()

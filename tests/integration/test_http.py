"""Ingest and REST against a real canaryd: keys and scopes, problem
documents, the all-or-nothing batch rule, body limits, the signal list with
its filters, total_count and cursor paging, and the privacy rule."""

import asyncio
import glob
import json
import os
import subprocess
import tempfile

from canary import (CANARYD, Canaryd, Stream, check, check_eq, get_json,
                    http_get, http_request, ingest, make_signal, now_rfc3339,
                    run_tests, test)


def problem_ok(status, headers, body, code):
    check_eq(status, code, "status")
    check(headers.get("Content-Type", "").startswith("application/problem+json"),
          "problem+json content type, got %r" % headers.get("Content-Type"))
    doc = json.loads(body)
    for field in ("type", "title", "status", "detail"):
        check(field in doc, "problem document has %s: %r" % (field, doc))
    check_eq(doc.get("status"), code, "problem status member")
    return doc


@test
def keys_and_scopes():
    with Canaryd() as srv:
        full = srv.key()
        ingest_only = srv.key("ingest")
        read_only = srv.key("read")
        url = srv.http + "/v1/canary/signals"

        status, headers, body = http_get(srv.http + "/healthz")
        check_eq(status, 200, "healthz without a key")

        status, headers, body = http_get(url)
        problem_ok(status, headers, body, 401)
        check(headers.get("WWW-Authenticate", "").startswith("Bearer"), "WWW-Authenticate: Bearer")

        status, headers, body = http_get(url, "ck_0000000000000000_" + "0" * 64)
        problem_ok(status, headers, body, 401)
        status, headers, body = http_request("GET", url, headers={"Authorization": "Basic abc"})
        problem_ok(status, headers, body, 401)
        status, headers, body = http_request("GET", url, headers={"Authorization": "Bearer " + "a" * 5000})
        check(status in (401, 431), "oversized Authorization refused, got %d" % status)
        status, headers, body = http_request("GET", url, headers={"Authorization": "bEaReR " + read_only})
        check_eq(status, 200, "scheme matched case-insensitively")

        status, headers, body = http_get(url, ingest_only)
        problem_ok(status, headers, body, 403)
        status, body = ingest(srv, read_only, [make_signal(0)])
        check_eq(status, 403, "ingest with a read-only key")
        status, body = ingest(srv, full, [make_signal(0)])
        check_eq(status, 202, "ingest with an ingest key")

        key_id = full.split("_")[1]
        listed = subprocess.run([CANARYD, "keys", "list", "--data-dir", srv.data_dir],
                                check=True, capture_output=True, text=True).stdout
        check(key_id in listed, "keys list shows the id")
        check(full not in listed and full.split("_")[2] not in listed, "keys list never shows a secret")
        subprocess.run([CANARYD, "keys", "revoke", "--data-dir", srv.data_dir, key_id],
                       check=True, capture_output=True)
        status, headers, body = http_get(url, full)
        problem_ok(status, headers, body, 401)

        helped = subprocess.run([CANARYD, "keys", "--help"], capture_output=True, text=True)
        check_eq(helped.returncode, 0, "keys --help exit status")
        check("canaryd keys create" in helped.stdout, "keys --help prints the usage on stdout")
        unknown = subprocess.run([CANARYD, "keys", "frob"], capture_output=True, text=True)
        check_eq(unknown.returncode, 2, "an unknown keys command exit status")
        check('unknown command "frob"' in unknown.stderr, "the unknown command is named")


def run_keys(*args):
    return subprocess.run([CANARYD, "keys"] + list(args), capture_output=True, text=True)


@test
def keys_commands_reject_dir_without_store():
    with tempfile.TemporaryDirectory(prefix="canary-it-") as tmp:
        missing = os.path.join(tmp, "typo", "var")
        empty = os.path.join(tmp, "empty")
        os.mkdir(empty)
        for data_dir in (missing, empty):
            for args in (["list"], ["revoke", "0123456789abcdef"]):
                verb = args[0]
                result = run_keys(verb, "--data-dir", data_dir, *args[1:])
                label = "keys %s in %s" % (verb, data_dir)
                check_eq(result.returncode, 2, label + ": exit status")
                check_eq(result.stdout, "", label + ": standard output")
                check(data_dir in result.stderr, label + ": the directory is named: %r" % result.stderr)
                check("--data-dir" in result.stderr, label + ": the fix is named: %r" % result.stderr)
        check(not os.path.exists(os.path.join(tmp, "typo")), "the missing directory is not created")
        check_eq(os.listdir(empty), [], "nothing is created in the empty directory")

        store = os.path.join(tmp, "store")
        created = run_keys("create", "--data-dir", store, "--scopes", "read")
        check_eq(created.returncode, 0, "keys create starts a new store")
        listed = run_keys("list", "--data-dir", store)
        check_eq(listed.returncode, 0, "keys list on the new store")
        check(created.stdout.split("_")[1] in listed.stdout, "keys list shows the new key")


@test
def keys_revoke_never_prints_secret():
    with tempfile.TemporaryDirectory(prefix="canary-it-") as tmp:
        store = os.path.join(tmp, "var")
        key = run_keys("create", "--data-dir", store, "--scopes", "read").stdout.strip()
        _, key_id, secret = key.split("_")

        for arg in (key, secret, "ck_" + key_id + "_" + secret[:20]):
            result = run_keys("revoke", "--data-dir", store, arg)
            label = "revoke %s...: " % arg[:8]
            check_eq(result.returncode, 1, label + "exit status")
            printed = result.stderr + result.stdout
            leaked = [secret[i:i + 8] for i in range(0, len(secret), 8) if secret[i:i + 8] in printed]
            check_eq(leaked, [], label + "parts of the secret printed in %r" % printed)
            check("key id" in result.stderr, label + "the key id is asked for: %r" % result.stderr)
        whole = run_keys("revoke", "--data-dir", store, key)
        check("keys revoke " + key_id in whole.stderr, "the message names the key id to pass: %r" % whole.stderr)

        listed = run_keys("list", "--data-dir", store).stdout
        check("\tactive\t" in listed, "the key is still active: %r" % listed)
        check_eq(run_keys("revoke", "--data-dir", store, key_id).returncode, 0, "revoke by id")


@test
def invalid_batch_stores_nothing():
    with Canaryd() as srv:
        key = srv.key()
        ingest(srv, key, [make_signal(i) for i in range(3)])
        batch = [make_signal(i) for i in range(5)]
        batch[2]["confidence"] = "extreme"
        batch[4]["related_domain"] = "bad domain.example"
        # Item 4 has two more problems: every one of them is listed.
        batch[4]["threat_stage"] = "LATER"
        del batch[4]["recommended_action"]
        status, doc = ingest(srv, key, batch)
        check_eq(status, 400, "status for a batch with bad items")
        errors = doc.get("errors", [])
        fields = {(e["index"], e["field"]) for e in errors}
        check_eq(fields, {(2, "confidence"), (4, "related_domain"), (4, "threat_stage"),
                          (4, "recommended_action")}, "problems name index and field")
        check_eq(doc.get("error_count"), 4, "error_count")
        check("extreme" in errors[0]["reason"], "reason names the value")
        missing = [e for e in errors if e["field"] == "recommended_action"]
        check(missing and "missing" in missing[0]["reason"], "missing field named: %r" % missing)
        log = srv.read_log()
        check("4 problems, the first in field confidence of item 2" in log,
              "rejected batch logged with field and item: %r" %
              [line for line in log.splitlines() if "rejected a batch" in line][:1])
        _, health = get_json(srv.http + "/healthz", None)
        check_eq(health["head_seq"], 3, "nothing stored from the bad batch")
        status, body = ingest(srv, key, [make_signal(7)])
        check_eq(body["first_seq"], 4, "no seq consumed by the rejected batch")

        for raw, ctype, what in [
            (b"{\"event_type\":", "application/json", "truncated JSON"),
            (b"[1,2]", "application/json", "items that are not objects"),
            (b"\xff\xfe", "application/json", "invalid UTF-8"),
            (b"{\"a\":1,\"a\":2}", "application/json", "duplicate member names"),
            (b"[" * 100000 + b"]" * 100000, "application/json", "deep nesting"),
            (b"", "application/json", "empty body"),
        ]:
            status, doc = ingest(srv, key, None, ctype, raw)
            check_eq(status, 400, what)
        _, health = get_json(srv.http + "/healthz", None)
        check_eq(health["head_seq"], 4, "still nothing stored")


@test
def ingest_formats_and_limits():
    with Canaryd(settings={"max_body_bytes": "4K"}) as srv:
        key = srv.key()
        status, body = ingest(srv, key, None, "application/json", json.dumps(make_signal(1)).encode())
        check_eq((status, body.get("accepted")), (202, 1), "one object")
        nd = "\n".join(json.dumps(make_signal(i)) for i in range(3)) + "\n\n"
        status, body = ingest(srv, key, None, "application/x-ndjson", nd.encode())
        check_eq((status, body.get("accepted"), body.get("first_seq")), (202, 3, 2), "NDJSON")
        status, body = ingest(srv, key, None, "text/plain", b"{}")
        check_eq(status, 415, "unknown content type")
        status, body = ingest(srv, key, [make_signal(i) for i in range(40)])
        check_eq(status, 413, "body over max_body_bytes")
        status, body = ingest(srv, key, [make_signal(0)])
        check_eq(status, 202, "server still ingests after a 413")
        status, _, body = http_request("DELETE", srv.http + "/v1/canary/signals")
        check_eq(status, 405, "DELETE")
        status, _, body = http_get(srv.http + "/v1/nothing")
        check_eq(status, 404, "unknown route")
        check("/v1/canary/nothing" in json.loads(body)["detail"],
              "404 under /v1/ suggests the /v1/canary/ path: %r" % body)
        status, _, body = http_get(srv.http + "/nothing")
        check_eq(status, 404, "unknown route outside /v1/")
        status, doc = get_json(srv.http + "/v1/canary/signals?limit=2&limit=3", key)
        check_eq(status, 400, "limit given twice")
        check("limit" in doc.get("detail", "") and "more than once" in doc.get("detail", ""),
              "repeated parameter named: %r" % doc)
        status, _ = get_json(srv.http + "/v1/canary/signals?domain=a.example&domain=b.example", key)
        check_eq(status, 200, "a list filter may repeat")


@test
def signal_list_filters_and_paging():
    with Canaryd() as srv:
        key = srv.key()
        sigs = [make_signal(i, timestamp=now_rfc3339(-60 * i)) for i in range(150)]
        sigs.append(make_signal(1, timestamp=now_rfc3339(-3600 * 30)))  # outside 24 h
        status, body = ingest(srv, key, sigs)
        first = body["first_seq"]

        status, page = get_json(srv.http + "/v1/canary/signals?limit=50&threat_only=true&since_hours=24", key)
        check_eq(status, 200, "documented example query")
        want = [first + i for i, s in enumerate(sigs[:150]) if s["confidence"] != "low"]
        check_eq(page["total_count"], len(want), "total_count counts every match in the window")
        check_eq(page["time_range"], "24h", "time_range")
        check_eq([s["seq"] for s in page["signals"]], want[:50], "newest first")

        seen = []
        url = srv.http + "/v1/canary/signals?limit=7&threat_only=true"
        cursor = None
        while True:
            status, page = get_json(url + ("&cursor=" + cursor if cursor else ""), key)
            seen += [s["seq"] for s in page["signals"]]
            # Newer signals arriving between pages must not disturb paging.
            ingest(srv, key, [make_signal(2, timestamp=now_rfc3339())])
            cursor = page["next_cursor"]
            if not cursor:
                break
        check_eq(seen, want, "paging visits every match once")

        status, page = get_json(srv.http + "/v1/canary/signals?domain=shop.example&stage=ATTACK&limit=1000&since_hours=48", key)
        want = [s for s in sigs if s["related_domain"] == "shop.example" and s["threat_stage"] == "ATTACK"]
        check_eq(page["total_count"], len(want), "domain and stage filters")
        status, page = get_json(srv.http + "/v1/canary/threat-feed?limit=1000", key)
        check(all(s["confidence"] == "high" for s in page["signals"]) and page["signals"],
              "threat feed has high confidence only")

        for query, param in [("limit=0", "limit"), ("limit=5000", "limit"), ("since_hours=x", "since_hours"),
                             ("cursor=zzz", "cursor"), ("colour=red", "colour"),
                             ("stage=sideways", "stage"), ("threat_only=maybe", "threat_only")]:
            status, headers, body = http_get(srv.http + "/v1/canary/signals?" + query, key)
            doc = problem_ok(status, headers, body, 400)
            check(param in doc["detail"], "detail names %s: %r" % (param, doc["detail"]))


@test
async def personal_data_never_stored_or_sent():
    markers = {"username": "MARKERuser7731", "password": "MARKERpass7731",
               "src_ip": "203.0.113.77", "email": "marker7731@example.org",
               "phone": "+81-90-7731-0000"}
    with Canaryd() as srv:
        key = srv.key()
        s = await Stream.open(srv, key)
        await s.recv_type("welcome")
        await s.subscribe("all")
        planted = [dict(make_signal(i), **markers) for i in range(20)]
        status, _ = ingest(srv, key, planted)
        check_eq(status, 202, "ingest with extra personal fields")
        got = await s.signals(20)
        text = json.dumps(got)
        _, _, rest = http_get(srv.http + "/v1/canary/signals?limit=1000", key)
        await s.close()
    files = glob.glob(os.path.join(srv.data_dir, "*")) + [srv.log_path]
    blobs = [open(f, "rb").read() for f in files]
    for name, value in markers.items():
        check(value not in text, "%s absent from pushed messages" % name)
        check(value.encode() not in rest, "%s absent from REST" % name)
        for f, blob in zip(files, blobs):
            check(value.encode() not in blob, "%s absent from %s" % (name, os.path.basename(f)))


@test
async def tenant_key_sees_only_its_domains():
    with Canaryd() as srv:
        admin = srv.key("ingest,subscribe,read,admin")
        tenant = srv.key("subscribe,read", domains="Shop.Example.")
        s = await Stream.open(srv, tenant)
        await s.recv_type("welcome")
        await s.subscribe("mine", {"domains": ["bank.example", "shop.example"]})
        ingest(srv, admin, [make_signal(i) for i in range(9)])
        got = await s.signals(3)
        check(all(m["signal"]["related_domain"] == "shop.example" for m in got), "stream narrowed")
        await s.send({"op": "ping"})
        check_eq((await s.recv())["type"], "pong", "no other tenant's signal")
        _, page = get_json(srv.http + "/v1/canary/signals?limit=1000&since_hours=48", tenant)
        check_eq(page["total_count"], 3, "REST narrowed")
        check(all(x["related_domain"] == "shop.example" for x in page["signals"]), "REST domains")

        # Other customers' subscribers are not the tenant's business.
        other = await Stream.open(srv, admin)
        await other.recv_type("welcome")
        _, stats = get_json(srv.http + "/v1/canary/stats?since_hours=48", tenant)
        check_eq(stats["network"]["subscribers_connected"], 1, "tenant counts its own subscribers")
        _, stats = get_json(srv.http + "/v1/canary/stats?since_hours=48", admin)
        check_eq(stats["network"]["subscribers_connected"], 2, "admin counts every subscriber")
        await other.close()
        await s.close()


@test
def timestamps_far_ahead_of_the_clock_rejected():
    with Canaryd(settings={"max_clock_ahead_s": 600}) as srv:
        key = srv.key()
        near = make_signal(1, timestamp=now_rfc3339(300))
        far = make_signal(2, timestamp=now_rfc3339(7200))
        status, body = ingest(srv, key, [near, far])
        check_eq(status, 400, "a batch with a signal two hours ahead")
        errors = body.get("errors", [])
        check_eq([(e["index"], e["field"]) for e in errors], [(1, "timestamp")],
                 "the far item is named")
        reason = errors[0]["reason"] if errors else ""
        check(far["timestamp"] in reason, "the reason quotes the timestamp: %r" % reason)
        check("max_clock_ahead_s" in reason, "the reason names the setting: %r" % reason)
        _, health = get_json(srv.http + "/healthz", None)
        check_eq(health["head_seq"], 0, "nothing stored from the batch")
        status, body = ingest(srv, key, [near])
        check_eq(status, 202, "five minutes ahead is within the limit")

    with Canaryd(settings={"max_clock_ahead_s": 0}) as srv:
        key = srv.key()
        status, _ = ingest(srv, key, [make_signal(3, timestamp="2030-01-01T00:00:00Z")])
        check_eq(status, 202, "max_clock_ahead_s 0 accepts any time")


run_tests()

"""REST analytics against a real canaryd: stats and list counts compared
with a recount of what was ingested, trends that add up, campaign
boundaries at the idle gap, paging while a producer runs, rate limits,
problem documents, tenant isolation, /metrics, and the OpenAPI and
AsyncAPI documents checked against real responses."""

import asyncio
import json
import os
import random
import threading
import time
import urllib.parse

import jsonschema
import yaml

from canary import (SOURCE_DIR, Canaryd, Stream, check, check_eq, get_json,
                    http_get, http_request, ingest, make_signal, run_tests, test)

from signal_lists import ingest_ok, matches, parse_time, rfc3339
import signal_lists

DOMAINS = ["bank.example", "login.bank.example", "shop.example",
           "a.b.shop.example", "mail.example", "xn--bcher-kva.example"]


def random_signal(rng, t):
    return signal_lists.random_signal(rng, t, DOMAINS)


def url(srv, path, **params):
    query = urllib.parse.urlencode(params, doseq=True)
    return srv.http + path + ("?" + query if query else "")


def all_pages(srv, key, path, limit=97, **params):
    """Every item of a cursor-paged list; returns (items, first page)."""
    items, cursor, first = [], None, None
    field = "campaigns" if "campaigns" in path else "signals"
    for _ in range(10000):
        extra = dict(params, limit=limit)
        if cursor:
            extra["cursor"] = cursor
        status, page = get_json(url(srv, path, **extra), key)
        if status != 200:
            raise AssertionError("%s answered %d: %r" % (path, status, page))
        first = first or page
        items += page[field]
        cursor = page["next_cursor"]
        if not cursor:
            return items, first
    raise AssertionError("paging did not end")


def groups(sigs, field):
    out = {}
    for s in sigs:
        out[s[field]] = out.get(s[field], 0) + 1
    return out


# ---- stats ----

def load_random(srv, key, seed, count, hours):
    """Ingests count signals observed over the last `hours` hours, also
    some in the future and some older than the window."""
    rng = random.Random(seed)
    now = time.time()
    sigs = []
    for _ in range(count):
        age = rng.uniform(0, hours * 3600)
        sigs.append(random_signal(rng, now - age))
    sigs += [random_signal(rng, now - 30 * 3600 - rng.uniform(0, 3600)) for _ in range(20)]
    sigs += [random_signal(rng, now + 600)]
    for i in range(0, len(sigs), 211):
        ingest_ok(srv, key, sigs[i:i + 211])
    return sigs


def in_window(sigs, since):
    return [s for s in sigs if parse_time(s["timestamp"]) >= since]


@test
def stats_equal_a_recount():
    with Canaryd() as srv:
        key = srv.key()
        tenant = srv.key(scopes="read", domains="shop.example,mail.example")
        sigs = load_random(srv, key, 7, 700, 23)

        for bucket in ("minute", "hour", "day"):
            started = time.time()
            status, stats = get_json(url(srv, "/v1/canary/stats", since_hours=24, bucket=bucket), key)
            check_eq(status, 200, "stats with bucket=%s" % bucket)
            # The window starts at the minute since_hours ago.
            since = (int(started - 24 * 3600) // 60) * 60
            want = [s for s in in_window(sigs, since) if parse_time(s["timestamp"]) < started + 60]
            check_eq(stats["total"], len(want), "total with bucket=%s" % bucket)
            check_eq(sum(p["count"] for p in stats["trend"]), stats["total"],
                     "trend with bucket=%s adds up to the total" % bucket)
            check(all(sum(p["by_event_type"].values()) == p["count"] for p in stats["trend"]),
                  "each trend point's event split adds up to its count (bucket=%s)" % bucket)
            split = {}
            for p in stats["trend"]:
                for name, n in p["by_event_type"].items():
                    split[name] = split.get(name, 0) + n
            check_eq(split, groups(want, "event_type"),
                     "trend split by event type with bucket=%s" % bucket)
            for name, field in (("by_event_type", "event_type"), ("by_confidence", "confidence"),
                                ("by_stage", "threat_stage"), ("by_proxy_type", "proxy_type"),
                                ("by_region", "source_region")):
                check_eq(stats[name], groups(want, field), "%s with bucket=%s" % (name, bucket))
            top = sorted(groups(want, "related_domain").items(), key=lambda kv: (-kv[1], kv[0]))
            check_eq([[d["domain"], d["count"]] for d in stats["top_domains"]],
                     [list(kv) for kv in top[:10]], "top_domains")

        # Whole hours of the hour trend equal a recount of that hour.
        _, stats = get_json(url(srv, "/v1/canary/stats", since_hours=24, bucket="hour"), key)
        for point in stats["trend"][1:-1]:
            start = parse_time(point["bucket"])
            count = sum(1 for s in sigs if start <= parse_time(s["timestamp"]) < start + 3600)
            check_eq(point["count"], count, "trend hour %s" % point["bucket"])
            by_type = groups([s for s in sigs
                              if start <= parse_time(s["timestamp"]) < start + 3600], "event_type")
            check_eq(point["by_event_type"], by_type, "trend hour %s by event type" % point["bucket"])
        check_eq(stats["network"]["sensors_active"], 3, "sensors active in the last 5 minutes")

        # A tenant's stats count its domains only.
        _, tstats = get_json(url(srv, "/v1/canary/stats", since_hours=24, bucket="minute"), tenant)
        since = (int(time.time() - 24 * 3600) // 60) * 60
        mine = [s for s in in_window(sigs, since)
                if s["related_domain"] in ("shop.example", "mail.example")
                and parse_time(s["timestamp"]) < time.time() + 60]
        check_eq(tstats["total"], len(mine), "tenant total")
        check_eq(tstats["by_region"], groups(mine, "source_region"), "tenant by_region")
        check_eq(sorted(d["domain"] for d in tstats["top_domains"]),
                 sorted(groups(mine, "related_domain")), "tenant top_domains")
        check_eq(sum(p["count"] for p in tstats["trend"]), tstats["total"], "tenant trend sum")

        # Stats last across a restart: they live in the store.
        srv.stop()
        srv.start()
        _, again = get_json(url(srv, "/v1/canary/stats", since_hours=48, bucket="day"), key)
        since = (int(time.time() - 48 * 3600) // 60) * 60
        want = [s for s in in_window(sigs, since) if parse_time(s["timestamp"]) < time.time() + 60]
        check_eq(again["total"], len(want), "total after a restart")
        check_eq(sum(p["count"] for p in again["trend"]), again["total"], "day trend sum")


@test
def list_errors_quote_the_value_and_parameter():
    with Canaryd() as srv:
        key = srv.key()
        for query, expected in (
                ("limit=100000", 'limit="100000"'),
                ("cursor=%ff", 'cursor="?"'),
                ("event_type=phishing", 'query parameter event_type is invalid: "phishing"'),
                ("region=jp1", 'query parameter region is invalid: "jp1"'),
                ("foo=bar", 'query parameter "foo" is not known')):
            status, headers, body = http_get(srv.http + "/v1/canary/signals?" + query, key)
            problem_ok(status, headers, body, 400, "signals?" + query)
            detail = json.loads(body)["detail"]
            check(expected in detail, "%s: %r in %r" % (query, expected, detail))


@test
def stats_reject_bad_parameters():
    with Canaryd() as srv:
        key = srv.key()
        for query, param in (("bucket=week", "bucket"), ("since_hours=0", "since_hours"),
                             ("since_hours=x", "since_hours"), ("top=0", "top"),
                             ("bucket=minute&since_hours=48", "bucket"), ("limit=5", "\"limit\" is not known")):
            status, headers, body = http_get(srv.http + "/v1/canary/stats?" + query, key)
            problem_ok(status, headers, body, 400, "stats?" + query)
            check(param in json.loads(body)["detail"], "detail names %s: %s" % (param, body))


# ---- list counts and filters ----

FILTERS = [
    {}, {"domain": "bank.example"}, {"domain": "*.shop.example"},
    {"domain": ["*.bank.example", "bank.example"]}, {"domain": "xn--bcher-kva.example,mail.example"},
    {"event_type": "sim_recon"}, {"event_type": ["sim_recon", "fraud_test"]},
    {"confidence": "medium"}, {"min_confidence": "medium"}, {"threat_only": "true"},
    {"stage": "attack"}, {"proxy_type": "tor"}, {"region": ["de", "JP"]}, {"action": "block"},
    {"domain": "shop.example", "event_type": "account_probe"},
    {"domain": "*.bank.example", "region": "US"},
    {"event_type": "sim_recon", "stage": "ATTACK"},
    {"min_confidence": "high", "proxy_type": "mobile", "region": "BR"},
]


@test
def each_filter_narrows_exactly():
    with Canaryd() as srv:
        key = srv.key()
        sigs = load_random(srv, key, 11, 900, 20)
        since = time.time() - 21 * 3600 + 17.25   # not on a minute boundary
        since_text = rfc3339(since)
        window = [s for s in sigs if parse_time(s["timestamp"]) >= parse_time(since_text)]
        for params in FILTERS:
            for path, feed in (("/v1/canary/signals", False), ("/v1/canary/threat-feed", True)):
                want = [s for s in window if matches(s, params, feed)]
                items, first = all_pages(srv, key, path, since_time=since_text, **params)
                label = "%s %r" % (path, params)
                check_eq(first["total_count"], len(want), "total_count of " + label)
                check_eq(len(items), len(want), "items listed for " + label)
                check(all(matches(s, params, feed) for s in items), "every item matches " + label)
                check_eq(len({s["seq"] for s in items}), len(items), "no repeats in " + label)
                order = [(parse_time(s["timestamp"]), s["seq"]) for s in items]
                check(order == sorted(order, reverse=True), "newest first for " + label)
        # since_hours windows count from the aggregates too.
        _, page = get_json(url(srv, "/v1/canary/signals", since_hours=5, domain="*.shop.example"), key)
        since = time.time() - 5 * 3600
        want = [s for s in sigs if parse_time(s["timestamp"]) >= since
                and matches(s, {"domain": "*.shop.example"})]
        check(abs(page["total_count"] - len(want)) <= 1,
              "since_hours=5 total_count %d, recount %d" % (page["total_count"], len(want)))


@test
def tenant_counts_use_only_its_domains():
    with Canaryd() as srv:
        key = srv.key()
        tenant = srv.key(scopes="read", domains="shop.example,a.b.shop.example")
        sigs = load_random(srv, key, 5, 300, 10)
        since = rfc3339(time.time() - 12 * 3600)
        mine = [s for s in sigs if s["related_domain"] in ("shop.example", "a.b.shop.example")
                and parse_time(s["timestamp"]) >= parse_time(since)]
        for params, want in (({}, mine),
                             ({"domain": "*.shop.example"}, [s for s in mine if s["related_domain"] != "shop.example"]),
                             ({"domain": "bank.example"}, []),
                             ({"stage": "ATTACK"}, [s for s in mine if s["threat_stage"] == "ATTACK"])):
            items, first = all_pages(srv, tenant, "/v1/canary/signals", since_time=since, **params)
            check_eq(first["total_count"], len(want), "tenant total_count for %r" % params)
            check_eq(len(items), len(want), "tenant items for %r" % params)
            check(all(s["related_domain"] in ("shop.example", "a.b.shop.example") for s in items),
                  "tenant sees its domains only for %r" % params)
        camps, first = all_pages(srv, tenant, "/v1/canary/campaigns", since_hours=48)
        check(len(camps) > 0, "tenant has campaigns")
        check_eq(first["total_count"], len(camps), "tenant campaign total_count")
        check(all(c["related_domain"] in ("shop.example", "a.b.shop.example") for c in camps),
              "tenant campaigns are its domains only")
        check_eq(sum(c["signal_count"] for c in camps),
                 sum(1 for s in sigs if s["related_domain"] in ("shop.example", "a.b.shop.example")),
                 "tenant campaigns hold every one of its signals")


# ---- paging while a producer runs ----

@test
def paging_visits_each_signal_once_under_ingest():
    with Canaryd() as srv:
        key = srv.key()
        before = load_random(srv, key, 3, 1500, 20)
        _, page = get_json(url(srv, "/v1/canary/signals", limit=1, since_hours=48), key)
        check_eq(page["total_count"], len(before), "every stored signal is in the window")

        stop = threading.Event()
        produced = []

        def producer():
            rng = random.Random(99)
            while not stop.is_set():
                batch = [random_signal(rng, time.time() - rng.uniform(0, 20 * 3600)) for _ in range(50)]
                produced.append(ingest_ok(srv, key, batch)["last_seq"])
                time.sleep(0.01)

        thread = threading.Thread(target=producer)
        thread.start()
        try:
            items, _ = all_pages(srv, key, "/v1/canary/signals", limit=37, since_hours=48)
        finally:
            stop.set()
            thread.join()
        check(len(produced) > 3, "the producer ran while paging (%d batches)" % len(produced))
        seqs = [s["seq"] for s in items]
        check_eq(len(seqs), len(set(seqs)), "no signal listed twice")
        old = sorted(s for s in seqs if s <= len(before))
        check(old == list(range(1, len(before) + 1)),
              "every signal stored before paging listed once (%d of %d)" % (len(old), len(before)))
        check(len(seqs) > len(before), "some signals of the producer were listed too")


# ---- campaigns ----

def camp_signal(t, **fields):
    """A signal of bank.example from infrastructure asn-64500, observed at
    t; infra_id=None leaves infra_id out."""
    sig = make_signal(0, timestamp=rfc3339(t), related_domain="bank.example",
                      infra_id="asn-64500", proxy_type="residential", source_region="DE")
    sig.update(fields)
    if sig["infra_id"] is None:
        del sig["infra_id"]
    return sig


@test
def campaign_boundaries_at_the_idle_gap():
    gap = 600
    with Canaryd(settings={"campaign_idle_gap_s": gap}) as srv:
        key = srv.key()
        t0 = time.time() - 3 * 3600
        first = ingest_ok(srv, key, [camp_signal(t0)])["first_seq"]
        ingest_ok(srv, key, [camp_signal(t0 + gap)])                       # exactly the gap: joins
        third = ingest_ok(srv, key, [camp_signal(t0 + 2 * gap + 0.001)])["first_seq"]  # just over
        ingest_ok(srv, key, [camp_signal(t0 + 3 * gap + 0.001 - 0.002, confidence="high")])  # just under
        ingest_ok(srv, key, [camp_signal(t0 - gap / 2, event_type="sim_recon")])  # late, joins the first
        ingest_ok(srv, key, [camp_signal(t0, infra_id="asn-64501")])        # other infrastructure
        ingest_ok(srv, key, [camp_signal(t0, related_domain="shop.example")])
        ingest_ok(srv, key, [camp_signal(t0, infra_id=None, proxy_type="tor", source_region="US")])
        live = ingest_ok(srv, key, [camp_signal(time.time() - 5, related_domain="mail.example")])["first_seq"]

        camps, page = all_pages(srv, key, "/v1/canary/campaigns", limit=2, since_hours=6)
        by_id = {c["id"]: c for c in camps}
        check_eq(page["total_count"], 6, "campaign total_count")
        check_eq(len(camps), 6, "campaigns listed")
        a = by_id.get("camp_%d" % first, {})
        b = by_id.get("camp_%d" % third, {})
        check_eq(a.get("signal_count"), 3, "first campaign: start, at the gap, late arrival")
        check_eq(a.get("first_seen"), rfc3339(t0 - gap / 2), "late arrival moves first_seen back")
        check_eq(a.get("last_seen"), rfc3339(t0 + gap), "first campaign last_seen")
        check_eq(sorted(a.get("event_types", [])), ["credential_testing", "sim_recon"], "event types seen")
        check_eq(b.get("signal_count"), 2, "a pause just over the gap starts a campaign; just under joins")
        check_eq(b.get("max_confidence"), "high", "max_confidence")
        check_eq(b.get("regions"), ["DE"], "regions")
        check_eq(b.get("status"), "dormant", "old campaign is dormant")
        check_eq(by_id.get("camp_%d" % live, {}).get("status"), "active", "fresh campaign is active")
        ids = [int(c["id"][5:]) for c in camps]
        check_eq(ids, sorted(ids, reverse=True), "campaigns newest first by id")

        # Signals carry their campaign's id.
        items, _ = all_pages(srv, key, "/v1/canary/signals", since_hours=6, domain="bank.example")
        for s in items:
            check(s.get("campaign_id") in by_id, "signal %d names a listed campaign" % s["seq"])

        # Filters: status, domain, window.
        _, act = get_json(url(srv, "/v1/canary/campaigns", status="active"), key)
        check_eq([c["id"] for c in act["campaigns"]], ["camp_%d" % live], "status=active")
        _, dom = get_json(url(srv, "/v1/canary/campaigns", since_hours=6, domain="shop.example"), key)
        check_eq([c["related_domain"] for c in dom["campaigns"]], ["shop.example"], "domain filter")
        _, recent = get_json(url(srv, "/v1/canary/campaigns", since_hours=1), key)
        check_eq(recent["total_count"], 1, "since_hours=1 keeps campaigns seen in the last hour")

        # Ids never change as campaigns grow.
        ingest_ok(srv, key, [camp_signal(t0 + 100)])
        _, again = get_json(url(srv, "/v1/canary/campaigns", since_hours=6, domain="bank.example",
                                status="dormant"), key)
        grown = {c["id"]: c for c in again["campaigns"]}
        check_eq(grown.get("camp_%d" % first, {}).get("signal_count"), 4, "the campaign grew in place")

        for query, param in (("status=open", "status"), ("cursor=zzz", "cursor"),
                             ("cursor=c.", "cursor"), ("event_type=sim_recon", "\"event_type\" is not known")):
            status, headers, body = http_get(srv.http + "/v1/canary/campaigns?" + query, key)
            problem_ok(status, headers, body, 400, "campaigns?" + query)
            check(param in json.loads(body)["detail"], "detail names %s" % param)


# ---- rate limits ----

@test
def rate_limit_429_and_recovery():
    with Canaryd(settings={"rate_limit_per_s": 2, "rate_limit_burst": 3}) as srv:
        key = srv.key()
        other = srv.key()
        statuses = []
        for _ in range(3):
            status, headers, _ = http_get(srv.http + "/v1/canary/stats", key)
            statuses.append(status)
            check(headers.get("RateLimit-Limit") == "3", "RateLimit-Limit is the burst")
        check_eq(statuses, [200, 200, 200], "the burst passes")
        status, headers, body = http_get(srv.http + "/v1/canary/signals", key)
        problem_ok(status, headers, body, 429, "over the limit")
        retry = int(headers.get("Retry-After", "0"))
        check(1 <= retry <= 2, "Retry-After %r" % headers.get("Retry-After"))
        check_eq(headers.get("RateLimit-Remaining"), "0", "nothing remains")
        check(int(headers.get("RateLimit-Reset", "-1")) >= 1, "RateLimit-Reset")

        status, body = ingest(srv, key, [make_signal(1)])
        check_eq(status, 429, "ingest is limited with the same key")
        status, _, _ = http_get(srv.http + "/v1/canary/stats", other)
        check_eq(status, 200, "another key has its own bucket")

        time.sleep(retry + 0.1)
        status, headers, _ = http_get(srv.http + "/v1/canary/stats", key)
        check_eq(status, 200, "the key recovers after Retry-After")
        status, _, body = http_get(srv.http + "/metrics")
        text = body.decode()
        check('canary_http_requests_total{route="signals_get",status="429"} 1' in text,
              "429 counted by route and status")
        check('canary_ingest_rejected_total{reason="rate_limited"} 1' in text,
              "rate-limited ingest counted")


# ---- problem documents ----

def problem_ok(status, headers, body, code, what):
    check_eq(status, code, "status of " + what)
    check(headers.get("Content-Type", "").startswith("application/problem+json"),
          "%s: problem+json content type, got %r" % (what, headers.get("Content-Type")))
    try:
        doc = json.loads(body)
    except ValueError:
        check(False, "%s: body is JSON: %r" % (what, body[:200]))
        return {}
    for field in ("type", "title", "status", "detail"):
        check(field in doc, "%s: problem document has %s" % (what, field))
    check_eq(doc.get("status"), code, what + " status member")
    return doc


@test
def problem_json_on_every_error_path():
    with Canaryd() as srv:
        key = srv.key()
        ingest_only = srv.key(scopes="ingest")
        for path in ("/v1/canary/signals", "/v1/canary/threat-feed", "/v1/canary/campaigns",
                     "/v1/canary/stats"):
            status, headers, body = http_get(srv.http + path)
            problem_ok(status, headers, body, 401, "no key on " + path)
            check(headers.get("WWW-Authenticate", "").startswith("Bearer"), "WWW-Authenticate on " + path)
            status, headers, body = http_get(srv.http + path, "not-a-key")
            problem_ok(status, headers, body, 401, "unknown key on " + path)
            status, headers, body = http_get(srv.http + path, ingest_only)
            problem_ok(status, headers, body, 403, "wrong scope on " + path)
            status, headers, body = http_get(srv.http + path + "?limit=0&bucket=x", key)
            problem_ok(status, headers, body, 400, "bad parameter on " + path)
            status, headers, body = http_request("DELETE", srv.http + path,
                                                 headers={"Authorization": "Bearer " + key})
            problem_ok(status, headers, body, 405, "DELETE " + path)
        for query in ("cursor=abc", "cursor=0000000000000000.", "since_time=yesterday",
                      "since_hours=24&since_time=2026-01-01T00:00:00Z", "domain=bad..name",
                      "min_confidence=extreme", "threat_only=yes", "region=Germany", "x",
                      "since_hours=100000"):
            status, headers, body = http_get(srv.http + "/v1/canary/signals?" + query, key)
            problem_ok(status, headers, body, 400, "signals?" + query)
        status, headers, body = http_get(srv.http + "/v1/canary/nothing", key)
        problem_ok(status, headers, body, 404, "unknown route")


# ---- metrics ----

@test
def metrics_have_the_series_and_no_secrets():
    with Canaryd() as srv:
        key = srv.key()
        ingest_ok(srv, key, [make_signal(i) for i in range(8)])
        http_get(srv.http + "/v1/canary/stats", key)
        status, headers, body = http_get(srv.http + "/metrics")
        check_eq(status, 200, "/metrics")
        check(headers.get("Content-Type", "").startswith("text/plain"), "text format")
        text = body.decode()
        for needle in ('canary_signals_ingested_total{event_type="credential_testing"} 2',
                       "canary_commit_duration_seconds_bucket{le=\"+Inf\"} ",
                       "canary_commit_duration_seconds_count ",
                       "canary_deliveries_total ", "canary_ws_closes_total{reason=\"slow_consumer\"}",
                       "canary_ws_connections ", "canary_outbound_queue_bytes ",
                       'canary_http_requests_total{route="stats",status="200"} 1',
                       'canary_http_requests_total{route="signals_post",status="202"} 1'):
            check(needle in text, "metrics hold %s" % needle)
        for secret in (key, "bank.example", "127.0.0.1"):
            check(secret not in text, "metrics do not hold %r" % secret)
        for line in text.splitlines():
            if line and not line.startswith("#"):
                check(line.startswith("canary_"), "metric name prefix: %s" % line)


# ---- the OpenAPI and AsyncAPI documents ----

def load_doc(name):
    with open(os.path.join(SOURCE_DIR, "docs", name)) as f:
        return yaml.safe_load(f)


def openapi_validator(doc, ref):
    schema = {"$ref": ref, "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema)


def check_against(doc, ref, value, what):
    errors = sorted(openapi_validator(doc, ref).iter_errors(value), key=str)
    check(not errors, "%s matches %s: %s" % (what, ref, "; ".join(e.message for e in errors[:3])))


def response_schema(doc, path, method, status, ctype):
    op = doc["paths"][path][method]
    resp = op["responses"][str(status)]
    if "$ref" in resp:
        resp = doc["components"]["responses"][resp["$ref"].split("/")[-1]]
    return resp["content"][ctype]["schema"]


@test
async def openapi_and_asyncapi_match_real_answers():
    doc = load_doc("openapi.yaml")
    check_eq(doc.get("openapi"), "3.1.0", "OpenAPI version")
    jsonschema.Draft202012Validator.check_schema({"components": doc["components"]})
    with Canaryd(settings={"rate_limit_per_s": 1000, "rate_limit_burst": 1000}) as srv:
        key = srv.key()
        load_random(srv, key, 1, 200, 6)
        ingest_ok(srv, key, [camp_signal(time.time() - 60 * i) for i in range(3)])
        status, body = ingest(srv, key, [make_signal(1)])
        check_eq(status, 202, "ingest")
        check_against(doc, "#/components/schemas/IngestAccepted", body, "ingest answer")

        for path, params in (("/v1/canary/signals", {"limit": 5}),
                             ("/v1/canary/threat-feed", {"limit": 5}),
                             ("/v1/canary/campaigns", {"limit": 5}),
                             ("/v1/canary/stats", {"bucket": "hour"}),
                             ("/healthz", {})):
            check(path in doc["paths"], "%s is documented" % path)
            status, body = get_json(url(srv, path, **params), key)
            check_eq(status, 200, path)
            schema = response_schema(doc, path, "get", 200, "application/json")
            check_against(doc, schema["$ref"], body, path)

        # Error responses match the problem schemas.
        status, body = ingest(srv, key, [{"event_type": "nope"}])
        check_eq(status, 400, "invalid batch")
        check_against(doc, "#/components/schemas/BatchProblem", body, "batch problem")
        for path in ("/v1/canary/signals?limit=0", "/v1/canary/stats?bucket=x"):
            status, body = get_json(srv.http + path, key)
            check_against(doc, "#/components/schemas/Problem", body, path)
        status, body = get_json(srv.http + "/v1/canary/stats", None)
        check_against(doc, "#/components/schemas/Problem", body, "401 problem")

        # The stream's messages match the AsyncAPI payloads.
        adoc = load_doc("asyncapi.yaml")
        check(adoc.get("asyncapi", "").startswith("2."), "AsyncAPI version")
        messages = adoc["components"]["messages"]

        def check_message(msg, what):
            payload = messages.get(msg.get("type"), {}).get("payload")
            check(payload is not None, "%s: message type %r is documented" % (what, msg.get("type")))
            if payload is None:
                return
            schema = dict(payload, components=adoc["components"])
            errors = list(jsonschema.Draft202012Validator(schema).iter_errors(msg))
            check(not errors, "%s matches its AsyncAPI payload: %s" % (what, [e.message for e in errors[:3]]))

        for name in ("auth", "subscribe", "unsubscribe", "ping"):
            check(name in messages, "client message %s is documented" % name)
        stream = await Stream.open(srv, key)
        check_message(await stream.recv(), "welcome")
        reply = await stream.subscribe("s1", {"min_confidence": "low"}, since_seq=0)
        check_message(reply, "subscribed")
        seen = set()
        for _ in range(1000):
            msg = await stream.recv()
            check_message(msg, msg.get("type", "?"))
            seen.add(msg.get("type"))
            if msg.get("type") == "replay_done":
                break
        check("signal" in seen and "replay_done" in seen, "replay gave signals and replay_done")
        await stream.send({"op": "subscribe", "id": "bad", "filter": {"stages": ["nope"]}})
        msg = await stream.recv_type("error")
        check_message(msg, "error")
        await stream.send({"op": "ping"})
        check_message(await stream.recv_type("pong"), "pong")
        await stream.close()


run_tests()

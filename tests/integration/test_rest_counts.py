"""REST list counts and domain pages against a real canaryd: total_count of
filters on several fields equals a recount of the stored signals fetched
by paging, lists through the per-domain index give the same pages as
through the global time index, a store from an older canaryd returns the
same, and domain pages skip and repeat nothing while a producer runs."""

import os
import random
import subprocess
import threading
import time
import urllib.parse

from canary import Canaryd, check, check_eq, get_json, ingest, run_tests, test

from signal_lists import ingest_ok, matches, parse_time, rfc3339
import signal_lists

DOMAINS = ["bank.example", "login.bank.example", "a.login.bank.example", "shop.example",
           "b.shop.example", "xbank.example"] + ["h%d.many.example" % i for i in range(70)]

# More names than the per-domain index merges (ST_DOMAIN_MERGE_MAX is 64),
# none of them stored: adding them to a domain filter changes nothing but
# the path, which then is the global time index.
ABSENT = ["absent%d.example" % i for i in range(65)]


def random_signal(rng, t, domains=DOMAINS):
    return signal_lists.random_signal(rng, t, domains)


def load(srv, key, seed, count, hours):
    """Ingests count signals observed over the last `hours` hours, a few
    from before that and one in the future. Returns them."""
    rng = random.Random(seed)
    now = time.time()
    sigs = [random_signal(rng, now - rng.uniform(0, hours * 3600)) for _ in range(count)]
    sigs += [random_signal(rng, now - hours * 3600 - rng.uniform(0, 3600)) for _ in range(20)]
    sigs += [random_signal(rng, now + 600)]
    for i in range(0, len(sigs), 250):
        ingest_ok(srv, key, sigs[i:i + 250])
    return sigs


def url(srv, path, **params):
    query = urllib.parse.urlencode(params, doseq=True)
    return srv.http + path + ("?" + query if query else "")


def all_pages(srv, key, path, limit, **params):
    """Every page of a list; returns (pages, total_count of the first)."""
    pages, cursor, total = [], None, None
    for _ in range(10000):
        extra = dict(params, limit=limit)
        if cursor:
            extra["cursor"] = cursor
        status, page = get_json(url(srv, path, **extra), key)
        if status != 200:
            raise AssertionError("%s answered %d: %r" % (path, status, page))
        total = page["total_count"] if total is None else total
        pages.append([s["seq"] for s in page["signals"]])
        cursor = page["next_cursor"]
        if not cursor:
            return pages, total
    raise AssertionError("paging did not end")


# Filters on two or more fields besides domains, which the counters could
# not count before they split by combination.
MULTI_FIELD = [
    {"event_type": "sim_recon", "stage": "ATTACK"},
    {"event_type": ["sim_recon", "fraud_test"], "stage": "attack", "proxy_type": "tor"},
    {"min_confidence": "medium", "proxy_type": "mobile", "region": ["br", "DE"]},
    {"threat_only": "true", "event_type": "account_probe"},
    {"confidence": "low", "stage": "TESTING", "region": "ZZ", "proxy_type": ["tor", "datacenter"]},
    {"domain": "*.bank.example", "stage": "ATTACK", "region": "JP"},
    {"domain": ["shop.example", "*.shop.example"], "event_type": "credential_testing",
     "min_confidence": "high"},
    {"domain": "*.many.example", "proxy_type": "residential", "stage": "TESTING"},
    {"domain": "h3.many.example,h4.many.example", "event_type": "fraud_test",
     "confidence": ["medium", "high"]},
    {"action": "block", "stage": "ATTACK"},
    {"action": ["monitor", "step_up"], "domain": "bank.example", "region": "US"},
    {"action": "alert_soc"},
]


def stored_in_window(srv, key, since_text):
    """The stored signals of the window, fetched by paging the whole list."""
    signals, cursor = [], None
    for _ in range(1000):
        params = {"since_time": since_text, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        status, page = get_json(url(srv, "/v1/canary/signals", **params), key)
        if status != 200:
            raise AssertionError("list answered %d: %r" % (status, page))
        signals += page["signals"]
        cursor = page["next_cursor"]
        if not cursor:
            return signals, page["total_count"]
    raise AssertionError("paging did not end")


@test
def multi_field_counts_equal_recount():
    with Canaryd() as srv:
        key = srv.key()
        load(srv, key, 21, 2500, 20)
        now = time.time()
        # Window starts early and late in a minute: the counters then
        # start at the minute before or after.
        for since in (now - 19 * 3600 - (now % 60) + 7.5, now - 17 * 3600 - (now % 60) + 52.25):
            since_text = rfc3339(since)
            stored, total = stored_in_window(srv, key, since_text)
            check_eq(total, len(stored), "unfiltered total_count since %s" % since_text)
            for params in MULTI_FIELD:
                for path, feed in (("/v1/canary/signals", False), ("/v1/canary/threat-feed", True)):
                    want = [s["seq"] for s in stored if matches(s, params, feed)]
                    pages, total = all_pages(srv, key, path, 61, since_time=since_text, **params)
                    label = "%s %r since %s" % (path, params, since_text)
                    check_eq(total, len(want), "total_count of " + label)
                    check_eq([seq for page in pages for seq in page], want, "pages of " + label)


@test
def index_and_global_paths_agree():
    with Canaryd() as srv:
        key = srv.key()
        tenant = srv.key(scopes="read", domains="bank.example,login.bank.example,h9.many.example")
        load(srv, key, 5, 2000, 10)
        since_text = rfc3339(time.time() - 9 * 3600 + 13.5)
        queries = [
            {"domain": "bank.example"},
            {"domain": "*.bank.example", "stage": "ATTACK"},
            {"domain": "shop.example,*.shop.example,h1.many.example", "min_confidence": "medium"},
            {"domain": "h1.many.example", "event_type": "sim_recon", "proxy_type": "tor"},
            {"domain": "xbank.example", "action": "block"},
        ]
        for params in queries:
            for path in ("/v1/canary/signals", "/v1/canary/threat-feed"):
                indexed = all_pages(srv, key, path, 13, since_time=since_text, **params)
                wide = dict(params, domain=[params["domain"]] + ABSENT)
                scanned = all_pages(srv, key, path, 13, since_time=since_text, **wide)
                check_eq(indexed, scanned, "pages and total_count of %s %r" % (path, params))
                check(indexed[1] > 0 or "threat" in path, "%s %r matches something" % (path, params))

        # A tenant's domains name the index too; a filter naming more
        # domains than it merges still counts only the tenant's.
        for params in ({}, {"stage": "TESTING", "region": "DE"},
                       {"domain": ["*.many.example"] + ABSENT}):
            pages, total = all_pages(srv, tenant, "/v1/canary/signals", 17,
                                     since_time=since_text, **params)
            stored, _ = stored_in_window(srv, key, since_text)
            want = [s["seq"] for s in stored
                    if s["related_domain"] in ("bank.example", "login.bank.example", "h9.many.example")
                    and matches(s, {k: v for k, v in params.items() if k != "domain"})
                    and ("domain" not in params or s["related_domain"].endswith(".many.example"))]
            check_eq(total, len(want), "tenant total_count for %r" % params)
            check_eq([seq for page in pages for seq in page], want, "tenant pages for %r" % params)


def mark_store_older(data_dir, stale_next_seq):
    """Writes meta indexed_next_seq as a canaryd older than the per-domain
    index leaves it, with lmdb-utils' mdb_load, while canaryd is stopped."""
    dump = os.path.join(os.path.dirname(data_dir), "meta.dump")
    with open(dump, "w") as f:
        f.write("VERSION=3\nformat=bytevalue\ndatabase=meta\ntype=btree\nHEADER=END\n")
        f.write(" %s\n %016x\nDATA=END\n" % (b"indexed_next_seq".hex(), stale_next_seq))
    subprocess.run(["mdb_load", "-s", "meta", "-f", dump, data_dir], check=True)


@test
def store_from_older_canaryd_answers_the_same():
    with Canaryd() as srv:
        key = srv.key()
        sigs = load(srv, key, 8, 1200, 6)
        since_text = rfc3339(time.time() - 5 * 3600 + 41.5)
        queries = [{"event_type": "sim_recon", "stage": "ATTACK"},
                   {"domain": "*.bank.example", "proxy_type": "tor", "confidence": "high"},
                   {"domain": "shop.example", "region": "JP"}, {}]
        before = {i: all_pages(srv, key, "/v1/canary/signals", 29, since_time=since_text, **q)
                  for i, q in enumerate(queries)}
        srv.stop()
        mark_store_older(srv.data_dir, 1)
        srv.start()
        check("signals from an older canaryd" in srv.read_log(), "start logs the older signals")
        for i, q in enumerate(queries):
            after = all_pages(srv, key, "/v1/canary/signals", 29, since_time=since_text, **q)
            check_eq(after, before[i], "pages and total_count of %r after the upgrade" % q)

        # Newer signals are indexed again: a window after every older
        # signal counts and pages them all.
        newest_old = max(parse_time(s["timestamp"]) for s in sigs)
        rng = random.Random(9)
        fresh = [random_signal(rng, newest_old + 1 + rng.uniform(0, 60)) for _ in range(300)]
        ingest_ok(srv, key, fresh)
        since_text = rfc3339(newest_old + 0.5)
        for q in queries:
            want = sorted(((parse_time(s["timestamp"]), seq) for seq, s in
                           enumerate(fresh, len(sigs) + 1) if matches(s, q)), reverse=True)
            pages, total = all_pages(srv, key, "/v1/canary/signals", 29, since_time=since_text, **q)
            check_eq(total, len(want), "total_count of %r after new signals" % q)
            check_eq([seq for page in pages for seq in page], [seq for _, seq in want],
                     "pages of %r after new signals" % q)


@test
def domain_paging_under_ingest():
    with Canaryd() as srv:
        key = srv.key()
        before = load(srv, key, 3, 1500, 20)
        params = {"domain": "*.bank.example,shop.example,h5.many.example", "limit": 7,
                  "since_hours": 48}
        expected = {i + 1 for i, s in enumerate(before) if matches(s, params)}

        stop = threading.Event()

        def producer():
            rng = random.Random(77)
            while not stop.is_set():
                batch = [random_signal(rng, time.time() - rng.uniform(0, 20 * 3600),
                                       ["bank.example", "login.bank.example", "new.bank.example",
                                        "shop.example"])
                         for _ in range(40)]
                ingest_ok(srv, key, batch)

        thread = threading.Thread(target=producer)
        thread.start()
        seen, order, cursor = [], [], None
        try:
            for _ in range(1000):
                extra = dict(params)
                if cursor:
                    extra["cursor"] = cursor
                status, page = get_json(url(srv, "/v1/canary/signals", **extra), key)
                check_eq(status, 200, "page status")
                seen += [s["seq"] for s in page["signals"]]
                order += [(parse_time(s["timestamp"]), s["seq"]) for s in page["signals"]]
                cursor = page["next_cursor"]
                if not cursor:
                    break
        finally:
            stop.set()
            thread.join()
        check_eq(len(seen), len(set(seen)), "no signal listed twice")
        check(expected <= set(seen), "every matching signal stored before paging is listed (%d missing)"
              % len(expected - set(seen)))
        check(order == sorted(order, reverse=True), "pages are newest first")


run_tests()

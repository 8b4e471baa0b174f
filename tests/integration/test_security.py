"""Security guards against a real canaryd. Covers scopes on every route and
on the upgrades, the key lifecycle while the server runs, and tenant
isolation on every surface. Also covers hard limits (bodies, headers,
filters, connections, stalled handshakes), personal data planted in every
input path and searched for in every output, and the switch to an
unprivileged user."""

import asyncio
import glob
import hashlib
import http.client
import json
import os
import pwd
import re
import socket
import subprocess
import time

import websockets

from canary import (CANARYD, COWRIE_LOG, SENSOR, Canaryd, Stream, check, check_eq,
                    expect_close, get_json, http_get, http_request, ingest, make_signal,
                    now_rfc3339, run_tests, test)

STREAM_JSON = "canary.v1.json"
INGEST_WS = "canary.v1.ingest"


def key_id(key):
    return key.split("_")[1]


def revoke(srv, key):
    subprocess.run([CANARYD, "keys", "revoke", "--data-dir", srv.data_dir, key_id(key)],
                   check=True, capture_output=True)


def route_exists(srv, path, key):
    status, _, _ = http_get(srv.http + path, key)
    return status != 404


async def ws_close_code(srv, subprotocol, key=None, headers=None, first_message=None):
    """Opens a WebSocket; returns the close code, or None when it stays open."""
    hdrs = dict(headers or {})
    if key:
        hdrs["Authorization"] = "Bearer " + key
    try:
        ws = await websockets.connect(srv.ws, subprotocols=[subprotocol], extra_headers=hdrs)
    except websockets.InvalidStatusCode as e:
        return e.status_code
    if first_message:
        await ws.send(json.dumps(first_message))
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 1.5)
    except asyncio.TimeoutError:
        await ws.close()
        return None
    except websockets.ConnectionClosed as e:
        return e.code


# ---- scopes ----

@test
async def scopes_on_every_route():
    with Canaryd() as srv:
        admin = srv.key("ingest,subscribe,read,admin")
        scopes = {s: srv.key(s) for s in ("ingest", "subscribe", "read")}
        revoked = srv.key("ingest,subscribe,read")
        revoke(srv, revoked)
        unknown = "ck_0123456789abcdef_" + "ab" * 32
        ingest(srv, admin, [make_signal(0)])

        reads = ["/v1/canary/signals", "/v1/canary/threat-feed"]
        for extra in ("/v1/canary/campaigns", "/v1/canary/stats"):
            if route_exists(srv, extra, admin):
                reads.append(extra)
            else:
                print("  note: %s does not exist yet; not checked" % extra)

        routes = [("GET", p, "read", None) for p in reads]
        routes.append(("POST", "/v1/canary/signals", "ingest", json.dumps([make_signal(1)]).encode()))
        for method, path, scope, body in routes:
            url = srv.http + path
            hdr = {"Content-Type": "application/json"}
            status, headers, _ = http_request(method, url, body, hdr)
            check_eq(status, 401, "%s %s without a key" % (method, path))
            check(headers.get("WWW-Authenticate", "").startswith("Bearer"),
                  "%s %s: WWW-Authenticate on 401" % (method, path))
            for name, bad in (("unknown", unknown), ("revoked", revoked)):
                status, headers, _ = http_request(method, url, body,
                                                  dict(hdr, Authorization="Bearer " + bad))
                check_eq(status, 401, "%s %s with an %s key" % (method, path, name))
            for other in ("ingest", "subscribe", "read"):
                if other == scope:
                    continue
                status, _, _ = http_request(method, url, body,
                                            dict(hdr, Authorization="Bearer " + scopes[other]))
                check_eq(status, 403, "%s %s with a %s-only key" % (method, path, other))
            status, _, _ = http_request(method, url, body,
                                        dict(hdr, Authorization="bearer " + scopes[scope]))
            check(status in (200, 202), "%s %s with the %s scope: %d" % (method, path, scope, status))
            # An oversized Authorization header is rejected, never read as absent.
            status, _, _ = http_request(method, url, body,
                                        dict(hdr, Authorization="Bearer " + "A" * 4000))
            check(status in (401, 431), "%s %s with an oversized key: %d" % (method, path, status))

        # The stream and the ingest WebSocket check the key at the upgrade.
        for proto, scope in ((STREAM_JSON, "subscribe"), (INGEST_WS, "ingest")):
            check_eq(await ws_close_code(srv, proto, unknown), 4401, "%s: unknown key" % proto)
            check_eq(await ws_close_code(srv, proto, revoked), 4401, "%s: revoked key" % proto)
            check_eq(await ws_close_code(srv, proto, headers={"Authorization": "Bearer " + "A" * 4000}),
                     4401, "%s: oversized Authorization" % proto)
            for other in ("ingest", "subscribe", "read"):
                if other != scope:
                    check_eq(await ws_close_code(srv, proto, scopes[other]), 4403,
                             "%s: %s-only key" % (proto, other))
            check_eq(await ws_close_code(srv, proto, scopes[scope]), None,
                     "%s: %s key stays connected" % (proto, scope))
            check_eq(await ws_close_code(srv, proto, first_message={"op": "auth", "token": revoked}),
                     4401, "%s: revoked key in the auth message" % proto)

        # Files outside the console are never served.
        for path in ("/../server/main.c", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc/passwd"):
            status, _, body = http_get(srv.http + path)
            check(status in (400, 403, 404), "%s: status %d" % (path, status))
            check(b"root:" not in body and b"#include" not in body, "%s: no file content" % path)


# ---- key lifecycle ----

@test
async def key_lifecycle_while_running():
    with Canaryd() as srv:
        key = srv.key("ingest,subscribe,read", name="lifecycle")
        status, _ = ingest(srv, key, [make_signal(0)])
        check_eq(status, 202, "a key created while canaryd runs works at once")

        listed = subprocess.run([CANARYD, "keys", "list", "--data-dir", srv.data_dir],
                                check=True, capture_output=True, text=True).stdout
        secret = key.split("_")[2]
        digest = hashlib.sha256(key.encode()).hexdigest()
        check(key_id(key) in listed, "keys list shows the id")
        check(secret not in listed and key not in listed, "keys list never shows the secret")
        check(digest not in listed, "keys list never shows the hash")

        s = await Stream.open(srv, key)
        await s.recv_type("welcome")
        await s.subscribe("all")
        ingest_ws = await websockets.connect(srv.ws, subprotocols=[INGEST_WS],
                                             extra_headers={"Authorization": "Bearer " + key})
        started = time.time()
        revoke(srv, key)
        code, _ = await expect_close(s.ws, timeout=10)
        elapsed = time.time() - started
        check_eq(code, 4403, "revoked key's stream closed with 4403")
        check(elapsed < 5, "closed within 5 s (took %.1f s)" % elapsed)

        status, headers, _ = http_get(srv.http + "/v1/canary/signals", key)
        check_eq(status, 401, "next REST request with the revoked key")
        status, _ = ingest(srv, key, [make_signal(1)])
        check_eq(status, 401, "next ingest with the revoked key")
        check_eq(await ws_close_code(srv, STREAM_JSON, key), 4401, "next stream upgrade")

        # The ingest WebSocket rejects the next batch of a revoked key.
        await ingest_ws.send(json.dumps([make_signal(2)]))
        code, _ = await expect_close(ingest_ws, timeout=10)
        check_eq(code, 4403, "ingest WebSocket closed after revocation")
        _, health = get_json(srv.http + "/healthz", None)
        check_eq(health["head_seq"], 1, "nothing stored after revocation")


# ---- tenant isolation ----

def only_domains(items, allowed, what):
    domains = {x["related_domain"] for x in items}
    check(domains <= set(allowed), "%s: domains %s, allowed %s" % (what, sorted(domains), allowed))


@test
async def tenants_see_only_their_domains():
    with Canaryd() as srv:
        admin = srv.key("ingest,subscribe,read,admin")
        bank = srv.key("ingest,subscribe,read", domains="bank.example,login.bank.example")
        shop = srv.key("ingest,subscribe,read", domains="shop.example")

        bank_s = await Stream.open(srv, bank)
        await bank_s.recv_type("welcome")
        await bank_s.subscribe("theirs", {"domains": ["shop.example"]})
        shop_s = await Stream.open(srv, shop)
        await shop_s.recv_type("welcome")
        await shop_s.subscribe("all")
        await shop_s.subscribe("wild", {"domains": ["*.bank.example"]})
        admin_s = await Stream.open(srv, admin)
        await admin_s.recv_type("welcome")
        await admin_s.subscribe("all")

        # Observed within the last hour, so that every stats window holds them.
        sigs = [make_signal(i, confidence="high", timestamp=now_rfc3339(-60 - i)) for i in range(30)]
        status, _ = ingest(srv, admin, sigs)
        check_eq(status, 202, "admin ingests for every tenant")

        got = await admin_s.signals(30)
        check_eq(len(got), 30, "admin sees every domain")
        got = await shop_s.signals(10)
        only_domains([m["signal"] for m in got], ["shop.example"], "shop stream")
        check(all(m["sub"] == "all" for m in got), "shop's wildcard on bank gets nothing")
        for s in (bank_s, shop_s):
            await s.send({"op": "ping"})
            rest = []
            while True:
                msg = await s.recv()
                if msg["type"] == "pong":
                    break
                rest.append(msg)
            check_eq([m for m in rest if m["type"] == "signal"], [],
                     "no other tenant's signal before the pong")

        for path in ("/v1/canary/signals?limit=1000", "/v1/canary/threat-feed?limit=1000",
                     "/v1/canary/signals?limit=1000&domain=shop.example"):
            _, page = get_json(srv.http + path, bank)
            only_domains(page["signals"], ["bank.example", "login.bank.example"], "bank " + path)
            expected = 0 if "domain=shop" in path else 20
            check_eq(page["total_count"], expected, "bank total_count for " + path)
            _, page = get_json(srv.http + path, admin)
            check(page["total_count"] >= 10, "admin sees all for " + path)

        if route_exists(srv, "/v1/canary/campaigns", admin):
            _, page = get_json(srv.http + "/v1/canary/campaigns?limit=1000", shop)
            only_domains(page["campaigns"], ["shop.example"], "shop campaigns")
            check(page["total_count"] >= 1, "shop has campaigns")
            check_eq(sum(c["signal_count"] for c in page["campaigns"]), 10,
                     "shop campaigns count only shop signals")
            _, page = get_json(srv.http + "/v1/canary/campaigns?limit=1000", admin)
            check_eq({c["related_domain"] for c in page["campaigns"]},
                     {"bank.example", "shop.example", "login.bank.example"}, "admin campaigns")
        else:
            print("  note: /v1/canary/campaigns does not exist yet; not checked")
        if route_exists(srv, "/v1/canary/stats", admin):
            _, stats = get_json(srv.http + "/v1/canary/stats?since_hours=24", shop)
            check_eq(stats["total"], 10, "shop stats count only shop.example")
            check_eq([d["domain"] for d in stats["top_domains"]], ["shop.example"], "shop top_domains")
            for group in ("by_event_type", "by_confidence", "by_stage", "by_proxy_type", "by_region"):
                check_eq(sum(stats[group].values()), 10, "shop %s sums to its own total" % group)
            check_eq(sum(b["count"] for b in stats["trend"]), 10, "shop trend")
            _, stats = get_json(srv.http + "/v1/canary/stats?since_hours=24", admin)
            check_eq(stats["total"], 30, "admin stats count everything")
        else:
            print("  note: /v1/canary/stats does not exist yet; not checked")

        # Ingest: a tenant cannot write into another tenant's domain.
        status, body = ingest(srv, shop, [make_signal(0, related_domain="bank.example")])
        check(status in (400, 403), "shop ingesting for bank refused: %d" % status)
        _, health = get_json(srv.http + "/healthz", None)
        check_eq(health["head_seq"], 30, "nothing stored from the refused batch")
        for s in (bank_s, shop_s, admin_s):
            await s.close()


# ---- hard limits ----

@test
def body_limit_413():
    with Canaryd(settings={"max_body_bytes": "4K"}) as srv:
        key = srv.key()
        big = json.dumps([make_signal(i) for i in range(40)]).encode()
        check(len(big) > 4096, "test body is over the limit")
        status, body = ingest(srv, key, None, raw=big)
        check_eq(status, 413, "body over max_body_bytes")
        check("max_body_bytes" in body.get("detail", ""), "detail names the setting")
        # Without Content-Length (chunked), the limit still holds.
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20)
        conn.putrequest("POST", "/v1/canary/signals")
        conn.putheader("Authorization", "Bearer " + key)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        try:
            for i in range(0, len(big), 1000):
                part = big[i:i + 1000]
                conn.send(b"%x\r\n%s\r\n" % (len(part), part))
            conn.send(b"0\r\n\r\n")
            status = conn.getresponse().status
        except (ConnectionResetError, BrokenPipeError):
            status = 413
        check(status in (413, 411), "chunked body over the limit: %d" % status)
        conn.close()
        _, health = get_json(srv.http + "/healthz", None)
        check_eq(health["head_seq"], 0, "nothing stored")


@test
def oversized_headers_dropped():
    with Canaryd() as srv:
        for size, served in ((6000, True), (9000, False), (100000, False)):
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            try:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * size + b"\r\n\r\n")
                reply = sock.recv(64)
            except (ConnectionResetError, BrokenPipeError):
                reply = b""
            sock.close()
            check_eq(reply.startswith(b"HTTP/1.1 200"), served,
                     "a %d-byte header is %s" % (size, "served" if served else "dropped"))
        status, _, _ = http_get(srv.http + "/healthz")
        check_eq(status, 200, "still serving")


@test
async def filter_size_limits():
    with Canaryd(settings={"max_subscriptions": 3}) as srv:
        key = srv.key()
        s = await Stream.open(srv, key)
        await s.recv_type("welcome")
        watch = ["brand%04d.example" % i for i in range(5000)] + ["bank.example"]
        await s.subscribe("watch", {"domains": watch})
        ingest(srv, key, [make_signal(i) for i in range(6)])
        got = await s.signals(2)
        only_domains([m["signal"] for m in got], ["bank.example"], "5,000-domain watchlist")

        await s.send({"op": "subscribe", "id": "huge",
                      "filter": {"domains": ["d%05d.example" % i for i in range(20000)]}})
        err = await s.recv_type("error")
        check_eq(err["code"], "invalid_filter", "a 20,000-domain filter is refused")
        check("max_filter_domains" in err["message"], "message names the setting: %s" % err["message"])

        await s.subscribe("two")
        await s.subscribe("three")
        await s.send({"op": "subscribe", "id": "four"})
        err = await s.recv_type("error")
        check_eq(err["code"], "too_many_subscriptions", "max_subscriptions")
        await s.send({"op": "ping"})
        check_eq((await s.recv_type("pong"))["type"], "pong", "the connection stays open")
        await s.close()

    with Canaryd(settings={"max_filter_domains": 100}) as srv:
        key = srv.key()
        s = await Stream.open(srv, key)
        await s.recv_type("welcome")
        await s.subscribe("ok", {"domains": ["d%03d.example" % i for i in range(100)]})
        await s.send({"op": "subscribe", "id": "over",
                      "filter": {"domains": ["d%03d.example" % i for i in range(101)]}})
        err = await s.recv_type("error")
        check_eq(err["code"], "invalid_filter", "max_filter_domains = 100 refuses 101")
        await s.close()


@test
async def connection_limits_4429():
    with Canaryd(settings={"max_connections": 4, "max_connections_per_key": 2}) as srv:
        a = srv.key()
        b = srv.key()
        open_ = []
        for _ in range(2):
            s = await Stream.open(srv, a)
            await s.recv_type("welcome")
            open_.append(s)
        code = await ws_close_code(srv, STREAM_JSON, a)
        check_eq(code, 4429, "third connection of one key")
        for _ in range(2):
            s = await Stream.open(srv, b)
            await s.recv_type("welcome")
            open_.append(s)
        code = await ws_close_code(srv, STREAM_JSON, b)
        check_eq(code, 4429, "connection over max_connections")
        # Closing frees the slots of the key.
        await open_[0].close()
        await asyncio.sleep(0.3)
        s = await Stream.open(srv, a)
        check_eq((await s.recv_type("welcome"))["type"], "welcome", "slot reused after a close")
        await s.close()
        for s in open_[1:]:
            await s.close()


def stalled_socket(port, payload):
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(payload)
    return sock


def dropped_within(sock, seconds):
    """Waits until the server closes sock; returns the seconds it took, or None."""
    started = time.time()
    sock.settimeout(0.2)
    while time.time() - started < seconds:
        try:
            data = sock.recv(4096)
            if not data or data.startswith(b"HTTP/1.1 408"):
                return time.time() - started
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.time() - started
    return None


@test
def stalled_handshakes_dropped():
    with Canaryd(settings={"handshake_timeout_s": 2}) as srv:
        half_line = stalled_socket(srv.port, b"GET /heal")
        half_headers = stalled_socket(srv.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        nothing = stalled_socket(srv.port, b"")
        trickle = stalled_socket(srv.port, b"G")
        started = time.time()
        # Other clients are served while the stalled ones wait.
        for _ in range(5):
            t0 = time.time()
            status, _, _ = http_get(srv.http + "/healthz")
            check_eq(status, 200, "healthz while clients stall")
            check(time.time() - t0 < 1, "served promptly")
        # Two bytes a second never complete the headers in time.
        trickle_closed = None
        for ch in b"ET /healthz HTTP/1.1\r\nX-Slow: 1\r\n":
            try:
                trickle.sendall(bytes([ch]))
            except (BrokenPipeError, ConnectionResetError):
                trickle_closed = time.time() - started
                break
            time.sleep(0.5)
            if time.time() - started > 8:
                break
        for name, sock in (("half request line", half_line), ("half headers", half_headers),
                           ("no bytes", nothing)):
            took = dropped_within(sock, 8)
            check(took is not None, "%s dropped" % name)
            sock.close()
        if trickle_closed is None:
            took = dropped_within(trickle, 2)
            trickle_closed = None if took is None else time.time() - started
        check(trickle_closed is not None and trickle_closed < 8,
              "a client sending headers byte by byte is dropped (%s)" % trickle_closed)
        trickle.close()


# ---- personal data ----

def cowrie_markers(limit=200):
    """Raw addresses, user names and passwords from the bundled Cowrie log,
    kept only when distinctive enough that a match cannot be chance."""
    ips, creds = set(), set()
    with open(COWRIE_LOG) as f:
        for line in f:
            ev = json.loads(line)
            if ev.get("src_ip"):
                ips.add(ev["src_ip"])
            for field in ("username", "password"):
                v = ev.get(field)
                if isinstance(v, str) and len(v) >= 6 and re.search(r"\d", v) and re.search(r"[A-Za-z]", v):
                    creds.add(v)
    return sorted(ips)[:limit], sorted(creds)[:limit]


def outputs(srv, extra_texts):
    blobs = {"server log": open(srv.log_path, "rb").read()}
    for f in glob.glob(os.path.join(srv.data_dir, "*")):
        blobs[os.path.basename(f)] = open(f, "rb").read()
    for name, text in extra_texts.items():
        blobs[name] = text if isinstance(text, bytes) else text.encode()
    return blobs


@test
async def personal_data_in_no_output():
    markers = {"user_agent": "UAmarker5521", "forwarded": "198.51.100.55",
               "query": "QSmarker5521", "bad_secret": "BADSECRETmarker5521deadbeef",
               "ws_token": "WSTOKENmarker5521", "sub_id": "SUBmarker5521",
               "username": "USERmarker5521", "password": "PASSmarker5521",
               "email": "mail5521@example.org", "src_ip": "203.0.113.55",
               "client_ip": "127.0.0.55"}
    with Canaryd() as srv:
        key = srv.key()
        watcher = await Stream.open(srv, key)
        await watcher.recv_type("welcome")
        await watcher.subscribe("all")

        # HTTP: query strings, headers and a bad key's secret.
        bad_key = "ck_0123456789abcdef_" + markers["bad_secret"]
        headers = {"User-Agent": markers["user_agent"], "X-Forwarded-For": markers["forwarded"],
                   "Authorization": "Bearer " + bad_key}
        http_request("GET", srv.http + "/v1/canary/signals?domain=" + markers["query"], headers=headers)
        http_request("GET", srv.http + "/v1/canary/signals?colour=" + markers["query"],
                     headers=dict(headers, Authorization="Bearer " + key))
        http_request("POST", srv.http + "/v1/canary/signals", b"{}", dict(headers, **{"Content-Type": "application/json"}))
        # From another loopback address, so that a logged peer address shows.
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10,
                                          source_address=(markers["client_ip"], 0))
        conn.request("GET", "/v1/canary/signals?limit=" + markers["query"],
                     headers={"Authorization": "Bearer " + bad_key})
        conn.getresponse().read()
        conn.close()

        # Ingest with personal fields in every signal.
        planted = [dict(make_signal(i), username=markers["username"], password=markers["password"],
                        email=markers["email"], src_ip=markers["src_ip"],
                        message="login %s/%s from %s" % (markers["username"], markers["password"],
                                                         markers["src_ip"]))
                   for i in range(10)]
        status, _ = ingest(srv, key, planted)
        check_eq(status, 202, "ingest with personal fields")

        # WebSocket: a bad token in the header and in the auth message, and
        # markers in subscribe ids and filters.
        await ws_close_code(srv, STREAM_JSON, bad_key)
        await ws_close_code(srv, STREAM_JSON, first_message={"op": "auth", "token": markers["ws_token"]})
        s = await Stream.open(srv, key)
        await s.recv_type("welcome")
        await s.subscribe(markers["sub_id"])
        await s.send({"op": "subscribe", "id": "bad", "filter": {"domains": [markers["username"]]}})
        await s.recv_type("error")
        await s.send({"op": "subscribe", "id": "bad2", "filter": {"regions": [markers["password"]]}})
        await s.recv_type("error")
        await s.close()

        # The sensor's input: the bundled Cowrie log with raw addresses,
        # user names and passwords.
        ips, creds = [], []
        if os.path.exists(SENSOR):
            ips, creds = cowrie_markers()
            run = subprocess.run([SENSOR, "--url", srv.http, "--key", key, "--format", "cowrie",
                                  "--domain", "bank.example", COWRIE_LOG],
                                 capture_output=True, text=True, timeout=120)
            check_eq(run.returncode, 0, "canary-sensor posted the Cowrie log: %s" % run.stderr[-300:])
        else:
            print("  note: canary-sensor is not built; its input path is not checked")

        pushed = json.dumps(await watcher.signals(10))
        await watcher.close()
        answers = {"pushed": pushed}
        for path in ("/v1/canary/signals?limit=1000", "/v1/canary/threat-feed?limit=1000",
                     "/v1/canary/campaigns", "/v1/canary/stats?since_hours=24"):
            _, _, body = http_get(srv.http + path, key)
            answers[path] = body
        _, _, answers["/metrics"] = http_get(srv.http + "/metrics")
        _, _, answers["/healthz"] = http_get(srv.http + "/healthz")
    blobs = outputs(srv, answers)
    secret = key.split("_")[2]
    for name, blob in blobs.items():
        for marker_name, value in markers.items():
            check(value.encode() not in blob, "%s absent from %s" % (marker_name, name))
        check(secret.encode() not in blob, "the good key's secret absent from %s" % name)
        leaked = [v for v in ips + creds if v.encode() in blob]
        check_eq(leaked[:5], [], "Cowrie addresses and credentials in %s" % name)


# ---- privileges ----

@test
def drops_to_configured_user():
    if os.geteuid() != 0:
        print("  note: not running as root; the switch to an unprivileged user is not checked")
        return
    name = "canary-test"
    try:
        pwd.getpwnam(name)
    except KeyError:
        created = subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                               "/usr/sbin/nologin", name], capture_output=True, text=True)
        if created.returncode != 0:
            print("  note: useradd failed (%s); not checked" % created.stderr.strip())
            return
    entry = pwd.getpwnam(name)
    srv = Canaryd(settings={"user": name})
    # The test's temp directory must be reachable by the unprivileged user.
    os.chmod(srv.tmp, 0o755)
    with srv:
        key = srv.key()
        with open("/proc/%d/status" % srv.proc.pid) as f:
            status = f.read()
        uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
        gids = re.search(r"^Gid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
        check_eq(set(map(int, uids)), {entry.pw_uid}, "real, effective, saved and fs uid")
        check_eq(set(map(int, gids)), {entry.pw_gid}, "every gid")
        groups = re.search(r"^Groups:\s*(.*)$", status, re.M).group(1).split()
        check("0" not in groups, "no root supplementary group: %s" % groups)
        status, _ = ingest(srv, key, [make_signal(0)])
        check_eq(status, 202, "the store stays writable after the switch")
        for f in glob.glob(os.path.join(srv.data_dir, "*")) + [srv.data_dir]:
            check_eq(os.stat(f).st_uid, entry.pw_uid, "owner of %s" % os.path.basename(f))
    # Restarting as root with the same data directory works again.
    with Canaryd(data_dir=srv.data_dir, settings={"user": name}) as again:
        status, _, _ = http_get(again.http + "/healthz")
        check_eq(status, 200, "restart on the same data directory")

    bad = subprocess.run([CANARYD, "--data-dir", os.path.join(srv.tmp, "x"), "--set",
                          "user=no-such-user-5521", "--listen", "127.0.0.1:0"],
                         capture_output=True, text=True, timeout=20)
    check(bad.returncode != 0, "an unknown user stops the start")
    check("no-such-user-5521" in bad.stderr, "the error names the user: %s" % bad.stderr[-200:])


run_tests()

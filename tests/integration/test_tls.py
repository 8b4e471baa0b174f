"""TLS on the listener, with a throw-away CA and server certificate made
with the openssl command. Every client verifies the server: Python's ssl,
urllib and websockets, canary-tail and canary-sensor. Also checks that
TLS 1.0, TLS 1.1 and plain HTTP are rejected, that ALPN offers only
http/1.1, and that a certificate reload on SIGHUP reaches new handshakes
while open connections stay up."""

import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request
import warnings

import websockets

from canary import (SENSOR, TAIL, Canaryd, Stream, check, check_eq, expect_close,
                    make_signal, run_tests, test)

OPENSSL = shutil.which("openssl")

# The legacy-client checks use TLS 1.0 and 1.1 on purpose.
warnings.filterwarnings("ignore", category=DeprecationWarning, message="ssl.TLSVersion")


def openssl(*args, cwd):
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder, name="Canary Test CA"):
    """Writes ca.key and ca.pem (a self-signed CA) into folder."""
    os.makedirs(folder, exist_ok=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=" + name, "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    return os.path.join(folder, "ca.pem")


def make_server_cert(folder, serial, stem="server"):
    """Writes STEM.key and STEM.pem for 127.0.0.1 and localhost, signed by
    the CA in folder, with the given serial number."""
    ext = os.path.join(folder, stem + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", stem + ".key", "-out", stem + ".csr", "-subj", "/CN=127.0.0.1",
            cwd=folder)
    openssl("x509", "-req", "-in", stem + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-set_serial", str(serial), "-days", "2", "-extfile", ext,
            "-out", stem + ".pem", cwd=folder)
    return os.path.join(folder, stem + ".pem"), os.path.join(folder, stem + ".key")


class TlsCanaryd(Canaryd):
    """canaryd with tls_cert and tls_key; urllib trusts the test CA while it runs."""

    def __init__(self, ca, cert, key, settings=None):
        super().__init__(settings=dict(settings or {}, tls_cert=cert, tls_key=key))
        self.ca = ca
        self.ctx = ssl.create_default_context(cafile=ca)

    @property
    def http(self):
        return "https://127.0.0.1:%d" % self.port

    @property
    def ws(self):
        return "wss://127.0.0.1:%d/v1/canary/stream" % self.port

    def start(self):
        urllib.request.install_opener(urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self.ctx)))
        return super().start()

    def stop(self, sig=signal.SIGTERM):
        try:
            return super().stop(sig)
        finally:
            urllib.request.install_opener(None)


def https(srv, method, path, key=None, body=None, ctype="application/json"):
    headers = {"Content-Type": ctype}
    if key:
        headers["Authorization"] = "Bearer " + key
    req = urllib.request.Request(srv.http + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def tls_connect(port, ctx, alpn=None):
    """A verified TLS connection; returns the SSL socket."""
    if alpn:
        ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def pki():
    folder = tempfile.mkdtemp(prefix="canary-tls-")
    ca = make_ca(folder)
    cert, key = make_server_cert(folder, 4242)
    return folder, ca, cert, key


@test
async def https_and_wss_verified():
    folder, ca, cert, key = pki()
    with TlsCanaryd(ca, cert, key) as srv:
        k = srv.key()
        status, body = https(srv, "GET", "/healthz")
        check_eq(status, 200, "GET /healthz over verified HTTPS")

        s = await Stream.open(srv, k, ssl=srv.ctx)
        await s.recv_type("welcome")
        await s.subscribe("all")
        status, body = https(srv, "POST", "/v1/canary/signals", k,
                             json.dumps([make_signal(i) for i in range(3)]).encode())
        check_eq(status, 202, "ingest over HTTPS")
        got = await s.signals(3)
        check_eq(len(got), 3, "signals over WSS")
        await s.close()

        sock = tls_connect(srv.port, ssl.create_default_context(cafile=ca), ["h2", "http/1.1"])
        check(sock.version() in ("TLSv1.2", "TLSv1.3"), "protocol %s" % sock.version())
        check_eq(sock.selected_alpn_protocol(), "http/1.1", "ALPN never picks h2")
        check_eq(int(sock.getpeercert()["serialNumber"], 16), 4242, "certificate serial")
        sock.close()

        # TLS 1.2 clients get an ECDHE AEAD suite.
        ctx12 = ssl.create_default_context(cafile=ca)
        ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
        sock = tls_connect(srv.port, ctx12)
        name = sock.cipher()[0]
        check(name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20" in name),
              "TLS 1.2 suite is ECDHE with AEAD, got %s" % name)
        sock.close()

        # Verification is really on: another CA's client refuses the server.
        other = make_ca(os.path.join(folder, "other"), "Other CA")
        try:
            tls_connect(srv.port, ssl.create_default_context(cafile=other)).close()
            check(False, "a client trusting another CA must refuse the certificate")
        except ssl.SSLCertVerificationError:
            check(True, "untrusted certificate refused")
        try:
            await websockets.connect(srv.ws, ssl=ssl.create_default_context(cafile=other))
            check(False, "websockets with another CA must refuse the certificate")
        except ssl.SSLCertVerificationError:
            check(True, "websockets refused the untrusted certificate")


def legacy_client_context(version):
    """A client that offers only TLS 1.0 or 1.1, with every cipher allowed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.minimum_version = version
    ctx.maximum_version = version
    return ctx


def legacy_control_server(cert, key, version):
    """A loopback TLS server that speaks version, to prove that the legacy
    client can succeed where canaryd refuses it. Returns (port, thread)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.minimum_version = version
    ctx.maximum_version = version
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        conn, _ = listener.accept()
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass
        listener.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return listener.getsockname()[1], t


@test
def old_tls_and_plain_http_refused():
    folder, ca, cert, key = pki()
    with TlsCanaryd(ca, cert, key) as srv:
        for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            port, t = legacy_control_server(cert, key, version)
            try:
                sock = tls_connect(port, legacy_client_context(version))
                control_ok = sock.version() is not None
                sock.close()
            except ssl.SSLError:
                control_ok = False
            t.join(5)
            if not control_ok:
                print("  note: this OpenSSL cannot speak %s at all; the refusal check below proves less" % version.name)
            try:
                tls_connect(srv.port, legacy_client_context(version)).close()
                check(False, "%s must be refused" % version.name)
            except (ssl.SSLError, ConnectionResetError):
                check(True, "%s refused" % version.name)

        # Plain HTTP to the TLS port gets no HTTP response.
        raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            reply = raw.recv(4096)
        except (ConnectionResetError, socket.timeout):
            reply = b""
        check(not reply.startswith(b"HTTP/"), "plain HTTP answered: %r" % reply[:40])
        raw.close()
        # The server still serves TLS clients afterwards.
        status, _ = https(srv, "GET", "/healthz")
        check_eq(status, 200, "TLS still served")


@test
def our_clients_verify_with_cacert():
    if not (os.path.exists(TAIL) and os.path.exists(SENSOR)):
        print("  note: canary-tail or canary-sensor is not built; skipping")
        return
    folder, ca, cert, key = pki()
    with TlsCanaryd(ca, cert, key) as srv:
        k = srv.key()
        signals = os.path.join(folder, "signals.jsonl")
        with open(signals, "w") as f:
            for i in range(4):
                f.write(json.dumps(dict(make_signal(i), timestamp="2026-01-03T00:00:0%dZ" % i)) + "\n")
        sensor = subprocess.run([SENSOR, "--url", srv.http, "--key", k, "--format", "signals",
                                 "--cacert", ca, signals], capture_output=True, text=True, timeout=60)
        check_eq(sensor.returncode, 0, "canary-sensor over https with --cacert: %s" % sensor.stderr[-500:])

        tail = subprocess.run([TAIL, "--url", "wss://127.0.0.1:%d" % srv.port, "--key", k,
                               "--cacert", ca, "--since-seq", "0", "--max-signals", "4",
                               "--quiet-status"], capture_output=True, text=True, timeout=60)
        check_eq(tail.returncode, 0, "canary-tail over wss with --cacert: %s" % tail.stderr[-500:])
        lines = [json.loads(l) for l in tail.stdout.splitlines() if l.strip()]
        check_eq(len(lines), 4, "canary-tail printed the sensor's signals")

        # Both refuse a server their CA did not sign.
        other = make_ca(os.path.join(folder, "other"), "Other CA")
        sensor = subprocess.run([SENSOR, "--url", srv.http, "--key", k, "--format", "signals",
                                 "--cacert", other, signals], capture_output=True, text=True, timeout=120)
        check(sensor.returncode != 0, "canary-sensor refuses an untrusted certificate")
        try:
            tail = subprocess.run([TAIL, "--url", "wss://127.0.0.1:%d" % srv.port, "--key", k,
                                   "--cacert", other, "--since-seq", "0", "--max-signals", "1"],
                                  capture_output=True, text=True, timeout=8)
            check(tail.returncode != 0 or not tail.stdout.strip(),
                  "canary-tail refuses an untrusted certificate")
        except subprocess.TimeoutExpired as e:
            # It retries with backoff; what matters is that it printed nothing.
            check(not (e.stdout or b"").strip(), "canary-tail printed nothing from an untrusted server")


def peer_serial(port, ca):
    sock = tls_connect(port, ssl.create_default_context(cafile=ca))
    serial = int(sock.getpeercert()["serialNumber"], 16)
    sock.close()
    return serial


def wait_for_log(srv, text, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in srv.read_log():
            return True
        time.sleep(0.1)
    return False


@test
async def certificate_reload_on_sighup():
    folder, ca, cert, key = pki()
    with TlsCanaryd(ca, cert, key) as srv:
        k = srv.key()
        check_eq(peer_serial(srv.port, ca), 4242, "serial before the reload")
        old = await Stream.open(srv, k, ssl=srv.ctx)
        await old.recv_type("welcome")

        # Replace the files in place, as a renewal tool does, then SIGHUP.
        new_cert, new_key = make_server_cert(folder, 4343, stem="renewed")
        shutil.copy(new_key, key)
        shutil.copy(new_cert, cert)
        srv.proc.send_signal(signal.SIGHUP)
        check(wait_for_log(srv, "tls: reloaded"), "reload logged")
        check_eq(peer_serial(srv.port, ca), 4343, "new handshakes use the new certificate")

        await old.send({"op": "ping"})
        check_eq((await old.recv_type("pong"))["type"], "pong", "the open connection still works")
        await old.close()

        # A broken file is refused and the running certificate stays.
        with open(cert, "w") as f:
            f.write("not a certificate\n")
        srv.proc.send_signal(signal.SIGHUP)
        check(wait_for_log(srv, "tls: reload failed"), "failed reload logged")
        check_eq(peer_serial(srv.port, ca), 4343, "the current certificate stays after a failed reload")

        # A key that does not match the certificate is refused too.
        shutil.copy(new_cert, cert)
        _, stray_key = make_server_cert(folder, 4444, stem="stray")
        shutil.copy(stray_key, key)
        srv.proc.send_signal(signal.SIGHUP)
        check(wait_for_log(srv, "does not belong to the certificate"), "mismatched key refused")
        check_eq(peer_serial(srv.port, ca), 4343, "still the renewed certificate")
        status, _ = https(srv, "GET", "/healthz")
        check_eq(status, 200, "still serving")


run_tests()

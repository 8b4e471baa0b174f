"""canary-tail against a scripted stream server on a loopback port.

CANARY_TAIL names the canary-tail binary; by default it is
$CANARY_BIN_DIR/clients/canary-tail. A sanitizer build is checked for
AddressSanitizer, LeakSanitizer and UBSan reports on every run.
"""

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("CANARY_FAKE_SERVER_DIR", HERE))

from fake_stream_server import FakeStreamServer, make_signal  # noqa: E402

TAIL = os.environ.get("CANARY_TAIL") or os.path.join(
    os.environ.get("CANARY_BIN_DIR", "build"), "clients", "canary-tail")
KEY = "test-key"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:")


def compact(signal_object):
    return json.dumps(signal_object, separators=(",", ":"))


class Tail:
    """A running canary-tail process with its output collected by threads."""

    def __init__(self, port, *args, key=KEY, env_key=None, url=None):
        env = dict(os.environ)
        env.pop("CANARY_KEY", None)
        if env_key is not None:
            env["CANARY_KEY"] = env_key
        env["ASAN_OPTIONS"] = "detect_leaks=1"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1"
        argv = [TAIL, "--url", url or f"ws://127.0.0.1:{port}"]
        if key is not None:
            argv += ["--key", key]
        self.proc = subprocess.Popen(argv + list(args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, text=True)
        self.lines = []
        self.stderr = ""
        self._out = threading.Thread(target=self._read_out, daemon=True)
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._out.start()
        self._err.start()

    def _read_out(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _read_err(self):
        self.stderr = self.proc.stderr.read()

    def wait_lines(self, count, timeout=15.0):
        deadline = time.monotonic() + timeout
        while len(self.lines) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.lines) >= count

    def finish(self, timeout=20.0):
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._out.join(5)
        self._err.join(5)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code

    def seqs(self):
        return [json.loads(line)["seq"] for line in self.lines]


class TailTestCase(unittest.TestCase):
    def setUp(self):
        self.servers = []
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        for server in self.servers:
            server.stop()
        self.tmp.cleanup()

    def serve(self, **knobs):
        server = FakeStreamServer(key=KEY, **knobs)
        server.start()
        self.servers.append(server)
        return server

    def assert_clean(self, tail):
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, tail.stderr)
        self.assertNotIn(KEY, tail.stderr)


class OutputTests(TailTestCase):
    def test_batched_frames_print_each_signal(self):
        server = self.serve(signals=10, batch=4)
        tail = Tail(server.port, "--since-seq", "0", "--max-signals", "10")
        self.assertEqual(tail.finish(), 0, tail.stderr)
        self.assertEqual(tail.lines, [compact(make_signal(s)) for s in range(1, 11)])
        self.assertEqual(server.subscribe_requests[0],
                         {"op": "subscribe", "id": "s1", "filter": {}, "since_seq": 0})
        self.assertEqual(server.auth_headers_seen, 1)
        self.assertTrue(server.wait_for(lambda: server.close_codes_received == [1000]))
        self.assertIn("printed 10 signals: stopping", tail.stderr)
        self.assert_clean(tail)

    def test_filter_fields_only_given(self):
        server = self.serve(signals=2)
        tail = Tail(server.port, "--domain", "example.com", "--domain", "*.example.org",
                    "--event-type", "sim_recon", "--min-confidence", "medium",
                    "--threat-only", "--since-time", "2026-01-03T00:00:00Z",
                    "--max-signals", "1", key=None, env_key=KEY)
        self.assertEqual(tail.finish(), 0, tail.stderr)
        request = server.subscribe_requests[0]
        self.assertEqual(request["filter"], {
            "domains": ["example.com", "*.example.org"],
            "event_types": ["sim_recon"],
            "min_confidence": "medium",
            "threat_only": True,
        })
        self.assertEqual(request["since_time"], "2026-01-03T00:00:00Z")
        self.assertNotIn("since_seq", request)
        self.assertIn("printed 1 signal: stopping", tail.stderr)
        self.assert_clean(tail)

    def test_fragmented_large_message(self):
        server = self.serve(signals=5, big_seqs={3}, big_pad_bytes=300000,
                            fragment_bytes=70000)
        tail = Tail(server.port, "--since-seq", "0", "--max-signals", "5")
        self.assertEqual(tail.finish(), 0, tail.stderr)
        self.assertEqual(tail.seqs(), [1, 2, 3, 4, 5])
        self.assertEqual(tail.lines[2], compact(make_signal(3, 300000)))
        self.assert_clean(tail)

    def test_message_over_limit_exits_1(self):
        server = self.serve(signals=3, big_seqs={2}, big_pad_bytes=1100000,
                            fragment_bytes=100000)
        tail = Tail(server.port, "--since-seq", "0")
        self.assertEqual(tail.finish(), 1, tail.stderr)
        self.assertEqual(tail.seqs(), [1])
        self.assertIn("over 1048576 bytes", tail.stderr)
        self.assertTrue(server.wait_for(lambda: server.close_codes_received == [1002]))
        self.assert_clean(tail)

    def test_replayed_duplicates_dropped(self):
        server = self.serve(signals=8, batch=3, drop_after=4, drop_code=1001,
                            ignore_since=True)
        tail = Tail(server.port, "--since-seq", "0", "--max-signals", "8")
        self.assertEqual(tail.finish(), 0, tail.stderr)
        self.assertEqual(tail.seqs(), list(range(1, 9)))
        self.assert_clean(tail)


class ResumeTests(TailTestCase):
    def test_cursor_file_written_and_resumed(self):
        cursor = os.path.join(self.tmp.name, "cursor.json")
        server = self.serve(signals=20, batch=5)
        tail = Tail(server.port, "--since-seq", "0", "--cursor-file", cursor)
        self.assertTrue(tail.wait_lines(20), tail.stderr)
        time.sleep(0.3)
        tail.proc.send_signal(signal.SIGTERM)
        self.assertEqual(tail.finish(), 0, tail.stderr)
        with open(cursor) as f:
            self.assertEqual(json.load(f), {"epoch": "epoch-a", "seq": 20})
        self.assertIn("received SIGTERM: closing", tail.stderr)
        self.assertTrue(server.wait_for(lambda: server.close_codes_received == [1000]))
        self.assertEqual(os.listdir(self.tmp.name), ["cursor.json"])
        self.assert_clean(tail)

        server.add_signals(5)
        again = Tail(server.port, "--since-seq", "3", "--cursor-file", cursor,
                     "--max-signals", "5")
        self.assertEqual(again.finish(), 0, again.stderr)
        self.assertEqual(server.subscribe_requests[1]["since_seq"], 20)
        self.assertEqual(again.seqs(), [21, 22, 23, 24, 25])
        with open(cursor) as f:
            self.assertEqual(json.load(f), {"epoch": "epoch-a", "seq": 25})
        self.assert_clean(again)

    def test_cursor_from_other_epoch_restarts_at_zero(self):
        cursor = os.path.join(self.tmp.name, "cursor.json")
        with open(cursor, "w") as f:
            f.write('{"epoch":"epoch-old","seq":900}')
        server = self.serve(signals=3)
        tail = Tail(server.port, "--cursor-file", cursor, "--max-signals", "3")
        self.assertEqual(tail.finish(), 0, tail.stderr)
        self.assertEqual(server.subscribe_requests[0]["since_seq"], 0)
        self.assertEqual(tail.seqs(), [1, 2, 3])
        self.assertIn("epoch", tail.stderr)
        with open(cursor) as f:
            self.assertEqual(json.load(f), {"epoch": "epoch-a", "seq": 3})
        self.assert_clean(tail)

    def test_corrupt_cursor_file_exits_2(self):
        cursor = os.path.join(self.tmp.name, "cursor.json")
        with open(cursor, "w") as f:
            f.write('{"epoch":"epoch-a","seq":"twelve"}')
        tail = Tail(1, "--cursor-file", cursor)
        self.assertEqual(tail.finish(), 2)
        self.assertIn(cursor, tail.stderr)
        self.assertIn("corrupt", tail.stderr)
        self.assert_clean(tail)

    def test_reconnect_after_drop_resumes(self):
        server = self.serve(signals=12, batch=2, drop_after=5)
        tail = Tail(server.port, "--since-seq", "0", "--max-signals", "12")
        self.assertEqual(tail.finish(), 0, tail.stderr)
        self.assertEqual(tail.seqs(), list(range(1, 13)))
        self.assertEqual(server.connections, 2)
        self.assertEqual(server.subscribe_requests[1]["since_seq"], 5)
        self.assertIn("reconnecting in", tail.stderr)
        self.assert_clean(tail)

    def test_reconnect_after_slow_consumer_close(self):
        server = self.serve(signals=6, drop_after=2, drop_code=4008)
        tail = Tail(server.port, "--since-seq", "0", "--max-signals", "6")
        self.assertEqual(tail.finish(), 0, tail.stderr)
        self.assertEqual(tail.seqs(), list(range(1, 7)))
        self.assertEqual(server.subscribe_requests[1]["since_seq"], 2)
        self.assertIn("4008", tail.stderr)
        self.assert_clean(tail)

    def test_live_only_reconnect_keeps_position(self):
        server = self.serve(signals=3, drop_after=2)
        tail = Tail(server.port, "--max-signals", "4")
        self.assertTrue(server.wait_for(lambda: len(server.subscribe_requests) == 1))
        self.assertNotIn("since_seq", server.subscribe_requests[0])
        server.add_signals(4)
        self.assertEqual(tail.finish(), 0, tail.stderr)
        self.assertEqual(tail.seqs(), [4, 5, 6, 7])
        self.assertEqual(server.subscribe_requests[1]["since_seq"], 5)
        self.assert_clean(tail)


class TlsTests(TailTestCase):
    def make_certs(self, names):
        """Create a CA and a server certificate for names (subjectAltName)."""
        d = self.tmp.name
        run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=canary test ca", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=server",
            "-keyout", f"{d}/srv.key", "-out", f"{d}/srv.csr")
        with open(f"{d}/ext.cnf", "w") as f:
            f.write(f"subjectAltName={names}\n")
        run("x509", "-req", "-days", "1", "-in", f"{d}/srv.csr", "-CA", f"{d}/ca.pem",
            "-CAkey", f"{d}/ca.key", "-CAcreateserial", "-extfile", f"{d}/ext.cnf",
            "-out", f"{d}/srv.pem")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(f"{d}/srv.pem", f"{d}/srv.key")
        return context, f"{d}/ca.pem"

    @unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
    def test_wss_with_cacert(self):
        context, ca = self.make_certs("IP:127.0.0.1")
        server = self.serve(signals=2, ssl_context=context)
        tail = Tail(server.port, "--cacert", ca, "--since-seq", "0", "--max-signals", "2",
                    url=f"wss://127.0.0.1:{server.port}")
        self.assertEqual(tail.finish(), 0, tail.stderr)
        self.assertEqual(tail.seqs(), [1, 2])
        self.assert_clean(tail)

    @unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
    def test_wss_name_mismatch_not_accepted(self):
        context, ca = self.make_certs("DNS:other.test")
        server = self.serve(signals=2, ssl_context=context)
        tail = Tail(server.port, "--cacert", ca, "--since-seq", "0",
                    url=f"wss://127.0.0.1:{server.port}")
        time.sleep(2)
        tail.proc.send_signal(signal.SIGINT)
        self.assertEqual(tail.finish(), 0, tail.stderr)
        self.assertEqual(tail.lines, [])
        self.assertEqual(server.subscribe_requests, [])
        self.assertIn("mismatch", tail.stderr)
        self.assert_clean(tail)


class RejectionTests(TailTestCase):
    def test_wrong_key_exits_2(self):
        server = self.serve(signals=1)
        tail = Tail(server.port, key="wrong-key")
        self.assertEqual(tail.finish(), 2, tail.stderr)
        self.assertIn("4401", tail.stderr)
        self.assertNotIn("wrong-key", tail.stderr)
        self.assertEqual(server.connections, 1)
        self.assert_clean(tail)

    def test_http_401_exits_2(self):
        server = self.serve(http_status=401)
        tail = Tail(server.port)
        self.assertEqual(tail.finish(), 2, tail.stderr)
        self.assertIn("401", tail.stderr)
        self.assert_clean(tail)

    def test_forbidden_close_exits_2(self):
        server = self.serve(close_code=4403)
        tail = Tail(server.port)
        self.assertEqual(tail.finish(), 2, tail.stderr)
        self.assertIn("subscribe scope", tail.stderr)
        self.assert_clean(tail)

    def test_invalid_filter_exits_2(self):
        server = self.serve(reject_filter=True)
        tail = Tail(server.port, "--event-type", "x")
        self.assertEqual(tail.finish(), 2, tail.stderr)
        self.assertIn("unknown event type 'x'", tail.stderr)
        self.assert_clean(tail)

    def test_usage_errors_exit_2(self):
        cases = [
            ((), "missing key"),
            (("--key", KEY, "--format", "xml"), "use json or msgpack"),
            (("--key", KEY, "--since-seq", "-1"), "--since-seq"),
            (("--key", KEY, "--since-seq", "1", "--since-time", "2026-01-03T00:00:00Z"),
             "exclude each other"),
            (("--key", KEY, "--since-time", "yesterday"), "RFC 3339"),
            (("--key", KEY, "--min-confidence", "extreme"), "low, medium or high"),
            (("--key", KEY, "--kye=secret"), "--kye'"),
        ]
        for args, expected in cases:
            with self.subTest(args=args):
                proc = subprocess.run([TAIL, "--url", "ws://127.0.0.1:1", *args],
                                      capture_output=True, text=True, timeout=20,
                                      env={"PATH": os.environ.get("PATH", "")})
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertIn(expected, proc.stderr)
                self.assertNotIn("secret", proc.stderr)

    def test_bad_url_exits_2(self):
        for url in ("http://127.0.0.1:1", "ws://127.0.0.1:0", "ws://127.0.0.1:99999",
                    "ws://[::1", "ws://user@127.0.0.1:1"):
            with self.subTest(url=url):
                proc = subprocess.run([TAIL, "--url", url, "--key", KEY],
                                      capture_output=True, text=True, timeout=20)
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertIn("URL", proc.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)

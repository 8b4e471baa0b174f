"""canary-sensor and canary-tail against a real canaryd: the bundled Cowrie
log goes in, every signal comes out of canary-tail once and in order, the
tail resumes from its cursor file after a restart, and nothing from the
log that could identify a person reaches the store, the log or the tail."""

import glob
import json
import os
import signal
import subprocess
import threading
import time

from canary import (COWRIE_LOG, SENSOR, TAIL, Canaryd, check, check_eq,
                    get_json, ingest, make_signal, run_tests, test)


def expected_signal_count():
    """Counts the events the documented mapping turns into signals: every
    failed and successful login, and one signal per logged-in session
    that ran a command, transferred a file or forwarded TCP."""
    failed = success = 0
    logged_in, active = set(), set()
    with open(COWRIE_LOG) as f:
        for line in f:
            ev = json.loads(line)
            eid = ev.get("eventid", "")
            if eid == "cowrie.login.failed":
                failed += 1
            elif eid == "cowrie.login.success":
                success += 1
                logged_in.add(ev.get("session"))
            elif eid.startswith(("cowrie.command.", "cowrie.session.file_download",
                                 "cowrie.session.file_upload", "cowrie.direct-tcpip.")):
                if ev.get("session") in logged_in:
                    active.add(ev.get("session"))
    return failed + success + len(active)


def personal_strings():
    """Addresses, user names, passwords and commands found in the log."""
    found = set()
    with open(COWRIE_LOG) as f:
        for line in f:
            ev = json.loads(line)
            for field in ("src_ip", "username", "password", "input"):
                value = ev.get(field)
                # Short values occur inside ordinary text by chance.
                if isinstance(value, str) and len(value) >= 6:
                    found.add(value)
    return found


class TailProcess:
    def __init__(self, srv, key, cursor_file, *args):
        env = dict(os.environ, CANARY_KEY=key)
        self.proc = subprocess.Popen([TAIL, "--url", "ws://127.0.0.1:%d" % srv.port,
                                      "--cursor-file", cursor_file] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, text=True)
        self.lines = []
        self.stderr = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True).start()

    @staticmethod
    def _read(stream, sink):
        for line in stream:
            sink.append(line.rstrip("\n"))

    def wait_lines(self, count, timeout=30):
        deadline = time.time() + timeout
        while len(self.lines) < count and time.time() < deadline:
            time.sleep(0.05)
        return [json.loads(line) for line in self.lines]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=20)
        time.sleep(0.1)
        return rc


@test
def bundled_log_through_sensor_and_tail():
    with Canaryd() as srv:
        key = srv.key()
        cursor = os.path.join(srv.tmp, "tail.cursor")
        tail = TailProcess(srv, key, cursor)
        time.sleep(1.0)

        started = time.time()
        sensor = subprocess.run([SENSOR, "--url", srv.http, "--format", "cowrie",
                                 "--domain", "bank.example",
                                 "--hmac-key-file", os.path.join(srv.tmp, "hmac.key"),
                                 COWRIE_LOG],
                                env=dict(os.environ, CANARY_KEY=key),
                                capture_output=True, text=True, timeout=120)
        elapsed = time.time() - started
        check_eq(sensor.returncode, 0, "canary-sensor exit status")
        want = expected_signal_count()
        _, health = get_json(srv.http + "/healthz", None)
        check_eq(health["head_seq"], want, "signals stored from the bundled log")
        print("  sensor: %d signals in %.2f s (%.0f signals/s)" % (want, elapsed, want / elapsed))

        got = tail.wait_lines(want)
        check_eq([s["seq"] for s in got], list(range(1, want + 1)), "tail printed every seq once, in order")
        check(all(s["related_domain"] == "bank.example" for s in got), "domain from --domain")
        check(all(s.get("infra_id", "").startswith("inf_") for s in got), "infra_id is a keyed hash")
        check_eq(tail.stop(), 0, "canary-tail exit status on SIGTERM")

        # Resume: only what arrived while the tail was down is printed.
        status, body = ingest(srv, key, [make_signal(i) for i in range(10)])
        tail2 = TailProcess(srv, key, cursor)
        more = tail2.wait_lines(10)
        time.sleep(0.5)
        check_eq([s["seq"] for s in more], list(range(body["first_seq"], body["last_seq"] + 1)),
                 "restarted tail prints only the rest")
        check_eq(len(tail2.lines), 10, "nothing printed twice")

        # End-to-end delay as canary-tail sees it: from just before the POST
        # until the line appears on its standard output.
        delays = []
        for i in range(20):
            before = len(tail2.lines)
            t0 = time.time()
            ingest(srv, key, [make_signal(i)])
            while len(tail2.lines) == before and time.time() - t0 < 5:
                time.sleep(0.0005)
            delays.append((time.time() - t0) * 1000)
        delays.sort()
        print("  ingest to canary-tail output: median %.1f ms, max %.1f ms (20 single signals)"
              % (delays[10], delays[-1]))
        check(delays[10] < 1000, "signals reach canary-tail within a second")
        tail2.stop()
        outputs = tail.lines + tail2.lines + tail.stderr + tail2.stderr + [sensor.stdout, sensor.stderr]

    blobs = [open(p, "rb").read() for p in glob.glob(os.path.join(srv.data_dir, "*"))]
    blobs.append(open(srv.log_path, "rb").read())
    text = "\n".join(outputs)
    leaked = [v for v in personal_strings()
              if v in text or any(v.encode() in b for b in blobs)]
    check_eq(leaked, [], "log values found in outputs, store or server log")


run_tests()

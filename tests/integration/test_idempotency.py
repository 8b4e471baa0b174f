"""Named ingest batches: a batch posted again under the same
Idempotency-Key gets the response of its first commit and is stored once,
also when canary-sensor retries after the 202 was lost on the way back."""

import asyncio
import json
import os
import socket
import subprocess
import threading

from canary import (COWRIE_LOG, SENSOR, Canaryd, Stream, check, check_eq,
                    get_json, http_request, make_signal, run_tests, test)


def post(srv, key, batch, batch_key=None):
    headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
    if batch_key is not None:
        headers["Idempotency-Key"] = batch_key
    status, _, body = http_request("POST", srv.http + "/v1/canary/signals",
                                   json.dumps(batch).encode(), headers)
    return status, json.loads(body)


@test
async def same_key_stored_once():
    with Canaryd() as srv:
        key = srv.key()
        s = await Stream.open(srv, key)
        await s.recv_type("welcome")
        await s.subscribe("all")

        batch = [make_signal(i) for i in range(5)]
        status, first = post(srv, key, batch, "batch-0001")
        check_eq(status, 202, "first post")
        status, again = post(srv, key, batch, "batch-0001")
        check_eq(status, 202, "repeated post")
        check_eq(again, first, "repeat answered with the first commit's seqs")
        _, health = get_json(srv.http + "/healthz", None)
        check_eq(health["head_seq"], 5, "stored once")

        got = await s.signals(5)
        await s.send({"op": "ping"})
        check_eq((await s.recv())["type"], "pong", "published once")
        check_eq([m["signal"]["seq"] for m in got], [1, 2, 3, 4, 5], "pushed seqs")

        status, doc = post(srv, key, batch[:3], "batch-0001")
        check_eq(status, 422, "same key, another batch size")
        check("Idempotency-Key" in doc.get("detail", ""), "422 detail names the header")
        status, body = post(srv, key, batch, "batch-0002")
        check_eq((status, body.get("first_seq")), (202, 6), "a new key stores a new batch")
        for bad in ["x" * 65, "has space", "semi;colon"]:
            status, doc = post(srv, key, batch, bad)
            check_eq(status, 400, "invalid key %r" % bad)
        _, health = get_json(srv.http + "/healthz", None)
        check_eq(health["head_seq"], 10, "rejected posts stored nothing")

        # Keys survive a restart, since they are stored with the batch.
        srv.stop()
        srv.start()
        status, again = post(srv, key, batch, "batch-0001")
        check_eq(again, first, "repeat after a restart")
        await s.close()


class LossyProxy:
    """Forwards each HTTP request to canaryd on a new connection and, for
    every other request, closes the client's connection instead of
    relaying the response: the batch is committed but its 202 is lost."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.requests = 0
        self.dropped = 0
        self.stopped = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(client,), daemon=True).start()

    @staticmethod
    def read_request(sock):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = 0
        kept = [lines[0]]
        for line in lines[1:]:
            name = line.split(b":", 1)[0].strip().lower()
            if name == b"content-length":
                length = int(line.split(b":", 1)[1])
            if name != b"connection":
                kept.append(line)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            body += chunk
        kept.append(b"Connection: close")
        return b"\r\n".join(kept) + b"\r\n\r\n" + body

    def handle(self, client):
        with client:
            request = self.read_request(client)
            if request is None:
                return
            self.requests += 1
            drop = self.requests % 2 == 1
            with socket.create_connection(("127.0.0.1", self.upstream_port)) as up:
                up.sendall(request)
                response = b""
                while True:
                    chunk = up.recv(65536)
                    if not chunk:
                        break
                    response += chunk
            if drop:
                self.dropped += 1
                return
            client.sendall(response)

    def close(self):
        self.stopped = True
        self.listener.close()


@test
def sensor_retry_after_lost_answer():
    with Canaryd() as srv:
        key = srv.key()
        proxy = LossyProxy(srv.port)
        out = subprocess.run([SENSOR, "--url", "http://127.0.0.1:%d" % proxy.port,
                              "--format", "cowrie", "--domain", "bank.example", "--batch", "100",
                              "--hmac-key-file", os.path.join(srv.tmp, "hmac.key"), COWRIE_LOG],
                             env=dict(os.environ, CANARY_KEY=key),
                             capture_output=True, text=True, timeout=180)
        proxy.close()
        check_eq(out.returncode, 0, "canary-sensor exit status")
        check(proxy.dropped >= 4, "answers were lost (%d)" % proxy.dropped)
        _, health = get_json(srv.http + "/healthz", None)
        summary = [l for l in out.stderr.splitlines() if "finished" in l]
        sent = int(summary[-1].split(" signals sent")[0].split()[-1]) if summary else -1
        check_eq(health["head_seq"], sent, "every signal stored exactly once")
        check_eq(sent, 357, "signals the sensor made from the bundled log")


run_tests()

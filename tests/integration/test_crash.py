"""Crash safety: canaryd is killed with SIGKILL while producers ingest and
subscribers replay, then restarted on the same store, several times in one
run. After each restart every acknowledged signal must be stored unchanged,
no seq may be handed out twice, the epoch must stay, and each subscriber
resuming from its last cursor must receive exactly the rest."""

import asyncio
import random
import subprocess
import tempfile

from canary import CANARYD, Canaryd, Stream, check, check_eq, get_json, make_signal, run_tests, test
from reliability import Producer, check_acked_stored, describe_seqs, replay_all

KILLS = 5
PRODUCERS = 4

# Resuming subscribers: (name, filter). Each starts from seq 0.
SUBSCRIBERS = [
    ("all", None),
    ("creds", {"event_types": ["credential_testing", "fraud_test"]}),
    ("high", {"min_confidence": "high"}),
]
CONFIDENCE_RANK = {"low": 0, "medium": 1, "high": 2}


def matches(filter, sig):
    if filter is None:
        return True
    if "event_types" in filter and sig["event_type"] not in filter["event_types"]:
        return False
    if "min_confidence" in filter and \
            CONFIDENCE_RANK[sig["confidence"]] < CONFIDENCE_RANK[filter["min_confidence"]]:
        return False
    return True


class Subscriber:
    """One resuming client: its filter, its cursor (the last seq it
    received) and what it received during the current run of the server."""

    def __init__(self, name, filter):
        self.name, self.filter = name, filter
        self.cursor = 0
        self.received = []
        self.errors = []

    async def resume(self, server, key, expected_seqs):
        """Connects from the cursor and checks that the replay up to
        replay_done is exactly expected_seqs. Returns the open stream."""
        s = await Stream.open(server, key)
        await s.recv_type("welcome")
        await s.subscribe(self.name, filter=self.filter, since_seq=self.cursor)
        got = []
        while True:
            msg = await s.recv(30)
            if msg["type"] == "signal":
                got.append(msg["signal"]["seq"])
                self.received.append(msg["signal"])
            elif msg["type"] == "replay_done":
                break
            else:
                self.errors.append("unexpected message during replay: %r" % msg)
        check(got == expected_seqs, "%s resumed after seq %d: got %s, expected %s" % (
            self.name, self.cursor, describe_seqs(got), describe_seqs(expected_seqs)))
        if got:
            self.cursor = got[-1]
        return s

    async def follow(self, s):
        """Receives live signals until the connection drops, checking order."""
        try:
            while True:
                msg = await s.recv(60)
                if msg["type"] != "signal":
                    continue
                seq = msg["signal"]["seq"]
                if seq <= self.cursor:
                    self.errors.append("seq %d after cursor %d" % (seq, self.cursor))
                if self.filter is None and seq != self.cursor + 1:
                    self.errors.append("seq %d follows %d: a gap" % (seq, self.cursor))
                self.cursor = seq
                self.received.append(msg["signal"])
        except Exception:
            return


def make_varied(i):
    return make_signal(random.randrange(1 << 30))


@test
async def sigkill_during_ingest_and_replay():
    await kill_cycles({}, KILLS, seed=7)


@test
async def sigkill_with_nosync_durability():
    # nosync leaves flushing to the operating system: a crash of canaryd
    # alone still loses nothing acknowledged.
    await kill_cycles({"durability": "nosync", "sync_interval_ms": 200}, 2, seed=11)


@test
def durability_setting_validated():
    proc = subprocess.run([CANARYD, "--data-dir", tempfile.mkdtemp(prefix="canary-it-"),
                           "--set", "durability=sometimes"], capture_output=True, text=True, timeout=30)
    check_eq(proc.returncode, 2, "exit status for an invalid durability")
    check("durability \"sometimes\" is invalid: use full, nometasync or nosync" in proc.stderr,
          "message names the value and the choices: %r" % proc.stderr)


async def kill_cycles(settings, kills, seed):
    random.seed(seed)
    srv = Canaryd(settings=settings)
    srv.start()
    key = srv.key()
    _, health = get_json(srv.http + "/healthz", None)
    epoch = health["epoch"]
    subs = [Subscriber(name, f) for name, f in SUBSCRIBERS]
    acked = []
    received_before = {}
    head_before_kill = 0
    total_acked = 0

    for cycle in range(kills + 1):
        if cycle:
            srv.start()
        _, health = get_json(srv.http + "/healthz", None)
        check_eq(health["epoch"], epoch, "epoch after restart %d" % cycle)

        # The whole store, read back over a replay from 0.
        signals, gaps = await replay_all(srv, key)
        stored = {s["seq"]: s for s in signals}
        head = health["head_seq"]
        check_eq(gaps, [], "gaps in a store without retention")
        check(sorted(stored) == list(range(1, head + 1)),
              "stored seqs are 1..%d: %s" % (head, describe_seqs(sorted(stored))))
        check(head >= head_before_kill,
              "head %d after restart is below %d, the last acknowledged seq" % (head, head_before_kill))
        total_acked = check_acked_stored(acked, stored, check)

        # Whatever a subscriber saw before the crash was committed, with
        # every field, campaign_id included.
        differ = [s for s in received_before.values() if stored.get(s["seq"]) != s]
        check(not differ, "%d signals pushed before the crash differ from the store, first %r, stored %r" % (
            len(differ), differ[:1], [stored.get(s["seq"]) for s in differ[:1]]))

        # Each subscriber resumes from its cursor and gets exactly the rest.
        streams = []
        for sub in subs:
            if cycle == 0 and sub.name == "high":
                sub.cursor = 0
            expected = [q for q in range(sub.cursor + 1, head + 1) if matches(sub.filter, stored[q])]
            streams.append(await sub.resume(srv, key, expected))
            sub.received = []

        if cycle == kills:
            for s in streams:
                await s.close()
            break

        # Ingest from several producers while the subscribers follow live.
        producers = [Producer(srv, key, make_varied, seed=cycle * 100 + p) for p in range(PRODUCERS)]
        for p in producers:
            p.start()
        followers = [asyncio.ensure_future(sub.follow(s)) for sub, s in zip(subs, streams)]
        # A fresh replay from 0 is in progress when the kill comes.
        replayer = Subscriber("replay", None)
        replay_stream = await Stream.open(srv, key)
        await replay_stream.recv_type("welcome")
        await replay_stream.subscribe("replay", since_seq=0)
        followers.append(asyncio.ensure_future(replayer.follow(replay_stream)))
        await asyncio.sleep(random.uniform(0.5, 2.0))
        srv.kill()
        for p in producers:
            p.stop()
        await asyncio.wait(followers, timeout=10)
        replayed = [s["seq"] for s in replayer.received]
        check(replayed == list(range(1, len(replayed) + 1)),
              "replay interrupted by the kill: %s" % describe_seqs(replayed))
        check_eq(replayer.errors, [], "order of the interrupted replay")

        new = [a for p in producers for a in p.acked]
        check(new, "cycle %d: some batches acknowledged before the kill" % cycle)
        if new:
            first_new = min(a[0] for a in new)
            check_eq(first_new, head + 1, "first seq after restart %d (no seq reused)" % cycle)
            head_before_kill = max(a[1] for a in new)
        acked += new
        received_before = {s["seq"]: s for sub in subs + [replayer] for s in sub.received}
        for sub in subs:
            check_eq(sub.errors, [], "%s stream order" % sub.name)
        print("  cycle %d: %d batches acknowledged, head %d, subscribers saw %d signals, "
              "the interrupted replay %d" % (cycle, len(new), head_before_kill,
                                             len(received_before), len(replayed)), flush=True)

    check(total_acked > 0, "acknowledged signals were checked")
    print("  checked %d acknowledged signals over %d kills" % (total_acked, kills), flush=True)
    srv.stop()


run_tests()

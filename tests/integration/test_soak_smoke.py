"""A 30-second soak (scripts/soak.sh runs the long one): ingest, resuming
subscribers, slow clients, reconnects and a restart, then no lost or
duplicated signal and flat memory and descriptors."""

import json
import os
import subprocess
import sys
import tempfile

from canary import check, check_eq, run_tests, test

SOAK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "soak", "soak.py")


@test
def soak_30_seconds():
    report_path = os.path.join(tempfile.mkdtemp(prefix="canary-soak-"), "report.json")
    # Fixed seed 3 restarts canaryd within the 30 s.
    proc = subprocess.run([sys.executable, SOAK, "--duration", "30", "--seed", "3",
                           "--report", report_path], capture_output=True, text=True, timeout=600)
    check_eq(proc.returncode, 0, "soak exit status")
    if proc.returncode:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
    with open(report_path) as f:
        report = json.load(f)
    check(report["acknowledged_signals"] > 100, "signals acknowledged: %d" % report["acknowledged_signals"])
    check_eq(report["lost_acknowledged"], 0, "acknowledged signals lost")
    check_eq(report["subscriber_missing"], [0] * len(report["subscriber_missing"]), "signals a subscriber missed")
    check_eq(report["subscriber_duplicates"], [0] * len(report["subscriber_duplicates"]), "duplicates")
    check(sum(report["restarts"].values()) >= 1, "canaryd restarted during the soak: %r" % report["restarts"])
    check(report["flat"], "memory and descriptors flat: %r %r" % (report["rss_anon_kib"], report["fds"]))
    print("  %d signals, restarts %r, RssAnon KiB %r, fds %r" % (
        report["acknowledged_signals"], report["restarts"], report["rss_anon_kib"], report["fds"]), flush=True)


run_tests()

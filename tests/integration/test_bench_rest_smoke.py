"""A short run of scripts/bench_rest.py against the canaryd of this build:
it loads a small store, times every query and prints one line each. The
full benchmark is scripts/bench-rest.sh."""

import os
import re
import subprocess
import sys

from canary import BIN_DIR, SOURCE_DIR, check, check_eq, run_tests, test

SCRIPT = os.path.join(SOURCE_DIR, "scripts", "bench_rest.py")
QUERIES = ["stats", "signals threat_only", "signals domain+min_confidence",
           "signals event_type+stage"]


@test
def bench_rest_small_store():
    proc = subprocess.run([sys.executable, SCRIPT, "--bin-dir", BIN_DIR, "--sizes", "3000",
                           "--requests", "20"], capture_output=True, text=True, timeout=240)
    check_eq(proc.returncode, 0, "bench_rest.py exit status (stderr: %s)" % proc.stderr[-500:])
    out = proc.stdout
    check(re.search(r"^3000 signals: loaded in .* signals/s through POST\)$", out, re.M) is not None,
          "load line in %r" % out[:300])
    for name in QUERIES:
        line = re.search(r"^  %s +p50 +([0-9.]+) ms +p99 +([0-9.]+) ms +\(total (\d+), 20 requests\)$"
                         % re.escape(name), out, re.M)
        check(line is not None, "a line for %s in %r" % (name, out))
        if line:
            check(0 < float(line.group(1)) <= float(line.group(2)), "%s percentiles ordered" % name)
            check(0 < int(line.group(3)) <= 3000, "%s total within the store" % name)


run_tests()

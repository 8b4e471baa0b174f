"""canary-sensor's --state-file against a real canaryd and real log files.
A second run over the same file posts nothing again, and appended lines are
posted once. A rotated or truncated file is read from the start. A corrupt
state file stops the sensor before it posts anything. A --follow sensor
stopped with SIGTERM continues where it stopped, and a line that has not
ended is not counted as handled."""

import json
import os
import signal
import subprocess
import time

from canary import SENSOR, Canaryd, check, check_eq, get_json, run_tests, test

# Event times of the generated lines: one hour ago plus one second per line,
# so that they are inside the signal list's default 24-hour window.
EVENT_TIME_BASE = int(time.time()) - 3600


def cowrie_line(i, signal_line=True):
    """One Cowrie event as a JSON line. A failed login gives one signal,
    and a connect gives none. Line i has the event time base + i s."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(EVENT_TIME_BASE + i))
    event = {"sensor": "sensor1", "timestamp": stamp + ".000000Z",
             "src_ip": "198.51.100.%d" % (i % 250 + 1), "session": "s%011d" % i}
    if signal_line:
        event.update(eventid="cowrie.login.failed", username="root", password="pw%d" % i)
    else:
        event.update(eventid="cowrie.session.connect", src_port=40000 + i,
                     dst_ip="10.0.0.2", dst_port=22, protocol="ssh")
    return json.dumps(event) + "\n"


def write_lines(path, numbers, mode="a"):
    """Writes lines for the given numbers: every third one gives no signal.
    Returns the numbers of the lines that give a signal."""
    with open(path, mode) as f:
        for i in numbers:
            f.write(cowrie_line(i, signal_line=i % 3 != 2))
    return [i for i in numbers if i % 3 != 2]


def expected_stamps(numbers):
    return sorted(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(EVENT_TIME_BASE + i))
                  for i in numbers)


def sensor_command(srv, state, *inputs, follow=False):
    cmd = [SENSOR, "--url", srv.http, "--format", "cowrie", "--domain", "bank.example",
           "--hmac-key-file", os.path.join(srv.tmp, "hmac.key"), "--state-file", state]
    if follow:
        cmd.append("--follow")
    return cmd + list(inputs)


def run_sensor(srv, key, state, *inputs):
    return subprocess.run(sensor_command(srv, state, *inputs),
                          env=dict(os.environ, CANARY_KEY=key),
                          capture_output=True, text=True, timeout=60)


def head_seq(srv):
    _, health = get_json(srv.http + "/healthz", None)
    return health["head_seq"]


def stored_stamps(srv, key):
    """Event times of every stored signal, sorted; a duplicate shows twice."""
    _, body = get_json(srv.http + "/v1/canary/signals?limit=1000", key)
    return sorted(s["timestamp"] for s in body["signals"])


def saved_position(state, log):
    with open(state) as f:
        files = json.load(f)["files"]
    for entry in files:
        if entry["path"] == os.path.abspath(log):
            return entry
    return None


def wait_for(predicate, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@test
def second_run_posts_nothing():
    with Canaryd() as srv:
        key = srv.key()
        log = os.path.join(srv.tmp, "cowrie.json")
        state = os.path.join(srv.tmp, "sensor.state")
        # The log ends in lines without a signal: they count as handled too.
        want = write_lines(log, range(9), mode="w")

        first = run_sensor(srv, key, state, log)
        check_eq(first.returncode, 0, "first run exit status")
        check_eq(head_seq(srv), len(want), "signals stored by the first run")
        pos = saved_position(state, log)
        check(pos is not None, "state file has an entry for the log")
        if pos:
            check_eq(pos["offset"], os.path.getsize(log), "saved offset")
            check_eq(pos["line"], 9, "saved line number")
            check_eq(pos["inode"], os.stat(log).st_ino, "saved inode")
            check_eq(pos["device"], os.stat(log).st_dev, "saved device")

        second = run_sensor(srv, key, state, log)
        check_eq(second.returncode, 0, "second run exit status")
        check("continuing after line 9" in second.stderr,
              "second run says where it continues: " + second.stderr)
        check_eq(head_seq(srv), len(want), "signals stored after the second run")
        check_eq(stored_stamps(srv, key), expected_stamps(want), "each signal stored once")

        # Lines without a signal move the saved position on their own.
        with open(log, "a") as f:
            f.write(cowrie_line(9, signal_line=False) + cowrie_line(10, signal_line=False))
        third = run_sensor(srv, key, state, log)
        check_eq(third.returncode, 0, "third run exit status")
        check_eq(saved_position(state, log)["line"], 11, "saved line number after lines without a signal")
        check_eq(saved_position(state, log)["offset"], os.path.getsize(log), "saved offset after lines without a signal")


@test
def appended_lines_posted_once():
    with Canaryd() as srv:
        key = srv.key()
        log = os.path.join(srv.tmp, "cowrie.json")
        state = os.path.join(srv.tmp, "sensor.state")
        want = write_lines(log, range(7), mode="w")
        check_eq(run_sensor(srv, key, state, log).returncode, 0, "first run exit status")
        check_eq(head_seq(srv), len(want), "signals stored by the first run")

        added = write_lines(log, range(7, 15))
        second = run_sensor(srv, key, state, log)
        check_eq(second.returncode, 0, "second run exit status")
        check("8 lines read" in second.stderr, "second run reads only the new lines: " + second.stderr)
        check_eq(head_seq(srv), len(want) + len(added), "signals stored after the second run")
        check_eq(stored_stamps(srv, key), expected_stamps(want + added), "each signal stored once")
        check_eq(saved_position(state, log)["line"], 15, "saved line number after the second run")


@test
def rotated_file_read_from_start():
    with Canaryd() as srv:
        key = srv.key()
        log = os.path.join(srv.tmp, "cowrie.json")
        state = os.path.join(srv.tmp, "sensor.state")
        old = write_lines(log, range(6), mode="w")
        check_eq(run_sensor(srv, key, state, log).returncode, 0, "first run exit status")

        # The old file keeps its inode under another name, so the new file
        # at the same path has another inode. It is longer than the saved
        # offset, so only the inode shows that it is a new file.
        os.rename(log, log + ".1")
        new = write_lines(log, range(100, 112), mode="w")
        check(os.stat(log).st_ino != os.stat(log + ".1").st_ino, "new file has a new inode")
        second = run_sensor(srv, key, state, log)
        check_eq(second.returncode, 0, "second run exit status")
        check("rotated" in second.stderr, "second run reports the rotation: " + second.stderr)
        check_eq(stored_stamps(srv, key), expected_stamps(old + new), "new file posted from its start")
        check_eq(saved_position(state, log)["inode"], os.stat(log).st_ino, "state names the new inode")


@test
def truncated_file_read_from_start():
    with Canaryd() as srv:
        key = srv.key()
        log = os.path.join(srv.tmp, "cowrie.json")
        state = os.path.join(srv.tmp, "sensor.state")
        old = write_lines(log, range(9), mode="w")
        inode = os.stat(log).st_ino
        check_eq(run_sensor(srv, key, state, log).returncode, 0, "first run exit status")

        new = write_lines(log, range(200, 203), mode="w")
        check_eq(os.stat(log).st_ino, inode, "truncated file keeps its inode")
        second = run_sensor(srv, key, state, log)
        check_eq(second.returncode, 0, "second run exit status")
        check("truncated" in second.stderr, "second run reports the truncation: " + second.stderr)
        check_eq(stored_stamps(srv, key), expected_stamps(old + new), "truncated file posted from its start")


@test
def corrupt_state_file_rejected():
    with Canaryd() as srv:
        key = srv.key()
        log = os.path.join(srv.tmp, "cowrie.json")
        state = os.path.join(srv.tmp, "sensor.state")
        write_lines(log, range(6), mode="w")
        cases = [
            ("text that is not JSON", '{"version": 1, "files": [{"path": '),
            ("no files member", '{"version": 1}'),
            ("an offset that is a string", json.dumps({"version": 1, "files": [
                {"path": os.path.abspath(log), "device": 1, "inode": 2, "offset": "10", "line": 1}]})),
            ("a relative path", json.dumps({"version": 1, "files": [
                {"path": "cowrie.json", "device": 1, "inode": 2, "offset": 10, "line": 1}]})),
            ("an unknown version", '{"version": 2, "files": []}'),
        ]
        for problem, text in cases:
            with open(state, "w") as f:
                f.write(text)
            result = run_sensor(srv, key, state, log)
            check_eq(result.returncode, 1, "exit status with a state file with " + problem)
            check(state in result.stderr, "message names the state file with %s: %s"
                  % (problem, result.stderr))
            check("invalid" in result.stderr, "message calls the state file with %s invalid: %s"
                  % (problem, result.stderr))
            with open(state) as f:
                check_eq(f.read(), text, "state file with %s left as it was" % problem)
        check_eq(head_seq(srv), 0, "signals stored after runs with a corrupt state file")


@test
def missing_state_directory_rejected():
    with Canaryd() as srv:
        key = srv.key()
        log = os.path.join(srv.tmp, "cowrie.json")
        write_lines(log, range(3), mode="w")
        state = os.path.join(srv.tmp, "no-such-dir", "sensor.state")
        result = run_sensor(srv, key, state, log)
        check_eq(result.returncode, 1, "exit status with a state file in a missing directory")
        check(state in result.stderr, "message names the state file: " + result.stderr)
        check_eq(head_seq(srv), 0, "signals stored")


@test
def follow_resumes_after_sigterm():
    with Canaryd() as srv:
        key = srv.key()
        log = os.path.join(srv.tmp, "cowrie.json")
        state = os.path.join(srv.tmp, "sensor.state")
        env = dict(os.environ, CANARY_KEY=key)
        first_lines = write_lines(log, range(6), mode="w")

        sensor = subprocess.Popen(sensor_command(srv, state, log, follow=True), env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            check(wait_for(lambda: head_seq(srv) == len(first_lines)), "first lines stored")
            grown = write_lines(log, range(6, 10))
            check(wait_for(lambda: head_seq(srv) == len(first_lines) + len(grown)),
                  "lines appended while following stored")
            # The state file is written while the sensor runs, not only at exit.
            check(wait_for(lambda: (saved_position(state, log) or {}).get("line") == 10),
                  "state file written while following")
            sensor.send_signal(signal.SIGTERM)
            check_eq(sensor.wait(timeout=30), 0, "first sensor exit status on SIGTERM")
        finally:
            if sensor.poll() is None:
                sensor.kill()
                sensor.wait()
            sensor.stderr.close()

        while_stopped = write_lines(log, range(10, 16))
        sensor = subprocess.Popen(sensor_command(srv, state, log, follow=True), env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            total = first_lines + grown + while_stopped
            check(wait_for(lambda: head_seq(srv) >= len(total)), "lines written while stopped stored")
            # Give a sensor that wrongly started over time to post the rest.
            time.sleep(2.0)
            check_eq(stored_stamps(srv, key), expected_stamps(total), "each signal stored once")
            sensor.send_signal(signal.SIGTERM)
            check_eq(sensor.wait(timeout=30), 0, "second sensor exit status on SIGTERM")
        finally:
            if sensor.poll() is None:
                sensor.kill()
                sensor.wait()
            stderr = sensor.stderr.read()
            sensor.stderr.close()
        check("continuing after line 10" in stderr, "second sensor continues after line 10: " + stderr)
        check_eq(saved_position(state, log)["line"], 16, "saved line number after SIGTERM")


def follow_until_sigterm(srv, key, state, log, settle):
    """Runs a --follow sensor, waits until settle() is true, sends SIGTERM
    and returns (exit status, standard error)."""
    sensor = subprocess.Popen(sensor_command(srv, state, log, follow=True),
                              env=dict(os.environ, CANARY_KEY=key),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        check(wait_for(settle), "follow sensor reached the expected state")
        sensor.send_signal(signal.SIGTERM)
        status = sensor.wait(timeout=30)
    finally:
        if sensor.poll() is None:
            sensor.kill()
            sensor.wait()
        stderr = sensor.stderr.read()
        sensor.stderr.close()
    return status, stderr


@test
def partial_line_not_counted():
    with Canaryd() as srv:
        key = srv.key()
        log = os.path.join(srv.tmp, "cowrie.json")
        state = os.path.join(srv.tmp, "sensor.state")
        want = write_lines(log, range(5), mode="w")
        complete = os.path.getsize(log)
        # A writer that stopped in the middle of line 6.
        last = cowrie_line(5)
        with open(log, "a") as f:
            f.write(last[:40])

        status, stderr = follow_until_sigterm(
            srv, key, state, log,
            lambda: head_seq(srv) == len(want) and
            (saved_position(state, log) or {}).get("line") == 5)
        check_eq(status, 0, "follow sensor exit status on SIGTERM")
        pos = saved_position(state, log)
        check_eq(pos["offset"], complete, "saved offset leaves out the incomplete line")
        check_eq(pos["line"], 5, "saved line number leaves out the incomplete line")

        with open(log, "a") as f:
            f.write(last[40:])
        second = run_sensor(srv, key, state, log)
        check_eq(second.returncode, 0, "second run exit status")
        check_eq(stored_stamps(srv, key), expected_stamps(want + [5]),
                 "completed line posted once: " + second.stderr)


@test
def long_line_counted_when_it_ends():
    with Canaryd() as srv:
        key = srv.key()
        log = os.path.join(srv.tmp, "cowrie.json")
        state = os.path.join(srv.tmp, "sensor.state")
        want = write_lines(log, range(5), mode="w")
        before_long = os.path.getsize(log)
        # Over the 64 KiB line limit and not ended yet: the sensor reports
        # it and skips it, but it is not handled until its newline comes.
        with open(log, "a") as f:
            f.write("x" * 70000)

        def long_line_skipped():
            # The sensor shows nothing while it skips the line, so give the
            # reader a second to pass the 70000 bytes.
            time.sleep(1.0)
            return head_seq(srv) == len(want)

        status, stderr = follow_until_sigterm(srv, key, state, log, long_line_skipped)
        check_eq(status, 0, "follow sensor exit status on SIGTERM")
        check("line 6 skipped: line longer than" in stderr, "long line reported: " + stderr)
        pos = saved_position(state, log)
        check_eq(pos["offset"], before_long, "saved offset stops before the long line")
        check_eq(pos["line"], 5, "saved line number stops before the long line")

        with open(log, "a") as f:
            f.write("x" * 100 + "\n")
        added = write_lines(log, range(6, 9))
        second = run_sensor(srv, key, state, log)
        check_eq(second.returncode, 0, "second run exit status")
        check_eq(stored_stamps(srv, key), expected_stamps(want + added),
                 "lines after the long line posted once: " + second.stderr)
        check_eq(saved_position(state, log)["line"], 9, "saved line number after the long line")
        check_eq(saved_position(state, log)["offset"], os.path.getsize(log), "saved offset at the end")


run_tests()

"""The configuration file and command line: the shipped conf/canaryd.conf
names every setting and loads as it is, and invalid settings fail at start
with a message that names the value and the fix."""

import os
import re
import subprocess
import tempfile
import time

from canary import CANARYD, SOURCE_DIR, Canaryd, check, check_eq, free_port, get_json, run_tests, test

CONF = os.path.join(SOURCE_DIR, "conf", "canaryd.conf")


def settings_in_source():
    with open(os.path.join(SOURCE_DIR, "server", "config.c")) as f:
        return set(re.findall(r'^\s*\{ "([a-z_0-9]+)",', f.read(), re.M))


def settings_in_conf():
    with open(CONF) as f:
        return set(re.findall(r"^#? ?([a-z_0-9]+) =", f.read(), re.M))


@test
def shipped_conf_lists_every_setting():
    source = settings_in_source()
    check(len(source) > 20, "settings table found (%d)" % len(source))
    check_eq(sorted(settings_in_conf()), sorted(source), "settings documented in conf/canaryd.conf")


@test
def shipped_conf_loads():
    srv = Canaryd()
    srv.settings = {}
    os.makedirs(srv.data_dir, exist_ok=True)
    proc = subprocess.Popen([CANARYD, "--config", CONF, "--listen", "127.0.0.1:%d" % srv.port,
                             "--data-dir", srv.data_dir, "--set", "console_dir="],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        import time
        deadline = time.time() + 20
        status = None
        while time.time() < deadline and status != 200:
            try:
                status, _ = get_json(srv.http + "/healthz", None)
            except OSError:
                time.sleep(0.1)
        check_eq(status, 200, "canaryd starts with the shipped configuration")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@test
def invalid_settings_named():
    cases = [
        (["--set", "colour=blue"], "colour"),
        (["--set", "max_subscriptions=lots"], "max_subscriptions"),
        (["--set", "max_subscriptions=0"], "max_subscriptions"),
        (["--set", "noequals"], "NAME=VALUE"),
        (["--listen", "localhost"], "HOST:PORT"),
        (["--set", "idle_timeout_s=5", "--set", "ping_interval_s=10"], "idle_timeout_s"),
        (["--config", "/nonexistent/canaryd.conf"], "/nonexistent/canaryd.conf"),
    ]
    for args, named in cases:
        out = subprocess.run([CANARYD] + args, capture_output=True, text=True, timeout=20)
        check_eq(out.returncode, 2, "exit status for %r" % args)
        check(named in out.stderr, "message for %r names %s: %r" % (args, named, out.stderr.strip()))


@test
def every_file_error_listed():
    """One start lists every bad line of a configuration file, with its
    line number, in one message."""
    lines = [
        "listen = 127.0.0.1:8080",
        "max_subscriptions = lots",     # line 2: invalid value
        "colour = blue",                # line 3: unknown setting
        "this line has no equals sign",  # line 4: syntax error
        "[other]",
        "x = 1",                        # line 6: unknown section
        "also not a setting",           # line 7: syntax error
        "[canaryd]",
        "tls_cert = /etc/" + "x" * 300,  # line 9: longer than inih's line buffer
        "colour = green",               # line 10: numbered right after it
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        path = f.name
    try:
        out = subprocess.run([CANARYD, "--config", path], capture_output=True, text=True,
                             timeout=20)
    finally:
        os.unlink(path)
    message = out.stderr.strip()
    check_eq(out.returncode, 2, "exit status")
    check_eq(len(message.splitlines()), 1, "one message line")
    check("has 7 errors" in message, "error count in %r" % message)
    for line, named in ((2, "max_subscriptions"), (3, "colour"), (4, "syntax error"),
                        (6, "[other]"), (7, "syntax error"), (9, "longer than"),
                        (10, "colour")):
        check(re.search(r"line %d: [^;]*%s" % (line, re.escape(named)), message),
              "line %d named with %s in %r" % (line, named, message))


@test
def comment_after_value_ignored():
    """A '#' or ';' after a value and a space starts a comment; a '#'
    inside a value stays part of it."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "canaryd.conf")
        store = os.path.join(tmp, "store#1")
        with open(conf, "w") as f:
            f.write("listen = 127.0.0.1:%d # loopback only\n" % port)
            f.write("data_dir = %s   ; the store\n" % store)
            f.write("max_subscriptions = 5 # per connection\n")
        proc = subprocess.Popen([CANARYD, "--config", conf], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            status = None
            deadline = time.time() + 20
            while time.time() < deadline and status != 200 and proc.poll() is None:
                try:
                    status, _ = get_json("http://127.0.0.1:%d/healthz" % port, None)
                except OSError:
                    time.sleep(0.1)
            check_eq(status, 200, "server listens on the port before the comment")
            check(os.path.exists(os.path.join(store, "data.mdb")),
                  "store created at %s, with the '#' inside the name" % store)
        finally:
            proc.terminate()
            proc.wait(timeout=20)


@test
def second_server_on_store_rejected():
    """Two servers on one store would each publish only their own commits,
    so the second start is refused and the first keeps serving."""
    with Canaryd() as srv:
        key = srv.key()
        out = subprocess.run([CANARYD, "--listen", "127.0.0.1:%d" % free_port(),
                              "--data-dir", srv.data_dir], capture_output=True, text=True,
                             timeout=20)
        check_eq(out.returncode, 1, "exit status of the second server")
        check("is in use by another canaryd (process %d)" % srv.proc.pid in out.stderr,
              "message names the store's server: %r" % out.stderr.strip())
        check(srv.data_dir in out.stderr, "message names the data_dir")
        status, _ = get_json(srv.http + "/healthz", key)
        check_eq(status, 200, "first server still serves")


@test
def listen_address_not_local_rejected():
    # 192.0.2.1 is a documentation address, on no interface here; a bind
    # to it fails locally and sends nothing.
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([CANARYD, "--listen", "192.0.2.1:8080", "--data-dir",
                              os.path.join(tmp, "var")],
                             capture_output=True, text=True, timeout=20)
    check_eq(out.returncode, 1, "exit status")
    check("192.0.2.1 is not an address of this machine" in out.stderr,
          "message names the address: %r" % out.stderr.strip())


run_tests()

#!/usr/bin/python3
"""test_notify.py - sluiced's systemd readiness protocol (deploy/sluiced.service,
Type=notify), checked without systemd: usage test_notify.py SLUICED SLUICE
HAVE_SYSTEMD. Plays the service manager: binds a unix datagram socket, starts
a real sluiced on a free loopback port with NOTIFY_SOCKET pointing at it, and
checks READY=1 arrives only once the broker answers `sluice stats`,
RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 on SIGTERM, and no
READY=1 from a broker that fails to start. Exits 77 (skip) when sluiced was
built without libsystemd. Stops only the brokers it started, by PID."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77


def fail(msg, log=None):
    print("FAIL: " + msg, file=sys.stderr)
    if log and os.path.exists(log):
        with open(log, encoding="utf-8", errors="replace") as f:
            print("--- broker log:\n" + f.read()[-3000:], file=sys.stderr)
    sys.exit(1)


def recv_states(sock, want, timeout):
    """Read datagrams until one holds the line WANT; return every line seen."""
    seen = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            data = sock.recv(4096)
        except socket.timeout:
            break
        lines = data.decode("utf-8", "replace").split("\n")
        seen.extend(lines)
        if want in lines:
            return seen
    return seen


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 64
    sluiced, sluice, have = sys.argv[1], sys.argv[2], sys.argv[3]
    if have != "true":
        print("SKIP: sluiced was built without libsystemd (-Dsystemd=disabled or "
              "libsystemd-dev missing): it never notifies")
        return SKIP
    tmp = tempfile.mkdtemp(prefix="sluice-notify-")
    data = os.path.join(tmp, "data")
    log = os.path.join(tmp, "sluiced.log")
    sock_path = os.path.join(tmp, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    env = dict(os.environ, NOTIFY_SOCKET=sock_path)
    procs = []

    def start():
        with open(log, "ab") as out:
            p = subprocess.Popen([sluiced, "--data-dir", data, "--listen",
                                  "tcp://127.0.0.1:*", "--sync=off"],
                                 env=env, stdout=out, stderr=out)
        procs.append(p)
        return p

    try:
        broker = start()
        seen = recv_states(sock, "READY=1", 30)
        if "READY=1" not in seen:
            fail("no READY=1 within 30 s (got %r)" % seen, log)
        if broker.poll() is not None:
            fail("sluiced exited (%d) after READY=1" % broker.returncode, log)
        # Ready means usable: the endpoint file is written and a client
        # gets an answer at once, with no retry loop.
        st = subprocess.run([sluice, "--home", data, "--timeout", "5", "stats"],
                            capture_output=True, text=True)
        if st.returncode != 0:
            fail("sluice stats right after READY=1 exited %d: %s" %
                 (st.returncode, st.stderr), log)

        # A second broker on the same data dir is refused at start: it must
        # exit non-zero and never claim readiness.
        second = start()
        try:
            rc = second.wait(timeout=30)
        except subprocess.TimeoutExpired:
            fail("a second sluiced on the same data dir did not exit", log)
        if rc == 0:
            fail("a second sluiced on the same data dir exited 0", log)
        seen = recv_states(sock, "READY=1", 0.5)
        if "READY=1" in seen:
            fail("a broker that failed to start sent READY=1 (%r)" % seen, log)

        broker.send_signal(signal.SIGHUP)
        seen = recv_states(sock, "READY=1", 30)
        if "RELOADING=1" not in seen or "READY=1" not in seen \
                or seen.index("RELOADING=1") > seen.index("READY=1"):
            fail("SIGHUP: want RELOADING=1 then READY=1, got %r" % seen, log)

        broker.send_signal(signal.SIGTERM)
        seen = recv_states(sock, "STOPPING=1", 30)
        if "STOPPING=1" not in seen:
            fail("SIGTERM: no STOPPING=1 (got %r)" % seen, log)
        try:
            rc = broker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            fail("sluiced did not exit within 30 s of SIGTERM", log)
        if rc != 0:
            fail("sluiced exited %d after SIGTERM" % rc, log)
        print("ok: READY=1 when usable, none from a failed start, "
              "RELOADING=1/READY=1 on SIGHUP, STOPPING=1 on SIGTERM")
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        sock.close()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""test_backup - docs/operations.md "Backup and upgrade" as written: a
running, keyed sluiced takes publishes without a pause while `mdb_copy -c`
copies its store; the copy passes `sluiced --check`, and a second broker
started on it (with the key files copied beside it) serves every message
whose publish was confirmed before the copy began, in order.

Usage: test_backup.py BUILD_ROOT. Starts every process itself, in a
temporary directory, on ports the kernel picks, and stops them by PID.
Needs mdb_copy (Debian's lmdb-utils, deploy/install-deps.sh).
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pyharness import Fail, check, run  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
SLUICED = os.path.join(BUILD, "broker", "sluiced")
SLUICE = os.path.join(BUILD, "adapters", "cli", "sluice")
TMP = tempfile.mkdtemp(prefix="sluice-backup-test-")
# The files of a data dir that a restore needs besides the copied data.mdb
# (docs/operations.md); the rest (lock.mdb, sluiced.lock, disk.reserve,
# endpoint) the broker makes again.
KEY_FILES = ("server.cert", "server.pub", "admin.cert", "admin.pub")
BATCH = 200
procs = []


def start(data, log):
    p = subprocess.Popen([SLUICED, "--data-dir", data, "--listen", "tcp://127.0.0.1:*"],
                         stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    procs.append(p)
    for _ in range(400):
        if "listening on tcp://" in open(log, errors="replace").read():
            return p
        check(p.poll() is None, "sluiced started", open(log, errors="replace").read())
        time.sleep(0.05)
    raise Fail("sluiced did not start: " + open(log, errors="replace").read())


def sluice(home, *args, stdin=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    return subprocess.run([SLUICE, *args, "--home", home], input=stdin, capture_output=True,
                          text=True, timeout=60, env=env)


class Publisher(threading.Thread):
    """Publishes batches of BATCH numbered lines without a pause; a batch
    is confirmed when `sluice pub` exits 0 (every message acked)."""

    def __init__(self, home):
        super().__init__(daemon=True)
        self.home = home
        self.confirmed = []             # batch numbers, in order
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.error = None

    def run(self):
        n = 0
        while not self.stop.is_set():
            lines = "".join(f'{{"batch":{n},"i":{i}}}\n' for i in range(BATCH))
            r = sluice(self.home, "pub", "bk.orders", stdin=lines)
            if r.returncode != 0:
                self.error = r.stderr
                return
            with self.lock:
                self.confirmed.append(n)
            n += 1

    def snapshot(self):
        with self.lock:
            return list(self.confirmed)


def test_backup_restore():
    mdb_copy = shutil.which("mdb_copy")
    check(mdb_copy, "mdb_copy is installed (lmdb-utils, deploy/install-deps.sh)")
    data = os.path.join(TMP, "data")
    live = start(data, os.path.join(TMP, "live.log"))
    pub = Publisher(data)
    pub.start()
    while len(pub.snapshot()) < 3:
        check(pub.error is None and pub.is_alive(), "publishing works", pub.error)
        time.sleep(0.05)
    before = pub.snapshot()         # confirmed before the copy began
    copy = os.path.join(TMP, "copy")
    os.mkdir(copy, 0o700)
    r = subprocess.run([mdb_copy, "-c", data, copy], capture_output=True, text=True,
                       timeout=120)
    during = pub.snapshot()
    pub.stop.set()
    pub.join(60)
    check(r.returncode == 0, "mdb_copy -c of the running broker's store", r.stderr)
    check(pub.error is None, "publishing went on during the copy", pub.error)
    check(len(during) > len(before) or pub.snapshot() != before,
          "publishes were confirmed while the copy ran or right after it",
          (before, during))
    live.send_signal(signal.SIGTERM)
    check(live.wait(30) == 0, "the live broker stops cleanly")

    r = subprocess.run([SLUICED, "--check", "--data-dir", copy], capture_output=True,
                       text=True, timeout=120)
    check(r.returncode == 0 and "0 problems" in r.stdout + r.stderr,
          "sluiced --check passes on the copy", r.stdout + r.stderr)
    for f in KEY_FILES:
        shutil.copy2(os.path.join(data, f), os.path.join(copy, f))
    restored = start(copy, os.path.join(TMP, "restored.log"))
    r = sluice(copy, "sub", "bk.orders", "--from", "earliest", "--timeout", "3")
    check(r.returncode == 0, "the restored broker serves bk.orders", r.stderr)
    got = [tuple(map(int, re.findall(r"\d+", line))) for line in r.stdout.splitlines()]
    want = [(b, i) for b in before for i in range(BATCH)]
    check(got[:len(want)] == want,
          f"every message confirmed before the copy ({len(want)}) is there, in order",
          (len(got), got[:3], want[:3]))
    check(got == [(n // BATCH, n % BATCH) for n in range(len(got))],
          "after them, only what the publishes during the copy had committed, in order",
          got[len(want):][:5])
    restored.send_signal(signal.SIGTERM)
    check(restored.wait(30) == 0, "the restored broker stops cleanly")
    print(f"ok: {len(want)} confirmed messages restored, {len(got) - len(want)} more "
          f"from the publishes during the copy")


def main():
    return run((test_backup_restore,), TMP, procs)


if __name__ == "__main__":
    sys.exit(main())

"""pgcdctest - what the sluice-pgcdc tests share: tests/file's FileTest (a
real sluiced in a temporary directory, restartable, killable) plus a
PostgreSQL 15 server of the test's own (initdb in a temporary directory,
wal_level=logical, 127.0.0.1 on a free port of 17700-17749, stopped by
PID), psql() to run SQL, sluice-pgcdc started and killed by PID, and
waits on the slot: until it confirmed every commit so far (every event
is then stored) or until no walsender holds it after a kill.
PostgreSQL refuses to run as root: as root the server runs as `nobody`
through runuser. Exits 77 (skipped) only when the PostgreSQL binaries
are absent.
"""
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "file"))
from filetest import Fail, FileTest  # noqa: E402

PGBIN = os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin")


def skip_unless_available():
    if not all(os.path.exists(os.path.join(PGBIN, p)) for p in ("initdb", "postgres", "pgbench")) \
            or not shutil.which("psql"):
        print(f"SKIP: no PostgreSQL 15 binaries in {PGBIN} (apt-get install postgresql-15)")
        sys.exit(77)


def _free_port():
    for port in range(17700, 17750):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise Fail("no free port in 17700-17749 for PostgreSQL")


class PgCdcTest(FileTest):
    def __init__(self, build, name):
        skip_unless_available()
        super().__init__(build, name)
        self.pgcdc_bin = os.path.join(build, "adapters", "pgcdc", "sluice-pgcdc")
        self.pgdir = tempfile.mkdtemp(prefix=f"sluice-{name}-pg-")
        self.pgdata = os.path.join(self.pgdir, "data")
        self.user = None
        self.pg = None
        self.port = None
        self.cdc_state = self.path("cdc-state")
        if os.geteuid() == 0:
            self.user = "nobody"
            pw = pwd.getpwnam(self.user)
            os.chown(self.pgdir, pw.pw_uid, pw.pw_gid)

    def _as_user(self, args):
        return (["runuser", "-u", self.user, "--"] if self.user else []) + args

    def pg_start(self):
        if not os.path.exists(self.pgdata):
            r = subprocess.run(self._as_user([os.path.join(PGBIN, "initdb"), "-D", self.pgdata,
                                              "-U", "sluice", "-A", "trust", "--no-sync"]),
                               capture_output=True, text=True)
            self.check(r.returncode == 0, "initdb", r.stderr[-1000:])
        self.port = self.port or _free_port()
        log = open(self.path("postgres.log"), "ab")
        self.pg = subprocess.Popen(self._as_user([
            os.path.join(PGBIN, "postgres"), "-D", self.pgdata, "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.pgdir}",
            "-c", "wal_level=logical", "-c", "max_replication_slots=8",
            "-c", "max_wal_senders=8", "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "shared_buffers=32MB"]), stdout=log, stderr=subprocess.STDOUT)
        for _ in range(300):
            if self.psql("SELECT 1", check=False) == [["1"]]:
                return
            self.check(self.pg.poll() is None, "PostgreSQL started",
                       open(self.path("postgres.log")).read()[-2000:])
            time.sleep(0.1)
        raise Fail("PostgreSQL did not accept connections")

    def pg_stop(self):
        if self.pg and self.pg.poll() is None:
            # runuser forwards the signal; postgres' own pid is in postmaster.pid
            with open(os.path.join(self.pgdata, "postmaster.pid")) as f:
                os.kill(int(f.readline()), signal.SIGINT)
            self.pg.wait(60)

    def dsn(self, db="postgres"):
        return f"host=127.0.0.1 port={self.port} user=sluice dbname={db}"

    def psql(self, sql, db="postgres", check=True):
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                            self.dsn(db), "-c", sql], capture_output=True, text=True)
        if check:
            self.check(r.returncode == 0, f"psql {sql[:80]}", r.stderr[-500:])
        if r.returncode != 0:
            return None
        return [line.split("\t") for line in r.stdout.splitlines() if line != ""]

    def pgcdc(self, *args, log="pgcdc.log"):
        return self.start([self.pgcdc_bin, "--dsn", self.dsn(), "--state-dir", self.cdc_state,
                           *args], log)

    def pgcdc_run(self, *args, timeout=60):
        return self.run([self.pgcdc_bin, "--dsn", self.dsn(), "--state-dir", self.cdc_state,
                         *args], timeout=timeout)

    def events(self, topic, count, timeout=30):
        """COUNT events of TOPIC as dicts, waiting up to TIMEOUT s for them."""
        deadline = time.time() + timeout
        while self.topic_messages(topic) < count and time.time() < deadline:
            time.sleep(0.2)
        n = self.topic_messages(topic)
        self.check(n >= count, f"{count} events on {topic}", f"{n} stored")
        return [json.loads(line) for line in self.read_topic(topic, n)]

    def wal_end(self):
        """The WAL insert position: past every transaction committed so far.
        Not pg_current_wal_lsn(), the *write* position: the server runs with
        synchronous_commit=off, so the last commits can sit in WAL buffers,
        not yet written, for up to a page or 3 x wal_writer_delay (longer on
        a loaded machine), and a slot that confirmed the write position has
        not necessarily seen them."""
        return self.psql("SELECT pg_current_wal_insert_lsn()")[0][0]

    def slot_caught_up(self, slot, proc, timeout=120):
        """Wait until SLOT's confirmed_flush_lsn reaches wal_end(), taken
        now. sluice-pgcdc confirms only transactions whose events the broker
        stored durably, so from then on every change committed before this
        call is in sluice. Fails when PROC (sluice-pgcdc) exits or TIMEOUT s
        pass."""
        end = self.wal_end()
        deadline = time.time() + timeout
        while True:
            rows = self.psql(f"SELECT confirmed_flush_lsn >= '{end}', confirmed_flush_lsn "
                             f"FROM pg_replication_slots WHERE slot_name = '{slot}'")
            if rows and rows[0][0] == "t":
                return
            self.check(proc.poll() is None, "sluice-pgcdc keeps running",
                       open(self.path("pgcdc.log")).read()[-1500:])
            self.check(time.time() < deadline, f"slot {slot} confirmed {end} within {timeout} s",
                       f"it confirmed {rows[0][1] if rows else '(no slot)'}; "
                       + open(self.path("pgcdc.log")).read()[-1500:])
            time.sleep(0.2)

    def slot_released(self, slot, timeout=30):
        """Wait until no walsender holds SLOT. After a kill -9 of
        sluice-pgcdc the server notices the dead connection a moment later;
        a restart before that is refused ("replication slot is active")."""
        deadline = time.time() + timeout
        while self.psql(f"SELECT active FROM pg_replication_slots "
                        f"WHERE slot_name = '{slot}'") == [["t"]]:
            self.check(time.time() < deadline, f"slot {slot} released within {timeout} s")
            time.sleep(0.05)

    def slot_lag(self, slot):
        """Bytes of WAL between the server's current position and SLOT's
        confirmed flush position."""
        rows = self.psql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)"
                         f"::bigint FROM pg_replication_slots WHERE slot_name = '{slot}'")
        self.check(rows, f"slot {slot} exists")
        return int(rows[0][0])

    def finish(self, body):
        def wrapped(t):
            try:
                body(t)
            finally:
                for p in self.procs:
                    if p.poll() is None and p is not self.broker:
                        p.kill()
                        p.wait()
                try:
                    self.pg_stop()
                except Exception:
                    pass
                if self.pg and self.pg.poll() is None:
                    self.pg.kill()
        try:
            super().finish(wrapped)
        finally:
            shutil.rmtree(self.pgdir, ignore_errors=True)

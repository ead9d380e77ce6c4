"""pgtest - a PostgreSQL 15 server of a test's own: initdb in a temporary
directory, started on 127.0.0.1 on a free port (from $PGTEST_PORTS,
default 17750-17799), wal_level=logical, stopped by its PID (from
postmaster.pid, since runuser stands between). PostgreSQL refuses to run
as root: as root the server runs as the user `postgres` (Debian's) or
else `nobody`, through runuser. psql() runs SQL and returns the rows.

SKIP (77) when the PostgreSQL binaries are absent: the only reason a test
on it may skip.
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

PGBIN = os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin")
SKIP = 77


def available():
    return all(os.access(os.path.join(PGBIN, p), os.X_OK)
               for p in ("initdb", "postgres", "psql", "pgbench"))


def skip_unless_available():
    if not available():
        print(f"SKIP: no PostgreSQL 15 binaries in {PGBIN} (apt-get install postgresql-15)")
        sys.exit(SKIP)


def _free_port():
    lo, hi = (int(x) for x in os.environ.get("PGTEST_PORTS", "17750-17799").split("-"))
    for port in range(lo, hi + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        # The socket directory is ours, but the lock file of a port is in
        # /tmp for every server on it: skip a port another server holds.
        if not os.path.exists(f"/tmp/.s.PGSQL.{port}.lock"):
            return port
    raise RuntimeError(f"no free port in {lo}-{hi}")


class PgServer:
    def __init__(self, name, settings=()):
        self.dir = tempfile.mkdtemp(prefix=f"sluice-pgdata-{name}-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.user = None
        if os.geteuid() == 0:
            for u in ("postgres", "nobody"):
                try:
                    pw = pwd.getpwnam(u)
                except KeyError:
                    continue
                self.user = u
                os.chown(self.dir, pw.pw_uid, pw.pw_gid)
                break
        os.chmod(self.dir, 0o755)
        self.port = _free_port()
        self.settings = ["-c", "listen_addresses=127.0.0.1", "-c", f"port={self.port}",
                         "-c", f"unix_socket_directories={self.dir}",
                         "-c", "wal_level=logical", "-c", "max_wal_senders=10",
                         "-c", "max_replication_slots=10", "-c", "fsync=on",
                         "-c", "shared_buffers=64MB", "-c", "max_connections=60"]
        for s in settings:
            self.settings += ["-c", s]
        self.proc = None
        self._as_user([os.path.join(PGBIN, "initdb"), "-D", self.data, "-U", "sluice",
                       "--auth=trust", "-E", "UTF8", "--no-sync"], check=True)

    def _as_user(self, args, check=False, log=None):
        cmd = (["runuser", "-u", self.user, "--"] if self.user else []) + args
        if log is None:
            return subprocess.run(cmd, capture_output=True, text=True, check=check,
                                  cwd=self.dir)
        f = open(log, "ab")
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=self.dir)

    def dsn(self, db="postgres"):
        return f"host=127.0.0.1 port={self.port} user=sluice dbname={db}"

    def start(self):
        self.proc = self._as_user([os.path.join(PGBIN, "postgres"), "-D", self.data,
                                   *self.settings], log=self.log)
        for _ in range(300):
            r = subprocess.run([os.path.join(PGBIN, "pg_isready"), "-h", "127.0.0.1",
                                "-p", str(self.port)], capture_output=True)
            if r.returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL did not start: {open(self.log).read()[-2000:]}")

    def pid(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def stop(self, sig=signal.SIGINT):
        """SIGINT: fast shutdown; SIGKILL: a crash (the children follow)."""
        pid = self.pid()
        if pid:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if self.proc:
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                pass
        if sig == signal.SIGKILL and pid:
            # The backends notice the postmaster gone and exit; wait for
            # the shared memory to be free so a restart works.
            time.sleep(1)
        self.proc = None

    def psql(self, sql, db="postgres", check=True):
        r = subprocess.run([os.path.join(PGBIN, "psql"), "-X", "-A", "-t", "-q",
                            "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", self.dsn(db),
                            "-c", sql], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"psql failed: {sql[:200]}: {r.stderr}")
        if not check:
            return r
        return [line.split("\t") for line in r.stdout.splitlines() if line != ""]

    def cleanup(self, keep=False):
        if self.pid() and self.proc is not None:
            self.stop()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------- with a FileTest (tests/file)

def sub_lag(ft, name):
    """[lag] of durable subscription NAME at FT's broker ([] when none)."""
    subs = json.loads(ft.sluice("stats", "--json"))["subscriptions"]
    return [s["lag"] for s in subs if s["name"] == name]


def publish(ft, topic, lines, name):
    """`sluice pub` of LINES (JSON texts) to TOPIC, started: the process."""
    path = ft.path(name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return ft.start([ft.cli, "pub", topic, "--file", path, "--content-type",
                     "application/json"], name + ".log")


def pgbench_pair(ft, pg, accounts=None):
    """Databases src (`pgbench -i -s 1`, accounts cut to ACCOUNTS rows
    when given, pgbench_history with a bigserial primary key) and sink
    (the same tables, empty)."""
    pg.psql("CREATE DATABASE src")
    pg.psql("CREATE DATABASE sink")
    r = subprocess.run([os.path.join(PGBIN, "pgbench"), "-i", "-s", "1", "-q",
                        "-h", "127.0.0.1", "-p", str(pg.port), "-U", "sluice", "src"],
                       capture_output=True, text=True)
    ft.check(r.returncode == 0, "pgbench -i", r.stderr[-500:])
    if accounts:
        pg.psql(f"DELETE FROM pgbench_accounts WHERE aid > {accounts}", db="src")
    pg.psql("ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY", db="src")
    dump = subprocess.run([os.path.join(PGBIN, "pg_dump"), "-s", "-t", "pgbench_*",
                           "-d", pg.dsn("src")], capture_output=True, text=True)
    ft.check(dump.returncode == 0, "pg_dump -s", dump.stderr[-500:])
    r = subprocess.run([os.path.join(PGBIN, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                        "-d", pg.dsn("sink")], input=dump.stdout, capture_output=True,
                       text=True)
    ft.check(r.returncode == 0, "the sink's tables", r.stderr[-500:])

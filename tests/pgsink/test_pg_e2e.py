#!/usr/bin/python3
"""test_pg_e2e - PostgreSQL -> sluice-pgcdc -> sluiced -> sluice-pgsink ->
PostgreSQL under a pgbench load, with everything killed (issue 22, point
3): a source database made by `pgbench -i` (accounts cut to 2,000 rows so
the snapshot stays short; pgbench_history given a bigserial primary key),
a sink database with the same tables, one sink per table. While `pgbench
-T` runs the builtin tpcb-like script at a fixed rate, sluice-pgcdc,
sluiced and the four sinks are each killed with SIGKILL twice, staggered,
and started again. Then the sink tables equal the source tables row for
row, and every change is in its topic exactly once: one insert event per
history row, one update event per transaction on tellers and branches (and
on accounts where the row exists), one snapshot read per initial row, no
(commit LSN, index) twice.

Usage: test_pg_e2e.py BUILD_ROOT [SECONDS]. Exit 77 only without PostgreSQL.
"""
import collections
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "file"))
import pgtest  # noqa: E402
from filetest import FileTest  # noqa: E402

ACCOUNTS = 2000
TABLES = {"pgbench_accounts": "aid", "pgbench_branches": "bid",
          "pgbench_tellers": "tid", "pgbench_history": "id"}
SECONDS = int(sys.argv[2]) if len(sys.argv) > 2 else 24


class E2E:
    def __init__(self, ft, pg):
        self.ft, self.pg = ft, pg
        self.pgcdc = os.path.join(ft.build, "adapters", "pgcdc", "sluice-pgcdc")
        self.pgsink = os.path.join(ft.build, "adapters", "pgsink", "sluice-pgsink")
        self.runs = collections.Counter()
        self.cdc = None
        self.sinks = {}

    def start_cdc(self):
        self.runs["cdc"] += 1
        self.cdc = self.ft.start(
            [self.pgcdc, "--dsn", self.pg.dsn("src"), "--slot", "e2e", "--publication",
             "e2e_pub", "--tables", ",".join("public." + t for t in TABLES),
             "--state-dir", self.ft.path("cdc-state"), "--heartbeat", "2s"],
            f"cdc-{self.runs['cdc']}.log")

    def start_sink(self, table):
        self.runs[table] += 1
        self.sinks[table] = self.ft.start(
            [self.pgsink, "sink-" + table, "--dsn", self.pg.dsn("sink"), "--table", table,
             "--key", TABLES[table], "--pattern", f"pg.src.public.{table}",
             "--batch", "500", "--linger", "20ms"],
            f"sink-{table}-{self.runs[table]}.log")

    def kill(self, what):
        ft = self.ft
        for name, p in [("sluice-pgcdc", self.cdc), *self.sinks.items()]:
            ft.check(p.poll() is None, f"{name} was running until killed",
                     f"exit {p.returncode}, logs in {ft.tmp}")
        if what == "cdc":
            ft.stop(self.cdc, signal.SIGKILL)
            time.sleep(0.3)
            self.start_cdc()
        elif what == "broker":
            ft.broker_kill()
            time.sleep(0.3)
            ft.broker_start()
        else:
            for t in TABLES:
                ft.stop(self.sinks[t], signal.SIGKILL)
            for t in TABLES:
                self.start_sink(t)

    def table(self, db, t):
        return self.pg.psql(f"SELECT * FROM {t} ORDER BY {TABLES[t]}", db=db)


def wait_equal(e, timeout):
    end = time.time() + timeout
    diff = list(TABLES)
    while time.time() < end:
        diff = [t for t in TABLES if e.table("src", t) != e.table("sink", t)]
        if not diff:
            return []
        time.sleep(1)
    return diff


def check_topics(ft, pg):
    n_tx = int(pg.psql("SELECT count(*) FROM pgbench_history", db="src")[0][0])
    n_acc = int(pg.psql(f"SELECT count(*) FROM pgbench_history WHERE aid <= {ACCOUNTS}",
                        db="src")[0][0])
    want = {"pgbench_history": {"c": n_tx},
            "pgbench_tellers": {"r": 10, "u": n_tx},
            "pgbench_branches": {"r": 1, "u": n_tx},
            "pgbench_accounts": {"r": ACCOUNTS, "u": n_acc}}
    for t, ops in want.items():
        topic = f"pg.src.public.{t}"
        total = ft.topic_messages(topic)
        events = [json.loads(x) for x in ft.read_topic(topic, total)]
        got = collections.Counter(ev["op"] for ev in events)
        ft.check(dict(got) == ops, f"{topic}: each change once", (dict(got), ops))
        ids = collections.Counter(
            (ev["source"]["commit_lsn"], ev["source"]["index"]) if ev["op"] != "r"
            else json.dumps(ev["key"], sort_keys=True) for ev in events)
        twice = [k for k, c in ids.items() if c > 1]
        ft.check(not twice, f"{topic}: no (commit LSN, index) twice", twice[:3])
    return n_tx


def body(ft):
    pg = pgtest.PgServer("e2e")
    try:
        pg.start()
        pgtest.pgbench_pair(ft, pg, ACCOUNTS)
        ft.broker_start()
        e = E2E(ft, pg)
        e.start_cdc()
        for t in TABLES:
            e.start_sink(t)
        end = time.time() + 60
        while len(e.table("sink", "pgbench_accounts")) < ACCOUNTS and time.time() < end:
            time.sleep(0.5)
        ft.check(len(e.table("sink", "pgbench_accounts")) == ACCOUNTS,
                 "the snapshot reached the sink")
        load = ft.start([os.path.join(pgtest.PGBIN, "pgbench"), "-n", "-T", str(SECONDS),
                         "-R", "150", "-c", "2", "-j", "1", "-h", "127.0.0.1", "-p",
                         str(pg.port), "-U", "sluice", "src"], "pgbench.log")
        t0 = time.time()
        step = SECONDS / 8
        for k, what in enumerate(["cdc", "broker", "sinks"] * 2):
            while time.time() < t0 + step * (k + 1):
                time.sleep(0.1)
            e.kill(what)
        ft.check(load.wait(SECONDS + 60) == 0, "pgbench ran",
                 open(ft.path("pgbench.log")).read()[-500:])
        diff = wait_equal(e, 180)
        ft.check(not diff, "the sink tables equal the source tables row for row", diff)
        n_tx = check_topics(ft, pg)
        ft.check(n_tx > SECONDS * 50, "pgbench committed transactions", n_tx)
        for p in [e.cdc, *e.sinks.values()]:
            ft.check(ft.stop(p, signal.SIGTERM) == 0, "SIGTERM: exit 0", p.args[:2])
        print(f"e2e: {n_tx} transactions, runs {dict(e.runs)}")
    finally:
        pg.cleanup(keep=bool(os.environ.get("SLUICE_TEST_KEEP")))


pgtest.skip_unless_available()
FileTest(sys.argv[1] if len(sys.argv) > 1 else "build", "pg-e2e").finish(body)

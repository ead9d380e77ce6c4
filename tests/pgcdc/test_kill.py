"""sluice-pgcdc exactly once: a pgbench load (tests/pgcdc/load.sql: every
transaction upserts two rows, inserts one and may delete one) while
sluice-pgcdc and sluiced are each killed with SIGKILL twice, once both
together. Then every change event is in its topic exactly once: no
(commit_lsn, index) twice, every transaction's indexes 0..n-1 without a
gap, one transaction per pgbench transaction, and the events replayed
onto a dict (snapshot first) equal each table row for row. The topics
are read as soon as the slot confirmed the WAL insert position after the
load (not the write position, which lags the last commits with
synchronous_commit=off): sluice-pgcdc confirms only what is stored, so
an event missing then is a lost one.
"""
import os
import re
import signal
import subprocess
import sys
import time

from pgcdctest import PGBIN, PgCdcTest

TOPICS = {"acct": "pg.postgres.public.acct", "hist": "pg.postgres.public.hist"}


def body(t):
    t.pg_start()
    t.broker_start()
    t.psql("""
        CREATE TABLE acct (id int PRIMARY KEY, v int NOT NULL);
        CREATE TABLE hist (id bigserial PRIMARY KEY, acct int, delta int);
        INSERT INTO acct SELECT i, 0 FROM generate_series(1, 100) i;
    """)
    args = ("--slot", "chaos", "--publication", "pchaos", "--tables", "public.acct,public.hist",
            "--status-interval", "200ms", "--heartbeat", "1s")
    cdc = t.pgcdc(*args)
    t.events(TOPICS["acct"], 100)
    start_lsn = t.psql("SELECT pg_current_wal_lsn()")[0][0]
    bench = subprocess.Popen([os.path.join(PGBIN, "pgbench"), "-n", "-c", "1", "-R", "150",
                              "-T", "14", "-f", os.path.join(os.path.dirname(__file__), "load.sql"),
                              t.dsn()], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    began = time.time()

    def at(sec):
        time.sleep(max(0, began + sec - time.time()))

    def kill_cdc():
        t.stop(cdc, signal.SIGKILL)
        t.slot_released("chaos")

    at(2)
    kill_cdc()
    cdc = t.pgcdc(*args)
    at(5)
    t.broker_kill()
    t.broker_start()
    at(7.5)
    kill_cdc()
    time.sleep(0.5)
    cdc = t.pgcdc(*args)
    at(10)
    kill_cdc()
    t.broker_kill()
    t.broker_start()
    cdc = t.pgcdc(*args)
    out, _ = bench.communicate(timeout=120)
    t.check(bench.returncode == 0, "pgbench ran", out[-800:])
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    t.check(m, "pgbench reports its transactions", out[-800:])
    txns = int(m.group(1))
    t.check(txns > 500, "the load ran long enough", txns)

    # Every pgbench transaction committed: once the slot confirmed past
    # them all, every event is stored (read at once: nothing may follow).
    t.slot_caught_up("chaos", cdc)

    seen = {}
    per_txn = {}
    for name, topic in TOPICS.items():
        table = {}
        for e in t.events(topic, 1, timeout=5):
            s = e["source"]
            if s["snapshot"]:
                table[tuple(sorted(e["key"].items()))] = e["after"]
                continue
            ident = (s["commit_lsn"], s["index"])
            t.check(ident not in seen, "every change event once", (ident, e, seen.get(ident)))
            seen[ident] = e
            per_txn.setdefault(s["commit_lsn"], []).append(s["index"])
            key = tuple(sorted(e["key"].items()))
            if e["op"] == "d":
                table.pop(key, None)
            else:
                table[key] = e["after"]
        cols = "id, v" if name == "acct" else "id, acct, delta"
        rows = t.psql(f"SELECT {cols} FROM {name}")
        want = {}
        for r in rows:
            vals = [int(x) for x in r]
            want[(("id", vals[0]),)] = dict(zip(cols.split(", "), vals))
        t.check(table == want, f"{name} replayed from its events equals the table",
                f"{len(table)} rows replayed, {len(want)} in the table; differing: "
                f"{[k for k in set(table) | set(want) if table.get(k) != want.get(k)][:5]}")
    gaps = [lsn for lsn, idx in per_txn.items() if sorted(idx) != list(range(len(idx)))]
    t.check(not gaps, "every transaction's events without a gap", gaps[:5])
    t.check(len(per_txn) == txns, "one transaction of events per pgbench transaction",
            f"{len(per_txn)} transactions in sluice, pgbench ran {txns} (from {start_lsn})")
    log = open(t.path("pgcdc.log")).read()
    t.check(log.count("streaming slot=chaos") >= 4, "sluice-pgcdc restarted as planned",
            log.count("streaming slot=chaos"))


PgCdcTest(sys.argv[1], "pgcdc-kill").finish(body)

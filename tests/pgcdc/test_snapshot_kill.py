"""sluice-pgcdc killed with SIGKILL during its initial snapshot: the slot
stays, the state file says the snapshot is pending. Rows are deleted,
updated and inserted while it is down. Started again, it reads the
tables again in full (not under the slot's exported snapshot, which died
with the connection) and then streams from the slot's consistent point:
the changes made meanwhile arrive once each, and the events replayed in
topic order (the first partial snapshot, the full one, the changes)
equal the table row for row.
"""
import signal
import sys
import time

from pgcdctest import PgCdcTest

TOPIC = "pg.postgres.public.big"
ROWS = 150000


def body(t):
    t.pg_start()
    t.broker_start()
    t.psql(f"CREATE TABLE big (id int PRIMARY KEY, v int, pad text); "
           f"INSERT INTO big SELECT i, 0, repeat('x', 60) FROM generate_series(1, {ROWS}) i")
    args = ("--slot", "snap", "--publication", "psnap", "--tables", "public.big")
    cdc = t.pgcdc(*args)
    deadline = time.time() + 60
    while t.topic_messages(TOPIC) == 0:
        t.check(time.time() < deadline and cdc.poll() is None, "the snapshot starts",
                open(t.path("pgcdc.log")).read()[-800:])
        time.sleep(0.02)
    t.stop(cdc, signal.SIGKILL)
    partial = t.topic_messages(TOPIC)
    t.check(0 < partial < ROWS, "killed during the snapshot", partial)
    t.check(t.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'snap'")
            == [["1"]], "the slot outlives the kill")
    t.check("snapshot pending" in open(t.path("cdc-state", "snap.state")).read(),
            "the state file says the snapshot is pending")

    t.psql("DELETE FROM big WHERE id <= 10; UPDATE big SET v = 1 WHERE id BETWEEN 11 AND 20; "
           f"INSERT INTO big SELECT i, 2, 'new' FROM generate_series({ROWS + 1}, {ROWS + 10}) i")
    t.slot_released("snap")
    cdc = t.pgcdc(*args)
    t.slot_caught_up("snap", cdc)
    log = open(t.path("pgcdc.log")).read()
    t.check("exported=no" in log and "snapshot_done rows=%d" % ROWS in log,
            "the snapshot read again in full", log[-800:])
    n = t.topic_messages(TOPIC)
    events = [__import__("json").loads(x) for x in t.read_topic(TOPIC, n)]
    changes = [e for e in events if not e["source"]["snapshot"]]
    t.check(sorted(e["op"] for e in changes) == ["c"] * 10 + ["d"] * 10 + ["u"] * 10,
            "the changes made while it was down, once each",
            sorted(e["op"] for e in changes))
    table = {}
    for e in events:
        if e["op"] == "d":
            table.pop(e["key"]["id"], None)
        else:
            table[e["key"]["id"]] = (e["after"]["v"], e["after"]["pad"])
    rows = {int(r[0]): (int(r[1]), r[2]) for r in t.psql("SELECT id, v, pad FROM big")}
    t.check(table == rows, "the events replayed equal the table",
            f"{len(table)} replayed, {len(rows)} rows")
    t.stop(cdc, signal.SIGTERM)


PgCdcTest(sys.argv[1], "pgcdc-snapshot-kill").finish(body)

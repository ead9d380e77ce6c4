"""sluice-pgcdc keeps an idle slot moving: the published table is idle
while another database of the cluster writes megabytes of WAL (the slot
decodes it, but nothing of it is for the slot, so PostgreSQL sends only
keepalives). The slot's confirmed_flush_lsn follows anyway: the lag in
pg_replication_slots stays bounded during the writes and is under 64 KiB
once they stop, so PostgreSQL can recycle WAL (the failure Debezium's
users see). Once with the keepalive positions alone (--heartbeat 0),
once with --heartbeat 500ms, whose messages must be no events.
"""
import signal
import sys
import time

from pgcdctest import PgCdcTest


def phase(t, slot, heartbeat):
    cdc = t.pgcdc("--slot", slot, "--publication", "phb", "--tables", "public.quiet",
                  "--heartbeat", heartbeat, "--status-interval", "200ms")
    deadline = time.time() + 30
    while "streaming slot=" + slot not in open(t.path("pgcdc.log")).read():
        t.check(time.time() < deadline and cdc.poll() is None, f"slot {slot} streams",
                open(t.path("pgcdc.log")).read()[-800:])
        time.sleep(0.1)
    time.sleep(1)
    first = t.psql("SELECT pg_current_wal_lsn()")[0][0]
    lags = []
    for _ in range(8):
        t.psql("INSERT INTO busy (pad) SELECT repeat(md5(i::text), 30) "
               "FROM generate_series(1, 1500) i", db="other")
        time.sleep(0.5)
        lags.append(t.slot_lag(slot))
    written = int(t.psql(f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{first}')::bigint")[0][0])
    t.check(written > 8 * 1024 * 1024, "the other database wrote over 8 MB of WAL", written)
    time.sleep(2)
    idle = t.slot_lag(slot)
    t.check(cdc.poll() is None, "sluice-pgcdc runs", open(t.path("pgcdc.log")).read()[-800:])
    t.stop(cdc, signal.SIGTERM)
    return lags, idle, written


def body(t):
    t.pg_start()
    t.broker_start()
    t.psql("CREATE DATABASE other")
    t.psql("CREATE TABLE busy (id serial PRIMARY KEY, pad text)", db="other")
    t.psql("CREATE TABLE quiet (id int PRIMARY KEY); INSERT INTO quiet VALUES (1)")

    for slot, heartbeat in (("hb0", "0"), ("hb", "500ms")):
        lags, idle, written = phase(t, slot, heartbeat)
        t.check(max(lags) < written / 3, f"--heartbeat {heartbeat}: the slot's lag stayed "
                "bounded while the captured table was idle",
                f"lags {lags}, {written} bytes written")
        t.check(idle < 64 * 1024, f"--heartbeat {heartbeat}: the lag is under 64 KiB "
                "once the writes stop", idle)
    t.check(t.topic_messages("pg.postgres.public.quiet") == 2,
            "the heartbeat is no event: one snapshot event per slot",
            t.topic_messages("pg.postgres.public.quiet"))


PgCdcTest(sys.argv[1], "pgcdc-heartbeat").finish(body)

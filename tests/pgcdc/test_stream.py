"""sluice-pgcdc: the snapshot of existing rows, then streamed inserts,
updates (one moving a key, one leaving a TOASTed column unchanged) and
deletes on two tables, each event checked whole; ALTER TABLE ADD COLUMN
mid-stream (the event has the column, the registry a new schema
version); a restart sends only what is new; a second program on the
same slot is refused; a table without a primary key refused at start
with its name; a slot advanced past the state file refused.
"""
import signal
import sys
import time

from pgcdctest import PgCdcTest

A = "pg.postgres.public.accounts"
B = "pg.postgres.public.order-20items"     # "order items", escaped


def body(t):
    t.pg_start()
    t.broker_start()
    t.psql("""
        CREATE TABLE accounts (id int PRIMARY KEY, name text, balance numeric(12,2),
                               rate float8, active bool, meta jsonb, big int8, note text);
        CREATE TABLE "order items" (order_id int, line int, qty int2,
                                    PRIMARY KEY (order_id, line));
        INSERT INTO accounts VALUES
          (1, 'ann', 10.50, 1.5, true, '{"tier": "gold"}', 9007199254740993, NULL),
          (2, 'bob', 0.00, 'NaN', false, NULL, 42, 'x');
        INSERT INTO "order items" VALUES (7, 1, 3);
    """)
    p = t.pgcdc("--slot", "s1", "--publication", "p1", "--tables",
                "public.accounts,public.order items", "--heartbeat", "1s")
    snap = t.events(A, 2)
    t.check(len(snap) == 2, "two snapshot events on accounts", snap)
    ann = next(e for e in snap if e["key"] == {"id": 1})
    t.check(ann["op"] == "r" and ann["source"]["snapshot"] is True
            and ann["before"] is None, "snapshot event is op r", ann)
    t.check(ann["after"] == {"id": 1, "name": "ann", "balance": "10.50", "rate": 1.5,
                             "active": True, "meta": {"tier": "gold"},
                             "big": "9007199254740993", "note": None},
            "snapshot values typed as documented", ann["after"])
    bob = next(e for e in snap if e["key"] == {"id": 2})
    t.check(bob["after"]["rate"] == "NaN" and bob["after"]["big"] == 42,
            "NaN as a string, a small int8 as a number", bob["after"])
    items = t.events(B, 1)
    t.check(items[0]["key"] == {"order_id": 7, "line": 1} and items[0]["after"]["qty"] == 3,
            "snapshot of the table whose name needs escaping", items)

    # Streaming: one transaction touching both tables.
    t.psql("""
        BEGIN;
        INSERT INTO accounts (id, name, balance) VALUES (3, 'cy', 1);
        UPDATE accounts SET balance = 11 WHERE id = 1;
        DELETE FROM accounts WHERE id = 2;
        UPDATE "order items" SET line = 2 WHERE order_id = 7;
        COMMIT;
    """)
    ev = t.events(A, 5)[2:]
    t.check([e["op"] for e in ev] == ["c", "u", "d"], "insert, update, delete in order",
            [e["op"] for e in ev])
    t.check([e["source"]["index"] for e in ev] == [0, 1, 2], "indexes 0, 1, 2 in the txn",
            [e["source"] for e in ev])
    commit = ev[0]["source"]["commit_lsn"]
    t.check(all(e["source"]["commit_lsn"] == commit for e in ev)
            and len({e["source"]["lsn"] for e in ev}) == 3
            and len({e["source"]["txid"] for e in ev}) == 1, "one transaction, three LSNs", ev)
    t.check(ev[0]["after"]["name"] == "cy" and ev[0]["after"]["balance"] == "1.00"
            and ev[0]["key"] == {"id": 3} and ev[0]["before"] is None, "the insert", ev[0])
    t.check(ev[1]["after"]["balance"] == "11.00" and ev[1]["after"]["name"] == "ann"
            and ev[1]["before"] is None, "the update (default replica identity)", ev[1])
    t.check(ev[2]["key"] == {"id": 2} and ev[2]["after"] is None, "the delete", ev[2])
    moved = t.events(B, 3)[1:]
    t.check([e["op"] for e in moved] == ["d", "c"]
            and moved[0]["key"] == {"order_id": 7, "line": 1}
            and moved[1]["key"] == {"order_id": 7, "line": 2}
            and [e["source"]["index"] for e in moved] == [3, 4]
            and moved[0]["source"]["commit_lsn"] == commit,
            "an update moving the key: delete of the old key, create of the new", moved)
    t.check(ev[0]["source"]["commit_time"].endswith("Z")
            and len(ev[0]["source"]["commit_time"]) == 27, "commit time RFC 3339 with µs",
            ev[0]["source"]["commit_time"])

    # An update leaving a TOASTed column unchanged.
    t.psql("UPDATE accounts SET note = (SELECT string_agg(md5(i::text), '') "
           "FROM generate_series(1, 400) i) WHERE id = 3")
    t.psql("UPDATE accounts SET balance = 2 WHERE id = 3")
    ev = t.events(A, 7)[5:]
    t.check(len(ev[0]["after"]["note"]) == 12800 and "unchanged_toast" not in ev[0],
            "the TOASTed value sent when it changed", ev[0].get("unchanged_toast"))
    t.check(ev[1]["unchanged_toast"] == ["note"] and "note" not in ev[1]["after"]
            and ev[1]["after"]["balance"] == "2.00",
            "an unchanged TOASTed column is listed, not sent", ev[1])

    # ALTER TABLE mid-stream.
    t.psql("ALTER TABLE accounts ADD COLUMN email text")
    t.psql("INSERT INTO accounts (id, name, email) VALUES (4, 'di', 'di@example.com')")
    ev = t.events(A, 8)[7]
    t.check(ev["after"]["email"] == "di@example.com", "the new column in the event", ev)
    listing = t.sluice("schema", "list")
    t.check(A in listing, "the event schema is registered", listing)
    v2 = t.run([t.cli, "schema", "show", A + "@2"])
    t.check(v2.returncode == 0 and "email" in v2.stdout,
            "ALTER TABLE gave the subject version 2 with the column", v2.stdout + v2.stderr)

    # Stop and start again: nothing repeated, the next change arrives once.
    t.check(t.stop(p, signal.SIGTERM) == 0, "SIGTERM stops it with exit 0")
    p = t.pgcdc("--slot", "s1", "--publication", "p1")
    t.psql("DELETE FROM accounts WHERE id = 4")
    r = t.pgcdc_run("--slot", "s1", "--publication", "p1")
    t.check(r.returncode == 1 and "another sluice-pgcdc runs for this slot" in r.stderr,
            "a second program on the same slot is refused", r.stderr[-600:])
    time.sleep(1)
    ev = t.events(A, 9)
    t.check(len(ev) == 9 and ev[8]["op"] == "d" and ev[8]["key"] == {"id": 4},
            "after a restart only the new change", [e["op"] for e in ev])

    # A table without a primary key is named at start.
    t.psql("CREATE TABLE nokey (a int); CREATE PUBLICATION p2 FOR TABLE nokey")
    r = t.pgcdc_run("--slot", "s2", "--publication", "p2")
    t.check(r.returncode == 1 and "table public.nokey has no primary key" in r.stderr,
            "a table without a primary key refused at start", r.stderr[-600:])
    t.check(t.psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 's2'")
            == [["0"]], "no slot created for the refused publication")

    # A slot moved past the state file (advanced by hand, or an old state
    # dir restored) is refused: the changes between would be lost.
    t.check(t.stop(p, signal.SIGTERM) == 0, "stopped again")
    t.psql("INSERT INTO accounts (id) VALUES (5)")
    t.psql("SELECT pg_replication_slot_advance('s1', pg_current_wal_lsn())")
    r = t.pgcdc_run("--slot", "s1", "--publication", "p1")
    t.check(r.returncode == 1 and "the state file is older than the slot" in r.stderr,
            "a slot ahead of the state file is refused", r.stderr[-600:])


PgCdcTest(sys.argv[1], "pgcdc-stream").finish(body)

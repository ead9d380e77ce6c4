#!/usr/bin/python3
"""test_pgsink - `sluice-pgsink` against a real sluiced and a real
PostgreSQL 15 of its own (issue 22, point 2): change events built here
(inserts, updates, updates with unchanged TOAST columns, deletes, on two
topics, with quotes and a mixed-case column name) are published with
`sluice pub` while the sink applies them; the sink is killed with SIGKILL
three times mid-stream, the broker once, and PostgreSQL is stopped and
started again once. At the end the table equals the state the events
describe, a trigger's log shows every upsert applied exactly once,
sluice_offsets holds each topic's last offset, and the four messages that
cannot apply are in _dlq.SUBSCRIPTION with their reasons. Also: a
missing table, a missing key column and a second sink are refused
clearly; --mode json.

Usage: test_pgsink.py BUILD_ROOT. Exit 77 only without PostgreSQL.
"""
import json
import os
import random
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "file"))
import pgtest  # noqa: E402
from filetest import FileTest  # noqa: E402

SUB = "items-sink"
TABLE_SQL = """
CREATE TABLE items (id bigint PRIMARY KEY, name text, qty numeric(12,2), doc jsonb,
                    big text, "Mixed Case" text, seq bigint);
CREATE TABLE applied (seq bigint, op text);
CREATE FUNCTION log_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN INSERT INTO applied VALUES (OLD.seq, 'd'); RETURN OLD; END IF;
  INSERT INTO applied VALUES (NEW.seq, lower(left(TG_OP, 1))); RETURN NEW;
END $$;
CREATE TRIGGER items_log AFTER INSERT OR UPDATE OR DELETE ON items
  FOR EACH ROW EXECUTE FUNCTION log_apply();
"""


def make_events(db, base, n, seed):
    """N change events on pg.DB.public.items for ids from BASE: the events
    (as JSON text), the final rows {id: row}, the seqs of the upserts."""
    rng = random.Random(seed)
    rows, evs, upserts, next_id = {}, [], [], base
    for i in range(n):
        seq = base * 10 + i
        src = {"db": db, "schema": "public", "table": "items", "lsn": f"0/{seq:X}",
               "commit_lsn": f"0/{seq:X}", "txid": seq, "index": 0, "snapshot": False,
               "commit_time": "2026-12-07T00:00:00.000000Z"}
        r = rng.random()
        if not rows or r < 0.35:
            op, rid = "c", next_id
            next_id += 1
        else:
            rid = rng.choice(list(rows))
            op = "u" if r < 0.88 else "d"
        if op == "d":
            del rows[rid]
            evs.append({"op": "d", "source": src, "key": {"id": rid},
                        "before": {"id": rid}, "after": None})
            continue
        after = {"id": rid, "name": f"it's \"{rid}\" é {i}", "qty": f"{rng.randint(0, 9999)}.{i % 100:02d}",
                 "doc": {"n": i, "tags": ["a", "b"]}, "big": f"big-{i}-" + "x" * 50,
                 "Mixed Case": f"mc{i}", "seq": seq}
        ev = {"op": op, "source": src, "key": {"id": rid}, "before": None, "after": after}
        if op == "u" and rng.random() < 0.3:
            # Unchanged TOAST: the column is absent and keeps its value.
            del after["big"]
            ev["unchanged_toast"] = ["big"]
            after = dict(after, big=rows[rid]["big"])
        rows[rid] = after
        evs.append(ev)
        upserts.append(seq)
    return [json.dumps(e) for e in evs], rows, upserts


BAD = [
    ("not json at all", "the payload is not a JSON object"),
    ('{"op":"c","after":{"name":"no key"}}', 'key column "id" is missing'),
    ('{"op":"c","after":{"id":999999999,"nosuch":1}}', 'column "nosuch" is not in table'),
    ('{"op":"c","after":{"id":"abc"}}', "22P02"),
]


def offsets(pg):
    try:
        return {t: int(o) for t, o in pg.psql(
            f"SELECT topic, \"offset\" FROM sluice_offsets WHERE subscription = '{SUB}'",
            db="sink")}
    except RuntimeError:
        return {}


def wait_offsets(ft, pg, total, what, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        o = offsets(pg)
        if sum(v + 1 for v in o.values()) >= total:
            return o
        time.sleep(0.05)
    ft.check(False, f"{what}: {total} messages applied in {timeout} s", offsets(pg))


def chaos(ft, pg):
    a_ev, a_rows, a_up = make_events("srca", 1000, 12000, 1)
    b_ev, b_rows, b_up = make_events("srcb", 900000, 4000, 2)
    # The bad ones in the middle of topic a.
    a_lines = a_ev[:5000] + [b for b, _ in BAD] + a_ev[5000:]
    ta, tb = "pg.srca.public.items", "pg.srcb.public.items"
    cmd = [ft.pgsink, SUB, "--dsn", pg.dsn("sink"), "--table", "items", "--key", "id",
           "--pattern", "pg.*.public.items", "--batch", "200", "--max-deliver", "2",
           "--retry-delay", "100ms"]
    pubs = [pgtest.publish(ft, ta, a_lines[:8000], "pub-a1"), pgtest.publish(ft, tb, b_ev, "pub-b")]
    sink = ft.start(cmd, "sink-1.log")
    logs = 1
    total = len(a_lines) + len(b_ev)
    for k in (1, 2, 3):
        wait_offsets(ft, pg, 2500 * k, f"kill {k}")
        ft.stop(sink, signal.SIGKILL)
        done = sum(v + 1 for v in offsets(pg).values())
        ft.check(done < total, f"kill {k} came mid-stream", done)
        if k == 1:
            # Topic a's second half after its first: events stay in order.
            ft.check(pubs[0].wait(120) == 0, "the first half of topic a published")
            pubs.append(pgtest.publish(ft, ta, a_lines[8000:], "pub-a2"))
        logs += 1
        sink = ft.start(cmd, f"sink-{logs}.log")
    wait_offsets(ft, pg, 10000, "broker kill")
    ft.broker_kill()
    time.sleep(0.3)
    ft.broker_start()
    wait_offsets(ft, pg, 12000, "PostgreSQL stop")
    pg.stop()
    time.sleep(1.5)
    pg.start()
    for p in pubs:
        ft.check(p.wait(120) == 0, "the publishers finished", p.args[2])
    o = wait_offsets(ft, pg, total, "all applied", timeout=120)
    ft.check(o == {ta: len(a_lines) - 1, tb: len(b_ev) - 1},
             "sluice_offsets: each topic's last offset", o)
    end = time.time() + 30
    while pgtest.sub_lag(ft, SUB) != [0] and time.time() < end:
        time.sleep(0.2)
    ft.check(pgtest.sub_lag(ft, SUB) == [0], "every message acked or dead-lettered",
             pgtest.sub_lag(ft, SUB))
    ft.check(ft.stop(sink, signal.SIGTERM) == 0, "SIGTERM: the sink exits 0")
    logtext = "".join(open(ft.path(f"sink-{i}.log")).read() for i in range(1, logs + 1))
    ft.check("state=down" in logtext and "state=connected" in logtext,
             "PostgreSQL away: the sink said so and reconnected")
    # The table equals the events' final state.
    want = dict(a_rows)
    want.update(b_rows)
    got = {}
    for rid, name, qty, doc, big, mc, seq in pg.psql(
            'SELECT id, name, qty, doc, big, "Mixed Case", seq FROM items', db="sink"):
        got[int(rid)] = {"id": int(rid), "name": name, "qty": qty, "doc": json.loads(doc),
                         "big": big, "Mixed Case": mc, "seq": int(seq)}
    ft.check(len(got) == len(want), f"{len(want)} rows", len(got))
    diff = [k for k in want if got.get(k) != want[k]]
    ft.check(not diff, "every row as the events left it (unchanged TOAST kept)",
             [(k, want[k], got.get(k)) for k in diff[:3]])
    # Exactly once: every upsert fired its trigger once, no other did.
    log = pg.psql("SELECT seq, count(*) FROM applied WHERE op <> 'd' GROUP BY seq", db="sink")
    counts = {int(s): int(c) for s, c in log}
    ft.check(sorted(counts) == sorted(a_up + b_up), "every upsert applied",
             (len(counts), len(a_up) + len(b_up)))
    twice = [s for s, c in counts.items() if c != 1]
    ft.check(not twice, "no event applied twice across the kills", twice[:5])
    # The refused ones: dead-lettered with their reasons, recorded.
    r = ft.run([ft.cli, "dlq", "list", f"_dlq.{SUB}"])
    ft.check(r.returncode == 0, "dlq list", r.stderr)
    for payload, reason in BAD:
        ft.check(reason in r.stdout, f"dead-lettered with its reason: {reason}",
                 r.stdout[-1500:])
    rej = pg.psql(f"SELECT count(*) FROM sluice_rejects WHERE subscription = '{SUB}'",
                  db="sink")
    ft.check(rej == [["4"]], "sluice_rejects records the four", rej)


def refusals(ft, pg):
    base = [ft.pgsink, "x", "--dsn", pg.dsn("sink"), "--pattern", "t.x"]
    r = ft.run(base + ["--table", "public.nosuch", "--key", "id"], timeout=30)
    ft.check(r.returncode == 1 and "public.nosuch does not exist" in r.stderr,
             "a missing table: exit 1 naming it", r.stderr[-400:])
    r = ft.run(base + ["--table", "items", "--key", "id,nope,also"], timeout=30)
    ft.check(r.returncode == 1 and "has no column nope, also" in r.stderr,
             "missing key columns: exit 1 naming them", r.stderr[-400:])
    r = ft.run(base + ["--table", "items", "--key", "name"], timeout=30)
    ft.check(r.returncode == 1 and "no primary key or unique index on exactly (name)"
             in r.stderr, "a key without a unique index: exit 1", r.stderr[-400:])
    cmd = [ft.pgsink, SUB, "--dsn", pg.dsn("sink"), "--table", "items", "--key", "id",
           "--pattern", "pg.*.public.items"]
    ft.second_refused(cmd, "second.log", "another sluice-pgsink applies subscription",
                      "a second sink on one subscription is refused")
    r = ft.run([ft.pgsink, "--help"])
    ft.check(r.returncode == 0 and "every message once" in r.stdout, "--help")
    r = ft.run([ft.pgsink, "x", "--dsn", "d"])
    ft.check(r.returncode == 64 and "--table" in r.stderr, "usage: 64", r.stderr)


def json_mode(ft, pg):
    pg.psql('CREATE TABLE "Kv" (k text, v2 int, val jsonb, PRIMARY KEY (k, v2))', db="sink")
    lines = [json.dumps({"k": f"key{i % 7}", "v2": i % 3, "val": {"i": i}}) for i in range(60)]
    pgtest.publish(ft, "kv.in", lines, "pub-kv").wait(60)
    sink = ft.start([ft.pgsink, "kv", "--dsn", pg.dsn("sink"), "--table", "public.Kv",
                     "--key", "k,v2", "--pattern", "kv.in", "--mode", "json"], "kv.log")
    end = time.time() + 30
    while pgtest.sub_lag(ft, "kv") != [0] and time.time() < end:
        time.sleep(0.1)
    ft.stop(sink, signal.SIGTERM)
    got = {(k, int(v)): json.loads(val) for k, v, val in
           pg.psql('SELECT k, v2, val FROM "Kv"', db="sink")}
    want = {}
    for line in lines:
        o = json.loads(line)
        want[(o["k"], o["v2"])] = o["val"]
    ft.check(got == want, "--mode json: the last object per key (k, v2)", (len(got), len(want)))


def body(ft):
    ft.pgsink = os.path.join(ft.build, "adapters", "pgsink", "sluice-pgsink")
    pg = pgtest.PgServer("sink")
    ft.pg = pg
    try:
        pg.start()
        pg.psql("CREATE DATABASE sink")
        pg.psql(TABLE_SQL, db="sink")
        ft.broker_start()
        chaos(ft, pg)
        refusals(ft, pg)
        json_mode(ft, pg)
    finally:
        pg.cleanup(keep=bool(os.environ.get("SLUICE_TEST_KEEP")))


pgtest.skip_unless_available()
FileTest(sys.argv[1] if len(sys.argv) > 1 else "build", "pgsink").finish(body)

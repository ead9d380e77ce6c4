#!/usr/bin/python3
"""test_import - `sluice-file import` against a real sluiced (issue 21,
points 1 and 5): a 1,000,000-line NDJSON file killed with SIGKILL half-way
and resumed gives exactly 1,000,000 messages, each line once and in order;
SIGINT stops with exit 130 and the next run resumes; the broker killed
with SIGKILL during an import loses and repeats nothing; a CSV file is
typed by the topic's schema; records rejected here (not JSON, wrong
number of CSV fields) and by the broker (schema) are listed with their
line numbers and in --rejects, and --strict stops at the first; a second
import of the same file stores nothing, --run NAME stores it again; the
progress bar on a terminal-like --progress bar.

Usage: test_import.py BUILD_ROOT.
"""
import json
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filetest import FileTest  # noqa: E402

SUMMARY = re.compile(r"^(\S+): (\d+) records(.*?): (\d+) stored, (\d+) duplicates "
                     r"skipped, (\d+) rejected$", re.M)


def summary(ft, out):
    m = SUMMARY.search(out)
    ft.check(m, "the import printed its summary", out[-1000:])
    return {"records": int(m.group(2)), "stored": int(m.group(4)),
            "duplicates": int(m.group(5)), "rejected": int(m.group(6)),
            "interrupted": "interrupted" in m.group(3)}


def import_(ft, *args):
    return ft.sluice_file("import", "--progress", "none", *args, timeout=300)


def million(ft):
    n = 1_000_000
    path = ft.path("million.ndjson")
    lines = [f'{{"n":{i},"id":"rec-{i:07d}"}}' for i in range(1, n + 1)]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    p = ft.start([ft.file, "import", "--topic", "imp.million", "--progress", "lines",
                  path], "million-1.log")
    at_kill = 0
    end = time.time() + 60
    while time.time() < end and p.poll() is None:
        at_kill = ft.topic_messages("imp.million")
        if at_kill >= 150_000:
            break
        time.sleep(0.02)
    ft.check(p.poll() is None, "the import was still running when killed",
             f"{at_kill} stored; make the file bigger on this machine")
    ft.stop(p, signal.SIGKILL)
    stored = ft.topic_messages("imp.million")
    ft.check(0 < stored < n, "the killed import stored part of the file", stored)
    r = ft.sluice_file("import", "--topic", "imp.million", "--progress", "bar", path,
                       timeout=300)
    ft.check(r.returncode == 0, "the resumed import exits 0", r.stderr[-500:])
    s = summary(ft, r.stdout)
    ft.check(s["records"] == n and s["stored"] + s["duplicates"] == n
             and s["rejected"] == 0, "the resumed import accounts for every record", s)
    ft.check(s["duplicates"] >= stored, "the records stored before the kill were skipped",
             (s, stored))
    ft.check("resume_after=" in r.stderr and "resume_after=0 " not in r.stderr,
             "the log says where the import resumed", r.stderr[:300])
    ft.check("\x1b[K" in r.stderr and "rec/s" in r.stderr and "100%" in r.stderr,
             "--progress bar redraws one line with the rate and ends at 100%",
             r.stderr[-300:])
    ft.check(ft.topic_messages("imp.million") == n, "the topic holds exactly 1,000,000")
    got = ft.read_topic("imp.million", n)
    ft.check(got == lines, "every line once, in order",
             next(((i, a, b) for i, (a, b) in enumerate(zip(got, lines)) if a != b),
                  len(got)))
    # Imported completely: a third run stores nothing; --run stores it again.
    r = import_(ft, "--topic", "imp.million", path)
    s = summary(ft, r.stdout)
    ft.check(r.returncode == 0 and s["stored"] == 0 and s["duplicates"] == n,
             "importing the same file again stores nothing", s)


def interrupt_and_broker_kill(ft):
    n = 300_000
    path = ft.path("small.ndjson")
    lines = [f'{{"k":{i}}}' for i in range(n)]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    # SIGINT: exit 130, the summary says so; the next run completes.
    p = ft.start([ft.file, "import", "--topic", "imp.int", "--progress", "none", path],
                 "int-1.log")
    while ft.topic_messages("imp.int") < 20_000 and p.poll() is None:
        time.sleep(0.02)
    rc = ft.stop(p, signal.SIGINT)
    log = open(ft.path("int-1.log")).read()
    if rc != 0:
        ft.check(rc == 130 and "interrupted" in log, "SIGINT: exit 130 and the summary "
                 "says interrupted", (rc, log[-500:]))
    r = import_(ft, "--topic", "imp.int", path)
    s = summary(ft, r.stdout)
    ft.check(r.returncode == 0 and s["stored"] + s["duplicates"] == n,
             "the run after SIGINT completes", (r.returncode, s))
    ft.check(ft.read_topic("imp.int", n) == lines, "after SIGINT: every line once, in order")

    # The broker killed mid-import and restarted: the import goes on.
    p = ft.start([ft.file, "import", "--topic", "imp.bk", "--progress", "none", path],
                 "bk.log")
    while ft.topic_messages("imp.bk") < 20_000 and p.poll() is None:
        time.sleep(0.02)
    ft.broker_kill()
    time.sleep(0.5)
    ft.broker_start()
    try:
        rc = p.wait(120)
    except Exception:
        rc = None
    ft.check(rc == 0, "the import survives a broker kill -9",
             (rc, open(ft.path("bk.log")).read()[-800:]))
    ft.check(ft.topic_messages("imp.bk") == n, "after the broker kill: exactly n stored",
             ft.topic_messages("imp.bk"))
    ft.check(ft.read_topic("imp.bk", n) == lines, "after the broker kill: in order")


def csv_and_rejects(ft):
    schema = {"type": "object", "required": ["id", "name", "price", "ok"],
              "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                             "price": {"type": "number"}, "ok": {"type": "boolean"},
                             "note": {"type": ["string", "null"]}}}
    with open(ft.path("item.json"), "w") as f:
        json.dump(schema, f)
    ft.sluice("schema", "register", "item", ft.path("item.json"))
    ft.sluice("topic", "create", "imp.csv")
    ft.sluice("topic", "set", "imp.csv", "--schema", "item")
    csv = ("id,name,price,ok,note\r\n"                      # line 1: header
           "1,plain,2.50,true,\r\n"                          # 2
           "2,\"quoted, with comma\",3,FALSE,\"\"\r\n"       # 3
           "3,\"multi\r\nline \"\"q\"\"\",1e3,true,x\r\n"    # 4-5
           "4,too,few\r\n"                                   # 6: rejected here
           "five,bad id,1,true,\r\n"                         # 7: rejected by the schema
           "\r\n"                                            # 8: blank
           "6,last,-0.5,false,n\r\n")                        # 9
    with open(ft.path("items.csv"), "w", newline="") as f:
        f.write(csv)
    rej = ft.path("rejects.ndjson")
    r = import_(ft, "--topic", "imp.csv", "--rejects", rej, ft.path("items.csv"))
    ft.check(r.returncode == 3, "rejected records: exit 3", (r.returncode, r.stderr))
    s = summary(ft, r.stdout)
    ft.check(s["stored"] == 4 and s["rejected"] == 2, "4 rows stored, 2 rejected", r.stdout)
    ft.check("line 6: 5 fields where the header has" not in r.stdout
             and re.search(r"line 6: 3 fields where the header has 5", r.stdout)
             and re.search(r"line 7: refused by the broker", r.stdout),
             "the summary names lines 6 and 7 with the reason", r.stdout)
    with open(rej) as f:
        rows = [json.loads(line) for line in f]
    ft.check([x["line"] for x in rows] == [6, 7] and all(x["file"].endswith("items.csv")
                                                          for x in rows),
             "--rejects has one object per rejected record", rows)
    got = [json.loads(x) for x in ft.read_topic("imp.csv", 4)]
    ft.check(got == [
        {"id": 1, "name": "plain", "price": 2.50, "ok": True, "note": None},
        {"id": 2, "name": "quoted, with comma", "price": 3, "ok": False, "note": ""},
        {"id": 3, "name": "multi\r\nline \"q\"", "price": 1000.0, "ok": True, "note": "x"},
        {"id": 6, "name": "last", "price": -0.5, "ok": False, "note": "n"}],
        "CSV rows typed by the schema (integer, number, boolean, null, string)", got)
    ft.check("schema=item@1" in r.stderr, "the log names the schema used", r.stderr)

    # NDJSON: lines that are not JSON are rejected with their numbers;
    # --strict stops at the first (exit 3, later lines not published).
    with open(ft.path("mixed.ndjson"), "w") as f:
        f.write('{"a":1}\n\n{"a":2}\nnot json\n{"a":3}\n{"a":\n{"a":4}\n')
    r = import_(ft, "--topic", "imp.mixed", ft.path("mixed.ndjson"))
    s = summary(ft, r.stdout)
    ft.check(s["stored"] == 4 and s["rejected"] == 2 and "line 4: not JSON" in r.stdout
             and "line 6: not JSON" in r.stdout, "NDJSON rejects named by line", r.stdout)
    r = import_(ft, "--topic", "imp.strict", "--strict", ft.path("mixed.ndjson"))
    ft.check(r.returncode == 3 and "line 4: not JSON" in r.stdout,
             "--strict: exit 3 at line 4", (r.returncode, r.stdout))
    ft.check(ft.topic_messages("imp.strict") == 2, "--strict published nothing after "
             "the rejected line", ft.topic_messages("imp.strict"))
    # --run: the same content imported again as new records.
    r = import_(ft, "--topic", "imp.mixed", "--run", "again", ft.path("mixed.ndjson"))
    s = summary(ft, r.stdout)
    ft.check(s["stored"] == 4 and ft.topic_messages("imp.mixed") == 8,
             "--run NAME imports the same content again", s)
    # lines: each line as it is, CRLF cut, the last line without newline kept.
    with open(ft.path("plain.txt"), "w", newline="") as f:
        f.write("one\r\n\r\nthree\nfour")
    r = import_(ft, "--topic", "imp.lines", ft.path("plain.txt"))
    ft.check(r.returncode == 0 and ft.read_topic("imp.lines", 4) == ["one", "", "three",
                                                                     "four"],
             "--format lines (from .txt): every line, empty ones too", r.stdout)
    r = import_(ft, "--topic", "imp.x", "--format", "xml", ft.path("plain.txt"))
    ft.check(r.returncode == 64 and "--format wants" in r.stderr, "a bad --format: 64")
    r = ft.sluice_file("import", "--help")
    ft.check(r.returncode == 0 and "--topic" in r.stdout, "import --help")


def body(ft):
    ft.broker_start()
    million(ft)
    csv_and_rejects(ft)
    interrupt_and_broker_kill(ft)


FileTest(sys.argv[1] if len(sys.argv) > 1 else "build", "file-import").finish(body)

#!/usr/bin/python3
"""test_sink - `sluice-file sink` against a real sluiced (issue 21, points 3
and 5): two topics published while the sink writes them with rotation by
size, the sink killed with SIGKILL twice mid-stream and restarted, then
the broker killed with SIGKILL and restarted: the files hold every
message exactly once, in offset order per topic, and the
side record names the current file. Then rotation by time with --raw, a
second sink on the same subscription and directory refused, --help.

Usage: test_sink.py BUILD_ROOT.
"""
import glob
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filetest import FileTest  # noqa: E402


def sink_cmd(ft, name, pattern, out, *args):
    return [ft.file, "sink", name, "--pattern", pattern, "--dir", out, *args]


def lines_in(out, ext="ndjson"):
    rows = []
    for path in sorted(glob.glob(os.path.join(out, f"*.{ext}"))):
        with open(path) as f:
            rows += f.read().splitlines()
    return rows


def make_ndjson(ft, name, n, tag):
    path = ft.path(name)
    with open(path, "w") as f:
        f.write("".join(f'{{"{tag}":{i}}}\n' for i in range(n)))
    return path


def killed_twice(ft):
    na, nb = 150_000, 50_000
    out = ft.path("out")
    cmd = sink_cmd(ft, "files", "sk.*", out, "--max-bytes", "2MiB", "--batch", "500")
    ft.sluice("topic", "create", "sk.a")
    sink = ft.start(cmd, "sink-1.log")
    pa = make_ndjson(ft, "a.ndjson", na, "a")
    pb = make_ndjson(ft, "b.ndjson", nb, "b")
    pubs = [ft.start([ft.file, "import", "--topic", "sk.a", "--progress", "none", pa],
                     "pub-a.log"),
            ft.start([ft.file, "import", "--topic", "sk.b", "--progress", "none", pb],
                     "pub-b.log")]
    for k in (1, 2):
        # Kill once some lines are written (mid-stream), start again.
        end = time.time() + 60
        while len(lines_in(out)) < 40_000 * k and time.time() < end:
            time.sleep(0.05)
        ft.stop(sink, signal.SIGKILL)
        ft.check(len(lines_in(out)) < na + nb, f"kill {k} came mid-stream",
                 len(lines_in(out)))
        sink = ft.start(cmd, f"sink-{k + 1}.log")
    # And the broker killed -9 mid-stream: the sink reconnects.
    while len(lines_in(out)) < 100_000 and time.time() < end:
        time.sleep(0.05)
    ft.broker_kill()
    time.sleep(0.5)
    ft.broker_start()
    for p in pubs:
        ft.check(p.wait(120) == 0, "the publishers finished")
    end = time.time() + 90
    while len(lines_in(out)) < na + nb and time.time() < end:
        time.sleep(0.2)
    time.sleep(1)
    ft.check(ft.stop(sink, signal.SIGTERM) == 0, "SIGTERM: the sink exits 0")
    rows = [json.loads(x) for x in lines_in(out)]
    ft.check(len(rows) == na + nb, f"{na + nb} lines in the files", len(rows))
    for topic, n, tag in (("sk.a", na, "a"), ("sk.b", nb, "b")):
        mine = [r for r in rows if r["topic"] == topic]
        ft.check([r["offset"] for r in mine] == list(range(n)),
                 f"{topic}: every offset once, in order",
                 (len(mine), len({r['offset'] for r in mine})))
        ft.check(all(r["payload"] == {tag: r["offset"]} for r in mine),
                 f"{topic}: each payload as JSON with its offset")
    files = sorted(glob.glob(os.path.join(out, "files-*.ndjson")))
    ft.check(len(files) >= 5 and all(os.path.getsize(f) < 2 * 2**20 + 2**20
                                     for f in files[:-1]),
             "rotated by size (2 MiB, a batch past it at most)", [os.path.getsize(f)
                                                                  for f in files])
    with open(os.path.join(out, ".sink-files.json")) as f:
        side = json.load(f)
    ft.check(side["file"] == os.path.basename(files[-1])
             and int(side["size"]) == os.path.getsize(files[-1])
             and side["topics"] == {"sk.a": str(na), "sk.b": str(nb)},
             "the side record: the current file, its size, the next offsets", side)
    # Written but not acked (a crash between the side record and the ack),
    # for every message: the cursor moved back to the start. The sink acks
    # them all again without writing a line.
    ft.sluice("sub", "seek", "files", "--earliest")
    sink = ft.start(cmd, "sink-5.log")
    end = time.time() + 60
    while "skipped=" not in open(ft.path("sink-5.log")).read() and time.time() < end:
        subs = json.loads(ft.sluice("stats", "--json"))["subscriptions"]
        if [x["lag"] for x in subs if x["name"] == "files"] == [0]:
            ft.stop(sink, signal.SIGTERM)
        time.sleep(0.2)
    log = open(ft.path("sink-5.log")).read()
    ft.check(f"written=0 skipped={na + nb}" in log and len(lines_in(out)) == na + nb,
             "messages redelivered after they were written are acked, not written",
             log[-300:])
    # The sink's subscription has nothing left to do.
    subs = json.loads(ft.sluice("stats", "--json"))["subscriptions"]
    lag = [s["lag"] for s in subs if s["name"] == "files"]
    ft.check(lag == [0], "everything acked", lag)
    # A second sink on the same subscription and directory is refused.
    ft.second_refused(cmd, "sink-4.log", "another sink",
                      "a second sink on one side record is refused")


def by_time_raw(ft):
    out = ft.path("raw")
    sink = ft.start(sink_cmd(ft, "rawsink", "sk.raw", out, "--raw", "--max-age", "1s"),
                    "raw.log")
    sent = []
    for k in range(3):
        with open(ft.path(f"raw{k}.txt"), "w") as f:
            words = [f"batch {k} line {i}" for i in range(100)]
            f.write("\n".join(words) + "\n")
        sent += words
        r = ft.sluice_file("import", "--topic", "sk.raw", "--progress", "none",
                           ft.path(f"raw{k}.txt"))
        ft.check(r.returncode == 0, "published", r.stderr)
        time.sleep(1.3)
    end = time.time() + 20
    while len(lines_in(out, "txt")) < 300 and time.time() < end:
        time.sleep(0.1)
    ft.stop(sink, signal.SIGTERM)
    ft.check(lines_in(out, "txt") == sent, "--raw: the payloads, one a line, once")
    ft.check(len(glob.glob(os.path.join(out, "rawsink-*.txt"))) >= 3,
             "rotated by --max-age", os.listdir(out))
    # The current file cut by hand: refused, not padded with zeros.
    cmd = sink_cmd(ft, "rawsink", "sk.raw", out, "--raw", "--max-age", "1s")
    with open(os.path.join(out, ".sink-rawsink.json")) as f:
        cur = os.path.join(out, json.load(f)["file"])
    size = os.path.getsize(cur)
    os.truncate(cur, size - 3)
    r = ft.run(cmd, timeout=30)
    ft.check(r.returncode == 1 and "shorter than the side record" in r.stderr,
             "a current file cut by hand stops the sink", r.stderr[-400:])
    # Without the side record: a new file after the highest number, the
    # old files untouched.
    before = {p: open(p).read() for p in glob.glob(os.path.join(out, "*.txt"))}
    os.rename(os.path.join(out, ".sink-rawsink.json"), ft.path("old-side.json"))
    sink = ft.start(cmd, "raw-2.log")
    with open(ft.path("raw9.txt"), "w") as f:
        f.write("after 1\nafter 2\n")
    ft.sluice_file("import", "--topic", "sk.raw", "--progress", "none", ft.path("raw9.txt"))
    end = time.time() + 20
    while not os.path.exists(os.path.join(out, ".sink-rawsink.json")) and time.time() < end:
        time.sleep(0.1)
    ft.check(ft.stop(sink, signal.SIGTERM) == 0, "SIGTERM: exit 0")
    ft.check(all(open(p).read() == t for p, t in before.items()),
             "a start without side record writes over no file")
    with open(os.path.join(out, ".sink-rawsink.json")) as f:
        new = os.path.join(out, json.load(f)["file"])
    ft.check(new not in before and open(new).read() == "after 1\nafter 2\n",
             "it starts after the highest number, from the cursor", new)
    r = ft.sluice_file("sink", "--help")
    ft.check(r.returncode == 0 and "every message once" in r.stdout, "sink --help")
    r = ft.sluice_file("sink", "x", "--dir", out)
    ft.check(r.returncode == 64 and "--pattern" in r.stderr, "no --pattern: 64", r.stderr)


def body(ft):
    ft.broker_start()
    killed_twice(ft)
    by_time_raw(ft)


FileTest(sys.argv[1] if len(sys.argv) > 1 else "build", "file-sink").finish(body)

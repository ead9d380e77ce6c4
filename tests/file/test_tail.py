#!/usr/bin/python3
"""test_tail - `sluice-file tail` against a real sluiced (issue 21, points 2
and 5): two logs written concurrently, one rotated three times by
rename+create and one three times by copytruncate, some lines written in
two parts (the partial line must be held); meanwhile the tailer is killed
with SIGKILL once and restarted, and the broker is killed with SIGKILL once
and restarted. Every line must arrive exactly once, in order per file
(each line names its stream and its file's generation). Then multi-line
joining by a start pattern, a file shorter than the fingerprint that
grows, a file renamed out of the patterns (while the tailer runs, and
while it is down), the state file's content, and --help.

Usage: test_tail.py BUILD_ROOT.
"""
import json
import os
import re
import shutil
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filetest import FileTest  # noqa: E402

LINES_PER_GEN = 3000            # lines per file generation; 4 generations a stream
GENS = 4                        # the live file and three rotations


class Writer(threading.Thread):
    """Writes stream NAME: generation g gets LINES_PER_GEN lines
    "NAME g<g> <n>", then the file is rotated (KIND "rename" or "copy")."""

    def __init__(self, logs, name, kind):
        super().__init__(daemon=True)
        self.path = os.path.join(logs, name + ".log")
        self.name, self.kind = name, kind
        self.rotations = 0
        self.error = None

    def run(self):
        try:
            f = open(self.path, "a")
            for g in range(1, GENS + 1):
                for n in range(1, LINES_PER_GEN + 1):
                    line = f"{self.name} g{g} {n:06d} {'x' * (n % 40)}\n"
                    if n % 97 == 0:         # half a line, a pause, the rest
                        f.write(line[:10])
                        f.flush()
                        time.sleep(0.03)
                        f.write(line[10:])
                    else:
                        f.write(line)
                    if n % 50 == 0:
                        f.flush()
                        time.sleep(0.01)
                f.flush()
                if g == GENS:
                    break
                if self.kind == "rename":
                    f.close()
                    os.rename(self.path, f"{self.path}.{g}")
                    f = open(self.path, "a")
                else:
                    shutil.copyfile(self.path, f"{self.path}.{g}")
                    os.truncate(self.path, 0)
                self.rotations += 1
            f.close()
        except Exception as e:  # noqa: BLE001
            self.error = e


def tail_cmd(ft, topic, state, *args):
    return [ft.file, "tail", "--topic", topic, "--state", state,
            "--scan-interval", "200ms", "--poll-interval", "20ms",
            "--rotated-wait", "1s", *args]


def wait_count(ft, topic, n, timeout=90):
    end = time.time() + timeout
    got = 0
    while time.time() < end:
        got = ft.topic_messages(topic)
        if got >= n:
            break
        time.sleep(0.3)
    return got


def rotations(ft):
    logs = ft.path("logs")
    os.makedirs(logs)
    state = ft.path("tail.json")
    cmd = tail_cmd(ft, "tl.rot", state, os.path.join(logs, "*.log*"))
    tailer = ft.start(cmd, "tail-1.log")
    writers = [Writer(logs, "ren", "rename"), Writer(logs, "cpt", "copy")]
    for w in writers:
        w.start()
    # The tailer killed -9 after the first rotations, the broker after
    # the second ones; each started again.
    while min(w.rotations for w in writers) < 1 and any(w.is_alive() for w in writers):
        time.sleep(0.05)
    time.sleep(0.3)
    ft.stop(tailer, signal.SIGKILL)
    time.sleep(0.5)
    tailer = ft.start(cmd, "tail-2.log")
    while min(w.rotations for w in writers) < 2 and any(w.is_alive() for w in writers):
        time.sleep(0.05)
    time.sleep(0.3)
    ft.broker_kill()
    time.sleep(0.5)
    ft.broker_start()
    for w in writers:
        w.join(120)
        ft.check(w.error is None and w.rotations == GENS - 1,
                 f"writer {w.name} rotated {GENS - 1} times", w.error)
    ft.check(tailer.poll() is None, "the tailer survived the broker kill",
             open(ft.path("tail-2.log")).read()[-1000:])
    total = 2 * GENS * LINES_PER_GEN
    got = wait_count(ft, "tl.rot", total)
    time.sleep(2)               # anything extra would show now
    got = ft.topic_messages("tl.rot")
    ft.check(got == total, f"exactly {total} lines stored", got)
    msgs = ft.read_topic("tl.rot", total)
    seen = {}
    for m in msgs:
        name, gen, n, _ = (m.split(" ") + [""])[:4]
        seen.setdefault((name, gen), []).append(int(n))
    for name in ("ren", "cpt"):
        for g in range(1, GENS + 1):
            lst = seen.get((name, f"g{g}"), [])
            ft.check(lst == list(range(1, LINES_PER_GEN + 1)),
                     f"{name} generation {g}: every line once, in order",
                     (len(lst), len(set(lst)),
                      next((i for i, (a, b) in enumerate(zip(lst, range(1, 10**9)))
                            if a != b), None)))
    ft.check(all(len(m.split(" ")[3] if len(m.split(" ")) > 3 else "") < 40 and "\n" not in m
                 for m in msgs), "partial lines were held: no line cut in two")
    ft.check(ft.stop(tailer, signal.SIGTERM) == 0, "SIGTERM: the tailer exits 0")
    with open(state) as f:
        st = json.load(f)
    ft.check(st["topic"] == "tl.rot" and len(st["files"]) >= 2 * GENS,
             "the state file has an entry per file followed", len(st["files"]))
    log = open(ft.path("tail-1.log")).read() + open(ft.path("tail-2.log")).read()
    ft.check("truncated" in log, "the log reports the copytruncates", log[-1500:])
    # A second tailer on the same state file is refused.
    ft.second_refused(cmd, "tail-3.log", "another sluice-file tail",
                      "a second tailer on one state file is refused")


def multiline_and_small(ft):
    logs = ft.path("ml")
    os.makedirs(logs)
    app = os.path.join(logs, "app.log")
    with open(app, "w") as f:
        f.write("2026-01-01 one\n")         # shorter than the fingerprint
    cmd = tail_cmd(ft, "tl.ml", ft.path("ml.json"), "--multiline-start", r"^\d{4}-",
                   "--multiline-timeout", "500ms", app)
    tailer = ft.start(cmd, "ml.log")
    time.sleep(0.5)
    with open(app, "a") as f:
        f.write("2026-01-01 two: an exception\n\tat a.b(C.java:1)\n\tat d.e(F.java:2)\n")
        f.write("2026-01-01 three\n" + "2026-01-01 filler %s\n" % ("y" * 2000))
        f.flush()
        f.write("2026-01-01 last, no newline yet")
    got = wait_count(ft, "tl.ml", 4, timeout=20)
    time.sleep(1)
    ft.check(ft.topic_messages("tl.ml") == 4, "4 events so far (the last line is held)",
             ft.topic_messages("tl.ml"))
    with open(app, "a") as f:
        f.write(" - now complete\n")
    got = wait_count(ft, "tl.ml", 5, timeout=20)
    ft.check(got == 5, "the completed line is sent (after the multi-line timeout)", got)
    # `sluice sub` prints each payload and a newline: a joined event shows
    # as its lines.
    r = ft.run([ft.cli, "sub", "tl.ml", "--subscription", "ml-raw", "--from", "earliest",
                "--count", "5", "--timeout", "5"])
    want = ("2026-01-01 one\n2026-01-01 two: an exception\n\tat a.b(C.java:1)\n"
            "\tat d.e(F.java:2)\n2026-01-01 three\n2026-01-01 filler %s\n"
            "2026-01-01 last, no newline yet - now complete\n" % ("y" * 2000))
    ft.check(r.stdout == want, "events in order, continuation lines joined to theirs",
             r.stdout[:300])
    ft.stop(tailer, signal.SIGTERM)
    # Restarted: nothing is sent again, the grown short file is re-keyed.
    tailer = ft.start(cmd, "ml.log")
    with open(app, "a") as f:
        f.write("2026-01-01 after restart\n2026-01-01 end\n")
    wait_count(ft, "tl.ml", 7, timeout=20)
    time.sleep(1)
    ft.check(ft.topic_messages("tl.ml") == 7, "after a restart only the new events",
             ft.topic_messages("tl.ml"))
    ft.stop(tailer, signal.SIGTERM)
    with open(ft.path("ml.json")) as f:
        e = json.load(f)["files"][0]
    ft.check(e["fp_len"] == 1024 and int(e["offset"]) == os.path.getsize(app),
             "the state: fingerprint re-keyed to 1024 bytes, offset at the end", e)
    r = ft.sluice_file("tail", "--help")
    ft.check(r.returncode == 0 and "copytruncate" in r.stdout, "tail --help")
    r = ft.sluice_file("tail", "--topic", "x", "--multiline-start", "(", "a")
    ft.check(r.returncode == 64 and re.search("multiline-start: .*offset", r.stderr),
             "a bad REGEX: 64 with where", r.stderr)


def renamed_away(ft):
    """A rename to a name no pattern matches: the old file is still read
    to its end through its descriptor, its last line without newline is
    sent once nothing is written for --rotated-wait, then it is let go."""
    logs = ft.path("away")
    os.makedirs(logs)
    live = os.path.join(logs, "only.log")
    old = open(live, "w")
    old.write("".join(f"old {n}\n" for n in range(1, 501)))
    old.flush()
    tailer = ft.start(tail_cmd(ft, "tl.away", ft.path("away.json"), live), "away.log")
    time.sleep(0.5)
    os.rename(live, os.path.join(logs, "only.log.old"))
    with open(live, "w") as new:
        new.write("".join(f"new {n}\n" for n in range(1, 301)))
    old.write("".join(f"old {n}\n" for n in range(501, 601)) + "old 601 no newline")
    old.close()
    got = wait_count(ft, "tl.away", 901, timeout=20)
    time.sleep(0.5)
    ft.check(got == 901 and ft.topic_messages("tl.away") == 901,
             "a file renamed away is read to its end, its last line included", got)
    msgs = ft.read_topic("tl.away", 901)
    ft.check([m for m in msgs if m.startswith("old")]
             == [f"old {n}" for n in range(1, 601)] + ["old 601 no newline"]
             and [m for m in msgs if m.startswith("new")]
             == [f"new {n}" for n in range(1, 301)], "both files once, in order")
    ft.stop(tailer, signal.SIGTERM)
    log = open(ft.path("away.log")).read()
    ft.check("info rotated" in log and "info done" in log,
             "the log says the file was renamed away and let go", log[-800:])


def moved_while_down(ft):
    """The tailer killed, then its file renamed to a name no pattern
    matches and written on: at start it finds the inode in the same
    directory and reads the rest."""
    logs = ft.path("down")
    os.makedirs(logs)
    live = os.path.join(logs, "dn.log")
    with open(live, "w") as f:
        f.write("".join(f"first {n}\n" for n in range(1, 301)))
    cmd = tail_cmd(ft, "tl.down", ft.path("down.json"), live)
    tailer = ft.start(cmd, "down.log")
    ft.check(wait_count(ft, "tl.down", 300, timeout=20) == 300, "the first 300 lines")
    time.sleep(0.7)             # a state save
    ft.stop(tailer, signal.SIGKILL)
    with open(live, "a") as f:
        f.write("".join(f"first {n}\n" for n in range(301, 401)))
    os.rename(live, os.path.join(logs, "dn.log.old"))
    with open(os.path.join(logs, "dn.log.old"), "a") as f:
        f.write("".join(f"first {n}\n" for n in range(401, 451)))
    with open(live, "w") as f:
        f.write("".join(f"second {n}\n" for n in range(1, 201)))
    tailer = ft.start(cmd, "down.log")
    got = wait_count(ft, "tl.down", 650, timeout=20)
    time.sleep(1)
    ft.check(ft.topic_messages("tl.down") == 650, "650 lines after the restart", got)
    msgs = ft.read_topic("tl.down", 650)
    ft.check([m for m in msgs if m.startswith("first")]
             == [f"first {n}" for n in range(1, 451)]
             and [m for m in msgs if m.startswith("second")]
             == [f"second {n}" for n in range(1, 201)], "both files once, in order")
    ft.check(ft.stop(tailer, signal.SIGTERM) == 0, "SIGTERM: exit 0")
    ft.check("info moved" in open(ft.path("down.log")).read(),
             "the log says where the renamed file was found")


def body(ft):
    ft.broker_start()
    multiline_and_small(ft)
    renamed_away(ft)
    moved_while_down(ft)
    rotations(ft)


FileTest(sys.argv[1] if len(sys.argv) > 1 else "build", "file-tail").finish(body)

#!/usr/bin/python3
"""test_metrics - sluiced's --metrics-listen (issue 20, point 1) against a
real broker: a known workload (publishes, acks, a schema rejection, a
refused key, a routing table), then /metrics scraped and its values
asserted; the format checked with `promtool check metrics` when Debian's
prometheus package is installed (skipped with a message otherwise);
/healthz, /readyz (200, then 503 under the storage alarm), 404 and 405;
a non-loopback address refused without --metrics-public. With
--metrics-per-object: exact per-topic and per-subscription values after a
known workload (a consumer in Python holds messages unacked, another lets
its messages expire into the dead-letter topic), the cap of
broker/metrics_max_objects (the first by name served, the rest counted);
without it no per-object series. SIGHUP: a reloadable setting
(metrics_per_object) takes effect and is named, a setting that needs a
restart is named in a warning, a file that no longer parses changes
nothing.

Usage: test_metrics.py BUILD_ROOT. Starts every process itself, in a
temporary directory, on ports the kernel picks, and stops them by PID.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pyharness import Fail, check, run  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
SLUICED = os.path.join(BUILD, "broker", "sluiced")
SLUICE = os.path.join(BUILD, "adapters", "cli", "sluice")
SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LIBSLUICE = os.path.join(BUILD, "adapters", "sdk", "libsluice.so.0")
TMP = tempfile.mkdtemp(prefix="sluice-metrics-test-")
procs = []


class Broker:
    """One sluiced with its own data dir, metrics on 127.0.0.1:0."""

    def __init__(self, name, *extra, metrics="127.0.0.1:0"):
        self.data = os.path.join(TMP, name)
        self.log = os.path.join(TMP, name + ".log")
        self.env = dict(os.environ, SLUICE_HOME=self.data)
        for v in ("SLUICE_BROKER", "SLUICE_CERT", "SLUICE_SERVER_KEY"):
            self.env.pop(v, None)
        args = [SLUICED, "--data-dir", self.data, "--listen", "tcp://127.0.0.1:*",
                *extra]
        if metrics:
            args += ["--metrics-listen", metrics]
        self.p = subprocess.Popen(args, stdout=open(self.log, "ab"),
                                  stderr=subprocess.STDOUT, env=self.env)
        procs.append(self.p)
        self.port = None

    def text(self):
        return open(self.log, errors="replace").read()

    def wait_listening(self):
        for _ in range(200):
            m = re.search(r"metrics listening on \S+, port (\d+)", self.text())
            if m and "listening on tcp://" in self.text():
                self.port = int(m.group(1))
                self.url = f"http://127.0.0.1:{self.port}"
                return
            check(self.p.poll() is None, "sluiced started", self.text())
            time.sleep(0.05)
        raise Fail("sluiced did not log its metrics port: " + self.text())

    def sluice(self, *args, ok=True, stdin=None):
        r = subprocess.run([SLUICE, *args], env=self.env, capture_output=True, text=True,
                           input=stdin, timeout=60, cwd=TMP)
        if ok:
            check(r.returncode == 0, f"sluice {' '.join(args)}", r.stderr)
        return r

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        return self.p.wait(20)


def get(url, method="GET"):
    """(status, content type, body text)."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def parse(text):
    """{'name{labels}': value} of every sample; TYPE lines as {'name': type}."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples, types


def scrape(b):
    st, ctype, body = get(b.url + "/metrics")
    check(st == 200, "/metrics answers 200", st)
    check(ctype.startswith("text/plain; version=0.0.4"), "/metrics content type", ctype)
    return body, *parse(body)


def wait_for(b, cond, what, timeout=10):
    """Scrape until COND(samples) holds (the loop publishes every ~200 ms,
    at most a second apart when idle)."""
    end = time.time() + timeout
    while True:
        body, m, types = scrape(b)
        if cond(m):
            return body, m, types
        if time.time() > end:
            raise Fail(f"{what}; last scrape:\n{body}")
        time.sleep(0.1)


def promtool(body):
    tool = shutil.which("promtool")
    if not tool:
        print("SKIP promtool check: promtool not installed (Debian package "
              "prometheus, deploy/install-deps.sh)")
        return
    r = subprocess.run([tool, "check", "metrics"], input=body, capture_output=True,
                       text=True)
    check(r.returncode == 0, "promtool check metrics accepts /metrics",
          r.stdout + r.stderr)


def histogram(m, name):
    """Buckets [(le, cumulative)], sum, count; asserts its shape."""
    buckets = []
    for key, v in m.items():
        mt = re.fullmatch(name + r'_bucket\{le="([^"]+)"\}', key)
        if mt:
            le = float("inf") if mt.group(1) == "+Inf" else float(mt.group(1))
            buckets.append((le, v))
    buckets.sort()
    check(len(buckets) >= 2 and buckets[-1][0] == float("inf"),
          f"{name}: buckets up to +Inf", buckets)
    check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])),
          f"{name}: buckets are cumulative", buckets)
    check(buckets[-1][1] == m[name + "_count"], f"{name}: +Inf bucket equals _count",
          (buckets[-1], m[name + "_count"]))
    return buckets, m[name + "_sum"], m[name + "_count"]


# ------------------------------------------------------------------ tests

def test_workload():
    b = Broker("main")
    b.wait_listening()
    st, _, body = get(b.url + "/healthz")
    check(st == 200 and body == "ok\n", "/healthz is 200", (st, body))
    st, _, body = get(b.url + "/readyz")
    check(st == 200 and body == "ready\n", "/readyz is 200 once the broker listens",
          (st, body))
    st, _, _ = get(b.url + "/nope")
    check(st == 404, "an unknown path is 404", st)
    st, _, _ = get(b.url + "/metrics", "POST")
    check(st == 405, "POST /metrics is 405", st)

    body, m, types = scrape(b)
    version = subprocess.run([SLUICED, "--version"], capture_output=True,
                             text=True).stdout.split()[-1]
    check(m.get(f'sluice_build_info{{version="{version}"}}') == 1,
          "sluice_build_info names sluiced --version", version)
    check(m["sluice_messages_stored_total"] == 0 and m["sluice_acks_total"] == 0,
          "a new broker has stored and acked nothing")
    check(m["sluice_ready"] == 1, "sluice_ready is 1")
    promtool(body)

    # 10 publishes of known sizes.
    lines = [f'{{"n":{i},"pad":"{"x" * i}"}}' for i in range(10)]
    b.sluice("pub", "m.orders", stdin="\n".join(lines) + "\n")
    payload = sum(len(l) for l in lines)
    # 4 acks on a durable subscription.
    b.sluice("sub", "m.orders", "--subscription", "s1", "--from", "earliest",
             "--count", "4", "--timeout", "20")
    # One schema rejection.
    schema = os.path.join(TMP, "order.json")
    with open(schema, "w") as f:
        f.write('{"type":"object","required":["id"],'
                '"properties":{"id":{"type":"string"}}}')
    b.sluice("schema", "register", "order", schema)
    b.sluice("topic", "set", "m.valid", "--schema", "order")
    r = b.sluice("pub", "m.valid", stdin='{"id":5}\n', ok=False)
    check(r.returncode != 0, "the invalid message is refused", r.stderr)
    # A key the broker does not know: refused at the handshake.
    b.sluice("keygen", "stranger")
    r = b.sluice("stats", "--cert", os.path.join(TMP, "stranger.cert"), "--timeout", "3",
                 ok=False)
    check(r.returncode != 0, "an unknown key is refused", r.stderr)

    body, m, types = wait_for(
        b, lambda m: m["sluice_acks_total"] == 4 and m["sluice_schema_rejections_total"] == 1
        and m["sluice_auth_failures_total"] >= 1, "acks, the rejection and the refusal show")
    check(m["sluice_messages_stored_total"] == 10, "10 messages stored",
          m["sluice_messages_stored_total"])
    check(m["sluice_messages_stored_bytes_total"] == payload, "their payload bytes",
          (m["sluice_messages_stored_bytes_total"], payload))
    check(m["sluice_deliveries_total"] >= 4, "at least the 4 acked were delivered",
          m["sluice_deliveries_total"])
    check(m["sluice_publish_refused_total"] >= 1, "the refused publish is counted")
    check(m['sluice_errors_total{code="malformed"}'] == 0, "no malformed frames")
    check(m["sluice_topics"] >= 3, "topics m.orders, m.valid, _audit", m["sluice_topics"])
    check(0 < m["sluice_map_used_bytes"] <= m["sluice_map_size_bytes"]
          <= m["sluice_map_max_bytes"], "map used <= size <= ceiling",
          (m["sluice_map_used_bytes"], m["sluice_map_size_bytes"],
           m["sluice_map_max_bytes"]))
    for name in ("sluice_acks_total", "sluice_deliveries_total", "sluice_dead_letters_total",
                 "sluice_redeliveries_total", "sluice_nacks_total",
                 "sluice_route_matched_total"):
        check(types.get(name) == "counter", f"{name} is a counter", types.get(name))
    check(types.get("sluice_connections") == "gauge", "sluice_connections is a gauge")
    _, bsum, bcount = histogram(m, "sluice_commit_batch_messages")
    check(bsum == 10, "the commit batches add up to the 10 stored messages", bsum)
    check(bcount == m["sluice_commits_total"], "one batch observation per commit",
          (bcount, m["sluice_commits_total"]))
    _, dsum, dcount = histogram(m, "sluice_commit_duration_seconds")
    check(dcount == m["sluice_commits_total"] and 0 < dsum < 30,
          "one duration per commit, in seconds", (dcount, dsum))
    promtool(body)

    # An open session is a connection.
    sub = subprocess.Popen([SLUICE, "sub", "m.idle", "--follow"], env=b.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(sub)
    wait_for(b, lambda m: m["sluice_connections"] >= 1, "sluice_connections counts a sub")
    sub.terminate()
    sub.wait(10)

    # Routing: a table with a drop and a copy.
    table = os.path.join(TMP, "m.routes.yaml")
    with open(table, "w") as f:
        f.write('routes:\n'
                '  - name: drop-tests\n'
                '    match: { topic: "r.>", where: "$.test == true" }\n'
                '    action: drop\n'
                '  - name: copy\n'
                '    match: { topic: "r.in" }\n'
                '    to: r.out\n')
    b.sluice("routes", "apply", table)
    b.sluice("pub", "r.in", stdin='{"test":true}\n{"a":1}\n')
    body, m, _ = wait_for(b, lambda m: m["sluice_route_table_version"] == 1
                          and m["sluice_route_matched_total"] == 2,
                          "routing counters show the table's work")
    check(m["sluice_route_delivered_total"] == 1, "one derived message stored",
          m["sluice_route_delivered_total"])
    check(m["sluice_route_dropped_total"] == 1, "one message dropped",
          m["sluice_route_dropped_total"])
    check(m["sluice_route_errors_total"] == 0, "no route errors")
    # Totals are always there; per-object series only with the option.
    check(m["sluice_subscriptions_pending_messages"] == 6,
          "s1 has 6 of m.orders' 10 messages not acked",
          m["sluice_subscriptions_pending_messages"])
    # The CLI left after 4 acks; what it was sent beyond them stays in
    # flight until its ack_wait runs out.
    check(m["sluice_subscriptions_unacked_messages"] <= 6,
          "at most s1's 6 messages in flight", m["sluice_subscriptions_unacked_messages"])
    check(0 <= m["sluice_subscriptions_oldest_unacked_age_seconds"] < 30,
          "the oldest unacked attempt is younger than the ack wait")
    check(not re.search(r"^sluice_(topic|subscription|metrics_objects)_", body, re.M),
          "no per-object series without --metrics-per-object", body)
    promtool(body)

    check(b.stop() == 0, "sluiced stops cleanly on SIGTERM")


# A consumer in Python (the SDK over this build's libsluice): holds 3
# messages of a.two unacked as s.hold, lets s.dead's 2 messages of a.three
# expire twice into _dlq.s.dead, says "ready", then keeps its session alive
# until the file named by argv[1] exists.
HOLDER = r"""
import os, sys, time, sluice
with sluice.Client(home=os.environ["SLUICE_HOME"]) as c:
    dead = c.subscribe("a.three", "s.dead", start="earliest", ack_wait=1, max_deliver=2)
    end = time.time() + 6
    while time.time() < end and not os.path.exists(sys.argv[1] + ".dead"):
        dead.get(0.2)
    hold = c.subscribe("a.two", "s.hold", start="earliest")
    held = [hold.get(10) for _ in range(3)]
    assert all(held), held
    print("ready", flush=True)
    while not os.path.exists(sys.argv[1]):
        hold.get(0.2)
"""


def python_env(env):
    """ENV for a Python process that loads this build's libsluice."""
    env = dict(env, PYTHONPATH=os.path.join(SOURCE, "adapters", "python"),
               SLUICE_LIB=LIBSLUICE, PYTHONDONTWRITEBYTECODE="1")
    ldd = subprocess.run(["ldd", LIBSLUICE], capture_output=True, text=True).stdout
    asan = re.search(r"(\S*libasan\.so\S*) => (\S+)", ldd)
    if asan:          # the sanitized build: the runtime must come first
        env["LD_PRELOAD"] = asan.group(2)
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    return env


def objects(m, series, label):
    """{name: value} of one per-object series."""
    out = {}
    for key, v in m.items():
        mt = re.fullmatch(series + r'\{' + label + r'="([^"]*)"\}', key)
        if mt:
            out[mt.group(1)] = v
    return out


def test_per_object():
    b = Broker("objects", "--metrics-per-object", "--set", "broker/metrics_max_objects=5")
    b.wait_listening()
    one = [f'{{"k":{i},"p":"{"z" * (3 * i)}"}}' for i in range(5)]
    b.sluice("pub", "a.one", stdin="\n".join(one) + "\n")
    b.sluice("pub", "a.two", stdin="t1\nt2\nt3\n")
    b.sluice("pub", "a.three", stdin="d1\nd2\n")
    b.sluice("pub", "b.x", stdin="x\n")
    b.sluice("sub", "a.one", "--subscription", "s.alpha", "--from", "earliest",
             "--count", "2", "--timeout", "20")
    for name in ("s.x", "s.y1", "s.y2"):
        b.sluice("sub", "b.x", "--subscription", name, "--from", "earliest", "--count", "1",
                 "--timeout", "20")
    stop = os.path.join(TMP, "holder.stop")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, stop], env=python_env(b.env),
                              stdout=subprocess.PIPE, stderr=open(b.log + ".py", "ab"),
                              text=True, cwd=TMP)
    procs.append(holder)
    try:
        body, m, _ = wait_for(
            b, lambda m: objects(m, "sluice_subscription_dead_lettered_total",
                                 "subscription").get("s.dead") == 2,
            "s.dead's two messages are dead-lettered", timeout=20)
        open(stop + ".dead", "w").close()
        line = holder.stdout.readline()
        check(line.strip() == "ready", "the Python consumer holds 3 messages",
              line + open(b.log + ".py").read())
        time.sleep(1.2)             # the held attempts age
        body, m, types = wait_for(
            b, lambda m: objects(m, "sluice_subscription_oldest_unacked_age_seconds",
                                 "subscription").get("s.hold", 0) >= 1.0,
            "s.hold's oldest unacked attempt is a second old")

        # Topics: exact values of a.one, the first 5 by name served.
        names = sorted(l.split()[0] for l in
                       b.sluice("topics").stdout.splitlines()[1:] if l.strip())
        served = objects(m, "sluice_topic_next_offset", "topic")
        check(sorted(served) == names[:5], "the first 5 topics by name are served",
              (sorted(served), names))
        check(m['sluice_metrics_objects_dropped{kind="topic"}'] == len(names) - 5,
              "the other topics are counted as dropped", (len(names), body))
        check(m['sluice_topic_appended_messages_total{topic="a.one"}'] == 5, "a.one: 5 appended")
        check(m['sluice_topic_appended_bytes_total{topic="a.one"}'] == sum(map(len, one)),
              "a.one: its payload bytes", m['sluice_topic_appended_bytes_total{topic="a.one"}'])
        check(m['sluice_topic_stored_messages{topic="a.one"}'] == 5, "a.one: 5 stored")
        check(m['sluice_topic_stored_bytes{topic="a.one"}'] > sum(map(len, one)),
              "a.one: stored bytes include the envelope")
        check(m['sluice_topic_first_offset{topic="a.one"}'] == 0
              and m['sluice_topic_next_offset{topic="a.one"}'] == 5, "a.one: offsets 0..5")
        check(m['sluice_topic_stored_messages{topic="_dlq.s.dead"}'] == 2,
              "the dead-letter topic holds s.dead's 2 messages")
        check("b.x" not in served, "b.x is past the cap")

        # Subscriptions: s.alpha, s.dead, s.hold, s.x, s.y1 served; s.y2 dropped.
        subs = objects(m, "sluice_subscription_pending_messages", "subscription")
        check(sorted(subs) == ["s.alpha", "s.dead", "s.hold", "s.x", "s.y1"],
              "the first 5 subscriptions by name", sorted(subs))
        check(m['sluice_metrics_objects_dropped{kind="subscription"}'] == 1, "s.y2 dropped")
        def sub(series, name):
            return m[f'sluice_subscription_{series}{{subscription="{name}"}}']
        check(sub("pending_messages", "s.alpha") == 3 and sub("acked_total", "s.alpha") == 2,
              "s.alpha: 2 acked, 3 pending",
              (sub("pending_messages", "s.alpha"), sub("acked_total", "s.alpha")))
        check(sub("unacked_messages", "s.hold") == 3 and sub("pending_messages", "s.hold") == 3
              and sub("delivered_total", "s.hold") == 3 and sub("acked_total", "s.hold") == 0,
              "s.hold: 3 delivered, unacked, pending")
        check(1.0 <= sub("oldest_unacked_age_seconds", "s.hold") < 30,
              "s.hold: the oldest unacked attempt's age in seconds",
              sub("oldest_unacked_age_seconds", "s.hold"))
        check(sub("delivered_total", "s.dead") == 2 and sub("redelivered_total", "s.dead") == 2
              and sub("dead_lettered_total", "s.dead") == 2
              and sub("pending_messages", "s.dead") == 0,
              "s.dead: 2 delivered, 2 redelivered, 2 dead-lettered, none pending",
              [sub(s, "s.dead") for s in ("delivered_total", "redelivered_total",
                                          "dead_lettered_total", "pending_messages")])
        check(sub("oldest_unacked_age_seconds", "s.x") == 0, "s.x: nothing unacked, age 0")
        unacked = objects(m, "sluice_subscription_unacked_messages", "subscription")
        check(m["sluice_subscriptions_unacked_messages"] == sum(unacked.values()),
              "the total unacked is the sum over the subscriptions", (m, unacked))
        check(m["sluice_subscriptions_oldest_unacked_age_seconds"]
              == sub("oldest_unacked_age_seconds", "s.hold"), "the oldest over all is s.hold's")
        check(types.get("sluice_topic_appended_messages_total") == "counter"
              and types.get("sluice_subscription_unacked_messages") == "gauge",
              "per-object series are typed")
        doc = open(os.path.join(SOURCE, "docs", "operations.md")).read()
        missing = [n for n in re.findall(r"^# HELP (\S+)", body, re.M) if f"`{n}" not in doc]
        check(not missing, "docs/operations.md explains every series served", missing)
        check(len(re.findall(r"metrics_max_objects = 5 are left out", b.text())) == 1,
              "one log line when the cap first drops objects", b.text())
        promtool(body)
    finally:
        open(stop, "w").close()
    check(holder.wait(20) == 0, "the Python consumer ends cleanly",
          open(b.log + ".py").read())
    check(b.stop() == 0, "sluiced stops cleanly")


def test_reload():
    """SIGHUP: the reload lines name what changed; a reloadable setting
    takes effect, one that needs a restart is named in a warning."""
    help_text = subprocess.run([SLUICED, "--help"], capture_output=True, text=True).stdout
    marked = re.findall(r"^  (\S+) = .*  \(SIGHUP\)$", help_text, re.M)
    doc = open(os.path.join(SOURCE, "docs", "operations.md")).read()
    block = re.search(r"<!-- sighup-reloadable:begin -->(.*?)<!-- sighup-reloadable:end -->",
                      doc, re.S)
    check(block, "docs/operations.md lists the settings SIGHUP reloads")
    listed = re.findall(r"`([a-z_]+/[a-z_]+)`", block.group(1))
    check(len(marked) >= 8 and listed == marked,
          "the documented SIGHUP list is the config table's (sluiced --help marks)",
          (listed, marked))
    cfg = os.path.join(TMP, "reload.cfg")
    with open(cfg, "w") as f:
        f.write("limits\n    max_batch = 10000\n")
    os.chmod(cfg, 0o600)
    b = Broker("reload", "--config", cfg)
    b.wait_listening()
    b.sluice("pub", "r.quiet", stdin="once\n")
    _, m, _ = scrape(b)
    check("sluice_metrics_objects_dropped{kind=\"topic\"}" not in m, "per-object off at start")
    check(m["sluice_alerts_fired_total"] == 0, "no alert rule, no alert")
    with open(cfg, "w") as f:
        f.write("broker\n    metrics_per_object = on\nlimits\n    max_batch = 500\n"
                "alerts\n    topic_idle = \"r.*\"\n    topic_idle_for = 1s\n")
    b.p.send_signal(signal.SIGHUP)
    wait_for(b, lambda m: 'sluice_metrics_objects_dropped{kind="topic"}' in m,
             "metrics_per_object = on took effect without a restart")
    wait_for(b, lambda m: m["sluice_alerts_fired_total"] == 1,
             "the reloaded idle rule fired for r.quiet")
    check(re.search(r"info: configuration reloaded: broker/metrics_per_object, "
                    r"alerts/topic_idle, alerts/topic_idle_for$", b.text(), re.M),
          "the info line names the reloaded settings", b.text())
    check(re.search(r"warn: configuration: limits/max_batch changed, but keep their running "
                    r"values until a restart$", b.text(), re.M),
          "the warning names the setting that needs a restart", b.text())
    with open(cfg, "w") as f:
        f.write("broker\n    metrics_per_object = maybe\n")
    b.p.send_signal(signal.SIGHUP)
    end = time.time() + 10
    while "reload refused" not in b.text() and time.time() < end:
        time.sleep(0.05)
    check(re.search(r"reload refused, settings unchanged: .*metrics_per_object", b.text()),
          "a file that no longer parses is refused, with the reason", b.text())
    _, m, _ = scrape(b)
    check('sluice_metrics_objects_dropped{kind="topic"}' in m, "the old settings stay")
    check(b.stop() == 0, "sluiced stops cleanly")


def test_storage_alarm():
    """/readyz is 503 while publishes are refused for want of room."""
    b = Broker("full", "--set", "storage/map_size=1M", "--set", "storage/map_size_max=1M",
               "--set", "storage/disk_reserve=0")
    b.wait_listening()
    check(get(b.url + "/readyz")[0] == 200, "ready before the map fills")
    # 40 KiB at a time: the alarm is on once less than the reserve
    # (map_size_max / 32, at least 256 KiB) is free; a publish that alone
    # would not fit is refused before that.
    chunk = ("y" * 900 + "\n") * 45
    st, body = 200, ""
    for _ in range(60):
        b.sluice("pub", "fill", "--timeout", "3", stdin=chunk, ok=False)
        end = time.time() + 0.5
        while time.time() < end:
            st, _, body = get(b.url + "/readyz")
            if st == 503:
                break
            time.sleep(0.05)
        if st == 503:
            break
    check(st == 503 and "storage" in body, "/readyz is 503 under the storage alarm",
          (st, body))
    _, m, _ = scrape(b)
    check(m["sluice_ready"] == 0, "sluice_ready is 0 under the alarm")
    check(m["sluice_publish_refused_total"] >= 1, "the refused publishes are counted")
    check(b.stop() == 0, "sluiced stops cleanly")


def test_public_refused():
    b = Broker("public", "--insecure-plaintext", metrics="0.0.0.0:0")
    rc = b.p.wait(20)
    check(rc != 0 and "not a loopback address" in b.text()
          and "--metrics-public" in b.text(),
          "a non-loopback --metrics-listen is refused, naming --metrics-public",
          (rc, b.text()))
    b = Broker("public2", "--insecure-plaintext", "--metrics-public", metrics="0.0.0.0:0")
    b.wait_listening()
    check(get(b.url + "/healthz")[0] == 200, "with --metrics-public it serves")
    check(b.stop() == 0, "sluiced stops cleanly")
    b = Broker("bad", "--insecure-plaintext", metrics="127.0.0.1")
    rc = b.p.wait(20)
    check(rc != 0 and "expected ADDR:PORT" in b.text(), "a listen without a port is refused",
          (rc, b.text()))


def main():
    return run((test_workload, test_per_object, test_reload, test_storage_alarm,
                test_public_refused), TMP, procs)


if __name__ == "__main__":
    sys.exit(main())

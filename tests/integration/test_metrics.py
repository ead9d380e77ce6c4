#!/usr/bin/python3
"""test_metrics - sluiced's --metrics-listen (issue 20, point 1) against a
real broker: a known workload (publishes, acks, a schema rejection, a
refused key, a routing table), then /metrics scraped and its values
asserted; the format checked with `promtool check metrics` when Debian's
prometheus package is installed (skipped with a message otherwise);
/healthz, /readyz (200, then 503 under the storage alarm), 404 and 405;
a non-loopback address refused without --metrics-public.

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

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
SLUICED = os.path.join(BUILD, "broker", "sluiced")
SLUICE = os.path.join(BUILD, "adapters", "cli", "sluice")
TMP = tempfile.mkdtemp(prefix="sluice-metrics-test-")
procs = []
checks = 0


class Fail(Exception):
    pass


def check(cond, what, detail=""):
    global checks
    checks += 1
    if not cond:
        raise Fail(f"{what}{': ' + str(detail) if detail else ''}")


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
    promtool(body)

    check(b.stop() == 0, "sluiced stops cleanly on SIGTERM")


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
    failed = None
    try:
        for t in (test_workload, test_storage_alarm, test_public_refused):
            t()
            print(f"ok {t.__name__}")
        # In the sanitized build (build-asan) a report lands in the log.
        for f in sorted(os.listdir(TMP)):
            if f.endswith(".log"):
                text = open(os.path.join(TMP, f), errors="replace").read()
                check(not re.search(r"ERROR: \w+Sanitizer|runtime error:", text),
                      f"no sanitizer report in {f}", text[-3000:])
    except (Fail, subprocess.TimeoutExpired, KeyError) as e:
        failed = e
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if failed:
        print(f"FAIL: {failed!r}")
        for f in sorted(os.listdir(TMP)):
            if f.endswith(".log"):
                print(f"--- {f}\n" + open(os.path.join(TMP, f), errors="replace").read()[-3000:])
        return 1
    shutil.rmtree(TMP, ignore_errors=True)
    print(f"{checks} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

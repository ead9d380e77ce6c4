#!/usr/bin/python3
"""test_console_api - `sluice-console serve` against a real sluiced: every
endpoint of the JSON API (docs/console.md) answered with the values the
broker holds, for an admin identity and a `viewer` with only subscribe
grants: 401 for a bad token, 403 for the viewer's redrive, apply and seek;
a dead letter redriven back to its topic; routes check with a failing
fixture refused; apply and rollback moving the live version; the static
web app with its MIME types, headers, index.html fallback, and `..`
refused; --no-auth refused off loopback.

Usage: test_console_api.py BUILD_ROOT SOURCE_ROOT. Python 3 stdlib only.
Starts every process itself, in a temporary directory, on ports the kernel
picks, and stops them by PID.
"""
import http.client
import json
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

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
SRC = sys.argv[2] if len(sys.argv) > 2 else "."
SLUICED = os.path.join(BUILD, "broker", "sluiced")
SLUICE = os.path.join(BUILD, "adapters", "cli", "sluice")
CONSOLE = os.path.join(BUILD, "adapters", "console", "sluice-console")
SHOP = os.path.join(SRC, "schemas", "ecommerce")
TMP = tempfile.mkdtemp(prefix="sluice-console-test-")
DATA = os.path.join(TMP, "data")
ENV = dict(os.environ, SLUICE_HOME=DATA)
for v in ("SLUICE_BROKER", "SLUICE_CERT", "SLUICE_SERVER_KEY"):
    ENV.pop(v, None)

procs = []
checks = 0


class Fail(Exception):
    pass


def check(cond, what, detail=""):
    global checks
    checks += 1
    if not cond:
        raise Fail(f"{what}{': ' + str(detail)[:3000] if detail else ''}")


def start(args, log):
    f = open(log, "ab")
    p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=ENV)
    procs.append(p)
    return p


def stop(p, timeout=15):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise Fail(f"{p.args[0]} did not stop within {timeout} s of SIGTERM")


def sluice(*args, input=None, ok=True):
    r = subprocess.run([SLUICE, *args], env=ENV, capture_output=True, text=True,
                       input=input)
    if ok:
        check(r.returncode == 0, f"sluice {' '.join(args)}", r.stderr)
    return r


# ---------------------------------------------------------------- broker

def broker_start():
    p = start([SLUICED, "--data-dir", DATA, "--listen", "tcp://127.0.0.1:*"],
              os.path.join(TMP, "sluiced.log"))
    for _ in range(100):
        if os.path.exists(os.path.join(DATA, "endpoint")) and \
                os.path.exists(os.path.join(DATA, "server.pub")):
            break
        check(p.poll() is None, "the broker started")
        time.sleep(0.1)
    for _ in range(100):
        if sluice("stats", "--timeout", "1", ok=False).returncode == 0:
            return p
        time.sleep(0.1)
    raise Fail("the broker does not answer `sluice stats`")


# --------------------------------------------------------------- console

class Console:
    def __init__(self, *args, log="console.log"):
        self.log = os.path.join(TMP, log)
        open(self.log, "w").close()
        self.p = start([CONSOLE, "serve", "--listen", "127.0.0.1:0",
                        "--sluice", SLUICE, *args], self.log)
        self.port = None
        for _ in range(100):
            m = re.search(r" listening .* port=(\d+)", open(self.log).read())
            if m:
                self.port = int(m.group(1))
                break
            check(self.p.poll() is None, "sluice-console serve started",
                  open(self.log).read())
            time.sleep(0.05)
        check(self.port, "sluice-console serve logged its port")
        self.url = f"http://127.0.0.1:{self.port}"

    def call(self, method, path, token=None, body=None, timeout=120):
        """(status, headers lower-cased, parsed JSON or text)"""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, hdrs, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, hdrs, raw = e.code, e.headers, e.read()
        hdrs = {k.lower(): v for k, v in hdrs.items()}
        text = raw.decode("utf-8", "replace")
        try:
            return status, hdrs, json.loads(text)
        except ValueError:
            return status, hdrs, text

    def raw(self, path):
        """GET PATH exactly as written (no client-side normalising)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.putrequest("GET", path, skip_accept_encoding=True)
        c.endheaders()
        r = c.getresponse()
        body = r.read().decode("utf-8", "replace")
        c.close()
        return r.status, body


def ok(resp, what):
    st, _, body = resp
    check(st == 200, f"{what}: 200", f"got {st} {body}")
    return body


def err(resp, status, code, what):
    st, _, body = resp
    check(st == status, f"{what}: status {status}", f"got {st} {body}")
    check(isinstance(body, dict) and isinstance(body.get("error"), dict),
          f"{what}: an error body", body)
    e = body["error"]
    check(e.get("code") == code and isinstance(e.get("message"), str) and e["message"],
          f"{what}: code {code} with a message", e)
    return body


# ----------------------------------------------------------------- setup

ORDER = {"id": "A-1", "buyer": {"email": "Jane@Example.com", "name": "Jane"},
         "total": 12.5, "created_at": "2024-05-01T14:30:00+02:00",
         "lines": [{"sku": "tee", "qty": 1, "price": 12.5}]}

ROUTES_V1 = """routes:
  - name: eu-orders-a
    match: { topic: "shop-a.orders", where: 'upper($.currency ?? "eur") == "EUR"' }
    map: shop-a-to-canonical
    to: canonical.orders.eu
    continue: true
  - name: archive
    match: { topic: "*.orders" }
    to: orders.archive
"""

ROUTES_V2 = ROUTES_V1.replace("to: orders.archive", "to: orders.archive2")

# A fixture the tables above pass, and one they fail.
FIX_OK = """bindings: {shop-a.orders: shop-a.order@1}
cases:
  - name: an EU order is archived
    topic: shop-a.orders
    input: %s
    output:
      orders.archive2: %s
""" % (json.dumps(ORDER), json.dumps(ORDER))
FIX_BAD = FIX_OK.replace("orders.archive2:", "orders.elsewhere:")

MAPPING_FIX = open(os.path.join(SHOP, "shop-a-to-canonical.test.yaml")).read()
MAPPING_FIX = "\n".join(l for l in MAPPING_FIX.splitlines()
                        if not l.startswith("mapping:"))


def setup():
    keys = os.path.join(TMP, "keys")
    os.mkdir(keys)
    tokens = os.path.join(TMP, "tokens")
    tok = {}
    sluice("keygen", "viewer", "--out", keys)
    sluice("keys", "add", "viewer", os.path.join(keys, "viewer.pub"))
    sluice("grant", "viewer", "--subscribe", ">")
    for name, cert in (("admin", os.path.join(DATA, "admin.cert")),
                       ("viewer", os.path.join(keys, "viewer.cert"))):
        r = subprocess.run([CONSOLE, "token", "add", name, "--cert", cert,
                            "--tokens", tokens], capture_output=True, text=True)
        check(r.returncode == 0 and r.stdout.strip(), f"token add {name}", r.stderr)
        tok[name] = r.stdout.strip()
    check(tok["admin"] not in open(tokens).read(), "the tokens file keeps hashes only")

    # Schemas, a mapping, a table, a bound topic with messages.
    for f in ("shop-a.order@1.json", "canonical.order@1.json"):
        sluice("schema", "register", f.split("@")[0], os.path.join(SHOP, "schemas", f))
    sluice("mapping", "add", os.path.join(SHOP, "shop-a-to-canonical.yaml"))
    sluice("topic", "set", "shop-a.orders", "--schema", "shop-a.order@1")
    path = os.path.join(TMP, "routes1.yaml")
    open(path, "w").write(ROUTES_V1)
    sluice("routes", "apply", path)
    orders = [dict(ORDER, id=f"A-{i}") for i in range(1, 4)]
    sluice("pub", "shop-a.orders", "--content-type", "application/json",
           "--header", "origin=test", input="".join(json.dumps(o) + "\n" for o in orders))
    sluice("pub", "plain.text", input="hello\nworld\n")

    # Dead letters: invalid events kept in _dlq.schema.inv.events.
    sluice("topic", "set", "inv.events", "--schema", "shop-a.order", "--invalid=dlq")
    sluice("pub", "inv.events", input='{"bad":1}\n{"bad":2}\n{"bad":3}\n', ok=False)
    # A durable subscription that read two of the orders.
    sluice("sub", "shop-a.orders", "--subscription", "billing", "--from", "earliest",
           "--count", "2", "--timeout", "10")
    return tokens, tok


# ----------------------------------------------------------------- tests

def test_auth(c, tok):
    st, _, body = c.call("GET", "/api/health")
    check(st == 200 and body.get("ok") is True and body.get("version"), "health", body)
    err(c.call("GET", "/api/whoami"), 401, "unauthorized", "no token")
    err(c.call("GET", "/api/whoami", "sht_not-a-token"), 401, "unauthorized", "bad token")
    check(ok(c.call("GET", "/api/whoami", tok["admin"]), "whoami") == {"identity": "admin"},
          "whoami admin")
    check(ok(c.call("GET", "/api/whoami", tok["viewer"]), "whoami")["identity"] == "viewer",
          "whoami viewer")
    err(c.call("GET", "/api/nothing", tok["admin"]), 404, "not_found", "unknown path")
    err(c.call("DELETE", "/api/topics", tok["admin"]), 405, "invalid", "bad method")
    err(c.call("POST", "/api/routes/check", tok["admin"], {"yaml": "x" * (5 << 20)}), 413,
        "invalid", "a body over 4 MiB")
    req = urllib.request.Request(c.url + "/api/routes/check", data=b"{not json",
                                 method="POST")
    req.add_header("Authorization", f"Bearer {tok['admin']}")
    try:
        urllib.request.urlopen(req, timeout=30)
        check(False, "a body that is not JSON is refused")
    except urllib.error.HTTPError as e:
        body = json.loads(e.read())
        check(e.code == 400 and body["error"]["code"] == "invalid", "not JSON: 400", body)
    st, hdrs, _ = c.call("GET", "/api/whoami", tok["admin"])
    check(hdrs.get("content-type", "").startswith("application/json"), "JSON type", hdrs)
    check(hdrs.get("x-content-type-options") == "nosniff"
          and hdrs.get("referrer-policy") == "no-referrer"
          and "default-src 'self'" in hdrs.get("content-security-policy", ""),
          "security headers", hdrs)


def test_overview_topics(c, tok):
    a = tok["admin"]
    ov = ok(c.call("GET", "/api/overview", a), "overview")
    check(ov["identity"] == "admin" and ov["broker"].startswith("tcp://127.0.0.1:"),
          "overview identity and broker", ov)
    check(ov["rates"] == {"publishes_per_s": 0, "deliveries_per_s": 0, "acks_per_s": 0},
          "first overview: rates 0", ov["rates"])
    check(ov["counters"].get("publish.stored", 0) >= 5, "counters", ov["counters"])
    check(ov["dead_letters"] == 3, "3 dead letters", ov)
    check(isinstance(ov["alarms"], list) and ov["connections"] >= 1, "alarms, connections", ov)
    st = ov["storage"]
    check(st is not None and 0 < st["used_bytes"] <= st["map_bytes"],
          "storage: pages in use within the map", st)
    stats = json.loads(sluice("stats", "--json").stdout)
    check(ov["topics"] == len(stats["topics"]) and
          ov["subscriptions"] == len(stats["subscriptions"]), "overview counts", ov)
    sluice("pub", "plain.text", input="".join(f"x{i}\n" for i in range(50)))
    time.sleep(0.5)
    ov2 = ok(c.call("GET", "/api/overview", a), "overview 2")
    check(ov2["rates"]["publishes_per_s"] > 0, "rates after publishing", ov2["rates"])

    ts = ok(c.call("GET", "/api/topics", a), "topics")["topics"]
    by = {t["name"]: t for t in ts}
    check(by["shop-a.orders"]["next_offset"] == 3 and by["shop-a.orders"]["messages"] == 3
          and by["shop-a.orders"]["schema"].startswith("shop-a.order@1"), "shop-a.orders",
          by.get("shop-a.orders"))
    check(by["plain.text"]["next_offset"] == 52 and by["orders.archive"]["messages"] == 3,
          "plain.text and orders.archive", by)
    check(all("publishes_per_s" in t and "bytes" in t and "max_age_ms" in t for t in ts),
          "topic fields", ts[0])

    m = ok(c.call("GET", "/api/topics/shop-a.orders/messages", a), "messages")
    check(m["topic"] == "shop-a.orders" and m["next_offset"] == 3 and
          [x["offset"] for x in m["messages"]] == [0, 1, 2], "last messages", m)
    first = m["messages"][0]
    check(first["json"]["id"] == "A-1" and first["payload_encoding"] == "utf8"
          and first["content_type"] == "application/json"
          and first["headers"].get("origin") == "test" and first["lineage"] is None
          and first["ingest_us"] > 1e15, "a message", first)
    m = ok(c.call("GET", "/api/topics/plain.text/messages?from=1&limit=3", a), "paging")
    check([x["payload"] for x in m["messages"]] == ["world", "x0", "x1"]
          and all(x["json"] is None for x in m["messages"]), "paged plain text", m)
    m = ok(c.call("GET", "/api/topics/plain.text/messages", a), "default page")
    check([x["offset"] for x in m["messages"]] == list(range(32, 52)), "default: last 20",
          [x["offset"] for x in m["messages"]])
    err(c.call("GET", "/api/topics/plain.text/messages?limit=500", a), 400, "invalid",
        "limit over 200")
    err(c.call("GET", "/api/topics/no.such/messages", a), 404, "not_found", "no topic")
    d = ok(c.call("GET", "/api/topics/canonical.orders.eu/messages", a), "derived")
    lin = d["messages"][0]["lineage"]
    check(lin and lin["source_topic"] == "shop-a.orders" and lin["source_offset"] == 0
          and lin["route"] == "eu-orders-a" and lin["mapping"] == "shop-a-to-canonical"
          and lin["table_version"] == 1 and lin["mapping_version"] == 1, "lineage", lin)
    check(d["messages"][0]["json"]["order_id"] == "a-A-1", "mapped payload", d)


def test_subscriptions(c, tok):
    a, v = tok["admin"], tok["viewer"]
    subs = ok(c.call("GET", "/api/subscriptions", a), "subscriptions")["subscriptions"]
    b = [s for s in subs if s["name"] == "billing"]
    check(len(b) == 1 and b[0]["pattern"] == "shop-a.orders" and b[0]["acked"] == 2
          and b[0]["lag"] == 1 and b[0]["cursor"] == 2 and b[0]["owner"] == "admin"
          and b[0]["attached"] is False, "billing", b)
    err(c.call("POST", "/api/subscriptions/billing/seek", v, {"topic": None, "offset": 0}),
        403, "denied", "viewer seek")
    err(c.call("POST", "/api/subscriptions/billing/seek", a, {"topic": None}), 400,
        "invalid", "seek without a target")
    r = ok(c.call("POST", "/api/subscriptions/billing/seek", a,
                  {"topic": "shop-a.orders", "offset": 0}), "seek")
    check(r == {"moved": 1}, "seek moved one topic", r)
    b = [s for s in ok(c.call("GET", "/api/subscriptions", a), "subs")["subscriptions"]
         if s["name"] == "billing"][0]
    check(b["lag"] == 3 and b["cursor"] == 0, "after seek to 0", b)
    ok(c.call("POST", "/api/subscriptions/billing/seek", a, {"topic": None, "to": "latest"}),
       "seek latest")
    b = [s for s in ok(c.call("GET", "/api/subscriptions", a), "subs")["subscriptions"]
         if s["name"] == "billing"][0]
    check(b["lag"] == 0 and b["cursor"] == 3, "after seek to latest", b)
    ok(c.call("POST", "/api/subscriptions/billing/seek", a,
              {"topic": None, "time": "2000-01-01T00:00:00Z"}), "seek by time")
    b = [s for s in ok(c.call("GET", "/api/subscriptions", a), "subs")["subscriptions"]
         if s["name"] == "billing"][0]
    check(b["lag"] == 3, "after seek to a time before everything", b)
    err(c.call("POST", "/api/subscriptions/nope/seek", a, {"offset": 0}), 404,
        "not_found", "seek of no subscription")


DLQ = "_dlq.schema.inv.events"


def test_dlq(c, tok):
    a, v = tok["admin"], tok["viewer"]
    ts = ok(c.call("GET", "/api/dlq", a), "dlq")["topics"]
    d = [t for t in ts if t["name"] == DLQ]
    check(len(d) == 1 and d[0]["remaining"] == 3 and d[0]["removed"] == 0
          and d[0]["next_offset"] == 3, "the dlq topic", ts)
    m = ok(c.call("GET", f"/api/dlq/{DLQ}/messages", a), "dlq messages")
    check(m["remaining"] == 3 and m["next"] == 3 and len(m["messages"]) == 3, "3 listed", m)
    x = m["messages"][0]
    check(x["json"] == {"bad": 1} and x["original_topic"] == "inv.events"
          and x["reason"], "a dead letter with its reason", x)
    err(c.call("GET", "/api/dlq/plain.text/messages", a), 400, "invalid", "not a dlq topic")

    err(c.call("POST", f"/api/dlq/{DLQ}/redrive", v, {"offsets": [0]}), 403, "denied",
        "viewer redrive")
    err(c.call("POST", f"/api/dlq/{DLQ}/remove", v, {"offsets": [2]}), 403, "denied",
        "viewer remove")
    # The binding goes, so the redriven message is stored on its topic.
    sluice("topic", "set", "inv.events", "--no-schema")
    r = ok(c.call("POST", f"/api/dlq/{DLQ}/redrive", a, {"offsets": [0]}), "redrive")
    check(len(r["redriven"]) == 1 and r["redriven"][0]["offset"] == 0
          and r["redriven"][0]["to"] == "inv.events" and r["failed"] == [], "redriven", r)
    new = r["redriven"][0]["new_offset"]
    m = ok(c.call("GET", f"/api/topics/inv.events/messages?from={new}&limit=1", a), "back")
    check(len(m["messages"]) == 1 and m["messages"][0]["json"] == {"bad": 1}
          and m["messages"][0]["headers"].get("sluice-redriven-from") == f"{DLQ}@0",
          "the redriven message is on its topic", m)
    m = ok(c.call("GET", f"/api/dlq/{DLQ}/messages", a), "dlq after")
    check([x["offset"] for x in m["messages"]] == [1, 2] and m["remaining"] == 2,
          "gone from the dlq", m)
    # Mixed: one that is gone now, one that is there.
    r = c.call("POST", f"/api/dlq/{DLQ}/redrive", a, {"offsets": [0, 1]})
    check(r[0] == 200 and [x["offset"] for x in r[2]["redriven"]] == [1]
          and [x["offset"] for x in r[2]["failed"]] == [0]
          and r[2]["failed"][0]["error"]["code"], "one redriven, one failed", r)
    r = ok(c.call("POST", f"/api/dlq/{DLQ}/remove", a, {"offsets": [2]}), "remove")
    check(r == {"removed": 1}, "removed", r)
    m = ok(c.call("GET", f"/api/dlq/{DLQ}/messages", a), "dlq empty")
    check(m["messages"] == [] and m["remaining"] == 0, "nothing left", m)
    d = [t for t in ok(c.call("GET", "/api/dlq", a), "dlq")["topics"] if t["name"] == DLQ]
    check(d[0]["remaining"] == 0 and d[0]["removed"] == 3, "dlq counts after", d)
    check(ok(c.call("GET", "/api/overview", a), "overview")["dead_letters"] == 0,
          "overview: no dead letters left")


def test_registry(c, tok):
    a = tok["admin"]
    s = ok(c.call("GET", "/api/schemas", a), "schemas")["schemas"]
    by = {x["subject"]: x for x in s}
    check(by["shop-a.order"]["latest"] == 1 and by["shop-a.order"]["versions"] == [1]
          and "canonical.order" in by, "schema list", s)
    one = ok(c.call("GET", "/api/schemas/shop-a.order?version=1", a), "schema")
    check(one["subject"] == "shop-a.order" and one["version"] == 1
          and one["schema"]["required"][0] == "id" and one["compatibility"] == "BACKWARD",
          "one schema", one)
    err(c.call("GET", "/api/schemas/nope", a), 404, "not_found", "no schema")
    ms = ok(c.call("GET", "/api/mappings", a), "mappings")["mappings"]
    check([(x["name"], x["version"], x["from"], x["to"]) for x in ms] ==
          [("shop-a-to-canonical", 1, "shop-a.order@1", "canonical.order@1")], "mappings", ms)
    mp = ok(c.call("GET", "/api/mappings/shop-a-to-canonical", a), "mapping")
    check("amount_cents" in mp["yaml"] and mp["from"] == "shop-a.order@1", "mapping", mp)
    t = ok(c.call("POST", "/api/mappings/shop-a-to-canonical/test", a,
                  {"fixtures": MAPPING_FIX}), "mapping test")
    check(t["ok"] is True and t["passed"] >= 2 and t["failed"] == 0
          and "PASS" in t["output"], "mapping fixtures pass", t)
    bad = MAPPING_FIX.replace('order_id: "a-A-1001"', 'order_id: "wrong"', 1)
    t = ok(c.call("POST", "/api/mappings/shop-a-to-canonical/test", a,
                  {"fixtures": bad}), "mapping test 2")
    check(t["ok"] is False and t["failed"] == 1 and "FAIL" in t["output"],
          "a failing mapping fixture", t)


def live(c, a):
    return ok(c.call("GET", "/api/routes", a), "routes")["live"]


def test_routes(c, tok):
    a, v = tok["admin"], tok["viewer"]
    r = ok(c.call("GET", "/api/routes", a), "routes")
    check(r["live"] == 1 and len(r["versions"]) == 1 and r["versions"][0]["routes"] == 2
          and r["versions"][0]["identity"] == "admin", "routes list", r)
    g = ok(c.call("GET", "/api/routes/0", a), "live table")
    check(g["version"] == 1 and "eu-orders-a" in g["yaml"], "live table", g)
    st = ok(c.call("GET", "/api/routes/stats", a), "stats")
    arch = [x for x in st["routes"] if x["name"] == "archive"]
    check(st["version"] == 1 and arch and arch[0]["delivered"] == 3, "route stats", st)

    body = {"yaml": ROUTES_V2, "fixtures": FIX_BAD, "replay_topic": "", "last": 10}
    ch = ok(c.call("POST", "/api/routes/check", a, body), "check bad fixture")
    check(ch["ok"] is False and ch["errors"] == "" and ch["fixtures"]["ran"] is True
          and ch["fixtures"]["ok"] is False and "FAIL" in ch["fixtures"]["output"]
          and "archive" in ch["diff"], "check: failing fixture", ch)
    r = err(c.call("POST", "/api/routes/apply", a, dict(body, expect_version=1)), 409,
            "conflict", "apply with a failing fixture")
    check(r["check"]["fixtures"]["ok"] is False, "the refusal carries the check", r)
    check(live(c, a) == 1, "nothing applied")
    ch = ok(c.call("POST", "/api/routes/check", a,
                   {"yaml": "routes: [{name: x}]", "fixtures": "", "replay_topic": ""}),
            "check invalid")
    check(ch["ok"] is False and ch["errors"], "an invalid table", ch)
    err(c.call("POST", "/api/routes/apply", v, dict(body, fixtures="", expect_version=1)),
        403, "denied", "viewer apply")

    good = {"yaml": ROUTES_V2, "fixtures": FIX_OK, "replay_topic": "shop-a.orders",
            "last": 10}
    ch = ok(c.call("POST", "/api/routes/check", a, good), "check good")
    check(ch["ok"] is True and ch["fixtures"]["ok"] and ch["replay"]["ran"]
          and ch["replay"]["changed"] is True and "orders.archive2" in ch["replay"]["output"],
          "check: fixtures pass, replay ran", ch)
    err(c.call("POST", "/api/routes/apply", a, dict(good, expect_version=7)), 409,
        "conflict", "apply with a stale expect_version")
    ap = ok(c.call("POST", "/api/routes/apply", a, dict(good, expect_version=1)), "apply")
    check(ap["version"] == 2 and "archive" in ap["diff"], "applied v2", ap)
    check(live(c, a) == 2, "live is 2")
    d = ok(c.call("GET", "/api/routes/diff?a=1&b=2", a), "diff")
    check("orders.archive2" in d["diff"], "diff 1 -> 2", d)
    err(c.call("GET", "/api/routes/diff?a=1&b=99", a), 404, "not_found", "diff: no v99")
    err(c.call("GET", "/api/routes/diff?a=1&b=x", a), 400, "invalid", "diff: not a number")
    err(c.call("POST", "/api/routes/rollback", v, {"version": 1, "expect_version": 2}),
        403, "denied", "viewer rollback")
    rb = ok(c.call("POST", "/api/routes/rollback", a, {"version": 1, "expect_version": 2}),
            "rollback")
    check(rb["version"] == 3 and live(c, a) == 3, "rolled back to a v3", rb)
    g = ok(c.call("GET", "/api/routes/3", a), "v3")
    check("orders.archive2" not in g["yaml"] and "orders.archive" in g["yaml"],
          "v3 is v1's table", g)
    vs = ok(c.call("GET", "/api/routes", a), "routes")["versions"]
    check(vs[-1]["rollback_of"] == 1, "v3 is a rollback of 1", vs)


def test_audit(c, tok):
    a, v = tok["admin"], tok["viewer"]
    recs = ok(c.call("GET", "/api/audit?limit=500", a), "audit")["records"]
    offs = [x["offset"] for x in recs]
    check(offs == sorted(offs, reverse=True), "newest first", offs[:10])
    actions = [x["action"] for x in recs]
    check(any("routes" in x and "rollback" in x for x in actions)
          and any("routes" in x and "apply" in x for x in actions), "routes audited",
          actions)
    top = recs[0]
    check(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", top["at"]) and top["identity"]
          and set(top) == {"offset", "at", "identity", "action", "target", "outcome",
                           "detail"}, "a record", top)
    two = ok(c.call("GET", "/api/audit?limit=2", a), "audit 2")["records"]
    check([x["offset"] for x in two] == offs[:2], "limit", two)
    # '>' does not cover the broker's '_' topics: reading _audit takes a
    # grant that names it, which the viewer lacks.
    e = err(c.call("GET", "/api/audit", v), 403, "denied", "viewer audit")
    check("_audit" in e["error"]["message"], "the refusal names _audit", e)


def test_static(tok):
    root = os.path.join(TMP, "web")
    os.makedirs(os.path.join(root, "assets"))
    open(os.path.join(root, "index.html"), "w").write("<!doctype html><p>console</p>")
    open(os.path.join(root, "assets", "app-1.js"), "w").write("console.log(1)")
    open(os.path.join(root, "assets", "app-1.css"), "w").write("p{}")
    open(os.path.join(TMP, "secret.txt"), "w").write("secret")
    c = Console("--tokens", os.path.join(TMP, "tokens"), "--web-root", root,
                log="console-web.log")
    st, hdrs, body = c.call("GET", "/")
    check(st == 200 and "console" in body and hdrs["content-type"].startswith("text/html")
          and hdrs.get("x-content-type-options") == "nosniff", "index.html", (st, hdrs))
    st, hdrs, body = c.call("GET", "/assets/app-1.js")
    check(st == 200 and body == "console.log(1)"
          and hdrs["content-type"].startswith("text/javascript")
          and "immutable" in hdrs.get("cache-control", ""), "a script", hdrs)
    st, hdrs, _ = c.call("GET", "/assets/app-1.css")
    check(st == 200 and hdrs["content-type"].startswith("text/css"), "a style sheet", hdrs)
    st, _, body = c.call("GET", "/topics/anything")
    check(st == 200 and "console" in body, "unknown path: index.html", st)
    for path in ("/../secret.txt", "/assets/../../secret.txt", "/%2e%2e/secret.txt",
                 "/assets/%2e%2e/%2e%2e/secret.txt"):
        st, body = c.raw(path)
        check(st == 400 and "secret" not in body, f"{path} refused", (st, body))
    check(ok(c.call("GET", "/api/whoami", tok["admin"]), "api beside the app")
          ["identity"] == "admin", "the API with a web root")
    stop(c.p)
    # No web root: the API works, / says how to build the app.
    c = Console("--tokens", os.path.join(TMP, "tokens"), "--web-root",
                os.path.join(TMP, "nothing"), log="console-noweb.log")
    st, _, body = c.call("GET", "/")
    check(st == 503 and "web app" in body and "npm" in body, "no web root: 503", body)
    check(ok(c.call("GET", "/api/whoami", tok["viewer"]), "api")["identity"] == "viewer",
          "the API without a web root")
    stop(c.p)


def test_cli():
    r = subprocess.run([CONSOLE, "--version"], capture_output=True, text=True)
    check(r.returncode == 0 and r.stdout.startswith("sluice-console "), "--version", r)
    for args in (["--help"], ["serve", "--help"], ["token", "add", "--help"]):
        r = subprocess.run([CONSOLE, *args], capture_output=True, text=True)
        check(r.returncode == 0 and "Usage: sluice-console" in r.stdout, f"{args}", r)
    r = subprocess.run([CONSOLE, "serve", "--listen", "0.0.0.0:0", "--no-auth"],
                       capture_output=True, text=True, env=ENV)
    check(r.returncode == 64 and "loopback" in r.stderr, "--no-auth off loopback", r)
    r = subprocess.run([CONSOLE, "serve", "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, env=ENV)
    check(r.returncode == 64 and "--tokens" in r.stderr, "neither --tokens nor --no-auth", r)


def test_no_auth(tok):
    c = Console("--no-auth", "--home", DATA, log="console-noauth.log")
    check(ok(c.call("GET", "/api/whoami"), "no-auth whoami")["identity"] == "admin",
          "--no-auth acts as the home's admin")
    stop(c.p)


def main():
    try:
        test_cli()
        broker = broker_start()
        tokens, tok = setup()
        c = Console("--tokens", tokens, "--home", DATA)
        test_auth(c, tok)
        test_overview_topics(c, tok)
        test_subscriptions(c, tok)
        test_dlq(c, tok)
        test_registry(c, tok)
        test_routes(c, tok)
        test_audit(c, tok)
        test_static(tok)
        test_no_auth(tok)
        check(stop(c.p) == 0, "SIGTERM: exit 0")
        stop(broker)
        for name in sorted(os.listdir(TMP)):
            if name.endswith(".log"):
                text = open(os.path.join(TMP, name), errors="replace").read()
                check(not re.search(r"ERROR: (Address|Leak)Sanitizer|runtime error:", text),
                      f"no sanitizer report in {name}", text[-3000:])
    except Fail as e:
        print(f"FAIL: {e}", file=sys.stderr)
        for name in ("console.log", "console-web.log", "sluiced.log"):
            path = os.path.join(TMP, name)
            if os.path.exists(path):
                print(f"--- {name} (last lines)", file=sys.stderr)
                print("".join(open(path, errors="replace").readlines()[-15:]),
                      file=sys.stderr)
        return 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if "KEEP_TMP" not in os.environ:
            shutil.rmtree(TMP, ignore_errors=True)
    print(f"sluice-console API: {checks} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

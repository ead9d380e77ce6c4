#!/usr/bin/python3
"""test_http_serve - `sluice-http serve` against a real sluiced, driven with
curl: every endpoint and every error status (each asserted with its JSON
code), idempotent retries, a schema-bound topic (422 with the pointer),
429 under a tiny --max-inflight, 503 while the broker is down and 200 once
it is back, kill -9 of the adapter and of the broker in the middle of a
batch (the retry with the same keys stores every message exactly once),
pull / ack / nack / redelivery after ack_wait, TLS, and a clean SIGTERM.

Usage: test_http_serve.py BUILD_ROOT. Starts every process itself, in a
temporary directory, on ports the kernel picks, and stops them by PID.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
SLUICED = os.path.join(BUILD, "broker", "sluiced")
SLUICE = os.path.join(BUILD, "adapters", "cli", "sluice")
HTTP = os.path.join(BUILD, "adapters", "http", "sluice-http")
TMP = tempfile.mkdtemp(prefix="sluice-http-test-")
DATA = os.path.join(TMP, "data")
ENV = dict(os.environ, SLUICE_HOME=DATA)
for v in ("SLUICE_BROKER", "SLUICE_CERT", "SLUICE_SERVER_KEY"):
    ENV.pop(v, None)

procs = []          # every process started, stopped at the end by PID
checks = 0


class Fail(Exception):
    pass


def check(cond, what, detail=""):
    global checks
    checks += 1
    if not cond:
        raise Fail(f"{what}{': ' + str(detail) if detail else ''}")


def start(args, log, env=ENV):
    f = open(log, "ab")
    p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=env)
    procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=15):
    if p.poll() is None:
        p.send_signal(sig)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise Fail(f"{p.args[0]} did not stop within {timeout} s of signal {sig}")


# ---------------------------------------------------------------- broker

broker = None
endpoint = None


def broker_start():
    global broker, endpoint
    listen = endpoint or "tcp://127.0.0.1:*"
    broker = start([SLUICED, "--data-dir", DATA, "--listen", listen],
                   os.path.join(TMP, "sluiced.log"))
    for _ in range(100):
        ep = os.path.join(DATA, "endpoint")
        if os.path.exists(ep) and os.path.exists(os.path.join(DATA, "server.pub")):
            with open(ep) as f:
                line = f.readline().strip()
            if line and (endpoint is None or line == endpoint):
                endpoint = line
                break
        check(broker.poll() is None, "the broker started")
        time.sleep(0.1)
    # Wait until it answers.
    for _ in range(100):
        if subprocess.run([SLUICE, "stats", "--timeout", "1"], env=ENV,
                          capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise Fail("the broker does not answer `sluice stats`")


def sluice(*args):
    r = subprocess.run([SLUICE, *args], env=ENV, capture_output=True, text=True)
    check(r.returncode == 0, f"sluice {' '.join(args)}", r.stderr)
    return r.stdout


def topic_messages(name):
    stats = json.loads(sluice("stats", "--json"))
    for t in stats["topics"]:
        if t["name"] == name:
            return t["messages"]
    return 0


# --------------------------------------------------------------- adapter

class Adapter:
    def __init__(self, *args, log="http.log"):
        self.log = os.path.join(TMP, log)
        open(self.log, "w").close()
        self.p = start([HTTP, "serve", "--listen", "127.0.0.1:0", *args], self.log)
        self.port = None
        for _ in range(100):
            m = re.search(r" listening .* port=(\d+)", open(self.log).read())
            if m:
                self.port = int(m.group(1))
                break
            check(self.p.poll() is None, "sluice-http serve started",
                  open(self.log).read())
            time.sleep(0.05)
        check(self.port, "sluice-http serve logged its port")
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout=15):
        end = time.time() + timeout
        while time.time() < end:
            if curl("GET", self.url + "/readyz")[0] == 200:
                return
            time.sleep(0.1)
        raise Fail("/readyz did not become 200")


def curl(method, url, token=None, headers=(), data=None, timeout=30, extra=()):
    """Returns (status, {header: value} lower-cased, parsed JSON or text)."""
    hdr_file = os.path.join(TMP, "curl.headers")
    args = ["curl", "-s", "-S", "-X", method, "-D", hdr_file, "-o", "-",
            "-w", "\n%{http_code}", "--max-time", str(timeout), *extra]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    for h in headers:
        args += ["-H", h]
    inp = None
    if data is not None:
        args += ["--data-binary", "@-"]
        inp = data.encode() if isinstance(data, str) else data
    args.append(url)
    r = subprocess.run(args, input=inp, capture_output=True)
    out = r.stdout.decode(errors="replace")
    body, _, code = out.rpartition("\n")
    status = int(code) if code.isdigit() else 0
    hdrs = {}
    if os.path.exists(hdr_file):
        for line in open(hdr_file, errors="replace"):
            k, sep, v = line.partition(":")
            if sep:
                hdrs[k.strip().lower()] = v.strip()
        os.unlink(hdr_file)
    try:
        body = json.loads(body)
    except ValueError:
        pass
    return status, hdrs, body


def expect_error(resp, status, code, what):
    st, hdrs, body = resp
    check(st == status, f"{what}: status {status}", f"got {st} {body}")
    check(isinstance(body, dict) and "error" in body, f"{what}: a JSON error body", body)
    err = body["error"]
    check(err.get("code") == code and err.get("status") == status
          and isinstance(err.get("reason"), str) and err["reason"],
          f"{what}: code {code}", err)
    if status in (429, 503):
        check(hdrs.get("retry-after", "").isdigit(), f"{what}: Retry-After", hdrs)
    return err


def post(a, topic, data, token=None, ctype="application/json", headers=(), **kw):
    return curl("POST", f"{a.url}/v1/topics/{topic}", token,
                [f"Content-Type: {ctype}", *headers], data, **kw)


def pull(a, sub, token=None, **q):
    qs = "&".join(f"{k}={v}" for k, v in q.items())
    return curl("GET", f"{a.url}/v1/subscriptions/{sub}/messages?{qs}", token,
                timeout=40)


def settle(a, sub, kind, tokens, token=None, **more):
    return curl("POST", f"{a.url}/v1/subscriptions/{sub}/{kind}", token,
                ["Content-Type: application/json"],
                json.dumps({"tokens": tokens, **more}))


def ndjson(lines):
    return "".join(json.dumps(x) + "\n" for x in lines)


# ----------------------------------------------------------------- tests

def setup_identities():
    keys = os.path.join(TMP, "keys")
    os.mkdir(keys)
    tokens = os.path.join(TMP, "tokens")
    out = {}
    for name in ("writer", "reader"):
        sluice("keygen", name, "--out", keys)
        sluice("keys", "add", name, os.path.join(keys, name + ".pub"))
        r = subprocess.run([HTTP, "token", "add", name, "--cert",
                            os.path.join(keys, name + ".cert"), "--tokens", tokens],
                           capture_output=True, text=True)
        check(r.returncode == 0, "token add", r.stderr)
        out[name] = r.stdout.strip()
        check(out[name].startswith("sht_"), "token add prints the token", r.stdout)
    sluice("grant", "writer", "--publish", "orders.>", "--subscribe", "orders.>")
    sluice("grant", "reader", "--subscribe", "orders.>")
    stored = open(tokens).read()
    check(out["writer"] not in stored, "the tokens file keeps no token in clear")
    check(oct(os.stat(tokens).st_mode & 0o777) == "0o600", "the tokens file is 0600")
    return tokens, out


def test_basics(a, tok):
    st, _, body = curl("GET", a.url + "/healthz")
    check(st == 200 and body == {"status": "ok"}, "healthz", body)
    st, _, body = curl("GET", a.url + "/readyz")
    check(st == 200 and body == {"status": "ready"}, "readyz", body)
    expect_error(post(a, "orders.a", '{"a":1}'), 401, "unauthorized", "no token")
    st, hdrs, _ = post(a, "orders.a", '{"a":1}')
    check("bearer" in hdrs.get("www-authenticate", "").lower(), "401 WWW-Authenticate", hdrs)
    expect_error(post(a, "orders.a", '{"a":1}', "sht_nope"), 401, "unauthorized",
                 "unknown token")
    expect_error(post(a, "orders.a", '{"a":1}', tok["reader"]), 403, "forbidden",
                 "publish without a grant")
    expect_error(curl("GET", a.url + "/v1/nothing", tok["writer"]), 404,
                 "not_found", "unknown route")
    expect_error(pull(a, "nosuch", tok["writer"]), 404, "unknown_subscription",
                 "unknown subscription")
    err = expect_error(curl("GET", a.url + "/v1/topics/orders.a", tok["writer"]),
                       405, "method_not_allowed", "GET on a topic")
    st, hdrs, _ = curl("GET", a.url + "/v1/topics/orders.a", tok["writer"])
    check(hdrs.get("allow") == "POST", "405 Allow: POST", hdrs)
    expect_error(post(a, "orders.a", "x" * 70000, tok["writer"], "text/plain"),
                 413, "too_large", "a body over --max-body")
    expect_error(curl("POST", a.url + "/v1/topics/orders.a", tok["writer"],
                      extra=["-F", "a=b"]), 415, "unsupported_media_type",
                 "multipart")
    expect_error(curl("POST", a.url + "/v1/subscriptions/x/ack", tok["writer"],
                      ["Content-Type: text/plain"], "{}"), 415,
                 "unsupported_media_type", "ack as text/plain")
    expect_error(post(a, "orders.a", '{"a":', tok["writer"]), 400, "bad_json",
                 "bad JSON")
    expect_error(post(a, "orders.a", '{}', tok["writer"],
                      headers=["Sluice-Header-msg-id: x"]), 400, "bad_header",
                 "msg-id as a header")
    err = expect_error(post(a, "orders.a", '{"a":1}\n{"a":2\n{"a":3}\n',
                            tok["writer"], "application/x-ndjson"), 400,
                       "bad_ndjson", "bad NDJSON")
    check(err.get("line") == 2 and "line 2" in err["reason"],
          "bad NDJSON names line 2", err)
    check(topic_messages("orders.a") == 0, "nothing of a refused batch is stored")


def test_publish_idempotent(a, tok):
    w = tok["writer"]
    st, _, b1 = post(a, "orders.idem", '{"n":1}', w, headers=["Idempotency-Key: k-1"])
    check(st == 200 and len(b1["offsets"]) == 1, "single publish 200", b1)
    st, _, b2 = post(a, "orders.idem", '{"n":1}', w, headers=["Idempotency-Key: k-1"])
    check(st == 200 and b2 == b1, "retry answers the original offset", (b1, b2))
    st, _, b3 = post(a, "orders.idem", "plain text", w, "text/plain",
                     headers=["Sluice-Header-Source: test"])
    check(st == 200 and b3["offsets"][0] == b1["offsets"][0] + 1,
          "any content type is one message", b3)
    lines = [{"i": i} for i in range(50)]
    st, _, b4 = post(a, "orders.idem", ndjson(lines), w, "application/x-ndjson",
                     ["Idempotency-Key: batch-1"])
    check(st == 200 and len(b4["offsets"]) == 50
          and len(set(b4["offsets"])) == 50, "NDJSON batch 200 with 50 offsets", b4)
    st, _, b5 = post(a, "orders.idem", ndjson(lines), w, "application/x-ndjson",
                     ["Idempotency-Key: batch-1"])
    check(st == 200 and b5 == b4, "a retried batch answers the original offsets")
    # Keys from a field of each line.
    keyed = [{"id": f"o-{i}", "v": i} for i in range(5)]
    st, _, b6 = curl("POST", a.url + "/v1/topics/orders.idem?key_field=id", w,
                     ["Content-Type: application/x-ndjson"], ndjson(keyed))
    st2, _, b7 = curl("POST", a.url + "/v1/topics/orders.idem?key_field=id", w,
                      ["Content-Type: application/x-ndjson"], ndjson(keyed[2:]))
    check(st == 200 and st2 == 200 and b7["offsets"] == b6["offsets"][2:],
          "key_field: the same keys give the same offsets", (b6, b7))
    err = expect_error(curl("POST", a.url + "/v1/topics/orders.idem?key_field=id", w,
                            ["Content-Type: application/x-ndjson"],
                            ndjson([{"id": "x"}, {"noid": 1}])), 400, "bad_ndjson",
                       "a line without its key field")
    check(err.get("line") == 2, "the line without a key is named", err)
    check(topic_messages("orders.idem") == 1 + 1 + 50 + 5,
          "every message stored exactly once")


def test_schema(a, tok):
    schema = os.path.join(TMP, "order.json")
    with open(schema, "w") as f:
        json.dump({"type": "object", "required": ["id"],
                   "properties": {"id": {"type": "string"}}}, f)
    sluice("schema", "register", "order", schema)
    sluice("topic", "set", "orders.valid", "--schema", "order")
    w = tok["writer"]
    err = expect_error(post(a, "orders.valid", '{"id":5}', w), 422,
                       "schema_invalid", "a schema failure")
    check(any(e["pointer"] == "/id" and e["rule"] for e in err.get("errors", [])),
          "422 names the pointer /id and the rule", err)
    st, _, body = post(a, "orders.valid", ndjson([{"id": "a"}, {"id": 7}]), w,
                       "application/x-ndjson", ["Idempotency-Key: sb-1"])
    err = body["error"]
    check(st == 422 and err["code"] == "schema_invalid" and err["stored"] == 1,
          "a batch with one invalid line: 422, one stored", body)
    l1, l2 = err["lines"]
    check(l1["line"] == 1 and "offset" in l1, "line 1 stored with its offset", l1)
    check(l2["line"] == 2 and l2["status"] == 422 and l2["code"] == "schema_invalid"
          and l2["errors"][0]["pointer"] == "/id", "line 2 refused with its pointer", l2)
    st, _, body = post(a, "orders.valid", ndjson([{"id": "a"}, {"id": 7}]), w,
                       "application/x-ndjson", ["Idempotency-Key: sb-1"])
    check(st == 422 and body["error"]["lines"][0]["offset"] == l1["offset"],
          "the retry stores line 1 no second time", body)
    check(topic_messages("orders.valid") == 1, "only the valid line is stored")


def test_pull(a, tok):
    w = tok["writer"]
    st, _, pub = post(a, "orders.pull", ndjson([{"m": i} for i in range(3)]), w,
                      "application/x-ndjson", ["Sluice-Header-Source: test-suite"])
    check(st == 200, "publish for pull", pub)
    # A pull answers as soon as it has any message: gather the three.
    msgs, st = [], 200
    for _ in range(5):
        st, _, body = pull(a, "p1", w, topic="orders.pull", **{"from": "earliest"},
                           ack_wait=2, max=10, wait=5)
        msgs += body.get("messages", []) if st == 200 else []
        if st != 200 or len(msgs) >= 3:
            break
    check(st == 200 and [m["payload"] for m in msgs] == [{"m": 0}, {"m": 1}, {"m": 2}],
          "pull creates the subscription and returns the messages", body)
    check(all(m["topic"] == "orders.pull" and m["attempt"] == 1 and m["ack_token"]
              for m in msgs), "messages carry topic, attempt, token", msgs)
    check([m["offset"] for m in msgs] == pub["offsets"], "offsets as published")
    check(all(m["headers"].get("source") == "test-suite" for m in msgs),
          "Sluice-Header-Source arrives as header source", msgs)
    expect_error(pull(a, "p1", w, topic="orders.other"), 409,
                 "subscription_conflict", "another pattern for p1")
    st, _, body = settle(a, "p1", "ack", [msgs[0]["ack_token"], msgs[1]["ack_token"]], w)
    check(st == 200 and body == {"acked": 2}, "ack two", body)
    err = expect_error(settle(a, "p1", "ack", [msgs[0]["ack_token"]], w), 409,
                       "unknown_token", "ack twice")
    check(err["unknown"] == [msgs[0]["ack_token"]], "the unknown token is named", err)
    expect_error(settle(a, "p1", "ack", ["nope"], tok["writer"], delay_ms=5), 400,
                 "bad_json", "an ack with delay_ms")
    st, _, body = settle(a, "p1", "nack", [msgs[2]["ack_token"]], w, delay_ms=1500)
    check(st == 200 and body == {"nacked": 1}, "nack with a delay", body)
    t0 = time.time()
    st, _, body = pull(a, "p1", w, wait=0)
    check(st == 200 and body["messages"] == [], "nacked message not back at once", body)
    st, _, body = pull(a, "p1", w, wait=10)
    took = time.time() - t0
    check(st == 200 and len(body["messages"]) == 1 and body["messages"][0]["payload"]
          == {"m": 2} and body["messages"][0]["attempt"] == 2 and took >= 1.2,
          "the nacked message comes back after its delay", (took, body))
    # Not acked: back after ack_wait (2 s).
    t0 = time.time()
    st, _, body = pull(a, "p1", w, wait=10)
    took = time.time() - t0
    check(st == 200 and len(body["messages"]) == 1 and body["messages"][0]["payload"]
          == {"m": 2} and took >= 1.5, "an unacked message comes back after ack_wait",
          (took, body))
    st, _, _ = settle(a, "p1", "ack", [body["messages"][0]["ack_token"]], w)
    check(st == 200, "ack the redelivery")
    st, _, body = pull(a, "p1", w, wait=3)
    check(st == 200 and body["messages"] == [], "acked messages do not come back", body)
    # Non-JSON payloads come as base64.
    post(a, "orders.pull", "bytes\x01", w, "application/octet-stream")
    st, _, body = pull(a, "p1", w, wait=5)
    check(st == 200 and body["messages"][0].get("payload_base64") == "Ynl0ZXMB",
          "a binary payload is base64", body)
    settle(a, "p1", "ack", [body["messages"][0]["ack_token"]], w)


def test_inflight_and_noauth():
    r = subprocess.run([HTTP, "serve", "--no-auth", "--listen", "0.0.0.0:0"],
                       env=ENV, capture_output=True, text=True, timeout=10)
    check(r.returncode == 64 and "loopback" in r.stderr,
          "--no-auth refused on a non-loopback address", r.stderr)
    b = Adapter("--no-auth", "--max-inflight", "1", log="http-small.log")
    b.wait_ready()
    st, _, _ = pull(b, "busy", topic="orders.busy", wait=0)
    check(st == 200, "no-auth pull")
    bg = subprocess.Popen(["curl", "-s", "-o", "/dev/null",
                           f"{b.url}/v1/subscriptions/busy/messages?wait=3"])
    time.sleep(0.5)
    expect_error(post(b, "orders.busy", "{}"), 429, "too_many_requests",
                 "beyond --max-inflight")
    bg.wait(10)
    st, _, _ = post(b, "orders.busy", "{}")
    check(st == 200, "200 again once the in-flight request is done")
    check(stop(b.p) == 0, "SIGTERM: exit 0")


def test_broker_down(a, tok):
    w = tok["writer"]
    stop(broker, signal.SIGKILL)
    # Each identity's client notices on its own (heartbeats): wait for
    # the writer's, which the publish below goes through.
    end = time.time() + 10
    while time.time() < end and "broker_lost identity=writer" not in open(a.log).read():
        time.sleep(0.1)
    expect_error(curl("GET", a.url + "/readyz"), 503, "broker_unavailable",
                 "readyz with the broker down")
    expect_error(post(a, "orders.down", "{}", w), 503, "broker_unavailable",
                 "publish with the broker down")
    broker_start()
    a.wait_ready()
    st, _, body = post(a, "orders.down", "{}", w)
    check(st == 200, "200 again once the broker is back", body)


def batch_until_200(a, w, topic, lines, key, tries=40):
    last = None
    for _ in range(tries):
        last = post(a, topic, lines, w, "application/x-ndjson",
                    [f"Idempotency-Key: {key}"])
        if last[0] == 200:
            return last[2]
        time.sleep(0.5)
    raise Fail(f"the retried batch never got 200: {last}")


def send_batch_bg(a, w, topic, lines, key, out):
    bg = subprocess.Popen(["curl", "-s", "-o", os.path.join(TMP, out), "-w",
                           "%{http_code}", "-X", "POST", "-H",
                           "Content-Type: application/x-ndjson", "-H",
                           f"Authorization: Bearer {w}", "-H",
                           f"Idempotency-Key: {key}", "--data-binary", "@-",
                           f"{a.url}/v1/topics/{topic}"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    bg.stdin.write(lines.encode())
    bg.stdin.close()
    return bg


def kill_when_storing(victim, topic, n):
    """kill -9 VICTIM as soon as part of the batch is stored; returns how
    many messages the topic held just before (0 < it < n: mid-batch)."""
    end = time.time() + 30
    while time.time() < end:
        held = topic_messages(topic)
        if held > 0:
            stop(victim, signal.SIGKILL)
            return held
        time.sleep(0.005)
    raise Fail(f"nothing of the batch on {topic} was stored in 30 s")


def test_kill_adapter(a, tokens, tok, n=50000):
    w = tok["writer"]
    lines = ndjson([{"k": i, "pad": "x" * 64} for i in range(n)])
    bg = send_batch_bg(a, w, "orders.killa", lines, "kill-a", "killed.out")
    held = kill_when_storing(a.p, "orders.killa", n)
    first = bg.stdout.read().decode()
    bg.wait(30)
    print(f"kill -9 adapter: {held} of {n} stored when killed, curl got {first!r}")
    a2 = Adapter("--tokens", tokens, "--max-batch", "100000", log="http2.log")
    a2.wait_ready()
    body = batch_until_200(a2, w, "orders.killa", lines, "kill-a")
    check(len(set(body["offsets"])) == n, "the retry answers n distinct offsets")
    check(topic_messages("orders.killa") == n, "kill -9 of the adapter: every "
          "message stored exactly once", topic_messages("orders.killa"))
    return a2


def test_kill_broker(a, tok, n=50000):
    w = tok["writer"]
    lines = ndjson([{"k": i, "pad": "y" * 64} for i in range(n)])
    bg = send_batch_bg(a, w, "orders.killb", lines, "kill-b", "killb.out")
    held = kill_when_storing(broker, "orders.killb", n)
    time.sleep(0.5)
    broker_start()
    first = bg.stdout.read().decode()
    bg.wait(60)
    print(f"kill -9 broker: {held} of {n} stored when killed, curl got {first[-3:]!r}")
    body = batch_until_200(a, w, "orders.killb", lines, "kill-b")
    check(len(set(body["offsets"])) == n, "the retry answers n distinct offsets")
    check(topic_messages("orders.killb") == n, "kill -9 of the broker: every "
          "message stored exactly once", topic_messages("orders.killb"))


def test_tls():
    if not shutil.which("openssl"):
        print("SKIP tls: no openssl")
        return
    cert, key = os.path.join(TMP, "tls.crt"), os.path.join(TMP, "tls.key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "1", "-subj",
                        "/CN=localhost"], capture_output=True)
    check(r.returncode == 0, "openssl makes a certificate", r.stderr)
    t = Adapter("--no-auth", "--tls-cert", cert, "--tls-key", key, log="http-tls.log")
    st, _, body = curl("GET", f"https://127.0.0.1:{t.port}/healthz", extra=["-k"])
    check(st == 200 and body == {"status": "ok"}, "healthz over TLS", body)
    st, _, body = curl("POST", f"https://127.0.0.1:{t.port}/v1/topics/orders.tls",
                       headers=["Content-Type: application/json"], data="{}",
                       extra=["-k"])
    check(st == 200, "publish over TLS", body)
    st, _, _ = curl("GET", f"http://127.0.0.1:{t.port}/healthz", timeout=5)
    check(st != 200, "plain HTTP is not answered on a TLS port")
    check(stop(t.p) == 0, "TLS adapter: SIGTERM exit 0")


def test_sigterm(a, tok):
    bg = subprocess.Popen(["curl", "-s", "-w", "\n%{http_code}", "-H",
                           f"Authorization: Bearer {tok['writer']}",
                           f"{a.url}/v1/subscriptions/p1/messages?wait=20"],
                          stdout=subprocess.PIPE)
    time.sleep(0.5)
    t0 = time.time()
    rc = stop(a.p, signal.SIGTERM)
    out = bg.communicate(timeout=10)[0].decode()
    check(rc == 0 and time.time() - t0 < 12, "SIGTERM: exit 0 promptly", rc)
    check(out.endswith("503") and "shutting_down" in out,
          "a long poll in flight is answered 503 shutting_down", out)
    log = open(a.log).read()
    check(" stopping " in log and " stopped " in log, "stop is logged", log[-500:])


def main():
    global broker
    try:
        broker_start()
        tokens, tok = setup_identities()
        r = subprocess.run([HTTP, "serve", "--help"], capture_output=True, text=True)
        check(r.returncode == 0 and "--max-inflight" in r.stdout, "serve --help")
        a = Adapter("--tokens", tokens, "--max-body", "64KiB")
        a.wait_ready()
        test_basics(a, tok)
        test_publish_idempotent(a, tok)
        test_schema(a, tok)
        test_pull(a, tok)
        test_inflight_and_noauth()
        test_broker_down(a, tok)
        stop(a.p)
        a = Adapter("--tokens", tokens, "--max-batch", "100000", log="http-big.log")
        a.wait_ready()
        a = test_kill_adapter(a, tokens, tok)
        stop(a.p)
        a = Adapter("--tokens", tokens, "--publish-timeout", "3", "--max-batch",
                "100000", log="http-kb.log")
        a.wait_ready()
        test_kill_broker(a, tok)
        test_tls()
        test_sigterm(a, tok)
        stop(broker)
        # Under ASan/UBSan (CI's build-asan) a report in any process's log
        # fails the test, as the integration harness does for sluiced.
        for name in sorted(os.listdir(TMP)):
            if name.endswith(".log"):
                text = open(os.path.join(TMP, name), errors="replace").read()
                check(not re.search(r"ERROR: (Address|Leak)Sanitizer|runtime error:", text),
                      f"no sanitizer report in {name}", text[-3000:])
    except Fail as e:
        print(f"FAIL: {e}", file=sys.stderr)
        for name in ("http.log", "http2.log", "http-big.log", "http-kb.log", "sluiced.log"):
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
    print(f"sluice-http serve: {checks} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

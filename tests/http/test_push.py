#!/usr/bin/python3
"""test_push - `sluice-http push` against real peers: a real sluiced (keys
on, in a temporary data directory, on a free loopback port), messages
published with the `sluice` CLI, and a webhook receiver (http.server on
127.0.0.1, a free port) that verifies every Standard Webhooks signature on
its side and answers 401 to a bad one. Each case uses its own topic and
subscription and its own `push` process, stopped by its PID.

usage: test_push.py SOURCE_ROOT SLUICED SLUICE SLUICE_HTTP [CASE...]
(CASE: a case's name without "case_"; none = all)
"""
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SOURCE_ROOT, SLUICED, SLUICE, SLUICE_HTTP = sys.argv[1:5]
ONLY = sys.argv[5:]
TMP = tempfile.mkdtemp(prefix="sluice-push-")
DATA = os.path.join(TMP, "data")
NEW_SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
OLD_SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()


# ------------------------------------------------------------ the receiver

def verify(secrets, headers, body, tolerance_s=300):
    """The receiver's check, as docs/adapters.md shows it: some v1
    signature in webhook-signature is the HMAC-SHA256, under one of
    SECRETS, of "id.timestamp.body", and the timestamp is recent."""
    msg_id = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    sigs = headers.get("webhook-signature")
    if not msg_id or not ts or not sigs or not ts.isdigit():
        return False
    if abs(time.time() - int(ts)) > tolerance_s:
        return False
    signed = f"{msg_id}.{ts}.".encode() + body
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        expected = base64.b64encode(
            hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for sig in sigs.split(" "):
            version, _, value = sig.partition(",")
            if version == "v1" and hmac.compare_digest(value, expected):
                return True
    return False


class Receiver:
    """An HTTP server in a thread. BEHAVE(receiver, request) returns
    (status, headers, delay_s) for a verified request; every request is
    recorded in .requests with its arrival time."""

    def __init__(self, behave, secrets=(NEW_SECRET,)):
        self.behave = behave
        self.secrets = list(secrets)
        self.requests = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.handle(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def handle(self, h, body):
        headers = {k.lower(): v for k, v in h.headers.items()}
        req = {"t": time.monotonic(), "path": h.path, "headers": headers,
               "body": body, "verified": verify(self.secrets, headers, body)}
        with self.lock:
            self.requests.append(req)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if req["verified"]:
            status, extra, delay = self.behave(self, req)
        else:
            status, extra, delay = 401, {}, 0
        if delay:
            time.sleep(delay)
        req["status"] = status
        reply = f"status {status} from the test receiver".encode()
        h.send_response(status)
        for k, v in extra.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(reply)))
        h.end_headers()
        h.wfile.write(reply)
        with self.lock:
            self.in_flight -= 1

    def hook_requests(self):
        with self.lock:
            return [r for r in self.requests if r["path"] == "/hook"]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def ok(receiver, req):
    return 200, {}, 0


# ---------------------------------------------------------------- the rest

def home_args():
    return ["--home", DATA]


def first_headers(topic, subscription):
    """The headers of the first message of TOPIC, read as the durable
    SUBSCRIPTION with the Python SDK over this build's libsluice (the CLI
    prints payloads only), in a Python of its own: an ASan-built libsluice
    loads only with the sanitizer runtime preloaded ($SLUICE_ASAN_RT, set
    by meson in such a build), which this process must not have."""
    env = dict(os.environ)
    env["SLUICE_LIB"] = os.path.join(
        os.path.dirname(os.path.dirname(SLUICE)), "sdk", "libsluice.so.0")
    env["PYTHONPATH"] = os.path.join(SOURCE_ROOT, "adapters", "python")
    if env.get("SLUICE_ASAN_RT"):
        env["LD_PRELOAD"] = env["SLUICE_ASAN_RT"]
        env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
    script = """
import json, sys, sluice
topic, subscription, home = sys.argv[1:4]
with sluice.Client(home=home) as c:
    with c.subscribe(topic, subscription, start="earliest", idle_timeout=10) as sub:
        for m in sub:
            m.ack(sync=True)
            print(json.dumps(dict(m.headers)))
            sys.exit(0)
sys.exit(3)
"""
    p = subprocess.run(["/usr/bin/python3", "-c", script, topic, subscription, DATA],
                       env=env, capture_output=True, text=True, timeout=60)
    if p.returncode == 3:
        raise AssertionError(f"no message in {topic} within 10 s")
    assert p.returncode == 0, f"reading {topic} failed ({p.returncode}): {p.stderr}"
    return json.loads(p.stdout)


def run(args, stdin=None, timeout=30):
    p = subprocess.run(args, input=stdin, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def publish(topic, lines, content_type=None, headers=()):
    args = [SLUICE, "pub", topic] + home_args()
    if content_type:
        args += ["--content-type", content_type]
    for h in headers:
        args += ["--header", h]
    rc, out, err = run(args, stdin="".join(l + "\n" for l in lines).encode())
    assert rc == 0, f"sluice pub exited {rc}: {err}"


def sub_stats(name):
    rc, out, err = run([SLUICE, "stats", "--json"] + home_args())
    assert rc == 0, f"sluice stats exited {rc}: {err}"
    for s in json.loads(out)["subscriptions"]:
        if s["name"] == name:
            return s
    return None


def secret_file(name, secrets):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write("# test secrets\n" + "".join(s + "\n" for s in secrets))
    os.chmod(path, 0o600)
    return path


class Push:
    """One `sluice-http push` process; its stderr goes to a file."""

    def __init__(self, sub, url, *extra, secrets=(NEW_SECRET,), topic=None):
        self.log_path = os.path.join(TMP, f"push-{sub}.log")
        self.log = open(self.log_path, "w")
        args = [SLUICE_HTTP, "push", sub, "--url", url,
                "--secret-file", secret_file(f"secrets-{sub}", secrets)]
        if topic:
            args += ["--topic", topic, "--from", "earliest"]
        self.proc = subprocess.Popen(args + list(extra) + home_args(),
                                     stdout=subprocess.DEVNULL,
                                     stderr=self.log)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def lines(self, event):
        return [l for l in self.text().splitlines() if f" {event} " in l]

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait(timeout)
        if rc is None:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("push did not exit within %ss of SIGTERM"
                                 % timeout)
        self.log.close()
        return rc


def wait_for(what, cond, timeout=15, push=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    extra = "\n--- push log:\n" + push.text() if push else ""
    raise AssertionError(f"timed out waiting for {what}{extra}")


BROKER = None                   # the running sluiced


def start_broker(listen="tcp://127.0.0.1:*", *extra):
    global BROKER
    endpoint = os.path.join(DATA, "endpoint")
    if os.path.exists(endpoint):
        os.unlink(endpoint)
    log = open(os.path.join(TMP, "sluiced.log"), "a")
    proc = subprocess.Popen([SLUICED, "--data-dir", DATA, "--listen", listen, *extra],
                            stdout=log, stderr=log)
    for _ in range(200):
        if (os.path.exists(endpoint)
                and os.path.exists(os.path.join(DATA, "admin.cert"))
                and os.path.getsize(endpoint) > 0):
            BROKER = proc
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("FAIL: the broker did not start; see "
                     + os.path.join(TMP, "sluiced.log"))


def stop_broker():
    BROKER.send_signal(signal.SIGTERM)
    try:
        BROKER.wait(10)
    except subprocess.TimeoutExpired:
        BROKER.kill()
        BROKER.wait()


# ------------------------------------------------------------------- cases

def case_verifier_rejects_bad_signature():
    """The receiver's verification can fail: a tampered body, a wrong
    secret, a stale timestamp are answered 401."""
    r = Receiver(ok)
    try:
        ts = str(int(time.time()))
        key = base64.b64decode(NEW_SECRET.removeprefix("whsec_"))
        body = b'{"n":1}'
        good = base64.b64encode(hmac.new(key, f"t/0.{ts}.".encode() + body,
                                         hashlib.sha256).digest()).decode()
        for hdrs, data, want in [
                ({"webhook-signature": "v1," + good}, body, 200),
                ({"webhook-signature": "v1," + good}, b'{"n":2}', 401),
                ({"webhook-signature": "v1," + good[:-4] + "AAA="}, body, 401),
                ({"webhook-signature": "v1," + good,
                  "webhook-timestamp": str(int(time.time()) - 3600)}, body, 401)]:
            h = {"webhook-id": "t/0", "webhook-timestamp": ts,
                 "Content-Type": "application/json"}
            h.update(hdrs)
            req = urllib.request.Request(r.url, data=data, headers=h)
            try:
                status = urllib.request.urlopen(req, timeout=5).status
            except urllib.error.HTTPError as e:
                status = e.code
            assert status == want, f"verifier answered {status}, want {want}"
    finally:
        r.close()


def case_in_order_once_and_acked():
    """Every message POSTed once, in order, signed, with its content type
    and headers, and acked; SIGTERM then exits 0."""
    r = Receiver(ok)
    n = 30
    publish("push.order", [json.dumps({"n": i}) for i in range(n)],
            content_type="application/json", headers=["source=test"])
    p = Push("order", r.url, topic="push.order")
    try:
        wait_for("30 deliveries", lambda: len(r.hook_requests()) >= n, push=p)
        wait_for("30 acks", lambda: (sub_stats("order") or {}).get("acked") == n,
                 push=p)
        time.sleep(0.3)
        reqs = r.hook_requests()
        assert len(reqs) == n, f"{len(reqs)} requests for {n} messages"
        assert [json.loads(q["body"])["n"] for q in reqs] == list(range(n))
        ids = [q["headers"]["webhook-id"] for q in reqs]
        assert ids == [f"push.order/{i}" for i in range(n)], ids[:3]
        assert all(q["verified"] for q in reqs)
        assert all(q["headers"]["content-type"] == "application/json"
                   for q in reqs)
        assert all(q["headers"].get("sluice-header-source") == "test"
                   for q in reqs)
        assert r.max_in_flight == 1
        assert len(p.lines("push.delivered")) == n
        st = sub_stats("order")
        assert st["lag"] == 0 and st["acked"] == n, st
    finally:
        rc = p.stop()
        r.close()
    assert rc == 0, f"push exited {rc} after SIGTERM:\n{p.text()}"
    assert "push.stopped" in p.text()


def case_retries_then_recovers():
    """500 three times, then 200: four POSTs with the same webhook-id, each
    signed for its own attempt, with growing gaps; acked once."""
    def behave(r, req):
        return (500 if len(r.hook_requests()) <= 3 else 200), {}, 0
    r = Receiver(behave)
    publish("push.retry", ['{"x":1}'])
    p = Push("retry", r.url, "--no-jitter", "--backoff-min", "200ms",
             "--backoff-max", "5s", topic="push.retry")
    try:
        wait_for("the ack", lambda: (sub_stats("retry") or {}).get("acked") == 1,
                 push=p)
        reqs = r.hook_requests()
        assert [q["status"] for q in reqs] == [500, 500, 500, 200], \
            [q["status"] for q in reqs]
        assert len({q["headers"]["webhook-id"] for q in reqs}) == 1
        assert all(q["verified"] for q in reqs)
        gaps = [b["t"] - a["t"] for a, b in zip(reqs, reqs[1:])]
        # 200 ms, 400 ms, 800 ms without jitter.
        assert gaps[0] >= 0.15 and gaps[0] < gaps[1] < gaps[2], gaps
        assert gaps[2] >= 0.7, gaps
        assert len(p.lines("push.retry")) == 3
        assert "status=500" in p.lines("push.retry")[0]
    finally:
        p.stop()
        r.close()


def case_jitter_stays_under_ceiling():
    """With full jitter each wait is at most its ceiling (100, 200 ms)."""
    def behave(r, req):
        return (500 if len(r.hook_requests()) <= 2 else 200), {}, 0
    r = Receiver(behave)
    publish("push.jitter", ["j"])
    p = Push("jitter", r.url, "--backoff-min", "100ms", topic="push.jitter")
    try:
        wait_for("the ack", lambda: (sub_stats("jitter") or {}).get("acked") == 1,
                 push=p)
        waits = [int(l.split("wait_ms=")[1].split()[0])
                 for l in p.lines("push.retry")]
        assert len(waits) == 2 and waits[0] <= 100 and waits[1] <= 200, waits
        reqs = r.hook_requests()
        gaps = [b["t"] - a["t"] for a, b in zip(reqs, reqs[1:])]
        # What was logged is what was waited (with room for a busy host).
        assert gaps[0] < 0.1 + 1 and gaps[1] < 0.2 + 1, gaps
    finally:
        p.stop()
        r.close()


def case_retry_after_honoured():
    """429 with Retry-After: 2 makes the next attempt wait 2 s, not the
    50 ms backoff."""
    def behave(r, req):
        if len(r.hook_requests()) == 1:
            return 429, {"Retry-After": "2"}, 0
        return 200, {}, 0
    r = Receiver(behave)
    publish("push.ra", ["ra"])
    p = Push("ra", r.url, "--no-jitter", "--backoff-min", "50ms",
             topic="push.ra")
    try:
        wait_for("the ack", lambda: (sub_stats("ra") or {}).get("acked") == 1,
                 push=p)
        reqs = r.hook_requests()
        assert [q["status"] for q in reqs] == [429, 200]
        gap = reqs[1]["t"] - reqs[0]["t"]
        assert 1.9 <= gap < 4, gap
        assert "retry_after=yes" in p.lines("push.retry")[0]
    finally:
        p.stop()
        r.close()


def case_gone_stops():
    """410: push logs it and exits 1 by itself; the message stays unacked
    and the next one is not POSTed."""
    r = Receiver(lambda r, req: (410, {}, 0))
    publish("push.gone", ["g1", "g2"])
    p = Push("gone", r.url, topic="push.gone")
    rc = p.wait(15)
    try:
        assert rc == 1, f"push exit {rc}\n{p.text()}"
        assert len(r.hook_requests()) == 1
        assert p.lines("push.gone") and "status=410" in p.lines("push.gone")[0]
        st = sub_stats("gone")
        assert st["acked"] == 0 and st["dead_lettered"] == 0 and st["lag"] == 2, st
    finally:
        p.stop()
        r.close()


def case_dead_letter_after_max_attempts():
    """A message the receiver always fails is POSTed --max-attempts times,
    then is in _dlq.SUB, whose dlq-reason ends with the last status and
    body; the log has them too; the next message is delivered after it."""
    def behave(r, req):
        return (500 if req["body"] == b"poison" else 200), {}, 0
    r = Receiver(behave)
    publish("push.dlq", ["poison", "fine"])
    p = Push("dlq", r.url, "--max-attempts", "3", "--backoff-min", "50ms",
             topic="push.dlq")
    try:
        wait_for("the second message's ack",
                 lambda: (sub_stats("dlq") or {}).get("lag") == 0, push=p)
        bodies = [q["body"] for q in r.hook_requests()]
        assert bodies == [b"poison"] * 3 + [b"fine"], bodies
        st = sub_stats("dlq")
        assert st["dead_lettered"] == 1 and st["acked"] == 1, st
        dl = p.lines("push.dead_lettered")
        assert len(dl) == 1 and "attempts=3" in dl[0] and "status=500" in dl[0] \
            and "from the test receiver" in dl[0], dl
        rc, out, err = run([SLUICE, "sub", "_dlq.dlq", "--subscription",
                            "dlq-check", "--from", "earliest", "--count", "1",
                            "--timeout", "10"] + home_args())
        assert rc == 0 and out == "poison\n", (rc, out, err)
        why = first_headers("_dlq.dlq", "dlq-why").get("dlq-reason")
        assert why == ("nacked 1 times without ack (max_deliver); last nack: "
                       "HTTP 500: status 500 from the test receiver"), why
    finally:
        p.stop()
        r.close()


def case_secret_rotation():
    """Two secrets in the file, the receiver knows only the new one: the
    request carries two signatures and verifies."""
    r = Receiver(ok, secrets=[NEW_SECRET])
    publish("push.rot", ["r"])
    p = Push("rot", r.url, secrets=(OLD_SECRET, NEW_SECRET), topic="push.rot")
    try:
        wait_for("the ack", lambda: (sub_stats("rot") or {}).get("acked") == 1,
                 push=p)
        q = r.hook_requests()[0]
        assert q["verified"] and q["status"] == 200
        assert len(q["headers"]["webhook-signature"].split(" ")) == 2
        other = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        assert not verify([other], q["headers"], q["body"])
    finally:
        p.stop()
        r.close()


def case_old_secret_only_is_refused():
    """Signed with a secret the receiver does not know: 401, retried, then
    dead-lettered: a receiver's check really decides."""
    r = Receiver(ok, secrets=[NEW_SECRET])
    publish("push.bad", ["b"])
    p = Push("bad", r.url, "--max-attempts", "2", "--backoff-min", "50ms",
             secrets=(OLD_SECRET,), topic="push.bad")
    try:
        wait_for("the dead letter",
                 lambda: (sub_stats("bad") or {}).get("dead_lettered") == 1,
                 push=p)
        assert [q["status"] for q in r.hook_requests()] == [401, 401]
        assert not any(q["verified"] for q in r.hook_requests())
    finally:
        p.stop()
        r.close()


def case_redirect_not_followed():
    """302 to another path of the receiver: the other path is never
    requested, the 302 is a failure with its status."""
    def behave(r, req):
        return 302, {"Location": f"http://127.0.0.1:{r.port}/other"}, 0
    r = Receiver(behave)
    publish("push.redir", ["x"])
    p = Push("redir", r.url, "--max-attempts", "2", "--backoff-min", "50ms",
             topic="push.redir")
    try:
        wait_for("the dead letter",
                 lambda: (sub_stats("redir") or {}).get("dead_lettered") == 1,
                 push=p)
        assert [q["path"] for q in r.requests] == ["/hook", "/hook"]
        assert "status=302" in p.lines("push.retry")[0]
    finally:
        p.stop()
        r.close()


def case_sigterm_finishes_in_flight():
    """SIGTERM during a slow POST: the POST finishes and is acked, push
    exits 0, the next message is neither POSTed nor acked."""
    r = Receiver(lambda r, req: (200, {}, 1.5))
    publish("push.term", ["t1", "t2"])
    p = Push("term", r.url, topic="push.term")
    try:
        wait_for("the first POST", lambda: len(r.hook_requests()) == 1, push=p)
        time.sleep(0.3)
    finally:
        rc = p.stop()
        r.close()
    assert rc == 0, f"exit {rc}\n{p.text()}"
    assert len(r.hook_requests()) == 1
    st = sub_stats("term")
    assert st["acked"] == 1 and st["lag"] == 1, st


def case_sigterm_during_backoff_leaves_unacked():
    """SIGTERM while a failed message waits for its retry: exit 0 at once,
    nothing acked, nothing dead-lettered."""
    r = Receiver(lambda r, req: (500, {}, 0))
    publish("push.termw", ["w"])
    p = Push("termw", r.url, "--no-jitter", "--backoff-min", "30s",
             topic="push.termw")
    try:
        wait_for("the failed POST", lambda: p.lines("push.retry"), push=p)
        t0 = time.monotonic()
    finally:
        rc = p.stop()
        r.close()
    assert rc == 0 and time.monotonic() - t0 < 5, rc
    st = sub_stats("termw")
    assert st["acked"] == 0 and st["dead_lettered"] == 0 and st["lag"] == 1, st


def case_concurrency_unordered():
    """--concurrency 4: several POSTs at once, every message delivered."""
    r = Receiver(lambda r, req: (200, {}, 0.3))
    publish("push.conc", [f"c{i}" for i in range(12)])
    p = Push("conc", r.url, "--concurrency", "4", topic="push.conc")
    try:
        wait_for("12 acks", lambda: (sub_stats("conc") or {}).get("acked") == 12,
                 push=p)
        assert sorted(q["body"] for q in r.hook_requests()) == \
            sorted(f"c{i}".encode() for i in range(12))
        assert r.max_in_flight > 1, r.max_in_flight
    finally:
        p.stop()
        r.close()


def case_existing_subscription_attached():
    """A subscription made elsewhere (the broker's max_deliver, 5): push
    attaches to it by name, and a message that fails its last attempt is
    nacked again at each redelivery until the broker dead-letters it; the
    next message is delivered."""
    rc, out, err = run([SLUICE, "sub", "push.pre", "--subscription", "pre",
                        "--timeout", "0.5"] + home_args())
    assert rc == 0, (rc, err)
    assert sub_stats("pre") is not None
    def behave(r, req):
        return (500 if req["body"] == b"poison" else 200), {}, 0
    r = Receiver(behave)
    publish("push.pre", ["poison", "fine"])
    p = Push("pre", r.url, "--max-attempts", "2", "--backoff-min", "50ms")
    try:
        wait_for("the dead letter and the ack",
                 lambda: (sub_stats("pre") or {}).get("lag") == 0, push=p)
        st = sub_stats("pre")
        assert st["dead_lettered"] == 1 and st["acked"] == 1, st
        assert [q["body"] for q in r.hook_requests()] == \
            [b"poison", b"poison", b"fine"]
        assert len(p.lines("push.dead_letter_again")) == 4, p.text()
    finally:
        p.stop()
        r.close()


def doc_block(name):
    """The fenced code between <!-- NAME:begin --> and <!-- NAME:end -->
    in docs/adapters.md."""
    with open(os.path.join(SOURCE_ROOT, "docs", "adapters.md")) as f:
        text = f.read()
    m = re.search(rf"<!-- {name}:begin -->\s*```\w*\n(.*?)```\s*<!-- {name}:end -->",
                  text, re.S)
    assert m, f"docs/adapters.md has no {name} block"
    return m.group(1)


C_MAIN = r"""
#include <stdio.h>
int main(int argc, char **argv)
{
    static unsigned char body[1 << 20];
    size_t len = fread(body, 1, sizeof body, stdin);
    if (argc != 5 || sodium_init() < 0)
        return 2;
    printf("%d\n", webhook_verify(argv[1], argv[2], argv[3], body, len, argv[4]));
    return 0;
}
"""


def case_doc_snippets_verify():
    """docs/adapters.md's verification snippets, Python and C, as written:
    each accepts a request push made and refuses it tampered."""
    r = Receiver(ok)
    publish("push.doc", ['{"doc":true}'], content_type="application/json")
    p = Push("doc", r.url, topic="push.doc")
    try:
        wait_for("the request", lambda: r.hook_requests(), push=p)
    finally:
        p.stop()
        r.close()
    q = r.hook_requests()[0]
    h, body = q["headers"], q["body"]
    bad = dict(h, **{"webhook-id": h["webhook-id"] + "0"})
    scope = {}
    exec(doc_block("push-verify-python"), scope)
    assert scope["verify"]([NEW_SECRET], h, body)
    assert not scope["verify"]([NEW_SECRET], h, body + b" ")
    assert not scope["verify"]([NEW_SECRET], bad, body)
    assert not scope["verify"]([OLD_SECRET], h, body)
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "no C compiler to build the C snippet"
    src = os.path.join(TMP, "verify.c")
    exe = os.path.join(TMP, "verify")
    with open(src, "w") as f:
        f.write(doc_block("push-verify-c") + C_MAIN)
    rc, out, err = run([cc, "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Werror",
                        "-o", exe, src, "-lsodium"], timeout=60)
    assert rc == 0, f"the C snippet does not build:\n{err}"
    for secret, hh, data, want in [(NEW_SECRET, h, body, "1"),
                                   (NEW_SECRET, h, body + b" ", "0"),
                                   (NEW_SECRET, bad, body, "0"),
                                   (OLD_SECRET, h, body, "0")]:
        rc, out, err = run([exe, secret, hh["webhook-id"],
                            hh["webhook-timestamp"], hh["webhook-signature"]],
                           stdin=data)
        assert rc == 0 and out.strip() == want, (rc, out, err, want)


def case_broker_restart():
    """The broker restarts on the same endpoint: push reconnects by itself
    and delivers what is published after."""
    r = Receiver(ok)
    publish("push.restart", ["before"])
    p = Push("restart", r.url, topic="push.restart")
    try:
        wait_for("the first ack",
                 lambda: (sub_stats("restart") or {}).get("acked") == 1, push=p)
        with open(os.path.join(DATA, "endpoint")) as f:
            endpoint = f.readline().strip()
        stop_broker()
        time.sleep(0.5)
        start_broker(endpoint)
        publish("push.restart", ["after"])
        wait_for("the second delivery", lambda: [q for q in r.hook_requests()
                                                 if q["body"] == b"after"],
                 push=p, timeout=30)
        wait_for("lag 0", lambda: (sub_stats("restart") or {}).get("lag") == 0,
                 push=p)
        assert p.proc.poll() is None, p.text()
    finally:
        rc = p.stop()
        r.close()
    assert rc == 0, (rc, p.text())


def case_alerts_to_webhook():
    """docs/operations.md "Alerts to a webhook": push on the `_alerts`
    topic POSTs the broker's alert events as JSON. The broker restarts with
    an idle-topic rule of one second; the topic goes quiet and its event
    arrives, signed, as application/json."""
    with open(os.path.join(DATA, "endpoint")) as f:
        endpoint = f.readline().strip()
    stop_broker()
    start_broker(endpoint, "--set", "alerts/topic_idle=push.quiet",
                 "--set", "alerts/topic_idle_for=1s")
    r = Receiver(ok)
    p = None
    try:
        publish("push.quiet", ["once"])
        p = Push("alerts-hook", r.url, topic="_alerts")
        def fired():
            for q in r.hook_requests():
                event = json.loads(q["body"])
                if event.get("alert") == "topic_idle" and event.get("topic") == "push.quiet":
                    return q, event
            return None
        q, event = wait_for("the topic_idle event", fired, timeout=20, push=p)
        assert event["state"] == "firing" and event["idle_for_seconds"] == 1, event
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["at"]), event
        assert q["verified"], q["headers"]
        assert q["headers"]["content-type"] == "application/json", q["headers"]
        assert q["headers"]["webhook-id"].startswith("_alerts/"), q["headers"]
        wait_for("the event acked",
                 lambda: (sub_stats("alerts-hook") or {}).get("lag") == 0, push=p)
    finally:
        if p:
            p.stop()
        r.close()
        stop_broker()
        start_broker(endpoint)


def case_existing_subscription_needed():
    """Without --topic the subscription must exist: exit 1 with a reason."""
    p = Push("nosuch", "http://127.0.0.1:9/hook")
    rc = p.wait(15)
    p.stop()
    assert rc == 1 and "no durable subscription 'nosuch'" in p.text(), \
        (rc, p.text())


def case_usage_errors():
    """A bad command line: exit 64 with a reason, before any connection."""
    path = secret_file("usage-secrets", [NEW_SECRET])
    for args, words in [
            (["s", "--secret-file", path], "--url URL is required"),
            (["s", "--url", "http://x/"], "--secret-file FILE is required"),
            (["s", "--url", "ftp://x/", "--secret-file", path], "http:// or https://"),
            (["s", "--url", "http://x/", "--secret-file", path, "--from", "earliest"],
             "give --topic too"),
            (["s", "--url", "http://x/", "--secret-file", path, "--concurrency", "0"],
             "--concurrency wants 1 to 256"),
            (["s", "--url", "http://x/", "--secret-file", path, "--backoff-min", "2s",
              "--backoff-max", "1s"], "--backoff-min is above --backoff-max"),
            (["--url", "http://x/", "--secret-file", path], "missing SUBSCRIPTION")]:
        rc, out, err = run([SLUICE_HTTP, "push"] + args + home_args())
        assert rc == 64 and words in err, (args, rc, err)
    rc, out, err = run([SLUICE_HTTP, "push", "--help"])
    assert rc == 0 and "--secret-file" in out and "--concurrency" in out


def case_bad_secret_file():
    path = secret_file("bad-secrets", ["whsec_notbase64!"])
    rc, out, err = run([SLUICE_HTTP, "push", "s", "--url", "http://x/",
                        "--secret-file", path] + home_args())
    assert rc == 1 and "line 2" in err, (rc, err)


CASES = [(k, v) for k, v in list(globals().items()) if k.startswith("case_")]


def main():
    start_broker()
    failed = 0
    try:
        for name, fn in CASES:
            if ONLY and name.removeprefix("case_") not in ONLY:
                continue
            t0 = time.monotonic()
            try:
                fn()
                print(f"PASS {name} ({time.monotonic() - t0:.1f}s)", flush=True)
            except Exception:
                failed += 1
                print(f"FAIL {name}", flush=True)
                traceback.print_exc()
    finally:
        stop_broker()
        if failed:
            print("kept " + TMP + " for a look", file=sys.stderr)
        else:
            shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

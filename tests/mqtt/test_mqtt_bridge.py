#!/usr/bin/python3
"""test_mqtt_bridge - `sluice-mqtt bridge` between a real mosquitto and a
real sluiced, with mosquitto_pub / mosquitto_sub as the devices (issue 21,
points 4 and 5): QoS 1 and 2 in and out; the bridge killed -9 in the middle
of a stream and the broker killed -9 in the middle of a stream, each with
the exact set of messages counted afterwards (nothing lost, nothing twice);
two bridges from one config file; the topic translation and config checks
from the command line; the connection state in the status file across an
MQTT broker restart.

Usage: test_mqtt_bridge.py BUILD_ROOT. Starts every process itself in a
temporary directory; mosquitto listens on a free port of 17600-17699
(loopback), sluiced on one the kernel picks. Stops them by PID.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "integration"))
from pyharness import Fail, check, run  # noqa: E402

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
SLUICED = os.path.join(BUILD, "broker", "sluiced")
SLUICE = os.path.join(BUILD, "adapters", "cli", "sluice")
BRIDGE = os.path.join(BUILD, "adapters", "mqtt", "sluice-mqtt")
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
TMP = tempfile.mkdtemp(prefix="sluice-mqtt-test-")
DATA = os.path.join(TMP, "data")
ENV = dict(os.environ, SLUICE_HOME=DATA)
for v in ("SLUICE_BROKER", "SLUICE_CERT", "SLUICE_SERVER_KEY"):
    ENV.pop(v, None)

procs = []


def start(args, log, **kw):
    f = open(os.path.join(TMP, log), "ab")
    p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=ENV, **kw)
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


def wait_for(cond, what, timeout=20, step=0.05, detail=None):
    """Poll COND until true; else Fail naming WHAT (and DETAIL() then)."""
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(step)
    raise Fail(f"timed out waiting for {what}" + (f": {detail()}" if detail else ""))


def freeze(p):
    """SIGSTOP P and wait until every thread of it has stopped. kill()
    returns before that: the kernel wakes one thread to start the group
    stop, and until the scheduler runs it (milliseconds on a loaded
    machine) the other threads go on: a bridge "frozen" that way can still
    read sluice's confirms and write the MQTT acks."""
    p.send_signal(signal.SIGSTOP)

    def stopped():
        task = f"/proc/{p.pid}/task"
        for tid in os.listdir(task):
            try:
                with open(os.path.join(task, tid, "stat")) as f:
                    stat = f.read()
            except FileNotFoundError:
                continue            # the thread ended
            if stat[stat.rfind(")") + 2] not in "TZX":
                return False
        return True
    wait_for(stopped, f"every thread of {os.path.basename(p.args[0])} (pid {p.pid}) "
             "stopped by SIGSTOP", timeout=30, step=0.01)


# ------------------------------------------------------------- mosquitto

def free_port():
    for port in range(17600, 17700):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise Fail("no free port in 17600-17699")


MQTT_PORT = free_port()
mosq = None


def mosquitto_start():
    global mosq
    conf = os.path.join(TMP, "mosquitto.conf")
    with open(conf, "w") as f:
        # A deep queue for offline sessions: mosquitto's default of
        # 1000 drops messages while the bridge is down (docs/adapters.md).
        f.write(f"listener {MQTT_PORT} 127.0.0.1\nallow_anonymous true\n"
                "persistence false\nmax_queued_messages 1000000\n")
    mosq = start([MOSQUITTO, "-c", conf], "mosquitto.log")

    def listening():
        try:
            socket.create_connection(("127.0.0.1", MQTT_PORT), timeout=1).close()
            return True
        except OSError:
            return False
    wait_for(listening, "mosquitto to listen", timeout=10)


# ----------------------------------------------------------------- sluiced

broker = None
endpoint = None


def broker_start():
    global broker, endpoint
    broker = start([SLUICED, "--data-dir", DATA, "--listen", endpoint or "tcp://127.0.0.1:*"],
                   "sluiced.log")
    ep = os.path.join(DATA, "endpoint")
    for _ in range(100):
        if os.path.exists(ep) and os.path.exists(os.path.join(DATA, "server.pub")):
            line = open(ep).readline().strip()
            if line and (endpoint is None or line == endpoint):
                endpoint = line
                break
        check(broker.poll() is None, "sluiced started")
        time.sleep(0.1)
    wait_for(lambda: subprocess.run([SLUICE, "stats", "--timeout", "1"], env=ENV,
                                    capture_output=True).returncode == 0,
             "sluiced to answer")


def sluice(*args, timeout=60):
    r = subprocess.run([SLUICE, *args], env=ENV, capture_output=True, text=True,
                       timeout=timeout)
    check(r.returncode == 0, f"sluice {' '.join(args)}", r.stderr)
    return r.stdout


def stored(topic):
    for t in json.loads(sluice("stats", "--json"))["topics"]:
        if t["name"] == topic:
            return t["messages"]
    return 0


reads = 0


def exact_set(topic, expected):
    """The topic holds each of EXPECTED once and nothing else."""
    global reads
    n = len(expected)
    wait_for(lambda: stored(topic) >= n, f"{n} messages on {topic}", timeout=30, step=0.2)
    time.sleep(0.3)                 # anything more would arrive now
    check(stored(topic) == n, f"{topic} holds exactly {n} messages", stored(topic))
    reads += 1
    got = sluice("sub", topic, "--subscription", f"check-{reads}", "--from", "earliest",
                 "--count", str(n), "--timeout", "10").splitlines()
    check(len(got) == n and set(got) == set(expected),
          f"{topic}: every message once", f"{len(got)} read, "
          f"{len(set(expected) - set(got))} missing, {len(got) - len(set(got))} twice")


# ------------------------------------------------------------------ bridge

CONFIG = os.path.join(TMP, "bridges.yaml")
STATUS = os.path.join(TMP, "status.json")


def write_config():
    with open(CONFIG, "w") as f:
        f.write(f"""# two bridges on one MQTT broker
bridges:
  - name: main
    host: 127.0.0.1
    port: {MQTT_PORT}
    keepalive: 10
    backoff_max_ms: 500
    in:
      - filter: q1/#
        qos: 1
      - filter: q2/#
        qos: 2
        prefix: native
    out:
      - pattern: cmd1.>
        subscription: out-q1
        qos: 1
        strip: 1
        prefix: out1
        ack_wait_ms: 2000
      - pattern: cmd2.>
        subscription: out-q2
        qos: 2
        strip: 1
        prefix: out2
  - name: second
    port: {MQTT_PORT}
    client_id: sluice-second
    in:
      - filter: other/+/x
        prefix: iot.other
""")


bridge = None


def bridge_start():
    global bridge
    if os.path.exists(STATUS):
        os.unlink(STATUS)           # the killed bridge's last word
    bridge = start([BRIDGE, "bridge", "--config", CONFIG, "--state-dir",
                    os.path.join(TMP, "state"), "--status-file", STATUS,
                    "--stats-interval", "2"], "bridge.log")
    wait_for(lambda: status("main").get("state") == "connected"
             and status("second").get("state") == "connected", "both bridges connected")


def status(name):
    try:
        with open(STATUS) as f:
            for b in json.load(f)["bridges"]:
                if b["name"] == name:
                    return b
    except (OSError, ValueError):
        pass
    return {}


# --------------------------------------------------------------- devices

def device_pub(topic, payloads, qos, rate=0):
    """mosquitto_pub -l: one message per line; RATE lines/s (0 = at once).
    Returns the thread feeding it; join() waits for mosquitto_pub. Fewer
    than 65,535 lines: past that mosquitto_pub -l (2.0.11) quits at the
    first PUBACK with the last line's packet id, before the end."""
    assert len(payloads) < 65535
    p = subprocess.Popen(["mosquitto_pub", "-p", str(MQTT_PORT), "-t", topic,
                          "-q", str(qos), "-l", "-i", f"dev-{topic.replace('/', '-')}"],
                         stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    procs.append(p)

    def feed():
        chunk = max(1, rate // 50) if rate else len(payloads)
        for i in range(0, len(payloads), chunk):
            p.stdin.write(("\n".join(payloads[i:i + chunk]) + "\n").encode())
            p.stdin.flush()
            if rate:
                time.sleep(chunk / rate)
        p.stdin.close()
        check(p.wait(60) == 0, f"mosquitto_pub {topic}", p.stderr.read())
    t = threading.Thread(target=feed)
    t.start()
    return t


def device_sub(filters, count, qos):
    """mosquitto_sub collecting COUNT messages as 'topic payload' lines."""
    args = ["mosquitto_sub", "-p", str(MQTT_PORT), "-q", str(qos), "-v", "-C", str(count),
            "-W", "40"]
    for f in filters:
        args += ["-t", f]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    procs.append(p)
    time.sleep(0.3)                 # subscribed before anything is published
    return p


def payloads(tag, n):
    return [f"{tag}-{i}" for i in range(n)]


# ------------------------------------------------------------------ tests

def test_command_line():
    r = subprocess.run([BRIDGE, "topic", "spBv1.0/plant_1//x y"], capture_output=True,
                       text=True)
    check(r.stdout.strip() == "mqtt.spBv1_2E0.plant__1._.x_20y", "topic translation",
          r.stdout + r.stderr)
    r = subprocess.run([BRIDGE, "topic", "--reverse", "--strip", "1",
                        "mqtt.spBv1_2E0.plant__1._.x_20y"], capture_output=True, text=True)
    check(r.stdout.strip() == "spBv1.0/plant_1//x y", "reverse translation", r.stdout)
    r = subprocess.run([BRIDGE, "bridge", "--config", CONFIG, "--check"],
                       capture_output=True, text=True, env=ENV)
    check(r.returncode == 0 and "in  q2/# (qos 2) -> native.q2.>" in r.stdout
          and "bridge second" in r.stdout, "--check prints both bridges", r.stdout + r.stderr)
    bad = os.path.join(TMP, "bad.yaml")
    with open(bad, "w") as f:
        f.write("bridges:\n  - name: x\n    in:\n      - filter: a/#\n        qos: 3\n")
    r = subprocess.run([BRIDGE, "bridge", "--config", bad, "--check"], capture_output=True,
                       text=True)
    check(r.returncode == 64 and "bad.yaml:5" in r.stderr and "from 0 to 2" in r.stderr,
          "a bad qos is refused with its line", r.stderr)
    r = subprocess.run([BRIDGE, "bridge", "--in", "a/b#"], capture_output=True, text=True)
    check(r.returncode == 64 and "whole level" in r.stderr, "a bad filter is refused",
          r.stderr)
    r = subprocess.run([BRIDGE, "bridge", "--in", "o/#", "--in", "o/+"],
                       capture_output=True, text=True)
    check(r.returncode == 64 and "overlap" in r.stderr,
          "overlapping filters are refused (mosquitto would send both copies)", r.stderr)
    r = subprocess.run([BRIDGE, "--help"], capture_output=True, text=True)
    check(r.returncode == 0 and "--in-qos" in r.stdout, "--help")


def test_in_and_out():
    q1, q2, other = payloads("a", 2000), payloads("b", 2000), payloads("c", 300)
    ts = [device_pub("q1/dev-1/temp", q1, 1), device_pub("q2/dev-2/temp", q2, 2),
          device_pub("other/7/x", other, 1)]
    for t in ts:
        t.join()
    exact_set("mqtt.q1.dev-1.temp", q1)
    exact_set("native.q2.dev-2.temp", q2)
    exact_set("iot.other.other.7.x", other)
    # Order kept: the first message read is the first published.
    got = sluice("sub", "mqtt.q1.dev-1.temp", "--subscription", "hdr", "--from", "earliest",
                 "--count", "1", "--timeout", "5")
    check(got.strip() == "a-0", "first message in order", got)

    # Out: QoS 1 and 2, acked in sluice after the MQTT ack.
    sub = device_sub(["out1/#", "out2/#"], 1000, 2)
    for topic, tag in (("cmd1.valve_2E1.set", "o1"), ("cmd2.pump.set", "o2")):
        r = subprocess.run([SLUICE, "pub", topic], input="\n".join(payloads(tag, 500)) + "\n",
                           env=ENV, capture_output=True, text=True)
        check(r.returncode == 0, "sluice pub", r.stderr)
    out, _ = sub.communicate(timeout=60)
    lines = out.splitlines()
    want = [f"out1/valve.1/set {p}" for p in payloads("o1", 500)] + \
           [f"out2/pump/set {p}" for p in payloads("o2", 500)]
    check(sorted(lines) == sorted(want), "out: every message once on its MQTT topic",
          f"{len(lines)} lines; e.g. {lines[:2]}")
    wait_for(lambda: status("main").get("out_acked", 0) >= 1000, "out acked in sluice")


def test_ack_after_durable():
    """The MQTT ack waits for sluice: with sluiced down the bridge holds
    what it read unacked (libsluice keeps it in memory); killed -9 then,
    nothing is lost, because mosquitto still has every message and sends
    it again. (Were the acks written at once, mosquitto would have dropped
    them and the copies in the dead bridge's memory would be gone.)"""
    held = payloads("held", 50)
    broker.send_signal(signal.SIGKILL)
    broker.wait()
    device_pub("q1/held", held, 1).join()
    wait_for(lambda: status("main").get("in_pending", 0) > 0,
             "the bridge holding messages while sluiced is down")
    bridge.send_signal(signal.SIGKILL)
    bridge.wait()
    broker_start()
    bridge_start()
    exact_set("mqtt.q1.held", held)


def test_retransmit_stored_once():
    """Stored in sluice, MQTT ack never written: the bridge is frozen
    (SIGSTOP, every thread stopped) while sluice commits what it sent,
    then killed -9. It acked none of the messages, so mosquitto sends
    every one again (those in flight as DUP, with the same packet ids),
    and their msg-id makes each stored one a duplicate: every message
    stored once, and as many duplicates counted as sluice had stored
    before the kill."""
    msgs = payloads("dup", 50)
    freeze(broker)
    try:
        device_pub("q1/dup", msgs, 1).join()
        wait_for(lambda: status("main").get("in_pending", 0) > 0,
                 "the bridge waiting for sluice's confirm")
        freeze(bridge)
    finally:
        broker.send_signal(signal.SIGCONT)
    wait_for(lambda: stored("mqtt.q1.dup") > 0, "sluiced storing what the bridge sent")
    # What the bridge sent before it froze may still be arriving on a
    # loaded machine: wait until the stored count holds still for 0.5 s.
    held = -1
    for _ in range(40):
        now = stored("mqtt.q1.dup")
        if now == held:
            break
        held = now
        time.sleep(0.5)
    bridge.send_signal(signal.SIGKILL)
    bridge.wait()
    bridge_start()
    exact_set("mqtt.q1.dup", msgs)
    wait_for(lambda: status("main").get("in_pending", -1) == 0
             and status("main").get("in_received", 0) >= len(msgs),
             f"the new bridge to receive all {len(msgs)} again and settle", timeout=30,
             detail=lambda: status("main"))
    st = status("main")
    check(st["in_received"] == len(msgs),
          f"mosquitto sent all {len(msgs)} again (the frozen bridge acked none)", st)
    check(st["in_duplicates"] == held and st["in_stored"] == len(msgs) - held,
          f"the {held} stored before the kill counted as duplicates, the other "
          f"{len(msgs) - held} stored", st)


def kill_mid_stream(victim, tag):
    """Devices publish at QoS 1 and 2 (into the QoS 1 rule, crash-safe)
    and at QoS 2 into the native QoS 2 rule; VICTIM is killed -9 once
    messages flow and started again."""
    a, b, c = payloads(f"{tag}a", 6000), payloads(f"{tag}b", 6000), payloads(f"{tag}c", 3000)
    ts = [device_pub(f"q1/{tag}/one", a, 1, rate=3000), device_pub(f"q1/{tag}/two", b, 2, rate=3000)]
    if victim == "broker":
        ts.append(device_pub(f"q2/{tag}/three", c, 2, rate=1500))
    wait_for(lambda: stored(f"mqtt.q1.{tag}.one") > 1500, "messages flowing", step=0.02)
    if victim == "bridge":
        bridge.send_signal(signal.SIGKILL)
        bridge.wait()
        time.sleep(0.5)
        bridge_start()
    else:
        broker.send_signal(signal.SIGKILL)
        broker.wait()
        time.sleep(0.5)
        broker_start()
    for t in ts:
        t.join()
    exact_set(f"mqtt.q1.{tag}.one", a)
    exact_set(f"mqtt.q1.{tag}.two", b)
    if victim == "broker":
        exact_set(f"native.q2.{tag}.three", c)


def test_out_broker_kill():
    """The broker killed -9 while messages go out: each once on MQTT."""
    n = 10000
    sub = device_sub(["out1/#"], n, 1)
    src = os.path.join(TMP, "out-kill.txt")
    with open(src, "w") as f:
        f.write("\n".join(payloads("k", n)) + "\n")
    pub = start([SLUICE, "pub", "cmd1.kill", "--file", src], "pub.log")
    wait_for(lambda: stored("cmd1.kill") > 2000, "messages going out", step=0.02)
    before = status("main").get("out_acked", 0)
    broker.send_signal(signal.SIGKILL)
    broker.wait()
    time.sleep(0.3)
    broker_start()
    check(pub.wait(60) == 0, "sluice pub survived the broker restart")
    out, _ = sub.communicate(timeout=60)
    got = [line.split(" ", 1)[1] for line in out.splitlines()]
    check(sorted(got) == sorted(payloads("k", n)), "out after a broker kill: each once",
          f"{len(got)} of {n}, {len(got) - len(set(got))} twice; acked before kill {before}")


def sub_settled(name):
    for s in json.loads(sluice("stats", "--json"))["subscriptions"]:
        if s["name"] == name:
            return s["lag"] == 0 and s["in_flight"] == 0
    return False


def test_out_bridge_kill():
    """The bridge killed -9 while messages go out: none lost; at least
    once, so a message whose MQTT ack came but whose sluice ack did not is
    sent again: at most the out window (100) of them."""
    n = 5000
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(MQTT_PORT), "-q", "1", "-t", "out1/bk",
                            "-W", "60"], stdout=subprocess.PIPE, text=True)
    procs.append(sub)
    time.sleep(0.3)
    src = os.path.join(TMP, "out-bk.txt")
    with open(src, "w") as f:
        f.write("\n".join(payloads("bk", n)) + "\n")
    pub = start([SLUICE, "pub", "cmd1.bk", "--file", src], "pub.log")
    wait_for(lambda: stored("cmd1.bk") > 1500, "messages going out", step=0.02)
    bridge.send_signal(signal.SIGKILL)
    bridge.wait()
    time.sleep(0.3)
    bridge_start()
    check(pub.wait(60) == 0, "sluice pub")
    wait_for(lambda: sub_settled("out-q1"), "out-q1 acked to the end", timeout=30, step=0.2)
    time.sleep(0.5)
    sub.terminate()
    got = sub.communicate(timeout=10)[0].splitlines()
    twice = len(got) - len(set(got))
    check(set(got) == set(payloads("bk", n)), "out after a bridge kill: none lost",
          f"{len(set(payloads('bk', n)) - set(got))} missing")
    check(twice <= 100, "out after a bridge kill: repeats within the out window", twice)
    print(f"  sent twice to MQTT after the bridge kill: {twice}")


def test_reconnect():
    stop(mosq)
    wait_for(lambda: status("main").get("state") == "connecting", "state connecting")
    check(status("main")["disconnects"] >= 1, "disconnect counted")
    log = open(os.path.join(TMP, "bridge.log")).read()
    check("mqtt_disconnected bridge=main" in log, "disconnect logged")
    mosquitto_start()
    wait_for(lambda: status("main").get("state") == "connected", "reconnected")
    p = payloads("r", 200)
    device_pub("q1/after", p, 1).join()
    exact_set("mqtt.q1.after", p)


def test_sigterm():
    """SIGTERM: exit 0 after 'bridge_stop' for both bridges; in a sanitized
    build also no leak (LeakSanitizer fails the exit; pyharness.run then
    scans every log for sanitizer reports)."""
    rc = stop(bridge)
    log = open(os.path.join(TMP, "bridge.log"), errors="replace").read()
    check(rc == 0, "the bridge exits 0 on SIGTERM", rc)
    check("bridge_stop bridge=main" in log and "bridge_stop bridge=second" in log,
          "both bridges logged bridge_stop")


def test_bridge_kill():
    kill_mid_stream("bridge", "kb")
    print(f"  retransmits stored once after the bridge kill: "
          f"{status('main').get('in_duplicates', 0)}")


def test_broker_kill():
    kill_mid_stream("broker", "ks")


def setup():
    mosquitto_start()
    broker_start()
    write_config()


def main():
    return run([setup, test_command_line, bridge_start, test_in_and_out,
                test_ack_after_durable, test_retransmit_stored_once, test_bridge_kill,
                test_broker_kill, test_out_broker_kill, test_out_bridge_kill,
                test_reconnect, test_sigterm], TMP, procs)


if __name__ == "__main__":
    sys.exit(main())

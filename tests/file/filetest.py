"""filetest - what the sluice-file tests share: a real sluiced in a
temporary directory on a port the kernel picks (restartable on the same
port, killable with SIGKILL), the `sluice` and `sluice-file` programs, the
messages of a topic read back, and a check() that counts. Every process
is started here and stopped by its PID.

Usage from a test: FileTest(sys.argv[1], "name").finish(body). The
temporary directory is removed after a pass unless $SLUICE_TEST_KEEP is
set.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time


class Fail(Exception):
    pass


class FileTest:
    def __init__(self, build, name):
        self.build = build
        self.sluiced = os.path.join(build, "broker", "sluiced")
        self.cli = os.path.join(build, "adapters", "cli", "sluice")
        self.file = os.path.join(build, "adapters", "file", "sluice-file")
        self.tmp = tempfile.mkdtemp(prefix=f"sluice-{name}-")
        self.data = os.path.join(self.tmp, "data")
        self.state = os.path.join(self.tmp, "state")
        self.env = dict(os.environ, SLUICE_HOME=self.data,
                        SLUICE_FILE_STATE=self.state)
        for v in ("SLUICE_BROKER", "SLUICE_CERT", "SLUICE_SERVER_KEY"):
            self.env.pop(v, None)
        self.procs = []
        self.checks = 0
        self.broker = None
        self.endpoint = None
        self.name = name

    # ------------------------------------------------------------ checks

    def check(self, cond, what, detail=""):
        self.checks += 1
        if not cond:
            raise Fail(f"{what}{': ' + str(detail) if detail else ''}")

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    # ---------------------------------------------------------- processes

    def start(self, args, log):
        f = open(self.path(log), "ab")
        p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=self.env)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=20):
        if p.poll() is None:
            p.send_signal(sig)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise Fail(f"{p.args[:2]} did not stop within {timeout} s of signal {sig}")

    def run(self, args, timeout=120):
        return subprocess.run(args, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def sluice_file(self, *args, timeout=120):
        return self.run([self.file, *args], timeout=timeout)

    def second_refused(self, cmd, log, text, what):
        """CMD started twice: the second one exits 1 saying TEXT."""
        first = self.start(cmd, log)
        time.sleep(0.5)
        r = self.run(cmd, timeout=30)
        self.check(r.returncode == 1 and text in r.stderr, what, r.stderr[-500:])
        self.stop(first, signal.SIGTERM)

    # ------------------------------------------------------------- broker

    def broker_start(self):
        listen = self.endpoint or "tcp://127.0.0.1:*"
        self.broker = self.start([self.sluiced, "--data-dir", self.data, "--listen", listen],
                                 "sluiced.log")
        ep = os.path.join(self.data, "endpoint")
        for _ in range(200):
            if os.path.exists(ep) and os.path.exists(os.path.join(self.data, "server.pub")):
                with open(ep) as f:
                    line = f.readline().strip()
                if line and (self.endpoint is None or line == self.endpoint):
                    self.endpoint = line
                    break
            self.check(self.broker.poll() is None, "the broker started",
                       open(self.path("sluiced.log")).read()[-2000:])
            time.sleep(0.05)
        for _ in range(200):
            if self.run([self.cli, "stats", "--timeout", "1"]).returncode == 0:
                return
            time.sleep(0.05)
        raise Fail("the broker does not answer `sluice stats`")

    def broker_kill(self):
        self.stop(self.broker, signal.SIGKILL)

    def sluice(self, *args):
        r = self.run([self.cli, *args])
        self.check(r.returncode == 0, f"sluice {' '.join(args)}", r.stderr)
        return r.stdout

    def topic_messages(self, topic):
        for t in json.loads(self.sluice("stats", "--json"))["topics"]:
            if t["name"] == topic:
                return t["messages"]
        return 0

    def read_topic(self, topic, count):
        """The payloads of TOPIC's first COUNT messages, in offset order."""
        sub = f"read-{topic}-{time.monotonic_ns()}"
        r = self.run([self.cli, "sub", topic, "--subscription", sub, "--from",
                      "earliest", "--count", str(count), "--timeout", "10"], timeout=300)
        self.check(r.returncode == 0, f"read {count} messages of {topic}",
                   r.stderr[-500:])
        lines = r.stdout.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        self.sluice("sub-rm", sub)
        return lines

    # ------------------------------------------------------------- finish

    def finish(self, body):
        rc = 0
        try:
            body(self)
            print(f"{self.name}: {self.checks} checks passed")
        except Fail as e:
            print(f"FAIL: {e}\n(logs in {self.tmp})")
            rc = 1
        finally:
            for p in self.procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        if rc == 0 and not os.environ.get("SLUICE_TEST_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        sys.exit(rc)

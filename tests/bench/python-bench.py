#!/usr/bin/python3
"""python-bench - durable publish throughput of the Python SDK.

Starts its own sluiced (CurveZMQ and fsync on, its defaults) in a temporary
data dir on loopback, unless --broker is given; publishes N messages of
SIZE bytes to one topic with the async API and times from the first
publish until flush() has every durable ack. Two ways: `publish`, one
Client.publish() per message, the futures kept in a list as an
application keeps them; `many`, Client.publish_many() with the whole
list. Every future must have resolved to a distinct offset, and the topic
must hold exactly what was sent. A benchmark, not a test (STYLE.md rule
9): run it by hand, after building with meson:

    tests/bench/python-bench.py --build build-rel --runs 3

Last lines: "RESULT broker=sluice workload=py-MODE size=SIZE
msgs_per_s=N ... loadavg=L" (the median run), as sluice-bench prints.
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=str(ROOT / "build"),
                   help="meson build dir with broker/sluiced and libsluice (default: build)")
    p.add_argument("--broker", help="use this running broker (endpoint) instead of starting one")
    p.add_argument("--home", help="with --broker: its data dir for the keys (else plain text)")
    p.add_argument("-n", type=int, default=200_000, help="messages per run (default 200000)")
    p.add_argument("--size", type=int, default=256, help="payload bytes (default 256)")
    p.add_argument("--runs", type=int, default=3, help="runs per mode; the median is reported")
    p.add_argument("--mode", choices=["publish", "many", "both"], default="both")
    p.add_argument("--plaintext", action="store_true",
                   help="start the broker with --insecure-plaintext (default: CurveZMQ)")
    return p.parse_args()


class Broker:
    """A sluiced of our own, stopped by PID."""

    def __init__(self, sluiced: str, plaintext: bool):
        self.dir = tempfile.mkdtemp(prefix="sluice-pybench-")
        self.log = open(self.dir + ".log", "wb")
        argv = [sluiced, "--data-dir", self.dir, "--listen", "tcp://127.0.0.1:*"]
        if plaintext:
            argv.append("--insecure-plaintext")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        self.endpoint = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            m = re.search(r"listening on (tcp://[0-9.]+:\d+),",
                          Path(self.dir + ".log").read_text("utf-8", "replace"))
            if m:
                self.endpoint = m.group(1)
                return
            time.sleep(0.01)
        self.stop()
        sys.exit(f"python-bench: sluiced did not start: see {self.dir}.log")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        os.unlink(self.dir + ".log")


def one_run(sluice, client_args: dict, mode: str, n: int, size: int, run: int) -> float:
    topic = f"bench.py.{mode}.{run}"
    payload = bytes(size)
    with sluice.Client(**client_args) as c:
        c.publish_sync(topic, b"warm-up")
        t0 = time.perf_counter()
        if mode == "publish":
            publish = c.publish
            futs = [publish(topic, payload) for _ in range(n)]
        else:
            futs = c.publish_many(topic, [payload] * n)
        c.flush(300)
        dt = time.perf_counter() - t0
        offsets = {f.result(0) for f in futs}
        if len(offsets) != n or min(offsets) != 1 or max(offsets) != n:
            sys.exit(f"python-bench: {mode}: {len(offsets)} distinct offsets for {n} messages")
        stored = c.topic(topic).messages
        if stored != n + 1:
            sys.exit(f"python-bench: {mode}: {stored - 1} stored for {n} sent")
    return n / dt


def main() -> None:
    a = parse()
    build = Path(a.build)
    os.environ.setdefault("SLUICE_LIB", str(build / "adapters" / "sdk" / "libsluice.so.0"))
    sys.path.insert(0, str(ROOT / "adapters" / "python"))
    import sluice

    broker = None
    if a.broker:
        client_args = {"broker": a.broker}
        if a.home:
            client_args["home"] = a.home
        else:
            client_args["insecure_plaintext"] = True
    else:
        broker = Broker(str(build / "broker" / "sluiced"), a.plaintext)
        client_args = ({"broker": broker.endpoint, "insecure_plaintext": True}
                       if a.plaintext else {"home": broker.dir})
    modes = ["publish", "many"] if a.mode == "both" else [a.mode]
    results = {}
    try:
        for mode in modes:
            rates = []
            for run in range(a.runs):
                rate = one_run(sluice, client_args, mode, a.n, a.size, run)
                rates.append(rate)
                print(f"{mode} run {run + 1}: {rate:,.0f} msgs/s "
                      f"(load average {os.getloadavg()[0]:.2f})", flush=True)
            results[mode] = rates
    finally:
        if broker:
            broker.stop()
    security = "plaintext" if a.plaintext or (a.broker and not a.home) else "curve"
    for mode, rates in results.items():
        print(f"RESULT broker=sluice workload=py-{mode} size={a.size} n={a.n} "
              f"msgs_per_s={statistics.median(rates):.0f} min={min(rates):.0f} "
              f"max={max(rates):.0f} runs={len(rates)} security={security} "
              f"durability=\"fsync before ack\" python={sys.version.split()[0]} "
              f"loadavg={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

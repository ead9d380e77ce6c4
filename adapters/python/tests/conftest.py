"""conftest - a real sluiced for the SDK's tests.

Each broker runs in a fresh temporary data directory on a loopback port the
kernel picks, is stopped by its PID (SIGTERM, or SIGKILL for the crash
tests) and restarted on the same directory and port. The programs come
from the environment meson's test() sets: SLUICED (the broker) and
SLUICE_LIB (libsluice, read by the package itself). A broker that logged a
sanitizer report fails the test, as the C harness does.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
           "Sanitizer:DEADLYSIGNAL")


def _sluiced() -> str:
    path = os.environ.get("SLUICED") or str(ROOT / "build" / "broker" / "sluiced")
    if not os.access(path, os.X_OK):
        pytest.exit(f"no broker at {path}: set SLUICED (meson test does)", 2)
    return path


def _die_with_parent() -> None:
    # A test that dies never reaches its cleanup: the broker must not
    # outlive the test process (PR_SET_PDEATHSIG = 1). The signal comes
    # when the *thread* that started it ends: start brokers on the test's
    # main thread only.
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)


class Broker:
    """One sluiced: start(), stop(sig), restart on the same dir and port."""

    def __init__(self, secure: bool = False, extra: list[str] | None = None):
        self.dir = tempfile.mkdtemp(prefix="sluice-py-")
        self.log = self.dir + ".log"
        self.secure = secure
        self.extra = list(extra or [])
        self.endpoint: str | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # The test's Python may run with the sanitizer runtime preloaded
        # (meson, build-asan); the broker links its own and checks leaks.
        if "asan" in env.pop("LD_PRELOAD", ""):
            env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
        return env

    def start(self) -> "Broker":
        assert self.proc is None, "broker already running"
        listen = self.endpoint or "tcp://127.0.0.1:*"
        argv = [_sluiced(), "--data-dir", self.dir, "--listen", listen, *self.extra]
        if not self.secure:
            argv.append("--insecure-plaintext")
        for _attempt in range(50):
            with open(self.log, "ab") as log:
                start = log.tell()
                self.proc = subprocess.Popen(argv, stdout=log, stderr=log,
                                             stdin=subprocess.DEVNULL,
                                             env=self._env(),
                                             preexec_fn=_die_with_parent)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                text = Path(self.log).read_bytes()[start:].decode("utf-8", "replace")
                m = re.search(r"listening on (tcp://[0-9.]+:\d+),", text)
                if m:
                    self.endpoint = m.group(1)
                    return self
                if self.proc.poll() is not None:
                    break
                time.sleep(0.01)
            self._reap(signal.SIGKILL)
            # A restart may race the old socket: retry only that.
            if "cannot listen" not in text:
                raise RuntimeError(f"sluiced did not start; its log:\n{text}")
            time.sleep(0.1)
        raise RuntimeError("sluiced could not bind its port again")

    def _reap(self, sig: int) -> int:
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop with SIG and reap; fail on a sanitizer report in the log or
        a crash at SIGTERM."""
        rc = self._reap(sig)
        text = Path(self.log).read_text("utf-8", "replace")
        for mark in REPORTS:
            assert mark not in text, f"sluiced reported an error:\n{text[text.index(mark):][:6000]}"
        if sig == signal.SIGTERM:
            assert rc == 0, f"sluiced exited {rc} on SIGTERM; log:\n{text[-3000:]}"
        return rc

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> "Broker":
        if self.proc:
            self.stop()
        return self.start()

    def destroy(self) -> None:
        try:
            if self.proc:
                self.stop()
        finally:
            if os.environ.get("SLUICE_TEST_KEEP"):
                print(f"kept {self.dir} and {self.log}")
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
                try:
                    os.unlink(self.log)
                except FileNotFoundError:
                    pass


@pytest.fixture
def broker():
    """A plain-text broker (--insecure-plaintext), started."""
    b = Broker().start()
    yield b
    b.destroy()


@pytest.fixture
def secure_broker():
    """A broker with its defaults: CurveZMQ, keys in its data dir."""
    b = Broker(secure=True).start()
    yield b
    b.destroy()


@pytest.fixture
def client(broker):
    import sluice
    c = sluice.Client(broker=broker.endpoint, insecure_plaintext=True)
    yield c
    c.close(timeout=5)


@pytest.fixture(autouse=True)
def _no_sluice_env(monkeypatch, tmp_path):
    """Tests say where to connect; the caller's SLUICE_* must not."""
    for v in ("SLUICE_BROKER", "SLUICE_HOME", "SLUICE_CERT", "SLUICE_SERVER_KEY"):
        monkeypatch.delenv(v, raising=False)
    # Nor a ./var/sluice of the directory pytest runs in (SL_DEFAULT_HOME).
    monkeypatch.chdir(tmp_path)

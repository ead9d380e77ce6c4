"""harness - what the conformance tests stand on: the doc's two tables, the
row registry that ties each test to one row, real sluiced processes in
temporary data dirs, and a raw DEALER client speaking Frames.

Owns the brokers it starts (stopped by PID, data dirs removed) and the
sockets it opens. Single-threaded. Talks to nothing but 127.0.0.1. It
deliberately knows nothing of the broker's code: everything here is taken
from docs/protocol.md and proto/sluice.proto.
"""

import ctypes
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import zmq
from zmq.utils import monitor as zmonitor
from zmq.utils import z85

from google.protobuf import text_format

pb = None  # sluice_pb2, set by load_pb (generated into the build dir)


def load_pb(module):
    global pb
    pb = module


# ------------------------------------------------------------ the doc's tables

def _split_row(line):
    """Cells of one Markdown table line. A '|' inside a `code span` or
    escaped as '\\|' does not split."""
    cells, cur, in_code, i = [], [], False, 0
    body = line.strip()
    if body.startswith('|'):
        body = body[1:]
    while i < len(body):
        ch = body[i]
        if ch == '\\' and i + 1 < len(body) and body[i + 1] == '|':
            cur.append('|')
            i += 2
            continue
        if ch == '`':
            in_code = not in_code
        if ch == '|' and not in_code:
            cells.append(''.join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    if ''.join(cur).strip():
        cells.append(''.join(cur))
    return [c.strip() for c in cells]


def row_key(text):
    """The key a test names a row by: its first cell with whitespace runs
    made single spaces. Nothing else is normalised, so any edit of the
    cell's words forces the test to be looked at again."""
    return ' '.join(text.split())


def doc_tables(path):
    """{'commands': [key, ...], 'refusals': [key, ...]} in document order:
    the first table under '## Commands' and under '## Refusals'."""
    wanted = {'## commands': 'commands', '## refusals': 'refusals'}
    out = {}
    section = None
    with open(path, encoding='utf-8') as f:
        lines = f.read().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith('## '):
            section = wanted.get(line.strip().lower())
        elif section and section not in out and line.lstrip().startswith('|'):
            rows = []
            header = True
            while i < len(lines) and lines[i].lstrip().startswith('|'):
                cells = _split_row(lines[i])
                if header:
                    header = False
                elif all(re.fullmatch(r':?-+:?', c) for c in cells if c):
                    pass  # the |---| separator
                else:
                    rows.append(row_key(cells[0]))
                i += 1
            out[section] = rows
            continue
        i += 1
    for name in wanted.values():
        if name not in out:
            raise RuntimeError('%s: no table under "## %s"' % (path, name.capitalize()))
    return out


# ---------------------------------------------------------------- row registry

REGISTRY = []  # (table, key, fn, unreachable reason or None)


def row(table, key):
    """Register the decorated test for row KEY (its first cell, exactly as
    in docs/protocol.md) of TABLE ('commands' or 'refusals')."""
    assert table in ('commands', 'refusals'), table

    def deco(fn):
        REGISTRY.append((table, row_key(key), fn, None))
        return fn
    return deco


def unreachable(table, key, reason):
    """Register row KEY of TABLE as one no client can bring about; the
    runner reports it as UNREACHABLE with REASON instead of running a test
    that could not fail."""
    assert table in ('commands', 'refusals'), table
    REGISTRY.append((table, row_key(key), None, reason))


class Fail(AssertionError):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


# --------------------------------------------------------------------- brokers

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # A runner killed by meson's timeout must not leave a broker behind.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


class Broker:
    """One sluiced in a fresh temporary dir, listening on a loopback port the
    kernel chose. SECURE leaves sluiced's default (CurveZMQ, default deny);
    otherwise it runs --insecure-plaintext. SETTINGS are --set KEY=VALUE."""

    def __init__(self, exe, name, secure=False, settings=(), encrypt=False):
        self.exe = exe
        self.name = name
        self.secure = secure
        self.base = tempfile.mkdtemp(prefix='sluice-conf-%s-' % name)
        self.data = os.path.join(self.base, 'data')
        os.mkdir(self.data, 0o700)
        self.log = os.path.join(self.base, 'sluiced.log')
        self.args = [exe, '--data-dir', self.data, '--listen', 'tcp://127.0.0.1:*',
                     '--sync=off']
        for s in settings:
            self.args += ['--set', s]
        if encrypt:
            key = os.path.join(self.base, 'at-rest.key')
            subprocess.run([exe, '--new-key', key], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.args += ['--encrypt-at-rest', key]
        if not secure:
            self.args.append('--insecure-plaintext')
        self.proc = None
        self.endpoint = None
        self.server_key = None     # Z85 bytes
        self.admin_keys = None     # (public, secret), Z85 bytes

    def start(self):
        logf = open(self.log, 'ab')
        self.proc = subprocess.Popen(self.args, stdout=logf, stderr=logf,
                                     stdin=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent)
        logf.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ep = self._find_endpoint()
            if ep:
                self.endpoint = ep
                break
            if self.proc.poll() is not None:
                raise RuntimeError('sluiced (%s) exited with %s before listening:\n%s'
                                   % (self.name, self.proc.returncode, self.log_tail()))
            time.sleep(0.01)
        else:
            self.stop()
            raise RuntimeError('sluiced (%s) did not listen within 10 s:\n%s'
                               % (self.name, self.log_tail()))
        check(self.endpoint.startswith('tcp://127.0.0.1:'),
              'broker listens on %s, not loopback' % self.endpoint)
        if self.secure:
            with open(os.path.join(self.data, 'server.pub')) as f:
                self.server_key = f.readline().strip().encode()
            self.admin_keys = read_cert(os.path.join(self.data, 'admin.cert'))
        return self

    def _find_endpoint(self):
        # As tests/integration/harness.c s_find_endpoint: the log line
        # "listening on ENDPOINT, data in ...".
        try:
            with open(self.log, errors='replace') as f:
                text = f.read()
        except OSError:
            return None
        found = None
        for line in text.splitlines():
            p = line.find('listening on ')
            if p < 0:
                continue
            rest = line[p + len('listening on '):]
            e = rest.find(',')
            if e > 0:
                found = rest[:e]
        return found

    def log_tail(self, n=15):
        try:
            with open(self.log, errors='replace') as f:
                return ''.join(f.readlines()[-n:])
        except OSError:
            return '(no log)'

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM, then SIGKILL after 5 s. Returns the exit status (None if
        it never ran; negative: killed by that signal)."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
        return rc

    def remove(self):
        shutil.rmtree(self.base, ignore_errors=True)


def read_cert(path):
    """(public, secret) Z85 bytes from a ZPL certificate (docs/protocol.md):
    lines 'public-key = "..."' and 'secret-key = "..."' under 'curve'."""
    keys = {}
    with open(path) as f:
        for line in f:
            if line.lstrip().startswith('#'):
                continue
            m = re.match(r'\s+(public-key|secret-key)\s*=\s*"(.{40})"\s*$', line)
            if m:
                keys[m.group(1)] = m.group(2).encode()
    return keys['public-key'], keys['secret-key']


def raw_key(z85_key):
    """The 32 raw bytes of a Z85 key (what KeyAdd.public_key carries)."""
    return z85.decode(z85_key)


# ---------------------------------------------------------------------- client

_corrs = itertools.count(0x5100000001, 7919)


def corr():
    """A fresh corr: distinct, nonzero, and unlike any small number a
    broker might put there by accident."""
    return next(_corrs)


def dump(frame, limit=400):
    s = text_format.MessageToString(frame, as_one_line=True)
    if len(s) > limit:
        s = s[:limit] + '...'
    return '{%s}' % s


REPLY_TIMEOUT = 2.0


class Client:
    """A raw client: one DEALER socket connected to BROKER, sending and
    receiving exactly one-part messages of one encoded Frame. KEYS is
    (public, secret) Z85 for a CurveZMQ broker (the admin key when None);
    ROUTING_ID sets ZMQ_ROUTING_ID. MONITOR records socket events."""

    def __init__(self, ctx, broker, keys=None, routing_id=None, monitor=False):
        self.broker = broker
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        if routing_id is not None:
            self.sock.routing_id = routing_id
        if broker.secure:
            pub, sec = keys or broker.admin_keys
            self.sock.curve_serverkey = broker.server_key
            self.sock.curve_publickey = pub
            self.sock.curve_secretkey = sec
        self.mon = self.sock.get_monitor_socket() if monitor else None
        self.events = []
        self.pending = []      # frames received but not yet taken
        self.sock.connect(broker.endpoint)

    def close(self):
        if self.mon is not None:
            self.sock.disable_monitor()
            self.mon.close(0)
        self.sock.close(0)

    # -- sending
    def send(self, frame):
        self.sock.send(frame.SerializeToString())

    def send_raw(self, data):
        if isinstance(data, (list, tuple)):
            self.sock.send_multipart(data)
        else:
            self.sock.send(data)

    # -- receiving
    def _recv_one(self, timeout):
        if self.sock.poll(max(0, int(timeout * 1000)), zmq.POLLIN):
            parts = self.sock.recv_multipart()
            check(len(parts) == 1, 'broker sent a %d-part message' % len(parts))
            f = pb.Frame()
            try:
                f.ParseFromString(parts[0])
            except Exception as e:  # noqa: BLE001 - any decode error is a finding
                raise Fail('broker sent bytes that do not decode as a Frame: %r (%s)'
                           % (parts[0][:60], e))
            return f
        return None

    def _fill(self, timeout):
        f = self._recv_one(timeout)
        if f is not None:
            self.pending.append(f)
        return f

    def take(self, pred, timeout=REPLY_TIMEOUT, what='a reply'):
        """The first received frame PRED accepts (frames it does not accept
        stay pending). Fails after TIMEOUT seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for i, f in enumerate(self.pending):
                if pred(f):
                    return self.pending.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                others = [dump(f, 120) for f in self.pending if f.WhichOneof('body') != 'deliver']
                raise Fail('no %s within %.1f s%s' % (
                    what, timeout, ('; other frames: ' + ', '.join(others)) if others else ''))
            self._fill(left)

    def reply(self, c, timeout=REPLY_TIMEOUT):
        """The frame answering corr C. A frame that is not a Deliver and has
        a corr nobody asked for is a finding: it is reported."""
        return self.take(lambda f: f.corr == c and f.WhichOneof('body') != 'deliver',
                         timeout, 'reply with corr %d' % c)

    def any_reply(self, timeout=REPLY_TIMEOUT):
        """The next frame that is not a Deliver, whatever its corr."""
        return self.take(lambda f: f.WhichOneof('body') != 'deliver', timeout,
                         'reply (any corr)')

    def request(self, frame, timeout=REPLY_TIMEOUT):
        """Send FRAME (its corr set fresh when 0) and return its reply."""
        if frame.corr == 0:
            frame.corr = corr()
        self.send(frame)
        return self.reply(frame.corr, timeout)

    def silence(self, seconds, allow_deliver=True):
        """Fail if any frame (a Deliver too, unless ALLOW_DELIVER) arrives
        within SECONDS. Returns nothing; pending Delivers stay pending."""
        deadline = time.monotonic() + seconds
        while True:
            for f in self.pending:
                if not (allow_deliver and f.WhichOneof('body') == 'deliver'):
                    raise Fail('expected no reply, got %s' % dump(f))
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._fill(left)

    def collect(self, seconds):
        """Every frame but Delivers that arrives within SECONDS (taken off
        the pending list)."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._fill(left)
        out = [f for f in self.pending if f.WhichOneof('body') != 'deliver']
        self.pending = [f for f in self.pending if f.WhichOneof('body') == 'deliver']
        return out

    def deliveries(self, n, timeout=REPLY_TIMEOUT):
        """The next N Delivery entries (from one or more Deliver frames)."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail('%d of %d deliveries within %.1f s' % (len(out), n, timeout))
            f = self.take(lambda f: f.WhichOneof('body') == 'deliver', left, 'Deliver')
            check(f.corr == 0, 'Deliver frame with corr %d (docs: Deliver carries corr 0)' % f.corr)
            out.extend(f.deliver.msgs)
        return out

    def no_delivery(self, seconds):
        """Fail if a Deliver arrives within SECONDS."""
        deadline = time.monotonic() + seconds
        while True:
            for f in self.pending:
                if f.WhichOneof('body') == 'deliver':
                    raise Fail('unexpected delivery %s' % dump(f))
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._fill(left)

    # -- socket events
    def wait_event(self, wanted, timeout=3.0):
        """Wait for a socket event in WANTED (a set of ZMQ_EVENT_*); returns
        the event dict. Events seen are kept in self.events."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail('no socket event %s within %.1f s (saw %s)' % (
                    '/'.join(event_name(e) for e in wanted), timeout,
                    ', '.join(event_name(e['event']) for e in self.events) or 'none'))
            if self.mon.poll(int(left * 1000) + 1):
                ev = zmonitor.recv_monitor_message(self.mon)
                self.events.append(ev)
                if ev['event'] in wanted:
                    return ev

    # -- the commands most tests need
    def hello(self, heartbeat_ms=0, producer_id=b'', version=1):
        f = pb.Frame(corr=corr())
        f.hello.version = version
        f.hello.client = 'conformance'
        f.hello.heartbeat_ms = heartbeat_ms
        f.hello.producer_id = producer_id
        r = self.request(f)
        if version == 1:
            expect_body(r, 'hello_ok', f.corr)
        return r

    def publish(self, topic, payload=b'{}', producer_id=b'', seq=0, headers=(),
                transient=False, c=None):
        f = pb.Frame(corr=corr() if c is None else c)
        m = f.publish.msg
        m.topic = topic
        m.payload = payload
        m.producer_id = producer_id
        m.seq = seq
        for k, v in headers:
            m.headers.add(key=k, value=v)
        f.publish.transient = transient
        return f

    def publish_one(self, topic, payload=b'{}', **kw):
        """Publish one durable message; returns its Confirm (any code)."""
        f = self.publish(topic, payload, **kw)
        r = self.request(f)
        expect_body(r, 'publish_ack', f.corr)
        check(len(r.publish_ack.confirms) == 1,
              'PublishAck of one Publish has %d confirms' % len(r.publish_ack.confirms))
        return r.publish_ack.confirms[0]

    def publish_ok(self, topic, payload=b'{}', **kw):
        c = self.publish_one(topic, payload, **kw)
        check(c.code == 0, 'publish to %s refused: %d %s' % (topic, c.code, c.text))
        return c

    def subscribe(self, name, pattern, credit=10, ack_wait_ms=0, max_deliver=0,
                  ephemeral=False, start=0):
        f = pb.Frame(corr=corr())
        s = f.subscribe
        s.name = name
        s.pattern = pattern
        s.credit = credit
        s.ack_wait_ms = ack_wait_ms
        s.max_deliver = max_deliver
        s.ephemeral = ephemeral
        s.start = start
        return f

    def subscribe_ok(self, *a, **kw):
        f = self.subscribe(*a, **kw)
        r = self.request(f)
        expect_body(r, 'subscribe_ok', f.corr)
        return r.subscribe_ok

    def admin(self, body, timeout=REPLY_TIMEOUT, **fields):
        """Send a command whose body is BODY (a Frame field name) with FIELDS;
        returns the reply."""
        f = pb.Frame(corr=corr())
        getattr(f, body).SetInParent()
        msg = getattr(f, body)
        for k, v in fields.items():
            if isinstance(v, (list, tuple)):
                getattr(msg, k).extend(v)
            else:
                setattr(msg, k, v)
        return self.request(f, timeout), f.corr

    def ok(self, body, **fields):
        r, c = self.admin(body, **fields)
        expect_body(r, 'ok', c)
        return r


def event_name(e):
    for n in dir(zmq):
        if n.startswith('EVENT_') and getattr(zmq, n) == e and n != 'EVENT_ALL':
            return n
    return str(e)


# ------------------------------------------------------------------ assertions

def expect_body(frame, body, c):
    """FRAME has body BODY and echoes corr C."""
    got = frame.WhichOneof('body')
    if got != body:
        raise Fail('expected %s (corr %d), got %s' % (body, c, dump(frame)))
    check(frame.corr == c, '%s echoes corr %d, sent %d' % (body, frame.corr, c))


def expect_error(frame, code, c, text=None, retryable=False, contains=()):
    """FRAME is Error CODE with corr C, the RETRYABLE flag, a text starting
    with TEXT (a str, or a tuple of acceptable starts) and holding each
    string of CONTAINS."""
    if frame.WhichOneof('body') != 'error' or frame.error.code != code:
        raise Fail('expected Error %d (corr %d), got %s' % (code, c, dump(frame)))
    e = frame.error
    check(frame.corr == c, 'Error %d echoes corr %d, sent %d' % (code, frame.corr, c))
    _expect_text(e.text, text, contains, 'Error %d' % code)
    check(e.retryable == retryable, 'Error %d retryable=%s, docs say %s (text %r)'
          % (code, e.retryable, retryable, e.text))


def expect_confirm(conf, code, text=None, retryable=False, contains=()):
    if conf.code != code:
        raise Fail('expected Confirm %d, got Confirm code=%d text=%r retryable=%s'
                   % (code, conf.code, conf.text, conf.retryable))
    _expect_text(conf.text, text, contains, 'Confirm %d' % code)
    check(conf.retryable == retryable, 'Confirm %d retryable=%s, docs say %s'
          % (code, conf.retryable, retryable))


def expect_refused(item, code, text=None, contains=()):
    if item.code != code:
        raise Fail('expected AckRefused %d, got code=%d text=%r' % (code, item.code, item.text))
    _expect_text(item.text, text, contains, 'AckRefused %d' % code)


def _expect_text(got, start, contains, what):
    if start is not None:
        starts = start if isinstance(start, tuple) else (start,)
        check(any(got.startswith(s) for s in starts),
              '%s text %r does not start with %s'
              % (what, got, ' or '.join(repr(s) for s in starts)))
    for s in contains:
        check(s in got, '%s text %r does not name %r' % (what, got, s))


# ----------------------------------------------------------------------- world

LIMITS = ('limits/max_frame_bytes=65536', 'limits/max_message_bytes=1024',
          'limits/max_batch=10')

# The brokers tests may ask for, each started on first use and shared by
# the tests that follow. Small limits keep the suite fast.
BROKERS = {
    # every client is the identity "plaintext" with every right
    'plain': dict(secure=False, settings=LIMITS),
    # CurveZMQ, default deny; sealed at rest so that RotateKey has work
    'curve': dict(secure=True, settings=LIMITS, encrypt=True),
    # session timeout: max(3 x heartbeat, 300 ms); the default heartbeat 150 ms
    'session': dict(secure=False, settings=('broker/session_timeout_ms=600',
                                            'broker/heartbeat_ms=300')),
    'max_connections': dict(secure=False, settings=('limits/max_connections=2',)),
    'max_subscriptions': dict(secure=False, settings=('limits/max_subscriptions=2',)),
    # map_size = map_size_max: the ceiling is reached without growing
    'full': dict(secure=False, settings=('storage/map_size=1M', 'storage/map_size_max=1M',
                                         'limits/max_message_bytes=16K')),
}


class World:
    """The brokers and sockets of one run. Tests get it as their argument:
    w.broker(NAME) starts (once) and returns a Broker of BROKERS;
    w.client(NAME, ...) opens a Client closed after the test."""

    def __init__(self, exe):
        self.exe = exe
        self.ctx = zmq.Context()
        self.brokers = {}
        self.clients = []

    def broker(self, name):
        b = self.brokers.get(name)
        if b is None:
            b = Broker(self.exe, name, **BROKERS[name])
            self.brokers[name] = b
            b.start()
        check(b.alive(), 'broker %s is not running (exit %s):\n%s'
              % (name, b.proc.poll(), b.log_tail()))
        return b

    def client(self, name, **kw):
        c = Client(self.ctx, self.broker(name), **kw)
        self.clients.append(c)
        return c

    def session(self, name, **kw):
        """A client that has said Hello."""
        c = self.client(name, **kw)
        c.hello()
        return c

    def end_test(self):
        for c in self.clients:
            c.close()
        self.clients = []

    def shutdown(self):
        """Stop every broker; returns [(name, exit status, log tail)] for
        each that did not exit 0 on SIGTERM (a crash is a finding too)."""
        self.end_test()
        bad = []
        for name, b in self.brokers.items():
            rc = b.stop()
            if rc not in (0, None):
                bad.append((name, rc, b.log_tail()))
            if os.environ.get('SLUICE_CONFORMANCE_KEEP'):
                print('kept %s: %s' % (name, b.base))
            else:
                b.remove()
        self.ctx.term()
        return bad

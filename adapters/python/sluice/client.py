"""client - Client: one connection to one broker, and publishing.

Owns the sl_client_t handle, the futures of publishes awaiting their
confirm and the confirm callback that settles them. libsluice does I/O only
inside its calls, so a future resolves inside this client's calls (poll,
flush, publish, Subscription.get) or inside Future.result(), which drives
the client while it waits. A Client belongs to the thread that created it:
every method refuses another thread (one Client per thread). Subscriptions
and messages live in subscription.py, admin calls in admin.py.
"""
from __future__ import annotations

import datetime
import threading
import time
import weakref
from typing import TYPE_CHECKING, Iterable, Mapping

from ._ffi import ffi, lib
from .admin import AdminMixin
from .future import PublishFuture
from .errors import (SL_EBUSY, SL_ETIMEOUT, SL_EUNAVAIL, SL_EVERSION,
                     SluiceError, error)

if TYPE_CHECKING:
    from .subscription import Subscription

# Longest single wait inside C: Python runs signal handlers (Ctrl-C) only
# between C calls, so a long wait is cut into slices this long.
_SLICE_MS = 100


def _ms(timeout: float | None) -> int:
    """Seconds (None = forever) as libsluice's milliseconds (-1 = forever)."""
    if timeout is None:
        return -1
    return max(0, int(timeout * 1000))


def _text(p) -> str | None:
    """A C string as str; None for NULL or ""."""
    if p == ffi.NULL:
        return None
    s = ffi.string(p).decode("utf-8", "replace")
    return s or None


def _cstr(s: str | bytes | None, keep: list):
    """S as a char* kept alive by KEEP; NULL for None."""
    if s is None:
        return ffi.NULL
    b = s.encode() if isinstance(s, str) else bytes(s)
    c = ffi.new("char[]", b)
    keep.append(c)
    return c


class _Driver:
    """What futures, subscriptions and messages share with their client
    without keeping the Client object alive: the handle, the owner thread,
    the pending futures and the messages to free on the client's thread."""

    __slots__ = ("ptr", "owner", "pending", "early", "in_cb", "graveyard",
                 "subs", "doomed", "__weakref__")

    def __init__(self, ptr):
        self.ptr = ptr                  # sl_client_t *, None once closed
        self.owner = threading.get_ident()
        self.pending: dict[int, PublishFuture] = {}   # seq -> future
        self.early: dict[int, object] = {}  # seq -> outcome seen before
                                            # sl_publish returned its seq
        self.in_cb = 0                  # > 0 while a confirm callback runs
        self.graveyard: list = []       # sl_msg_t ** dropped by the GC
        self.subs = weakref.WeakSet()   # open Subscriptions (they hold the
                                        # Client; a strong set would cycle)
        self.doomed = False             # the Client was dropped inside a
                                        # callback: destroy after the C call

    def check(self) -> None:
        """Refuse a closed client and a foreign thread."""
        if self.ptr is None:
            raise error(SL_EUNAVAIL, "the client is closed")
        if threading.get_ident() != self.owner:
            raise error(SL_EBUSY, "a Client belongs to the thread that created "
                        "it; create one Client per thread")

    def fail(self, rc: int) -> SluiceError:
        """The exception for RC with the client's last error as its text."""
        return error(rc, _text(lib.sl_client_last_error(self.ptr))
                     if self.ptr is not None else None)

    def bury(self) -> None:
        """Free the messages the GC dropped since the last call (their
        sl_msg_destroy touches the subscription, so it runs here, on the
        client's thread)."""
        while self.graveyard:
            lib.sl_msg_destroy(self.graveyard.pop())

    def poll(self, timeout_ms: int) -> int:
        """One sl_poll; raises on failure, returns the events handled."""
        if self.in_cb:
            raise error(SL_EBUSY, "cannot wait for the broker inside a confirm "
                        "callback (a Future's done-callback); return first")
        if self.graveyard:
            self.bury()
        rc = lib.sl_poll(self.ptr, timeout_ms)
        if self.doomed:
            self.destroy()
            return 0
        if rc < 0:
            if rc == SL_EVERSION:
                self.abandon(rc, "the broker speaks another protocol version")
            raise self.fail(rc)
        return rc

    def drive(self, fut: PublishFuture, timeout: float | None) -> bool:
        """Do the client's I/O until FUT is done or TIMEOUT passes; True.
        From another thread, or after close, do nothing and return False:
        the caller then waits on the future like on any other."""
        if self.ptr is None or threading.get_ident() != self.owner:
            return False
        deadline = None if timeout is None else time.monotonic() + timeout
        while not fut.done():
            if deadline is None:
                left = _SLICE_MS
            else:
                left = min(_SLICE_MS, int((deadline - time.monotonic()) * 1000))
                if left <= 0:
                    break
            self.poll(left)
        return True

    def destroy(self) -> None:
        """Close the C client; fail what is pending (UnavailableError)."""
        self.bury()
        for sub in list(self.subs):
            sub._forget()
        p = ffi.new("sl_client_t **", self.ptr)
        self.ptr = None
        lib.sl_client_destroy(p)
        self.abandon(SL_EUNAVAIL, "the client was closed before the broker confirmed")

    def abandon(self, code: int, text: str) -> None:
        """Fail every pending future with CODE (close, a fatal error)."""
        pending, self.pending = self.pending, {}
        self.early.clear()
        for seq, fut in pending.items():
            fut._resolve(None, error(code, f"{text} (seq {seq} unconfirmed)"))


def _make_callback(drv: _Driver):
    """The confirm callback of one client: settles the future of each
    confirmed seq. It closes over the driver, not the Client, so the
    Client has no reference cycle and is freed when dropped."""
    pending = drv.pending
    early = drv.early

    def on_confirm(c, _arg):
        seq = c.seq
        rc = c.rc
        if rc == 0:
            outcome = c.offset
        else:
            outcome = error(rc, _text(c.text))
        fut = pending.pop(seq, None)
        if fut is None:
            # Settled inside sl_publish before it returned the seq.
            early[seq] = outcome
            return
        drv.in_cb += 1
        try:
            if rc == 0:
                fut._resolve(outcome, None)
            else:
                fut._resolve(None, outcome)
        finally:
            drv.in_cb -= 1

    return ffi.callback("void(const sl_confirm_t *, void *)", on_confirm)


class Client(AdminMixin):
    """A connection to a sluice broker (libsluice's sl_client_t).

    Where to connect is settled the way the ``sluice`` command does
    (sl_connect_resolve): BROKER, HOME (the broker's data directory:
    its endpoint, server.pub and admin.cert), CERT and SERVER_KEY, else
    $SLUICE_BROKER, $SLUICE_HOME, $SLUICE_CERT, $SLUICE_SERVER_KEY, else
    ./var/sluice when it holds a server.pub, else tcp://127.0.0.1:5555.
    INSECURE_PLAINTEXT connects without keys (a broker started with
    --insecure-plaintext). PRODUCER_ID_FILE keeps the producer id across
    runs, so a message resent after a crash of this process is stored
    once. The other keywords are sl_options_t's (0/None = the default).

    Connecting happens on demand; ``connect()`` waits for it. Use it as a
    context manager or call close(): unconfirmed publishes are waited for
    (up to close()'s timeout), then abandoned with UnavailableError.
    """

    def __init__(self, broker: str | None = None, home: str | None = None,
                 cert: str | None = None, server_key: str | None = None,
                 insecure_plaintext: bool = False,
                 producer_id_file: str | None = None, *,
                 name: str | None = None, linger_ms: int = 0,
                 max_batch: int = 0, max_batch_bytes: int = 0,
                 max_unacked: int = 0, block_ms: int | None = None,
                 heartbeat_ms: int = 0, dead_after_ms: int = 0,
                 connect_timeout_ms: int = 0,
                 public_key: str | None = None, secret_key: str | None = None):
        self._sl: _Driver | None = None
        keep: list = []
        args = ffi.new("sl_connect_args_t *")
        args.broker = _cstr(broker, keep)
        args.home = _cstr(home, keep)
        args.cert = _cstr(cert, keep)
        args.server_key = _cstr(server_key, keep)
        args.plaintext = bool(insecure_plaintext)
        conn = ffi.new("sl_connect_t *")
        err = ffi.new("char[1024]")
        rc = lib.sl_connect_resolve(args, conn, err, len(err))
        if rc:
            raise error(rc, _text(err))
        opts = ffi.new("sl_options_t *")
        lib.sl_options_init(opts)
        lib.sl_connect_apply(conn, opts)
        if public_key or secret_key:
            opts.cert = ffi.NULL
            opts.public_key = _cstr(public_key, keep)
            opts.secret_key = _cstr(secret_key, keep)
        opts.name = _cstr(name or "python", keep)
        opts.producer_id_file = _cstr(producer_id_file, keep)
        if linger_ms:
            opts.linger_ms = linger_ms
        opts.max_batch = max_batch
        opts.max_batch_bytes = max_batch_bytes
        opts.max_unacked = max_unacked
        if block_ms is not None:
            opts.block_ms = block_ms
        opts.heartbeat_ms = heartbeat_ms
        opts.dead_after_ms = dead_after_ms
        opts.connect_timeout_ms = connect_timeout_ms
        out = ffi.new("sl_client_t **")
        rc = lib.sl_client_new(opts, out)
        if rc:
            # No client, so no last error: the check tells why.
            lib.sl_options_check(opts, err, len(err))
            raise error(rc, _text(err))
        self.endpoint: str = ffi.string(conn.endpoint).decode()
        """The endpoint this client connects to."""
        self.home: str | None = _text(conn.home)
        """The broker data directory whose keys are used, or None."""
        self._sl = _Driver(out[0])
        self._cb = _make_callback(self._sl)
        self._msg = ffi.new("sl_message_t *")
        self._seq = ffi.new("uint64_t *")
        self._topics: dict[str, object] = {}
        self._extras = False

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        # A client dropped without close(): free the C side without
        # waiting. Inside one of its callbacks (a future's driver or a
        # message's ack still runs C code of this client) only after that
        # C call returns. On another thread (the GC runs anywhere) the
        # handle is left alone: it must not be touched from there.
        sl = getattr(self, "_sl", None)
        if sl is None or sl.ptr is None or threading.get_ident() != sl.owner:
            return
        if sl.in_cb:
            sl.doomed = True
        else:
            sl.destroy()

    def close(self, timeout: float | None = 30.0) -> None:
        """Wait up to TIMEOUT seconds (None = forever, 0 = not at all) for
        unconfirmed publishes and queued acks, then close the connection.
        Futures still pending then fail with UnavailableError. Idempotent."""
        sl = self._sl
        if sl is None or sl.ptr is None:
            return
        sl.check()
        if sl.in_cb:
            raise error(SL_EBUSY, "close() inside a confirm callback: the client "
                        "is in the middle of a call; close it after that")
        if timeout != 0:
            try:
                self.flush(timeout)
            except SluiceError:
                pass            # what did not make it is failed below
        sl.destroy()

    @property
    def closed(self) -> bool:
        return self._sl is None or self._sl.ptr is None

    def connect(self) -> None:
        """Wait until the broker has admitted this client (at most the
        connect timeout). Optional: every call connects on demand. Raises
        AuthError (with why), TimeoutError, VersionError, BusyError."""
        sl = self._sl
        sl.check()
        rc = lib.sl_client_connect(sl.ptr)
        if rc:
            raise sl.fail(rc)

    @property
    def connected(self) -> bool:
        """True while a session with the broker is established."""
        return not self.closed and bool(lib.sl_client_connected(self._sl.ptr))

    @property
    def reconnects(self) -> int:
        """How many times the session was re-established."""
        self._sl.check()
        return int(lib.sl_client_reconnects(self._sl.ptr))

    @property
    def public_key(self) -> str:
        """This client's public key (Z85), "" in plain text."""
        self._sl.check()
        return ffi.string(lib.sl_client_public_key(self._sl.ptr)).decode()

    @property
    def unconfirmed(self) -> int:
        """Publishes not confirmed yet."""
        self._sl.check()
        return int(lib.sl_unconfirmed(self._sl.ptr))

    # -------------------------------------------------------------- publish

    def _topic(self, topic: str):
        """TOPIC as a C string, cached: topics repeat, conversions cost."""
        c = self._topics.get(topic)
        if c is None:
            if len(self._topics) >= 4096:
                self._topics.clear()
            c = self._topics[topic] = ffi.new("char[]", topic.encode())
        return c

    def _fill(self, topic, payload, headers, content_type, msg_id, keep):
        """Point the reused sl_message_t at one message; KEEP holds what
        it points to until the C call has copied it."""
        m = self._msg
        m.topic = self._topic(topic)
        if isinstance(payload, str):
            payload = payload.encode()
        buf = ffi.from_buffer(payload)
        keep.append(buf)
        m.payload = buf
        m.len = len(buf)
        if headers or content_type or msg_id:
            self._extras = True
            m.content_type = _cstr(content_type, keep)
            m.msg_id = _cstr(msg_id, keep)
            if headers:
                items = list(headers.items())
                h = ffi.new("sl_header_t[]", len(items))
                keep.append(h)
                for i, (k, v) in enumerate(items):
                    h[i].key = _cstr(k, keep)
                    h[i].value = _cstr(v, keep)
                m.headers = h
                m.nheaders = len(items)
            else:
                m.headers = ffi.NULL
                m.nheaders = 0
        elif self._extras:
            self._extras = False
            m.content_type = m.msg_id = m.headers = ffi.NULL
            m.nheaders = 0
        return m

    def publish(self, topic: str, payload: bytes | bytearray | memoryview | str,
                headers: Mapping[str, str] | None = None,
                content_type: str | None = None,
                msg_id: str | None = None) -> PublishFuture:
        """Queue one message (batched with others; str payloads are sent as
        UTF-8) and return a future of its offset after the durable ack.

        The future fails with the broker's final refusal (InvalidError for
        a schema violation, with its JSON pointer and rule; DeniedError
        without a grant, ...); broker restarts and lost connections are
        retried by libsluice and never seen here. MSG_ID makes the broker
        store a message with the same id on this topic once. Raises at
        once for what cannot be queued: a bad topic or header
        (InvalidError), TooBigError, BusyError when max_unacked publishes
        await confirm longer than block_ms."""
        sl = self._sl
        if sl.ptr is None or threading.get_ident() != sl.owner:
            sl.check()
        keep: list = []
        m = self._fill(topic, payload, headers, content_type, msg_id, keep)
        rc = lib.sl_publish(sl.ptr, m, self._cb, ffi.NULL, self._seq)
        if rc:
            raise sl.fail(rc)
        return self._track(sl, self._seq[0])

    def _track(self, sl: _Driver, seq: int) -> PublishFuture:
        fut = PublishFuture(sl)
        if sl.early and seq in sl.early:
            outcome = sl.early.pop(seq)
            if isinstance(outcome, BaseException):
                fut._resolve(None, outcome)
            else:
                fut._resolve(outcome, None)
        else:
            sl.pending[seq] = fut
        return fut

    def publish_many(self, topic: str,
                     payloads: Iterable[bytes | bytearray | memoryview | str],
                     headers: Mapping[str, str] | None = None,
                     content_type: str | None = None) -> list[PublishFuture]:
        """publish() for each payload of one topic, with the same headers
        and content type; a list of futures in order. Cheaper per message
        than a loop of publish() (one check, one setup). A payload that
        cannot be queued raises; the futures of the ones before it are in
        the exception's ``futures`` attribute."""
        sl = self._sl
        sl.check()
        keep: list = []
        m = self._fill(topic, b"", headers, content_type, None, keep)
        ptr, cb, seqp = sl.ptr, self._cb, self._seq
        publish = lib.sl_publish
        from_buffer = ffi.from_buffer
        null = ffi.NULL
        pending, early = sl.pending, sl.early
        out: list[PublishFuture] = []
        append = out.append
        for payload in payloads:
            if isinstance(payload, str):
                payload = payload.encode()
            buf = from_buffer(payload)
            m.payload = buf
            m.len = len(buf)
            rc = publish(ptr, m, cb, null, seqp)
            if rc:
                e = sl.fail(rc)
                e.futures = out
                raise e
            seq = seqp[0]
            fut = PublishFuture(sl)
            if early and seq in early:
                o = early.pop(seq)
                if isinstance(o, BaseException):
                    fut._resolve(None, o)
                else:
                    fut._resolve(o, None)
            else:
                pending[seq] = fut
            append(fut)
        return out

    def publish_sync(self, topic: str,
                     payload: bytes | bytearray | memoryview | str,
                     headers: Mapping[str, str] | None = None,
                     content_type: str | None = None, msg_id: str | None = None,
                     timeout: float | None = 30.0) -> int:
        """Publish and wait (at most TIMEOUT seconds, None = forever) for
        the durable ack; returns the offset. Raises the refusal, or
        TimeoutError (the message stays queued and is still sent)."""
        f = self.publish(topic, payload, headers, content_type, msg_id)
        try:
            return f.result(timeout)
        except TimeoutError as e:
            if isinstance(e, SluiceError):
                raise
            raise error(SL_ETIMEOUT, f"no durable ack within {timeout} s") from None

    def publish_transient(self, topic: str,
                          payload: bytes | bytearray | memoryview | str,
                          headers: Mapping[str, str] | None = None,
                          content_type: str | None = None) -> None:
        """Fan out to the ephemeral subscribers connected now; not stored,
        not confirmed (fire and forget)."""
        self._sl.check()
        keep: list = []
        m = self._fill(topic, payload, headers, content_type, None, keep)
        rc = lib.sl_publish_transient(self._sl.ptr, m)
        if rc:
            raise self._sl.fail(rc)

    def poll(self, timeout: float | None = 0) -> int:
        """Do the client's pending I/O for up to TIMEOUT seconds (0 = what
        is ready; None = until at least one event): confirms (futures
        resolve here), deliveries, heartbeats, batches, reconnects.
        Returns the number of frames handled."""
        sl = self._sl
        sl.check()
        if timeout is None:
            while True:
                n = sl.poll(_SLICE_MS)
                if n:
                    return n
        return sl.poll(_ms(timeout))

    def flush(self, timeout: float | None = None) -> None:
        """Send everything queued and wait until every publish is confirmed
        (and queued acks sent), at most TIMEOUT seconds (None = forever).
        Raises TimeoutError when some are still unconfirmed."""
        sl = self._sl
        sl.check()
        if sl.in_cb:
            raise error(SL_EBUSY, "flush() inside a confirm callback")
        sl.bury()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if deadline is None:
                left = _SLICE_MS
            else:
                left = max(0, min(_SLICE_MS, int((deadline - time.monotonic()) * 1000)))
            rc = lib.sl_flush(sl.ptr, left)
            if rc == 0:
                return
            if rc != SL_ETIMEOUT or (deadline is not None and time.monotonic() >= deadline):
                if rc == SL_ETIMEOUT:
                    raise error(rc, f"{lib.sl_unconfirmed(sl.ptr)} publishes still "
                                f"unconfirmed after {timeout} s")
                raise sl.fail(rc)

    def subscribe(self, topic: str, subscription: str | None = None, *,
                  start: str | int | datetime.datetime | None = None, credit: int = 0,
                  ack_wait: float | None = None, max_deliver: int = 0,
                  idle_timeout: float | None = None) -> Subscription:
        """Subscribe to TOPIC (a topic or a pattern: '*' one word, '>' the
        rest) as the durable SUBSCRIPTION (None: ephemeral fan-out, no acks)
        and return an iterator of Message.

        START: None resumes a durable subscription where it was acked (a
        new one starts at the latest), "earliest", "latest", an int offset,
        or a datetime (the first message stored at or after it). CREDIT is
        how many messages the broker may send ahead, ACK_WAIT (seconds)
        when an unacked message is redelivered, MAX_DELIVER how many
        attempts before the dead-letter queue (0 = broker defaults).
        Iteration ends after IDLE_TIMEOUT seconds without a message (None =
        never). Raises InvalidError, ExistsError (the name exists with
        another pattern), DeniedError, TimeoutError."""
        from .subscription import Subscription
        return Subscription._open(self, topic, subscription, start, credit,
                                  ack_wait, max_deliver, idle_timeout)


__all__ = ["Client", "PublishFuture"]

"""subscription - Subscription (an iterator of messages) and Message.

Owns the sl_sub_t of one subscription and the sl_msg_t of each message
handed out until it is acked, nacked or dropped. Client thread only, like
the Client: a Message dropped on another thread (or by the GC at any
moment) is freed at the client's next call, never from inside another C
call. Publishing and the connection live in client.py.
"""
from __future__ import annotations

import datetime as _dt
import threading
import time
from typing import Iterator

from ._ffi import ffi, lib
from .client import _SLICE_MS, Client, _Driver, _text
from .errors import SL_EINVAL, SL_ETIMEOUT, SL_EUNAVAIL, error

_START = {None: lib.SL_START_DEFAULT, "default": lib.SL_START_DEFAULT,
          "earliest": lib.SL_START_EARLIEST, "latest": lib.SL_START_LATEST}

# Messages freed after their client closed may come from any thread; the
# subscription they share is not the client's any more, only theirs.
_orphans = threading.Lock()


class Message:
    """One delivered message. ``payload`` is bytes (``text`` decodes it as
    UTF-8); ``headers`` a dict; ``attempt`` 1 on the first delivery.
    A durable message is delivered again after the subscription's
    ack_wait unless acked; ack() or nack() settles it and frees its C
    memory (a message not settled holds its delivery batch)."""

    __slots__ = ("topic", "offset", "payload", "headers", "content_type",
                 "attempt", "ingest_us", "subscription", "_h", "_sl")

    topic: str
    offset: int
    payload: bytes
    headers: dict[str, str]
    content_type: str | None
    attempt: int
    ingest_us: int
    subscription: str | None

    def __init__(self, sl: _Driver, h):
        """Takes ownership of H (a sl_msg_t **)."""
        m = h[0]
        self._sl = sl
        self._h = h
        self.topic = ffi.string(lib.sl_msg_topic(m)).decode("utf-8", "replace")
        self.offset = int(lib.sl_msg_offset(m))
        n = ffi.new("size_t *")
        p = lib.sl_msg_payload(m, n)
        self.payload = ffi.unpack(ffi.cast("char *", p), n[0]) if n[0] else b""
        self.content_type = _text(lib.sl_msg_content_type(m))
        self.attempt = int(lib.sl_msg_attempt(m))
        self.ingest_us = int(lib.sl_msg_ingest_us(m))
        self.subscription = _text(lib.sl_msg_subscription(m))
        self.headers = {}
        count = lib.sl_msg_header_count(m)
        if count:
            k = ffi.new("const char **")
            v = ffi.new("const char **")
            for i in range(count):
                if lib.sl_msg_header_at(m, i, k, v) == 0:
                    self.headers[ffi.string(k[0]).decode("utf-8", "replace")] = \
                        ffi.string(v[0]).decode("utf-8", "replace")

    def __repr__(self) -> str:
        return (f"Message(topic={self.topic!r}, offset={self.offset}, "
                f"attempt={self.attempt}, payload={self.payload[:40]!r})")

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8."""
        return self.payload.decode("utf-8")

    def _handle(self):
        h = self._h
        if h is None:
            raise error(SL_EINVAL, f"{self.topic}@{self.offset} was already acked or nacked")
        self._sl.check()
        return h

    def _after(self) -> None:
        """Its Client was dropped inside a callback of this call: close it
        now that the C call has returned."""
        if self._sl.doomed and self._sl.ptr is not None:
            self._sl.destroy()

    def _release(self) -> None:
        h, self._h = self._h, None
        if h is not None:
            lib.sl_msg_destroy(h)

    def ack(self, sync: bool = False, timeout: float | None = 30.0) -> None:
        """Acknowledge: the broker will not deliver this message again.
        Sent with the next batch of acks; with SYNC wait (at most TIMEOUT
        seconds) until the broker has stored it, where a SluiceError with
        code SL_ESTALE means this attempt was superseded by a redelivery
        to another consumer (it will be processed again)."""
        h = self._handle()
        if sync:
            rc = lib.sl_ack_sync(h[0], -1 if timeout is None else int(timeout * 1000))
        else:
            rc = lib.sl_ack(h[0])
        self._after()
        if rc:
            raise self._sl.fail(rc)
        self._release()

    def nack(self, delay: float = 0.0, reason: str | None = None) -> None:
        """Negative acknowledge: deliver again no sooner than DELAY seconds
        from now (an attempt counts towards max_deliver). REASON (optional)
        says why: when this was the last attempt, the dead-letter copy's
        dlq-reason header and the _advisory.dlq event end with "; last
        nack: REASON". At most 512 bytes of its UTF-8 are kept (cut at a
        character boundary), control characters become spaces, and the
        broker keeps it in memory only (a restart forgets it)."""
        h = self._handle()
        why = ffi.NULL if reason is None else ffi.new("char[]", reason.encode())
        rc = lib.sl_nack_reason(h[0], max(0, int(delay * 1000)), why)
        self._after()
        if rc:
            raise self._sl.fail(rc)
        self._release()

    def __del__(self) -> None:
        h = getattr(self, "_h", None)
        if h is None:
            return
        self._h = None
        sl = self._sl
        if sl.ptr is None:
            with _orphans:
                lib.sl_msg_destroy(h)
        else:
            sl.graveyard.append(h)


class Subscription:
    """An open subscription: iterate it for messages, ack each. Closing it
    (or leaving its with-block) stops deliveries; close(remove=True) also
    deletes a durable subscription and its cursor at the broker."""

    def __init__(self, client: Client, handle, pattern: str, name: str | None,
                 idle_timeout: float | None):
        self._client = client           # kept alive while the subscription is
        self._sl = client._sl
        self._h = handle                # sl_sub_t **, borrowed from the client
        self.pattern = pattern
        self.name = name
        self.idle_timeout = idle_timeout

    @classmethod
    def _open(cls, client: Client, topic: str, name: str | None, start,
              credit: int, ack_wait: float | None, max_deliver: int,
              idle_timeout: float | None) -> "Subscription":
        sl = client._sl
        sl.check()
        keep: list = []
        o = ffi.new("sl_sub_options_t *")
        lib.sl_sub_options_init(o)
        t = ffi.new("char[]", topic.encode())
        keep.append(t)
        o.pattern = t
        if name is None:
            o.ephemeral = True
        else:
            n = ffi.new("char[]", name.encode())
            keep.append(n)
            o.name = n
        if isinstance(start, bool):
            raise TypeError("start: 'earliest', 'latest', an offset or a datetime")
        if isinstance(start, int):
            o.start = lib.SL_START_OFFSET
            o.start_offset = start
        elif isinstance(start, _dt.datetime):
            o.start = lib.SL_START_TIME
            o.start_time_us = int(start.timestamp() * 1_000_000)
        elif start in _START:
            o.start = _START[start]
        else:
            raise ValueError(f"start={start!r}: use None, 'earliest', 'latest', "
                             "an offset (int) or a datetime")
        if credit:
            o.credit = credit
        if ack_wait is not None:
            o.ack_wait_ms = int(ack_wait * 1000)
        o.max_deliver = max_deliver
        sl.bury()
        out = ffi.new("sl_sub_t **")
        rc = lib.sl_subscribe(sl.ptr, o, out)
        if rc:
            raise sl.fail(rc)
        sub = cls(client, out, topic, name, idle_timeout)
        sl.subs.add(sub)
        return sub

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[Message]:
        return self

    def __next__(self) -> Message:
        m = self.get(self.idle_timeout)
        if m is None:
            raise StopIteration
        return m

    def get(self, timeout: float | None = None) -> Message | None:
        """The next message, waiting at most TIMEOUT seconds (None =
        forever) while doing the client's I/O (confirms of publishes
        resolve meanwhile); None when none came."""
        sl = self._sl
        sl.check()
        if self._h is None:
            raise error(SL_EUNAVAIL, f"subscription {self.name or self.pattern} is closed")
        if sl.graveyard:
            sl.bury()
        out = ffi.new("sl_msg_t **")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if deadline is None:
                left = _SLICE_MS
            else:
                left = max(0, min(_SLICE_MS, int((deadline - time.monotonic()) * 1000)))
            rc = lib.sl_sub_next(self._h[0], left, out)
            if rc == 0:
                return Message(sl, out)
            if rc != SL_ETIMEOUT:
                raise sl.fail(rc)
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def close(self, remove: bool = False) -> None:
        """Stop the subscription; with REMOVE delete the durable
        subscription and its cursor at the broker too. Idempotent."""
        if self._h is None:
            return
        sl = self._sl
        if sl.ptr is None:
            self._forget()
            return
        sl.check()
        h, self._h = self._h, None
        sl.subs.discard(self)
        rc = lib.sl_unsubscribe(h, remove)
        if rc:
            raise sl.fail(rc)

    def _forget(self) -> None:
        """The client is closing: its handle dies with it."""
        self._h = None
        self._sl.subs.discard(self)

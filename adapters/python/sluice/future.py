"""future - PublishFuture, the concurrent.futures.Future of one publish.

Owns the outcome of one message: its offset after the durable ack, or the
final refusal. Resolved only on the client's thread (inside the client's
calls); read from any thread. Waiting on the client's thread drives the
client's I/O (a libsluice client has no thread of its own), so result()
never waits for something only the waiting thread could do.

Why not a plain Future: Future.__init__ builds a threading.Condition and
two lists, about 2 us and six objects the garbage collector tracks, per
message; at 100,000 messages a second that was half the Python time. Here
they are made on first use (another thread waiting, concurrent.futures.
wait, a done-callback) and the common case - nobody waits on the future
while it is pending - sets two attributes. The protocol that keeps it
correct is in _resolve.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures._base import FINISHED, RUNNING

_LAZY_LIST = ("_waiters", "_done_callbacks")


class PublishFuture(Future):
    """A Future resolving to the offset of a published message once the
    broker has stored it durably, or to the SluiceError of a final
    refusal (``exception()``). It is ``running()`` until then and cannot
    be cancelled: the message may be stored already.

    On the thread that owns the client, result() and exception() do the
    client's I/O while they wait. On another thread they wait like any
    Future, for the owner thread to do that I/O (its poll, flush, publish
    or Subscription.get calls). Works with concurrent.futures.wait,
    as_completed and asyncio.wrap_future."""

    def __init__(self, driver):
        # Future.__init__ is skipped on purpose: see the module's top.
        self._state = RUNNING
        self._result = None
        self._exception = None
        self._sl = driver

    def __getattr__(self, name):
        # Only for attributes not set yet: the lazily made parts of Future.
        # setdefault is atomic, so two threads get the same object.
        if name == "_condition":
            return self.__dict__.setdefault(name, threading.Condition())
        if name in _LAZY_LIST:
            return self.__dict__.setdefault(name, [])
        raise AttributeError(name)

    def _resolve(self, result, exc) -> None:
        """Settle the future (client thread, once). The state is written
        before looking for a condition: a thread that made the condition
        after that look then reads FINISHED under it and does not wait; a
        thread that made it before is found and notified. Waiters (wait(),
        as_completed()) and done-callbacks exist only with a condition."""
        if exc is None:
            self._result = result
        else:
            self._exception = exc
        self._state = FINISHED
        d = self.__dict__
        if "_condition" not in d:
            return
        with self._condition:
            for w in d.get("_waiters", ()):
                if exc is None:
                    w.add_result(self)
                else:
                    w.add_exception(self)
            self._condition.notify_all()
        if "_done_callbacks" in d:
            self._invoke_callbacks()

    def cancel(self) -> bool:
        """Always False: a publish cannot be taken back."""
        return False

    def done(self) -> bool:
        return self._state == FINISHED

    def result(self, timeout: float | None = None) -> int:
        """The offset; raises the refusal, or TimeoutError after TIMEOUT
        seconds (None = forever). On the client's thread it drives the
        client meanwhile and raises what the client raises (AuthError while
        the broker refuses this client's key: the message stays queued)."""
        if self._state != FINISHED and self._sl.drive(self, timeout):
            timeout = 0
        if self._state == FINISHED:
            if self._exception is not None:
                raise self._exception
            return self._result
        return super().result(timeout)

    def exception(self, timeout: float | None = None):
        """The refusal, or None once stored; waits like result()."""
        if self._state != FINISHED and self._sl.drive(self, timeout):
            timeout = 0
        if self._state == FINISHED:
            return self._exception
        return super().exception(timeout)

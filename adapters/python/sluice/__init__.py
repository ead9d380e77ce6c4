"""sluice - the Python SDK of the sluice integration hub.

A binding of libsluice (cffi, ABI mode: nothing is compiled), so batching,
reconnect, resend after a broker restart and CurveZMQ are the C library's.
docs/python.md is the guide. In short::

    import sluice
    with sluice.Client(home="var/sluice") as c:
        f = c.publish("demo.greetings", b"hello")   # a Future
        print(f.result())                            # offset, once durable
        with c.subscribe("demo.greetings", "me", start="earliest",
                         idle_timeout=1) as sub:
            for m in sub:
                print(m.offset, m.payload)
                m.ack()

One Client per thread: futures resolve inside the client's own calls.
"""
from ._ffi import LIB_PATH
from .admin import SubscriptionInfo, TopicInfo, keygen
from .client import Client, PublishFuture
from .errors import (AuthError, BusyError, DeniedError, ExistsError,
                     InvalidError, NotFoundError, SluiceError,
                     StorageFullError, TimeoutError, TooBigError,
                     UnavailableError, VersionError, strerror)
from .subscription import Message, Subscription

__version__ = "0.1.0"

__all__ = [
    "Client", "PublishFuture", "Subscription", "Message", "TopicInfo",
    "SubscriptionInfo", "keygen", "strerror", "LIB_PATH", "SluiceError",
    "AuthError", "BusyError", "DeniedError", "ExistsError", "InvalidError",
    "NotFoundError", "StorageFullError", "TimeoutError", "TooBigError",
    "UnavailableError", "VersionError",
]

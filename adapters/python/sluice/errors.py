"""errors - the exceptions of the sluice package.

Owns SluiceError, one subclass per common SL_E* code, and the table that
turns a code from libsluice into the right one. No state; any thread.
"""
from __future__ import annotations

from ._ffi import ffi, lib

# proto/sluice_codes.h, sign included: a C call returns these.
CODES: dict[int, str] = {
    -400: "SL_EMALFORMED",
    -401: "SL_ENOSESSION",
    -403: "SL_EDENIED",
    -404: "SL_ENOTFOUND",
    -405: "SL_ECOMMAND",
    -407: "SL_EAUTH",
    -408: "SL_ETIMEOUT",
    -409: "SL_ESTALE",
    -412: "SL_EEXIST",
    -413: "SL_ETOOBIG",
    -422: "SL_EINVAL",
    -426: "SL_EVERSION",
    -429: "SL_EBUSY",
    -500: "SL_EINTERNAL",
    -502: "SL_ESTORE",
    -503: "SL_EUNAVAIL",
    -504: "SL_ENOMEM",
    -505: "SL_ESYS",
    -507: "SL_EFULL",
}
globals().update({name: code for code, name in CODES.items()})


def strerror(code: int) -> str:
    """libsluice's text for CODE (sl_strerror)."""
    return ffi.string(lib.sl_strerror(code)).decode("utf-8", "replace")


class SluiceError(Exception):
    """A failure reported by libsluice or the broker.

    ``code`` is the negative SL_E* code (e.g. -407), ``name`` its symbol
    ("SL_EAUTH") and ``text`` the reason: the broker's or the library's
    words when there are some, else the code's generic text.
    """

    def __init__(self, code: int, text: str | None = None):
        self.code = code
        self.name = CODES.get(code, f"SL_E{-code}")
        self.text = text or strerror(code)
        super().__init__(code, self.name, self.text)

    def __str__(self) -> str:
        return f"{self.name} ({-self.code}): {self.text}"


class AuthError(SluiceError):
    """SL_EAUTH: the broker did not admit this client's key, or the server
    key is not the broker's."""


class DeniedError(SluiceError, PermissionError):
    """SL_EDENIED: this identity is not granted the operation."""


class NotFoundError(SluiceError, LookupError):
    """SL_ENOTFOUND: no such topic, subscription, schema or offset."""


class InvalidError(SluiceError, ValueError):
    """SL_EINVAL: a bad argument or a message the broker refused (a schema
    violation carries the JSON pointer and rule in ``text``)."""


class ExistsError(SluiceError):
    """SL_EEXIST: exists already with another definition."""


class TooBigError(SluiceError, ValueError):
    """SL_ETOOBIG: larger than the broker allows."""


class BusyError(SluiceError):
    """SL_EBUSY: a limit was reached (max_unacked, the broker's limits), or
    a call that must wait was made inside a callback."""


class TimeoutError(SluiceError, TimeoutError):  # noqa: A001 - on purpose
    """SL_ETIMEOUT: no answer in time. Also a builtin TimeoutError."""


class UnavailableError(SluiceError, ConnectionError):
    """SL_EUNAVAIL: the broker is unreachable, or the client was closed
    before an answer came."""


class VersionError(SluiceError):
    """SL_EVERSION: the broker speaks another protocol version."""


class StorageFullError(SluiceError):
    """SL_EFULL: the broker's storage is full; retry later."""


_CLASSES: dict[int, type[SluiceError]] = {
    -407: AuthError,
    -403: DeniedError,
    -404: NotFoundError,
    -422: InvalidError,
    -412: ExistsError,
    -413: TooBigError,
    -429: BusyError,
    -408: TimeoutError,
    -503: UnavailableError,
    -426: VersionError,
    -507: StorageFullError,
}


def error(code: int, text: str | None = None) -> SluiceError:
    """The exception for CODE, of the most specific class."""
    return _CLASSES.get(code, SluiceError)(code, text)

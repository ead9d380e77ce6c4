"""admin - the admin calls of a Client: topics, stats, keys, grants,
schemas; and keygen, which needs no client.

Owns nothing: each call is one libsluice request on the client's handle
(client thread only, like every Client method), waiting at most the
client's connect timeout. The broker's refusal text comes back in the
exception. The rest of the admin API (mappings, routes, trace) is the
`sluice` command's.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

from ._ffi import ffi, lib

PERMS = {"publish": 1, "subscribe": 2, "admin": 4, "consume": 8}


@dataclass(frozen=True)
class TopicInfo:
    """One topic as sl_stats reports it."""
    name: str
    first_offset: int
    next_offset: int
    messages: int
    bytes: int
    max_age_ms: int
    max_bytes: int


@dataclass(frozen=True)
class SubscriptionInfo:
    """One subscription as sl_stats reports it."""
    name: str
    pattern: str
    ephemeral: bool
    attached: bool
    lag: int
    in_flight: int
    delivered: int
    redelivered: int
    dead_lettered: int
    acked: int
    cursor: int
    dropped: int
    owner: str


def _s(chars) -> str:
    return ffi.string(chars).decode("utf-8", "replace")


def keygen(name: str, cert_path: str | None, pub_path: str | None = None) -> str:
    """Make a client key pair for NAME: the certificate (both keys, mode
    0600) into CERT_PATH, the public key into PUB_PATH (either may be
    None); never replaces a file. Returns the public key (Z85), the one
    to register with Client.key_add."""
    from .client import _text
    from .errors import error
    pub = ffi.new("char[41]")
    err = ffi.new("char[1024]")
    rc = lib.sl_cert_create(name.encode(),
                            cert_path.encode() if cert_path else ffi.NULL,
                            pub_path.encode() if pub_path else ffi.NULL,
                            pub, err, len(err))
    if rc:
        raise error(rc, _text(err))
    return ffi.string(pub).decode()


class AdminMixin:
    """Admin requests; mixed into Client."""

    def _req(self, rc: int) -> None:
        if rc:
            raise self._sl.fail(rc)

    def topic_create(self, name: str, max_age: float | None = None,
                     max_bytes: int | None = None) -> None:
        """Create topic NAME with retention limits (MAX_AGE seconds,
        MAX_BYTES; None = the broker's default); an existing topic gets the
        new limits."""
        self._sl.check()
        self._req(lib.sl_topic_create(self._sl.ptr, name.encode(),
                                      int((max_age or 0) * 1000), max_bytes or 0))

    def stats(self) -> tuple[list[TopicInfo], list[SubscriptionInfo]]:
        """The broker's topics and subscriptions."""
        self._sl.check()
        tp = ffi.new("sl_topic_info_t **")
        nt = ffi.new("size_t *")
        sp = ffi.new("sl_sub_info_t **")
        ns = ffi.new("size_t *")
        self._req(lib.sl_stats(self._sl.ptr, tp, nt, sp, ns))
        try:
            topics = [TopicInfo(_s(t.name), t.first_offset, t.next_offset,
                                t.messages, t.bytes, t.max_age_ms, t.max_bytes)
                      for t in (tp[0][i] for i in range(nt[0]))]
            subs = [SubscriptionInfo(_s(s.name), _s(s.pattern), bool(s.ephemeral),
                                     bool(s.attached), s.lag, s.in_flight,
                                     s.delivered, s.redelivered, s.dead_lettered,
                                     s.acked, s.cursor, s.dropped, _s(s.owner))
                    for s in (sp[0][i] for i in range(ns[0]))]
        finally:
            lib.free(tp[0])
            lib.free(sp[0])
        return topics, subs

    def topic(self, name: str) -> TopicInfo:
        """One topic's stats; NotFoundError when there is no such topic."""
        from .errors import SL_ENOTFOUND, error
        for t in self.stats()[0]:
            if t.name == name:
                return t
        raise error(SL_ENOTFOUND, f"no topic {name}")

    def subscription_remove(self, name: str) -> None:
        """Delete durable subscription NAME and its cursor."""
        self._sl.check()
        self._req(lib.sl_sub_remove(self._sl.ptr, name.encode()))

    def key_add(self, name: str, public_key: str) -> None:
        """Register identity NAME with PUBLIC_KEY (Z85, or a .pub or
        certificate file). It has no grants until grant()."""
        self._sl.check()
        self._req(lib.sl_key_add(self._sl.ptr, name.encode(), public_key.encode()))

    def key_revoke(self, name: str) -> None:
        """Revoke NAME: refused from now on, its connections closed."""
        self._sl.check()
        self._req(lib.sl_key_revoke(self._sl.ptr, name.encode()))

    def grant(self, name: str, pattern: str, perms: Iterable[str],
              revoke: bool = False) -> None:
        """Give NAME the PERMS ("publish", "subscribe", "admin", "consume")
        on topic PATTERN, or take them off with REVOKE."""
        bits = 0
        for p in perms:
            if p not in PERMS:
                raise ValueError(f"unknown permission {p!r}: one of {', '.join(PERMS)}")
            bits |= PERMS[p]
        self._sl.check()
        pat = ffi.new("char[]", pattern.encode())
        g = ffi.new("sl_grant_t *", {"perms": bits, "pattern": pat})
        self._req(lib.sl_grant(self._sl.ptr, name.encode(), g, 1, revoke))

    def schema_register(self, subject: str, schema: str | dict[str, Any],
                        compat: str | None = None) -> int:
        """Register SCHEMA (JSON text or a dict) as the next version of
        SUBJECT; returns its version. InvalidError with every
        incompatibility when refused."""
        if not isinstance(schema, str):
            schema = json.dumps(schema)
        self._sl.check()
        version = ffi.new("uint32_t *")
        existed = ffi.new("bool *")
        self._req(lib.sl_schema_register(self._sl.ptr, subject.encode(), schema.encode(),
                                         compat.encode() if compat else ffi.NULL,
                                         False, version, existed))
        return int(version[0])

    def topic_set_schema(self, topic: str, subject: str | None, version: int = 0,
                         invalid: str = "reject") -> None:
        """Validate publishes to TOPIC against SUBJECT@VERSION (0 = the
        latest); INVALID "reject" refuses a bad message (the publish fails
        with InvalidError), "dlq" keeps it in _dlq.schema.TOPIC. SUBJECT
        None removes the binding."""
        self._sl.check()
        self._req(lib.sl_topic_set_schema(self._sl.ptr, topic.encode(),
                                          (subject or "").encode(), version,
                                          invalid.encode()))

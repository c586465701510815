"""The gate of a listening source (HTTP, WebSocket): who may send, how much, and what was refused.

One ``Gate`` per source, built from its ``auth``, ``tls`` and ``limits``
settings. The HTTP and WebSocket endpoints ask it, in this order, before a
message reaches the ingest log:

1. ``authenticate(authorization)``: the bearer token, when a tokens file is set;
2. ``open_connection`` / ``close_connection``: concurrent connections per address;
3. ``admit_arrival(host, port)``: the per-address and per-connection buckets,
   checked before the body is read;
4. ``admit_devices(raws)``: the per-device buckets on each envelope's parsed
   ``device_id``, all or none for a request, before the durable append.

What it refuses is not logged and not acknowledged (the sender still owns it)
and is counted in ``counters``; what it lets through meets the log, where
junk is bounded (``IngestLog.bound_junk``).
"""

from __future__ import annotations

import math
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from veristream.connectors.auth import PeerSubjects, TokenFile, bearer_token
from veristream.connectors.ingest_log import IngestLog
from veristream.connectors.limits import (
    NS_PER_S,
    KeyedBuckets,
    RateLimit,
    SourceCounters,
    device_id_of,
)
from veristream.connectors.sources.config import (
    AuthConfig,
    LimitsConfig,
    ServerTlsConfig,
)
from veristream.provers.reasons import Reason

UNAUTHENTICATED = "unauthenticated"
"""The counter of requests and connections refused for a missing or unknown bearer token."""

TOO_MANY_CONNECTIONS = "too_many_connections"
"""The counter of WebSocket connections refused by ``max_connections_per_address``."""


def retry_after_s(wait_ns: int) -> int:
    """A ``Retry-After`` value in whole seconds (at least 1) for a wait in nanoseconds."""
    return max(1, math.ceil(wait_ns / NS_PER_S))


class Gate:
    """Authentication, connection and rate limits, and refusal counters of one listening source."""

    def __init__(
        self,
        kinds: tuple[str, ...],
        auth: AuthConfig,
        limits: LimitsConfig,
        *,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.kinds = kinds
        self.limits = limits
        self.tokens = TokenFile(auth.tokens_file) if auth.tokens_file is not None else None
        self.subjects = PeerSubjects()
        self.counters = SourceCounters()
        self.per_address = self._buckets(
            limits.per_address_per_s, limits.per_address_burst, clock_ns
        )
        self.per_connection = self._buckets(
            limits.per_connection_per_s, limits.per_connection_burst, clock_ns
        )
        self.per_device = self._buckets(limits.per_device_per_s, limits.burst, clock_ns)
        self._connections: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _buckets(
        self, per_s: float | None, burst: int | None, clock_ns: Callable[[], int]
    ) -> KeyedBuckets | None:
        if per_s is None:
            return None
        limit = RateLimit.per_second(per_s, burst)
        return KeyedBuckets(limit, max_keys=self.limits.max_tracked_keys, clock_ns=clock_ns)

    def bind(self, log: IngestLog) -> None:
        """Bound the junk this source may leave in ``log`` (``limits.junk_bodies_per_epoch``)."""
        if self.limits.junk_bodies_per_epoch is not None:
            for kind in self.kinds:
                log.bound_junk(kind, self.limits.junk_bodies_per_epoch)

    # --- who -------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> bool:
        """Whether the request may send; a refusal is counted."""
        if self.tokens is None or self.tokens.allows(bearer_token(authorization)):
            return True
        self.counters.count(UNAUTHENTICATED)
        return False

    def source_name(self, kind: str, host: str, port: int, *, with_port: bool) -> str:
        """``<kind>:<host>[:<port>]``, followed by ``|<certificate subject>`` under mutual TLS."""
        name = f"{kind}:{host}:{port}" if with_port else f"{kind}:{host}"
        subject = self.subjects.get(host, port)
        return f"{name}|{subject}" if subject else name

    # --- how much --------------------------------------------------------------
    def open_connection(self, host: str) -> bool:
        """Count a new connection from ``host``; False (and counted) over ``max_connections_per_address``."""
        bound = self.limits.max_connections_per_address
        with self._lock:
            if bound is not None and self._connections[host] >= bound:
                refused = True
            else:
                refused = False
                self._connections[host] += 1
        if refused:
            self.counters.count(TOO_MANY_CONNECTIONS)
        return not refused

    def close_connection(self, host: str) -> None:
        """The connection counted by ``open_connection`` has closed."""
        with self._lock:
            self._connections[host] -= 1
            if self._connections[host] <= 0:
                del self._connections[host]

    def admit_arrival(self, host: str, port: int, messages: int = 1) -> int:
        """0 if one arrival (request or message) from this socket is within its limits, else the wait in ns.

        A refusal counts ``messages`` as ``rate_limited``.
        """
        wait = 0
        if self.per_address is not None:
            wait = self.per_address.take_one(host)
        if not wait and self.per_connection is not None:
            wait = self.per_connection.take_one((host, port))
        if wait:
            self.counters.count(Reason.RATE_LIMITED, messages)
        return wait

    def admit_devices(self, raws: Sequence[bytes]) -> int:
        """0 if every envelope's device has the tokens (all are taken), else the wait in ns (none taken).

        Envelopes that name no device are not limited here: the log rejects
        them, within its junk bound. A refusal counts every envelope as
        ``rate_limited``. A request holding more than ``burst`` readings of one
        device can never pass; its wait is a full bucket's and it should be split.
        """
        if self.per_device is None:
            return 0
        wanted = Counter(d for d in (device_id_of(raw) for raw in raws) if d is not None)
        if not wanted:
            return 0
        wait = self.per_device.take(wanted)
        if wait:
            self.counters.count(Reason.RATE_LIMITED, len(raws))
        return wait


def uvicorn_tls_options(tls: ServerTlsConfig | None, subjects: PeerSubjects) -> dict[str, Any]:
    """``uvicorn.Config`` keywords serving TLS (mutual TLS with a client CA), recording client subjects."""
    if tls is None:
        return {}
    options: dict[str, Any] = {
        "ssl_certfile": str(tls.cert_file),
        "ssl_keyfile": str(tls.key_file),
    }
    if tls.client_ca_file is not None:
        options["ssl_ca_certs"] = str(tls.client_ca_file)
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        options["http"] = subjects.protocol(AutoHTTPProtocol)
    return options

"""Rate limits at the ingest edge: token buckets kept per device, address or connection.

A limit is a token bucket of ``burst`` tokens refilled at ``per_s`` tokens a
second. It is computed as the generic cell rate algorithm (GCRA): the state of
one bucket is a single integer, the *theoretical arrival time* ``tat_ns`` at
which the bucket would be full again, and every step is integer arithmetic on
nanoseconds, so the decision at a boundary is exact and reproducible. With
``interval_ns = 1e9 / per_s``, a bucket holds ``burst - (tat_ns - now_ns) /
interval_ns`` tokens (``burst`` when ``tat_ns <= now_ns``).

``KeyedBuckets`` keeps one bucket per key with bounded memory: when it is full
it forgets only a bucket that has refilled completely (forgetting it changes no
decision); if every tracked bucket is still draining, a new key is refused
rather than letting a flood of fresh keys reset someone else's bucket.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

from veristream.provers.errors import InputRejected

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``burst`` tokens, one more every ``interval_ns`` nanoseconds."""

    interval_ns: int
    burst: int

    def __post_init__(self) -> None:
        if self.interval_ns < 1 or self.burst < 1:
            raise InputRejected(f"a rate limit needs interval_ns >= 1 and burst >= 1, got {self}")

    @staticmethod
    def per_second(per_s: float, burst: int | None = None) -> RateLimit:
        """``per_s`` tokens a second; the burst defaults to one second's worth (at least 1)."""
        if not per_s > 0:
            raise InputRejected(f"a rate must be positive, got {per_s}")
        interval = max(1, round(NS_PER_S / per_s))
        return RateLimit(interval, burst if burst is not None else max(1, int(per_s)))

    def admit(self, tat_ns: int, now_ns: int, n: int = 1) -> tuple[int, int]:
        """Take ``n`` tokens at ``now_ns`` from the bucket whose state is ``tat_ns``.

        Returns ``(new_tat_ns, 0)`` when they are there, else ``(tat_ns, wait_ns)``:
        the bucket unchanged and how long until ``n`` tokens are there. More
        than ``burst`` tokens never are: callers refuse such a request outright.
        """
        # CHECKS
        if n < 0:
            raise InputRejected(f"cannot take {n} tokens")
        # OPERATION
        start = max(tat_ns, now_ns)
        after = start + n * self.interval_ns
        excess = after - now_ns - self.burst * self.interval_ns
        if excess > 0:
            return tat_ns, excess
        return after, 0

    def reserve(self, tat_ns: int, now_ns: int, n: int = 1) -> tuple[int, int]:
        """Take ``n`` tokens whether or not they are there: ``(new_tat_ns, delay_ns)``.

        The delay is how long the caller must hold the message before it
        conforms; the bucket goes into debt meanwhile, so later messages of the
        same key queue behind it.
        """
        after = max(tat_ns, now_ns) + n * self.interval_ns
        return after, max(0, after - now_ns - self.burst * self.interval_ns)

    def tokens(self, tat_ns: int, now_ns: int) -> float:
        """How many tokens the bucket holds at ``now_ns`` (for reports; decisions use ``admit``)."""
        return self.burst - max(0, tat_ns - now_ns) / self.interval_ns


class KeyedBuckets:
    """One bucket per key, at most ``max_keys`` of them; thread-safe."""

    def __init__(
        self,
        limit: RateLimit,
        *,
        max_keys: int = 100_000,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.limit = limit
        self.max_keys = max_keys
        self._clock_ns = clock_ns
        self._tat: OrderedDict[Hashable, int] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._tat)

    def _room_for(self, key: Hashable, now_ns: int) -> bool:
        # Called with the lock held: a new key needs a slot, and only a full bucket gives one up.
        if key in self._tat or len(self._tat) < self.max_keys:
            return True
        oldest, tat = next(iter(self._tat.items()))
        if tat > now_ns:
            return False
        del self._tat[oldest]
        return True

    def take(self, wanted: Mapping[Hashable, int], now_ns: int | None = None) -> int:
        """Take ``wanted[key]`` tokens from each key's bucket, all or none; 0, or the wait in ns."""
        now = self._clock_ns() if now_ns is None else now_ns
        with self._lock:
            updates: dict[Hashable, int] = {}
            wait = 0
            for key, n in wanted.items():
                if key not in self._tat and not self._room_for(key, now):
                    # every tracked bucket is draining: a new key waits for one to refill
                    oldest_tat = next(iter(self._tat.values()))
                    wait = max(wait, oldest_tat - now, 1)
                    continue
                tat, key_wait = self.limit.admit(self._tat.get(key, now), now, n)
                updates[key] = tat
                wait = max(wait, key_wait)
            if wait:
                return wait
            for key, tat in updates.items():
                self._tat[key] = tat
                self._tat.move_to_end(key)
            return 0

    def take_one(self, key: Hashable, now_ns: int | None = None) -> int:
        """``take({key: 1})``."""
        return self.take({key: 1}, now_ns)

    def reserve(self, key: Hashable, now_ns: int | None = None) -> int:
        """Take one token from ``key``'s bucket on credit; the delay in ns before the message conforms.

        With every tracked bucket draining, nothing is taken: the delay is until
        the oldest of them has refilled.
        """
        now = self._clock_ns() if now_ns is None else now_ns
        with self._lock:
            if key not in self._tat and not self._room_for(key, now):
                return max(1, next(iter(self._tat.values())) - now)
            tat, delay = self.limit.reserve(self._tat.get(key, now), now)
            self._tat[key] = tat
            self._tat.move_to_end(key)
            return delay


def device_id_of(raw: bytes) -> str | None:
    """The ``device_id`` an envelope names, normalised as the envelope parser does; None if it names none.

    Only what the rate limit needs: a message whose device id does not even
    parse is not limited per device here; the log rejects it as malformed.
    """
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    value = obj.get("device_id")
    if not isinstance(value, str) or len(value) != 42 or not value.startswith(("0x", "0X")):
        return None
    return "0x" + value[2:].lower()


class SourceCounters:
    """What one source refused before the ingest log (``rate_limited``, ``unauthenticated``, ...); thread-safe.

    These messages are not in the log, so the log's ``accepted + rejected ==
    arrived`` does not include them; the source reports them beside it.
    """

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, what: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``what``."""
        with self._lock:
            self._counts[what] += n

    def snapshot(self) -> dict[str, int]:
        """The counters now."""
        with self._lock:
            return dict(self._counts)

"""Token buckets at the ingest edge: the GCRA arithmetic against a plain token-bucket model, bounded keys."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veristream.connectors.limits import KeyedBuckets, RateLimit, device_id_of
from veristream.provers.errors import InputRejected


class ModelBucket:
    """The textbook token bucket, in exact fractions: refill, cap at burst, take if there."""

    def __init__(self, interval_ns: int, burst: int) -> None:
        self.rate = Fraction(1, interval_ns)  # tokens per ns
        self.burst = burst
        self.tokens = Fraction(burst)
        self.last = 0

    def take(self, now: int, n: int) -> bool:
        self.tokens = min(Fraction(self.burst), self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


@settings(max_examples=300, deadline=None)
@given(
    interval_ns=st.integers(1, 10_000),
    burst=st.integers(1, 20),
    steps=st.lists(st.tuples(st.integers(0, 30_000), st.integers(0, 25)), max_size=60),
)
def test_gcra_decides_as_the_token_bucket_model(
    interval_ns: int, burst: int, steps: list[tuple[int, int]]
) -> None:
    limit = RateLimit(interval_ns, burst)
    model = ModelBucket(interval_ns, burst)
    tat, now = 0, 0
    for gap, n in steps:
        now += gap
        new_tat, wait = limit.admit(tat, now, n)
        assert (wait == 0) == model.take(now, n)
        if wait:
            assert new_tat == tat
            # waiting exactly that long is enough (when n fits the bucket at all), one ns less is not
            if n <= burst:
                assert limit.admit(tat, now + wait, n)[1] == 0
                assert limit.admit(tat, now + wait - 1, n)[1] > 0
        tat = new_tat
        assert limit.tokens(tat, now) == pytest.approx(float(model.tokens))


@settings(max_examples=100, deadline=None)
@given(
    interval_ns=st.integers(1, 1_000),
    burst=st.integers(1, 10),
    gaps=st.lists(st.integers(0, 3_000), min_size=1, max_size=50),
)
def test_reservations_space_messages_at_the_rate(
    interval_ns: int, burst: int, gaps: list[int]
) -> None:
    """Held messages conform when released: over any window, at most burst + window/interval go out."""
    limit = RateLimit(interval_ns, burst)
    tat, now = 0, 0
    released: list[int] = []
    for gap in gaps:
        now += gap
        tat, delay = limit.reserve(tat, now)
        released.append(now + delay)
    released.sort()
    for i, start in enumerate(released):
        for j in range(i, len(released)):
            window = released[j] - start
            assert j - i + 1 <= burst + window // interval_ns


def test_per_second_and_bad_limits() -> None:
    assert RateLimit.per_second(4) == RateLimit(250_000_000, 4)
    assert RateLimit.per_second(0.5).burst == 1
    assert RateLimit.per_second(10, 3).burst == 3
    with pytest.raises(InputRejected):
        RateLimit.per_second(0)
    with pytest.raises(InputRejected):
        RateLimit(0, 1)


def test_keyed_buckets_are_all_or_none() -> None:
    buckets = KeyedBuckets(RateLimit(1_000, 2), clock_ns=lambda: 0)
    assert buckets.take({"a": 2, "b": 1}) == 0
    # b has one token left, a none: the request fails and b keeps its token
    assert buckets.take({"a": 1, "b": 1}) > 0
    assert buckets.take({"b": 1}) == 0
    assert buckets.take({"b": 1}) > 0


def test_RevertWhen_FreshKeysEvictADrainingBucket() -> None:
    """A flood of new device ids must not push a drained device out of the map and so refill it."""
    now = [0]
    buckets = KeyedBuckets(RateLimit(1_000_000_000, 1), max_keys=3, clock_ns=lambda: now[0])
    assert buckets.take_one("victim") == 0
    assert buckets.take_one("victim") > 0  # drained
    for n in range(100):
        buckets.take_one(f"fresh-{n}")
    assert len(buckets) <= 3
    assert buckets.take_one("victim") > 0, "the drained bucket was forgotten and refilled"
    # once the buckets have refilled, forgetting them changes nothing and new keys get room
    now[0] = 10 * 1_000_000_000
    assert buckets.take_one("newcomer") == 0


def test_device_id_of() -> None:
    device = "0x" + "AB" * 20
    assert device_id_of(b'{"device_id": "%s", "seq": 1}' % device.encode()) == device.lower()
    assert device_id_of(b"not json") is None
    assert device_id_of(b'{"device_id": 7}') is None
    assert device_id_of(b"[1, 2]") is None

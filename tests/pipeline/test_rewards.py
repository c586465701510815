"""The reward policy and per-device aggregates: exact integer properties, cross-checked with numpy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veristream.pipeline.aggregates import device_stats, field_stats, nearest_rank
from veristream.pipeline.jobspec import RewardSpec
from veristream.pipeline.rewards import Contribution, add_payouts, quality_bps, split_rewards

SINK = "0x" + "ee" * 20

contribution = st.builds(
    lambda b, valid, lo, span: Contribution(bytes([b]) * 20, valid, lo, lo + span + (valid - 1 if valid else 0)),
    st.integers(1, 6),
    st.integers(0, 50),
    st.integers(0, 1000),
    st.integers(0, 30),
)
contributions = st.dictionaries(st.text("0123456789abcdef", min_size=1, max_size=6), contribution, max_size=12)
policies = st.builds(
    RewardSpec,
    tokens_per_epoch=st.integers(0, 10**24),
    max_per_device=st.one_of(st.none(), st.integers(1, 10**22)),
    quality_weight=st.sampled_from(["completeness", "none"]),
    remainder=st.sampled_from(["carry", "sink"]),
    sink=st.just(SINK),
)


@settings(max_examples=300, deadline=None)
@given(contributions, policies, st.integers(0, 10**6))
def test_budget_is_paid_exactly_and_caps_hold(cs: dict[str, Contribution], policy: RewardSpec, carry: int) -> None:
    carry_in = 0 if policy.remainder == "sink" else carry
    out = split_rewards(cs, policy, carry_in)
    if not any(c.valid for c in cs.values()):
        # an empty epoch draws no budget; the carried remainder passes through untouched
        assert (out.budget, out.remainder, out.payouts, out.sink_paid) == (0, 0, {}, 0)
        assert out.carry_out == carry_in
        return
    budget = policy.tokens_per_epoch + carry_in
    assert out.budget == budget
    assert sum(out.shares.values()) + out.remainder == budget
    assert sum(out.payouts.values()) == budget - out.carry_out
    assert out.remainder >= 0
    if policy.max_per_device is not None:
        assert all(s <= policy.max_per_device for s in out.shares.values())
    if policy.remainder == "carry":
        assert out.carry_out == out.remainder and out.sink_paid == 0
    else:
        assert out.carry_out == 0 and out.sink_paid == out.remainder
    # devices without valid readings never earn
    assert all(cs[d].valid > 0 for d in out.shares)


@settings(max_examples=150, deadline=None)
@given(contributions, policies, st.randoms(use_true_random=False))
def test_split_is_permutation_invariant(cs: dict[str, Contribution], policy: RewardSpec, rnd: object) -> None:
    items = list(cs.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    assert split_rewards(dict(items), policy) == split_rewards(cs, policy)


def test_floor_rounding_and_remainder_carry() -> None:
    policy = RewardSpec(tokens_per_epoch=10, quality_weight="none")
    cs = {d: Contribution(bytes([i + 1]) * 20, 1, 0, 0) for i, d in enumerate("abc")}
    out = split_rewards(cs, policy)
    assert out.shares == {"a": 3, "b": 3, "c": 3}
    assert out.remainder == 1 and out.carry_out == 1
    nxt = split_rewards(cs, policy, carry_in=out.carry_out)
    assert nxt.budget == 11 and nxt.shares == {"a": 3, "b": 3, "c": 3} and nxt.carry_out == 2


def test_cap_excess_goes_to_sink() -> None:
    policy = RewardSpec(tokens_per_epoch=1000, max_per_device=300, quality_weight="none", remainder="sink", sink=SINK)
    cs = {"a": Contribution(b"\x01" * 20, 9, 0, 8), "b": Contribution(b"\x02" * 20, 1, 0, 0)}
    out = split_rewards(cs, policy)
    assert out.shares == {"a": 300, "b": 100}
    assert out.payouts[bytes.fromhex("ee" * 20)] == 600 and out.carry_out == 0


def test_completeness_weights_gaps() -> None:
    full = Contribution(b"\x01" * 20, 10, 100, 109)
    gappy = Contribution(b"\x02" * 20, 10, 100, 119)
    assert quality_bps(full, "completeness") == 10_000
    assert quality_bps(gappy, "completeness") == 5_000
    out = split_rewards({"full": full, "gappy": gappy}, RewardSpec(tokens_per_epoch=3000))
    assert out.shares == {"full": 2000, "gappy": 1000}


def test_shared_beneficiary_and_cumulative_totals() -> None:
    owner = b"\x07" * 20
    cs = {"a": Contribution(owner, 1, 0, 0), "b": Contribution(owner, 1, 5, 5)}
    out = split_rewards(cs, RewardSpec(tokens_per_epoch=100))
    assert out.payouts == {owner: 100}
    assert add_payouts({owner: 5, b"\x01" * 20: 1}, out.payouts) == {owner: 105, b"\x01" * 20: 1}
    with pytest.raises(ValueError):
        add_payouts({}, {owner: -1})


def test_bad_inputs_are_value_errors() -> None:
    with pytest.raises(ValueError):
        Contribution(b"\x01" * 19, 1, 0, 0)
    with pytest.raises(ValueError):
        split_rewards({}, RewardSpec(tokens_per_epoch=1), carry_in=-1)
    with pytest.raises(ValueError):
        nearest_rank([], 50)
    with pytest.raises(ValueError):
        nearest_rank([1], 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(10**9), 10**9), min_size=1, max_size=200), st.integers(1, 100))
def test_nearest_rank_matches_numpy_inverted_cdf(values: list[int], q: int) -> None:
    expected = int(np.percentile(np.array(values, dtype=np.int64), q, method="inverted_cdf"))
    assert nearest_rank(sorted(values), q) == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=100), st.randoms(use_true_random=False))
def test_field_stats_are_order_independent(values: list[int], rnd: object) -> None:
    shuffled = list(values)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    a, b = field_stats(values, [50, 99]), field_stats(shuffled, [50, 99])
    assert a == b and a is not None
    assert (a.min, a.max, a.sum, a.count) == (min(values), max(values), sum(values), len(values))
    assert a.mean == sum(values) // len(values)


def test_device_stats_skip_absent_optional_fields() -> None:
    stats = device_stats([{"t": 3}, {"t": 1, "h": 9}, {"t": 2}], ["t", "h", "x"], [50])
    assert set(stats) == {"t", "h"}
    assert stats["t"].quantiles == ((50, 2),) and stats["h"].count == 1


@pytest.mark.parametrize("remainder", ["carry", "sink"])
def test_an_empty_epoch_takes_no_budget_and_moves_no_remainder(remainder: str) -> None:
    policy = RewardSpec(tokens_per_epoch=1000, remainder=remainder, sink=SINK)
    carry_in = 7 if remainder == "carry" else 0
    idle = {"d1": Contribution(b"\x01" * 20, 0, 0, 0)}
    for contributions in ({}, idle):
        out = split_rewards(contributions, policy, carry_in)
        assert (out.budget, out.paid, out.remainder, out.sink_paid, out.payouts) == (0, 0, 0, 0, {})
        assert out.carry_out == carry_in

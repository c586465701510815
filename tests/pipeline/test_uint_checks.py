"""One range check for on-chain integers (``encoding.check_uint``), used by the reward policy
and the contract client: the same rule ``uint_word`` encodes, and a clear error naming the value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from veristream.pipeline.jobspec import RewardSpec
from veristream.pipeline.rewards import add_payouts, split_rewards
from veristream.provers.encoding import check_uint, uint_word


@given(st.integers(-(2**300), 2**300), st.sampled_from([8, 16, 64, 256]))
def test_check_uint_is_what_uint_word_accepts(value: int, bits: int) -> None:
    fits = 0 <= value < 2**bits
    try:
        assert check_uint(value, bits) == value
        assert uint_word(value, bits) == value.to_bytes(32, "big")
        assert fits
    except ValueError:
        assert not fits
        with pytest.raises(ValueError):
            uint_word(value, bits)


@pytest.mark.parametrize(
    ("value", "message"),
    [(-1, "amount must not be negative, got -1"), (2**256, "amount 2**256"), (True, "must be an int"), (1.0, "must be an int")],
)
def test_check_uint_names_the_value(value: object, message: str) -> None:
    expected = message.replace("2**256", str(2**256))
    with pytest.raises(ValueError, match=expected.replace("*", r"\*")):
        check_uint(value, name="amount")  # type: ignore[arg-type]


def test_rewards_refuse_totals_past_uint256() -> None:
    account = b"\x01" * 20
    with pytest.raises(ValueError, match=r"cumulative reward \d+ does not fit uint256"):
        add_payouts({account: 2**256 - 1}, {account: 1})
    with pytest.raises(ValueError, match="payout must not be negative"):
        add_payouts({}, {account: -5})
    with pytest.raises(ValueError, match="carry_in must not be negative"):
        split_rewards({}, RewardSpec(tokens_per_epoch=1), carry_in=-1)

"""The reward policy: an epoch's token budget split over devices in integer arithmetic.

Definitions (all integers, amounts in the token's smallest unit):

- ``budget = tokens_per_epoch + carry_in`` (``carry_in`` is last epoch's
  remainder when the policy carries it; otherwise 0).
- A device's ``valid`` count is its accepted readings in the epoch.
- Its ``quality`` in basis points: with ``quality_weight: completeness`` it is
  ``min(10000, 10000 * valid // (max_seq - min_seq + 1))`` over its accepted
  readings of the epoch (the share of its sequence range that arrived and
  passed every check; a device that sends garbage leaves gaps); with
  ``none`` it is 10000.
- ``points = valid * quality``; ``share = budget * points // total_points``
  (floor), then capped at ``max_per_device`` when the policy has a cap.
- ``remainder = budget - sum(shares)``: the floor-rounding dust plus anything
  cut by the cap. ``carry`` keeps it for the next epoch's budget; ``sink``
  pays it to the sink address in this epoch. Either way
  ``sum(shares) + remainder == budget`` exactly, and no epoch pays more than
  its budget.
- An *empty* epoch (no accepted reading, so ``total_points == 0``) takes no
  budget and moves no remainder: ``budget == remainder == 0`` and
  ``carry_out == carry_in``. What junk happens to land in an epoch of its own
  must not change what the job emits.

Every share depends only on its device's own numbers and the totals, so the
result is the same for any order of devices (permutation-invariant).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from veristream.pipeline.jobspec import RewardSpec
from veristream.provers.encoding import check_uint
from veristream.provers.errors import InputRejected

FULL_QUALITY_BPS = 10_000


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one device did in one epoch, as the reward policy sees it."""

    beneficiary: bytes
    valid: int
    min_seq: int
    max_seq: int

    def __post_init__(self) -> None:
        if len(self.beneficiary) != 20:
            raise InputRejected("beneficiary must be a 20-byte address")
        check_uint(self.valid, 64, "valid count")
        if self.valid and self.max_seq < self.min_seq:
            raise InputRejected(f"max_seq {self.max_seq} is below min_seq {self.min_seq}")


@dataclass(frozen=True, slots=True)
class RewardOutcome:
    """One epoch's split: per-device shares, per-account payouts, and where the rest went."""

    budget: int
    shares: dict[str, int]
    payouts: dict[bytes, int]
    remainder: int
    carry_out: int
    sink_paid: int
    quality_bps: dict[str, int] = field(default_factory=dict)

    @property
    def paid(self) -> int:
        """Tokens paid to devices (excludes the sink)."""
        return sum(self.shares.values())


def quality_bps(contribution: Contribution, weight: str) -> int:
    """A device's quality weight in basis points under the policy's ``quality_weight``."""
    if contribution.valid == 0:
        return 0
    if weight == "none":
        return FULL_QUALITY_BPS
    if weight != "completeness":
        raise InputRejected(f"unknown quality weight {weight!r}")
    expected = contribution.max_seq - contribution.min_seq + 1
    return min(FULL_QUALITY_BPS, FULL_QUALITY_BPS * contribution.valid // expected)


def split_rewards(
    contributions: Mapping[str, Contribution], policy: RewardSpec, carry_in: int = 0
) -> RewardOutcome:
    """Split one epoch's budget over ``contributions`` (keyed by device id) per ``policy``."""
    check_uint(carry_in, name="carry_in")
    if policy.remainder == "sink" and carry_in:
        raise InputRejected("a policy with a sink never carries a remainder")

    # WEIGHTS
    qualities = {d: quality_bps(c, policy.quality_weight) for d, c in contributions.items()}
    points = {d: c.valid * qualities[d] for d, c in contributions.items()}
    total_points = sum(points.values())
    if not total_points:
        # EMPTY: nobody to pay, so no budget is drawn and the carried remainder stays put
        return RewardOutcome(
            budget=0, shares={}, payouts={}, remainder=0, carry_out=carry_in, sink_paid=0, quality_bps=qualities
        )
    budget = policy.tokens_per_epoch + carry_in

    # SHARES (floor, then cap)
    shares: dict[str, int] = {}
    for device, p in points.items():
        share = budget * p // total_points
        if policy.max_per_device is not None:
            share = min(share, policy.max_per_device)
        if share:
            shares[device] = share

    # REMAINDER
    remainder = budget - sum(shares.values())
    payouts: dict[bytes, int] = {}
    for device, share in shares.items():
        account = contributions[device].beneficiary
        payouts[account] = payouts.get(account, 0) + share
    sink_paid = 0
    carry_out = 0
    if policy.remainder == "sink":
        assert policy.sink is not None  # the spec validator guarantees it
        if remainder:
            sink = bytes.fromhex(policy.sink[2:])
            payouts[sink] = payouts.get(sink, 0) + remainder
            sink_paid = remainder
    else:
        carry_out = remainder

    # CHECK
    if sum(shares.values()) + remainder != budget or remainder < 0:
        raise AssertionError("reward split does not add up to the budget")
    return RewardOutcome(
        budget=budget,
        shares=shares,
        payouts=payouts,
        remainder=remainder,
        carry_out=carry_out,
        sink_paid=sink_paid,
        quality_bps=qualities,
    )


def add_payouts(cumulative: Mapping[bytes, int], payouts: Mapping[bytes, int]) -> dict[bytes, int]:
    """Running totals per account after adding one epoch's payouts (a new mapping).

    A total is a leaf of the reward tree and a claim on chain, so it must stay a uint256.
    """
    total = dict(cumulative)
    for account, amount in payouts.items():
        check_uint(amount, name="payout")
        total[account] = check_uint(total.get(account, 0) + amount, name="cumulative reward")
    return total

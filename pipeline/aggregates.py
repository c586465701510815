"""Per-device statistics of integer payload fields, exact and order-independent.

For each device and each aggregated field: ``count`` (readings carrying the
field), ``min``, ``max``, ``sum``, ``mean`` = ``sum // count`` (floor, Python's
rounding toward negative infinity) and nearest-rank quantiles: the ``p``-th
percentile of ``n`` sorted values is the value at rank ``ceil(p * n / 100)``
(1-based). No floating point anywhere, so every operator gets the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from veristream.provers.errors import InputRejected


@dataclass(frozen=True, slots=True)
class FieldStats:
    """Statistics of one integer field over one device's accepted readings in an epoch."""

    count: int
    min: int
    max: int
    sum: int
    mean: int
    quantiles: tuple[tuple[int, int], ...]


def nearest_rank(sorted_values: Sequence[int], percent: int) -> int:
    """The nearest-rank ``percent``-th percentile of already sorted ``sorted_values``."""
    if not sorted_values:
        raise InputRejected("no values to take a quantile of")
    if not 1 <= percent <= 100:
        raise InputRejected(f"percent must be in 1..100, got {percent}")
    rank = -(-percent * len(sorted_values) // 100)
    return sorted_values[rank - 1]


def field_stats(values: Iterable[int], quantiles: Sequence[int]) -> FieldStats | None:
    """Stats of ``values`` (any order); ``None`` when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    total = sum(ordered)
    return FieldStats(
        count=len(ordered),
        min=ordered[0],
        max=ordered[-1],
        sum=total,
        mean=total // len(ordered),
        quantiles=tuple((q, nearest_rank(ordered, q)) for q in quantiles),
    )


def device_stats(
    payloads: Iterable[Mapping[str, int]], fields: Sequence[str], quantiles: Sequence[int]
) -> dict[str, FieldStats]:
    """Stats per field over one device's decoded payloads (fields absent from all are omitted)."""
    rows = payloads if isinstance(payloads, list | tuple) else list(payloads)
    result: dict[str, FieldStats] = {}
    for name in fields:
        # one column at a time: a comprehension per field, not a Python loop per value
        column = [value for value in [row.get(name) for row in rows] if value is not None]
        stats = field_stats(column, quantiles)
        if stats is not None:
            result[name] = stats
    return result

"""Event-time epoch arithmetic: which epoch a timestamp falls in and when an epoch closes.

Epoch ``e`` covers ``[genesis + e*length, genesis + (e+1)*length)`` milliseconds
of event time (the reading's own timestamp). It closes once the watermark has
passed ``end + allowed_lateness``; anything for it that arrives later is a dead
letter ``late``, never folded into another epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

from veristream.provers.errors import InputRejected, SpecError


@dataclass(frozen=True, slots=True)
class EpochClock:
    """The epoch grid of one job (all values in milliseconds)."""

    length_ms: int
    allowed_lateness_ms: int = 0
    genesis_ms: int = 0

    def __post_init__(self) -> None:
        if self.length_ms <= 0:
            raise SpecError(f"epoch length must be positive, got {self.length_ms}")
        if self.allowed_lateness_ms < 0 or self.genesis_ms < 0:
            raise SpecError("allowed lateness and genesis must not be negative")

    def slot_of(self, timestamp_ms: int) -> int:
        """The grid slot holding ``timestamp_ms``: its epoch, or a negative number before genesis
        (the ingest log files those as closed, so they become ``late``)."""
        return (timestamp_ms - self.genesis_ms) // self.length_ms

    def epoch_of(self, timestamp_ms: int) -> int:
        """The epoch holding ``timestamp_ms``; ``InputRejected`` before genesis."""
        if timestamp_ms < self.genesis_ms:
            raise InputRejected(f"timestamp {timestamp_ms} is before genesis {self.genesis_ms}")
        return self.slot_of(timestamp_ms)

    def start_ms(self, epoch: int) -> int:
        """First millisecond of ``epoch``."""
        if epoch < 0:
            raise InputRejected(f"epoch must not be negative, got {epoch}")
        return self.genesis_ms + epoch * self.length_ms

    def end_ms(self, epoch: int) -> int:
        """First millisecond after ``epoch`` (exclusive end)."""
        return self.start_ms(epoch) + self.length_ms

    def closes_at_ms(self, epoch: int) -> int:
        """The watermark at which ``epoch`` closes: its end plus the allowed lateness."""
        return self.end_ms(epoch) + self.allowed_lateness_ms

    def is_closed(self, epoch: int, watermark_ms: int) -> bool:
        """Whether ``epoch`` is closed once the watermark reached ``watermark_ms``."""
        return watermark_ms >= self.closes_at_ms(epoch)

    def first_open_epoch(self, watermark_ms: int) -> int:
        """The earliest epoch not closed once the watermark reached ``watermark_ms``."""
        return max(0, self.slot_of(watermark_ms - self.allowed_lateness_ms))

    @property
    def genesis_s(self) -> int:
        """Genesis in whole seconds: the grid the EpochVerifier keeps on chain."""
        return self.genesis_ms // 1000

    @property
    def epoch_seconds(self) -> int:
        """Epoch length in whole seconds on chain (at least one)."""
        return max(1, self.length_ms // 1000)

    def contains(self, epoch: int, timestamp_ms: int) -> bool:
        """Whether ``timestamp_ms`` lies in ``epoch``."""
        return self.start_ms(epoch) <= timestamp_ms < self.end_ms(epoch)

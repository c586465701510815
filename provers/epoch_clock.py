"""Event-time epoch arithmetic: which epoch a timestamp falls in and when an epoch closes.

Epoch ``e`` covers ``[genesis + e*length, genesis + (e+1)*length)`` milliseconds
of event time (the reading's own timestamp). It closes once the watermark has
passed ``end + allowed_lateness``; anything for it that arrives later is a dead
letter ``late``, never folded into another epoch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EpochClock:
    """The epoch grid of one job (all values in milliseconds)."""

    length_ms: int
    allowed_lateness_ms: int = 0
    genesis_ms: int = 0

    def __post_init__(self) -> None:
        if self.length_ms <= 0:
            raise ValueError(f"epoch length must be positive, got {self.length_ms}")
        if self.allowed_lateness_ms < 0 or self.genesis_ms < 0:
            raise ValueError("allowed lateness and genesis must not be negative")

    def epoch_of(self, timestamp_ms: int) -> int:
        """The epoch holding ``timestamp_ms``; ``ValueError`` before genesis."""
        if timestamp_ms < self.genesis_ms:
            raise ValueError(f"timestamp {timestamp_ms} is before genesis {self.genesis_ms}")
        return (timestamp_ms - self.genesis_ms) // self.length_ms

    def start_ms(self, epoch: int) -> int:
        """First millisecond of ``epoch``."""
        if epoch < 0:
            raise ValueError(f"epoch must not be negative, got {epoch}")
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

    def contains(self, epoch: int, timestamp_ms: int) -> bool:
        """Whether ``timestamp_ms`` lies in ``epoch``."""
        return self.start_ms(epoch) <= timestamp_ms < self.end_ms(epoch)

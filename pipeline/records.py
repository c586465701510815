"""The records that flow through one epoch's pipeline.

A ``Candidate`` is a decoded reading with the time it reached VeriStream (from
its ingest record) and its original bytes; a ``Rejected`` is what the
dead-letter output carries: the reason (``veristream.provers.reasons``), the
stage that rejected it, and the original bytes so nothing is lost.
"""

from __future__ import annotations

from functools import partial
from operator import itemgetter
from typing import Any, NamedTuple

from veristream.provers.readings import Reading


class Candidate(NamedTuple):
    """A ``Reading`` in its epoch: when it arrived, its place in the epoch's log, and its bytes.

    The reading's fields are flattened in, in ``Reading``'s order (``reading``
    gives it back): Beam pickles elements between stages, and one flat tuple
    pickles several times faster than a nested one. ``raw`` is the envelope as
    it arrived (empty when the candidate was rebuilt from a batch).
    """

    received_ms: int
    arrival: int
    device_id: str
    seq: int
    timestamp_ms: int
    payload: bytes
    signature: bytes
    scheme: str
    raw: bytes = b""

    @classmethod
    def of(cls, received_ms: int, arrival: int, reading: Reading, raw: bytes = b"") -> Candidate:
        """A candidate from a ``Reading``, its arrival time and position in the epoch's log."""
        return cls._make((received_ms, arrival, *reading, raw))

    @property
    def reading(self) -> Reading:
        """The reading itself."""
        return Reading(*self[2:8])


    def order_key(self) -> tuple[str, int, int, int, bytes, bytes, bytes]:
        """Total order used wherever a choice between readings must not depend on bundle order.

        Ties on ``(device_id, seq)`` go to the earlier arrival: its time, then its
        position in the epoch's ingest log (fixed once the epoch is closed).
        """
        return (
            self.device_id,
            self.seq,
            self.received_ms,
            self.arrival,
            self.signature,
            self.payload,
            self.raw,
        )


def _candidate_batch(rows: list[tuple[Any, ...]]) -> CandidateBatch:
    # tuple.__new__ straight, not Candidate._make: the rows come from CandidateBatch's own
    # pickle (nine fields each), and _make's Python-level call costs ~1 us a reading
    return CandidateBatch(map(_NEW_CANDIDATE, rows))


class CandidateBatch(list[Candidate]):
    """A list of candidates that pickles as one list of plain tuples.

    Beam samples the size of elements passed between fused stages by encoding
    them; a list of named tuples is pickled one reading at a time (~6 us each),
    plain tuples are encoded in C (~1 us). Same contents once unpickled.
    """

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_candidate_batch, (list(map(tuple, self)),))


_NEW_CANDIDATE = partial(tuple.__new__, Candidate)

# ``Candidate.order_key`` as one C call: sorting an epoch's readings calls it once each
CANDIDATE_ORDER = itemgetter(2, 3, 0, 1, 6, 5, 8)


class Rejected(NamedTuple):
    """A dead letter: a reading (or undecodable message) and why it was refused."""

    reason: str
    stage: str
    raw: bytes
    received_ms: int
    device_id: str = ""
    seq: int = -1
    detail: str = ""

    def order_key(self) -> tuple[bytes, int, str, str, str, int, str]:
        """Canonical order of dead letters in the dead-letter batch."""
        return (self.raw, self.received_ms, self.stage, self.reason, self.device_id, self.seq, self.detail)


def rejected_from(candidate: Candidate, reason: str, stage: str, detail: str = "") -> Rejected:
    """The dead letter for a candidate that failed ``stage`` with ``reason``."""
    return Rejected(
        reason=reason,
        stage=stage,
        raw=candidate.raw,
        received_ms=candidate.received_ms,
        device_id=candidate.device_id,
        seq=candidate.seq,
        detail=detail,
    )

"""The ingest log: where streams stop and bounded epochs begin.

Every message a connector receives is appended here, durably, before the
sender gets its acknowledgement. A message that parses as an envelope goes to
the segment of its event-time epoch (``(timestamp_ms - genesis_ms) //
epoch_length_ms``); one that does not, or whose epoch has already closed, goes
to the dead-letter store with its reason. So for every arrival exactly one
durable record exists, and ``accepted + rejected == arrived``.

An epoch closes when its end plus the allowed lateness is at or below the
watermark. The watermark is the largest event time accepted so far (capped at
arrival time + ``max_future_ms``, so one device with a clock far ahead cannot
close everyone's epoch), or a wall clock pushed by ``advance_clock`` when the
stream is idle. It never moves back, so once an epoch is closed no record is
ever added to it again: the pipeline reads a closed segment as a fixed,
bounded input.

Layout of the directory::

    segments/epoch-<12 digits>.log   framed records, append order (see framing.py)
    clock.json                       the wall-clock watermark (atomic rename; the writer's)
    processed.json                   epochs the pipeline has committed (atomic rename)
    deadletters/                     the dead-letter store, unless one is passed in
    writer.lock                      held (flock) by the one process that appends
    quarantine/<time>/               damaged files set aside by ``repair_log`` (with report.json)

One process appends (a second writer gets a clear error). A pipeline in another
process opens the log with ``read_only=True``, calls ``refresh()`` to see new
records, reads closed epochs and marks them processed; it keeps its own
dead letters in a store of its own, so every file has one writer.

Ingest-time dead letters are filed under the first epoch still open when they
arrive, so they land in the dead-letter set of an epoch the pipeline has yet
to process. With ``max_clock_skew_ms`` an envelope stamped further ahead of its
arrival than that is one of them (``clock_skew``): a clock running ahead never
opens an epoch of its own, so where junk lands cannot change what the job emits.

Junk is bounded. A message that does not parse, is oversized, or (when the
log is given ``known_device``) names a device the registry does not know is
*junk*; a source kind (the part of the source name before the first ``:``,
e.g. ``http``) with a bound set by ``bound_junk`` keeps at most that many junk
bodies in full per epoch. Beyond it each junk message adds to that epoch's
tally for the kind (``junk/epoch-<12 digits>.json``, atomic rename): how many,
how many bytes, how many per reason, and a running SHA-256 over their hashes.
A tallied message is still one durable rejection and still counted in
``counts()``, so ``accepted + rejected == arrived`` holds while the disk used
by a junk flood is bounded by configuration.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import queue
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from veristream.connectors.deadletters import (
    DeadLetter,
    DeadLetterStore,
)
from veristream.connectors.envelope import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    TOO_LARGE,
    EnvelopeError,
    parse_reading,
)
from veristream.connectors.framing import (
    DamagedRange,
    RecordFile,
    RecordWriteError,
    frame,
    scan,
    survey,
)
from veristream.provers.durable import fsync_directory, write_atomically
from veristream.provers.epoch_clock import EpochClock
from veristream.provers.errors import InputRejected, VeriStreamError
from veristream.provers.reasons import Reason, Stage

_RECORD_HEADER = struct.Struct(">QQB")
_SEGMENT_PREFIX = "epoch-"
_SEGMENT_SUFFIX = ".log"
_CLOCK = "clock.json"
_PROCESSED = "processed.json"
_WRITER_LOCK = "writer.lock"
_LEGACY_STATE = "state.json"
_JUNK_DIR = "junk"
# How much of an unparseable message the dead-letter record keeps verbatim.
_MAX_DEAD_RAW = 1 << 20


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What happened to one message: accepted into ``epoch``, or rejected with ``reason``."""

    accepted: bool
    epoch: int | None = None
    reason: str | None = None
    field: str | None = None
    detail: str = ""
    code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (what HTTP and WebSocket acks carry)."""
        out: dict[str, Any] = {"accepted": self.accepted}
        if self.epoch is not None:
            out["epoch"] = self.epoch
        if self.reason is not None:
            out["reason"] = self.reason
        if self.field is not None:
            out["field"] = self.field
        if self.code is not None:
            out["code"] = self.code
        if self.detail:
            out["detail"] = self.detail
        return out


JUNK_REASONS = frozenset({Reason.MALFORMED, Reason.OVERSIZED, Reason.UNKNOWN_DEVICE})
"""Rejections that say nothing about a known device's reading: bounded by ``bound_junk``."""


def source_kind(source: str) -> str:
    """The kind of a source name: what precedes its first ``:`` (``http:10.0.0.7`` -> ``http``)."""
    return source.split(":", 1)[0]


@dataclass
class JunkTally:
    """The junk of one source kind in one epoch: bodies kept in full, and the rest counted only."""

    kept: int = 0
    tallied: int = 0
    tallied_bytes: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    digest: str = "00" * 32

    def add(self, data: bytes, reason: str) -> None:
        """Count one message whose body is not kept: its size, reason and hash.

        ``digest`` chains the hashes: ``sha256(digest || sha256(body))``, so
        whoever holds the bodies, in arrival order, can check them against it.
        """
        self.tallied += 1
        self.tallied_bytes += len(data)
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        chained = bytes.fromhex(self.digest) + hashlib.sha256(data).digest()
        self.digest = hashlib.sha256(chained).hexdigest()

    def copy(self) -> JunkTally:
        """An independent copy (to restore after a failed write)."""
        return dataclasses.replace(self, by_reason=dict(self.by_reason))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (what the tally file holds)."""
        return {
            "kept": self.kept,
            "tallied": self.tallied,
            "tallied_bytes": self.tallied_bytes,
            "by_reason": dict(sorted(self.by_reason.items())),
            "digest": self.digest,
        }

    @staticmethod
    def from_dict(obj: dict[str, Any]) -> JunkTally:
        """Inverse of ``to_dict``."""
        return JunkTally(
            int(obj["kept"]),
            int(obj["tallied"]),
            int(obj["tallied_bytes"]),
            {str(k): int(v) for k, v in obj["by_reason"].items()},
            str(obj["digest"]),
        )


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One accepted message as the log keeps it."""

    raw: bytes
    source: str
    received_ms: int
    timestamp_ms: int


def encode_record(raw: bytes, source: str, received_ms: int, timestamp_ms: int) -> bytes:
    """The body of one segment record: event time, arrival time, source, the raw envelope."""
    src = source.encode()[:255]
    return _RECORD_HEADER.pack(timestamp_ms, received_ms, len(src)) + src + raw


def decode_record(body: bytes) -> LogRecord:
    """Inverse of ``encode_record``; ``InputRejected`` for a body too short to be a log record."""
    if len(body) < _RECORD_HEADER.size:
        raise InputRejected(
            f"ingest log record of {len(body)} bytes is shorter than its {_RECORD_HEADER.size}-byte header"
        )
    timestamp_ms, received_ms, n = _RECORD_HEADER.unpack_from(body)
    start = _RECORD_HEADER.size
    source = body[start : start + n].decode(errors="replace")
    return LogRecord(body[start + n :], source, received_ms, timestamp_ms)


def _non_negative_int(name: str, value: int, *, positive: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputRejected(f"{name} must be an int, got {type(value).__name__}")
    if value < (1 if positive else 0):
        raise InputRejected(
            f"{name} must be {'positive' if positive else 'non-negative'}, got {value}"
        )
    return value


class IngestLog:
    """Durable, epoch-segmented log of accepted envelopes; thread-safe."""

    def __init__(
        self,
        directory: Path | str,
        epoch_length_ms: int,
        allowed_lateness_ms: int,
        genesis_ms: int = 0,
        *,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        max_future_ms: int | None = 0,
        dead_letters: DeadLetterStore | None = None,
        read_only: bool = False,
        known_device: Callable[[str], bool] | None = None,
        max_clock_skew_ms: int | None = None,
    ) -> None:
        self.clock = EpochClock(
            _non_negative_int("epoch_length_ms", epoch_length_ms, positive=True),
            _non_negative_int("allowed_lateness_ms", allowed_lateness_ms),
            _non_negative_int("genesis_ms", genesis_ms),
        )
        self.max_payload_bytes = _non_negative_int(
            "max_payload_bytes", max_payload_bytes, positive=True
        )
        if max_future_ms is not None:
            _non_negative_int("max_future_ms", max_future_ms)
        self.max_future_ms = max_future_ms
        if max_clock_skew_ms is not None:
            _non_negative_int("max_clock_skew_ms", max_clock_skew_ms)
        self.max_clock_skew_ms = max_clock_skew_ms
        self.directory = Path(directory)
        self.read_only = read_only
        # With a registry: envelopes of devices it does not know are junk, rejected here.
        self.known_device = known_device
        self._junk_bounds: dict[str, int] = {}
        self._junk: dict[int, dict[str, JunkTally]] = {}
        # tallies as they were before the batch being written (restored if it fails)
        self._junk_undo: dict[tuple[int, str], JunkTally | None] = {}
        self._segments_dir = self.directory / "segments"
        self._lock_fd = -1
        if read_only:
            if not self._segments_dir.is_dir():
                raise InputRejected(f"{self.directory} holds no ingest log")
        else:
            self._segments_dir.mkdir(parents=True, exist_ok=True)
            self._lock_fd = _lock_writer(self.directory / _WRITER_LOCK)
        # `is None`, not `or`: an empty store passed in is falsy (it has a length) but still meant
        self.dead_letters = (
            dead_letters
            if dead_letters is not None
            else DeadLetterStore(self.directory / "deadletters", read_only=read_only)
        )
        self._lock = threading.RLock()
        self._segments: dict[int, RecordFile] = {}
        self._appended: dict[int, int] = {}
        self._event_watermark = 0
        self.torn_bytes_dropped = 0
        self._clock_ms = 0
        self._processed: set[int] = set()
        self._dead_epochs: set[int] = set()
        self._recover()

    # --- recovery -------------------------------------------------------------
    def _read_json(self, name: str) -> Any:
        path = self.directory / name
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except ValueError as error:
            raise InputRejected(f"ingest log file {path} is unreadable: {error}") from None

    def _write_json(self, name: str, obj: Any) -> None:
        write_atomically(self.directory / name, json.dumps(obj, sort_keys=True).encode())

    def _recover(self) -> None:
        # The watermark is recomputed from the durable records themselves, so it
        # is exactly what it was when the last acknowledged record was written.
        clock = self._read_json(_CLOCK)
        processed = self._read_json(_PROCESSED)
        legacy = self._read_json(_LEGACY_STATE)  # one file for both, before readers existed
        if legacy is not None:
            clock = clock or {"clock_ms": legacy.get("clock_ms", 0)}
            processed = processed or {"processed": legacy.get("processed", [])}
        try:
            self._clock_ms = (
                max(self._clock_ms, int(clock["clock_ms"])) if clock else self._clock_ms
            )
            self._processed = {int(e) for e in processed["processed"]} if processed else set()
        except (KeyError, TypeError, ValueError) as error:
            raise InputRejected(
                f"ingest log state in {self.directory} is malformed: {error}"
            ) from None
        for path in sorted(self._segments_dir.glob(f"{_SEGMENT_PREFIX}*{_SEGMENT_SUFFIX}")):
            epoch = int(path.name[len(_SEGMENT_PREFIX) : -len(_SEGMENT_SUFFIX)])
            segment = RecordFile(path, writable=not self.read_only)
            self.torn_bytes_dropped += segment.torn_bytes
            for body in segment.records():
                record = decode_record(body)
                self._event_watermark = max(
                    self._event_watermark,
                    self._watermark_candidate(record.timestamp_ms, record.received_ms),
                )
            self._appended[epoch] = segment.count
            if epoch in self._processed or self.read_only:
                segment.close()
            else:
                self._segments[epoch] = segment
        self._dead_epochs = {
            d.epoch for d in self.dead_letters.read(stage=Stage.INGEST) if d.epoch is not None
        }
        self._junk = self._read_junk()
        self._dead_epochs |= set(self._junk)

    # --- junk -----------------------------------------------------------------
    def _junk_path(self, epoch: int) -> Path:
        return self.directory / _JUNK_DIR / f"{_SEGMENT_PREFIX}{epoch:012d}.json"

    def _read_junk(self) -> dict[int, dict[str, JunkTally]]:
        tallies: dict[int, dict[str, JunkTally]] = {}
        for path in sorted((self.directory / _JUNK_DIR).glob(f"{_SEGMENT_PREFIX}*.json")):
            epoch = int(path.stem[len(_SEGMENT_PREFIX) :])
            try:
                kinds = json.loads(path.read_text())["kinds"]
                tallies[epoch] = {k: JunkTally.from_dict(v) for k, v in kinds.items()}
            except (KeyError, TypeError, ValueError) as error:
                raise InputRejected(f"junk tally {path} is malformed: {error}") from None
        return tallies

    def _write_junk(self) -> None:
        """Write the tallies the batch changed (atomic rename each), after its dead letters."""
        epochs = sorted({epoch for epoch, _ in self._junk_undo})
        if epochs:
            (self.directory / _JUNK_DIR).mkdir(exist_ok=True)
        for epoch in epochs:
            kinds = {k: t.to_dict() for k, t in sorted(self._junk[epoch].items())}
            body = json.dumps({"epoch": epoch, "kinds": kinds}, sort_keys=True).encode()
            write_atomically(self._junk_path(epoch), body)
        self._junk_undo.clear()

    def _undo_junk(self) -> None:
        for (epoch, kind), before in self._junk_undo.items():
            if before is None:
                self._junk[epoch].pop(kind, None)
                if not self._junk[epoch]:
                    del self._junk[epoch]
            else:
                self._junk[epoch][kind] = before
        self._junk_undo.clear()

    def _junk_tally(self, epoch: int, kind: str) -> JunkTally:
        kinds = self._junk.setdefault(epoch, {})
        if (epoch, kind) not in self._junk_undo:
            current = kinds.get(kind)
            self._junk_undo[(epoch, kind)] = None if current is None else current.copy()
        return kinds.setdefault(kind, JunkTally())

    def bound_junk(self, kind: str, bodies_per_epoch: int) -> None:
        """Keep at most ``bodies_per_epoch`` junk bodies in full per epoch from sources of ``kind``.

        Two sources of one kind share the smaller bound.
        """
        _non_negative_int("bodies_per_epoch", bodies_per_epoch)
        with self._lock:
            current = self._junk_bounds.get(kind)
            self._junk_bounds[kind] = (
                bodies_per_epoch if current is None else min(current, bodies_per_epoch)
            )

    def junk_tallies(self, epoch: int) -> dict[str, dict[str, Any]]:
        """Source kind -> the epoch's junk tally (``kept``, ``tallied``, ``tallied_bytes``, ``by_reason``, ``digest``)."""
        with self._lock:
            return {k: t.to_dict() for k, t in sorted(self._junk.get(epoch, {}).items())}

    def refresh(self) -> None:
        """Catch up with what the writing process appended since (read-only logs only)."""
        if not self.read_only:
            raise InputRejected("refresh() is for read-only logs; the writer's view is always current")
        with self._lock:
            self._appended.clear()
            self.dead_letters.refresh()
            self._recover()

    # --- epochs ---------------------------------------------------------------
    @property
    def watermark_ms(self) -> int:
        """The largest event time seen (capped) or the advanced clock, whichever is later."""
        with self._lock:
            return max(self._event_watermark, self._clock_ms)

    def epoch_of(self, timestamp_ms: int) -> int:
        """The event-time epoch of a timestamp (negative before genesis)."""
        return self.clock.slot_of(timestamp_ms)

    def epoch_bounds(self, epoch: int) -> tuple[int, int]:
        """``[start_ms, end_ms)`` of an epoch."""
        return self.clock.start_ms(epoch), self.clock.end_ms(epoch)

    def is_closed(self, epoch: int) -> bool:
        """Whether ``epoch``'s end plus the allowed lateness is at or below the watermark
        (every slot before genesis is closed)."""
        return epoch < 0 or self.clock.is_closed(epoch, self.watermark_ms)

    def first_open_epoch(self) -> int:
        """The earliest epoch that has not closed yet."""
        return self.clock.first_open_epoch(self.watermark_ms)

    def _watermark_candidate(self, timestamp_ms: int, received_ms: int) -> int:
        if self.max_future_ms is None:
            return timestamp_ms
        return min(timestamp_ms, received_ms + self.max_future_ms)

    def advance_clock(self, now_ms: int) -> None:
        """Move the watermark to ``now_ms`` (wall clock) so idle streams still close epochs."""
        _non_negative_int("now_ms", now_ms)
        with self._lock:
            self._require_writer()
            if now_ms > self._clock_ms:
                self._clock_ms = now_ms
                self._write_json(_CLOCK, {"clock_ms": now_ms})

    def closed_epochs(self) -> list[int]:
        """Closed epochs holding records or ingest dead letters, not yet marked processed."""
        with self._lock:
            epochs = set(self._appended) | self._dead_epochs
            return sorted(e for e in epochs if e not in self._processed and self.is_closed(e))

    def open_epochs(self) -> list[int]:
        """Epochs holding records that have not closed yet."""
        with self._lock:
            return sorted(e for e in self._appended if not self.is_closed(e))

    def read_records(self, epoch: int) -> list[LogRecord]:
        """The accepted records of a closed epoch, in append order; ``ValueError`` if still open."""
        with self._lock:
            if not self.is_closed(epoch):
                raise InputRejected(f"epoch {epoch} is still open (watermark {self.watermark_ms})")
            segment = self._segments.get(epoch)
            if segment is not None:
                bodies = segment.records()
            else:
                path = self._segment_path(epoch)
                reader = RecordFile(path, writable=False)
                bodies = reader.records()
                reader.close()
        return [decode_record(body) for body in bodies]

    def read_epoch(self, epoch: int) -> list[bytes]:
        """The raw accepted envelopes of a closed epoch, in append order."""
        return [record.raw for record in self.read_records(epoch)]

    def mark_processed(self, epoch: int) -> None:
        """Record (durably) that the pipeline has committed ``epoch``; it leaves ``closed_epochs``."""
        with self._lock:
            if not self.is_closed(epoch):
                raise InputRejected(f"epoch {epoch} is still open and cannot be marked processed")
            self._processed.add(epoch)
            self._write_json(_PROCESSED, {"processed": sorted(self._processed)})
            segment = self._segments.pop(epoch, None)
            if segment is not None:
                segment.close()

    def processed_epochs(self) -> list[int]:
        """Epochs marked processed."""
        with self._lock:
            return sorted(self._processed)

    # --- appends --------------------------------------------------------------
    def _segment_path(self, epoch: int) -> Path:
        return self._segments_dir / f"{_SEGMENT_PREFIX}{epoch:012d}{_SEGMENT_SUFFIX}"

    def _segment(self, epoch: int) -> RecordFile:
        segment = self._segments.get(epoch)
        if segment is None:
            segment = RecordFile(self._segment_path(epoch))
            self._segments[epoch] = segment
            self._appended.setdefault(epoch, segment.count)
        return segment

    def append(self, raw: bytes, source: str, received_ms: int) -> AppendResult:
        """Append one message durably (fsynced before returning) and say what became of it."""
        return self.append_batch([(raw, source, received_ms)])[0]

    def append_many(
        self, raws: Iterable[bytes], source: str, received_ms: int
    ) -> list[AppendResult]:
        """Append several messages from one source with a single fsync."""
        return self.append_batch([(raw, source, received_ms) for raw in raws])

    def append_batch(self, items: Sequence[tuple[bytes, str, int]]) -> list[AppendResult]:
        """Append ``(raw, source, received_ms)`` messages in order; durable when this returns."""
        self._require_writer()
        parsed: list[tuple[bytes, str, int, Any]] = []
        for raw, source, received_ms in items:
            if not isinstance(raw, bytes | bytearray | memoryview):
                raise InputRejected(f"raw message must be bytes, got {type(raw).__name__}")
            _non_negative_int("received_ms", received_ms)
            data = bytes(raw)
            try:
                parsed.append(
                    (
                        data,
                        source,
                        received_ms,
                        parse_reading(data, max_payload_bytes=self.max_payload_bytes),
                    )
                )
            except EnvelopeError as error:
                # Kept without its traceback: thousands of live frames per batch would
                # make the garbage collector's passes, not parsing, the cost of a junk flood.
                error.__traceback__ = error.__context__ = None
                parsed.append((data, source, received_ms, error))

        results: list[AppendResult] = []
        with self._lock:
            watermark, dead_epochs = self._event_watermark, set(self._dead_epochs)
            touched: set[int] = set()
            pending: dict[int, list[bytes]] = {}
            dead: list[DeadLetter] = []
            for data, source, received_ms, outcome in parsed:
                if isinstance(outcome, EnvelopeError):
                    reason = Reason.OVERSIZED if outcome.reason == TOO_LARGE else Reason.MALFORMED
                    results.append(
                        self._reject(
                            dead, data, source, reason, outcome.field, str(outcome), outcome.reason
                        )
                    )
                    continue
                if self.known_device is not None and not self.known_device(outcome.device_id):
                    results.append(
                        self._reject(
                            dead,
                            data,
                            source,
                            Reason.UNKNOWN_DEVICE,
                            "device_id",
                            "not in the device registry",
                            "unknown",
                        )
                    )
                    continue
                ahead = outcome.timestamp_ms - received_ms
                if self.max_clock_skew_ms is not None and ahead > self.max_clock_skew_ms:
                    # filed under the epoch open at its arrival, not the future one it names
                    results.append(
                        self._reject(
                            dead,
                            data,
                            source,
                            Reason.CLOCK_SKEW,
                            "timestamp_ms",
                            f"{ahead} ms ahead of arrival",
                            "skew",
                        )
                    )
                    continue
                epoch = self.epoch_of(outcome.timestamp_ms)
                # A record waiting in ``pending`` counts as seen: a later message of
                # the same batch must be judged against the watermark it moved.
                if self.is_closed(epoch):
                    detail = "before genesis" if epoch < 0 else f"epoch {epoch} closed"
                    results.append(
                        self._reject(
                            dead, data, source, Reason.LATE, "timestamp_ms", detail, "closed"
                        )
                    )
                    continue
                pending.setdefault(epoch, []).append(
                    encode_record(data, source, received_ms, outcome.timestamp_ms)
                )
                touched.add(epoch)
                self._event_watermark = max(
                    self._event_watermark,
                    self._watermark_candidate(outcome.timestamp_ms, received_ms),
                )
                results.append(AppendResult(True, epoch=epoch))

            # WRITE, then one fsync per touched file, then acknowledge.
            marks: dict[int, tuple[int, int]] = {}
            try:
                for epoch, bodies in pending.items():
                    segment = self._segment(epoch)
                    marks[epoch] = segment.mark()
                    segment.append(bodies)
                for epoch in touched:
                    self._segment(epoch).sync()
                if dead:
                    self.dead_letters.add_many(dead)
                self._write_junk()
            except (RecordWriteError, OSError):
                # Disk full or I/O error: the whole batch is unacknowledged, so none
                # of it may stay behind to be read as accepted (or counted) later.
                self._undo_batch(marks, watermark, dead_epochs, bool(dead))
                self._undo_junk()
                raise
            for epoch in touched:
                self._appended[epoch] = self._appended.get(epoch, 0) + len(pending[epoch])
        return results

    def _undo_batch(
        self,
        marks: dict[int, tuple[int, int]],
        watermark: int,
        dead_epochs: set[int],
        had_dead: bool,
    ) -> None:
        """Cut every segment a failed batch touched back to where it began; restore the watermark."""
        for epoch, mark in marks.items():
            segment = self._segments[epoch]
            segment.rollback(mark)
            segment.sync()
            if mark == (0, 0) and not self._appended.get(epoch):
                # created by this batch: leave no empty epoch behind
                segment.close()
                self._segment_path(epoch).unlink(missing_ok=True)
                del self._segments[epoch]
                self._appended.pop(epoch, None)
        self._event_watermark = watermark
        self._dead_epochs = dead_epochs
        if had_dead:
            self.dead_letters.refresh()  # its file went back to its last durable state

    def _reject(
        self,
        dead: list[DeadLetter],
        data: bytes,
        source: str,
        reason: str,
        field: str,
        detail: str,
        code: str | None = None,
    ) -> AppendResult:
        epoch = self.first_open_epoch()
        self._dead_epochs.add(epoch)
        kind = source_kind(source)
        bound = self._junk_bounds.get(kind)
        if bound is not None and reason in JUNK_REASONS:
            tally = self._junk_tally(epoch, kind)
            if tally.kept >= bound:
                tally.add(data, reason)
                return AppendResult(False, epoch, reason, field, detail, code)
            tally.kept += 1
        kept = data if len(data) <= _MAX_DEAD_RAW else data[:_MAX_DEAD_RAW]
        note = f"{detail}; source {source}"
        if len(kept) < len(data):
            note += f"; {len(data)} bytes, first {len(kept)} kept"
        dead.append(DeadLetter(kept, reason, Stage.INGEST, epoch, note))
        return AppendResult(False, epoch, reason, field, detail, code)

    def reject(
        self, raw: bytes, source: str, reason: str, field: str, detail: str, code: str | None = None
    ) -> AppendResult:
        """File, durably, a message a connector rejected before the envelope parse (e.g. a body that is not JSON)."""
        self._require_writer()
        dead: list[DeadLetter] = []
        with self._lock:
            dead_epochs = set(self._dead_epochs)
            result = self._reject(dead, bytes(raw), source, reason, field, detail, code)
            try:
                self.dead_letters.add_many(dead)
                self._write_junk()
            except (RecordWriteError, OSError):
                self._dead_epochs = dead_epochs
                self.dead_letters.refresh()
                self._undo_junk()
                raise
        return result

    # --- accounting -----------------------------------------------------------
    def counts(self) -> dict[str, Any]:
        """``arrived``, ``appended``, ``rejected`` and ``rejected_by_reason`` (ingest stage), from disk state.

        Junk beyond its bound counts as rejected like any dead letter;
        ``junk_tallied`` (present once junk was bounded) says how many of the
        rejections kept no body.
        """
        with self._lock:
            appended = sum(self._appended.values())
            by_reason = self.dead_letters.counts(stage=Stage.INGEST)
            tallied = 0
            for kinds in self._junk.values():
                for tally in kinds.values():
                    tallied += tally.tallied
                    for reason, n in tally.by_reason.items():
                        by_reason[reason] = by_reason.get(reason, 0) + n
            rejected = sum(by_reason.values())
            counts: dict[str, Any] = {
                "arrived": appended + rejected,
                "appended": appended,
                "rejected": rejected,
                "rejected_by_reason": by_reason,
                "torn_bytes_dropped": self.torn_bytes_dropped,
            }
            if self._junk:
                counts["junk_tallied"] = tallied
            return counts

    def _require_writer(self) -> None:
        if self.read_only:
            raise InputRejected(f"ingest log {self.directory} is open read-only")

    def close(self) -> None:
        """Close every open segment and release the writer lock."""
        with self._lock:
            for segment in self._segments.values():
                segment.close()
            self._segments.clear()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # closing the descriptor releases the flock
                self._lock_fd = -1


def _lock_writer(path: Path) -> int:
    """Take the directory's writer lock, or fail clearly if another writer holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InputRejected(
            f"ingest log {path.parent} is already open for writing (by this or another process); "
            "open it with read_only=True to read"
        ) from None
    return fd


class Backpressure(VeriStreamError, RuntimeError):
    """The committer's queue is full: the caller should answer "retry later"."""


@dataclass
class _Job:
    items: list[tuple[bytes, str, int]]
    future: Future[list[AppendResult]]


class GroupCommitter:
    """One writer thread that folds concurrent submissions into one append and one fsync.

    Connectors submit and acknowledge when the future resolves, which is only
    after the records are durable. ``max_pending`` bounds the messages waiting
    (a full queue raises ``Backpressure`` instead of buffering without bound).
    """

    def __init__(
        self, log: IngestLog, *, max_pending: int = 10_000, max_batch: int = 4_096
    ) -> None:
        self.log = log
        self.max_pending = max_pending
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ingest-committer", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Messages submitted and not yet durable."""
        with self._lock:
            return self._pending

    def submit(
        self, items: Sequence[tuple[bytes, str, int]], *, block: bool = False
    ) -> Future[list[AppendResult]]:
        """Queue messages for the next group commit; ``Backpressure`` when the queue is full."""
        n = len(items)
        with self._lock:
            if not block and self._pending and self._pending + n > self.max_pending:
                raise Backpressure(f"{self._pending} messages pending")
            self._pending += n
        future: Future[list[AppendResult]] = Future()
        self._queue.put(_Job(list(items), future))
        return future

    def append(self, items: Sequence[tuple[bytes, str, int]]) -> list[AppendResult]:
        """Submit and wait (blocking callers such as the MQTT thread)."""
        return self.submit(items, block=True).result()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            size = len(job.items)
            stop = False
            while size < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                jobs.append(more)
                size += len(more.items)
            self._commit(jobs)
            if stop:
                return

    def _commit(self, jobs: list[_Job]) -> None:
        items = [item for job in jobs for item in job.items]
        try:
            results = self.log.append_batch(items)
        except BaseException as error:  # every waiter must hear about it
            for job in jobs:
                job.future.set_exception(error)
        else:
            offset = 0
            for job in jobs:
                job.future.set_result(results[offset : offset + len(job.items)])
                offset += len(job.items)
        with self._lock:
            self._pending -= len(items)

    def close(self) -> None:
        """Finish queued work and stop the writer thread."""
        self._queue.put(None)
        self._thread.join()


class OpenEpochTail:
    """Reads, from the log's segment files, what was appended to open epochs since the last call.

    The reader follows each open segment by byte offset, so every record is
    read once; an incomplete last record (a write in progress) waits for the
    next call.
    """

    def __init__(self, log: IngestLog) -> None:
        self._log = log
        self._offsets: dict[int, int] = {}

    def new_raws(self) -> list[bytes]:
        """The raw envelopes appended to open epochs since the previous call, epoch by epoch."""
        raws: list[bytes] = []
        open_now = self._log.open_epochs()
        for epoch in open_now:
            path = self._log._segment_path(epoch)
            offset = self._offsets.get(epoch, 0)
            try:
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
            except FileNotFoundError:
                continue
            bodies, used = scan(data)
            self._offsets[epoch] = offset + used
            raws += [decode_record(body).raw for body in bodies]
        for epoch in set(self._offsets) - set(open_now):
            del self._offsets[epoch]  # closed: the pipeline reads it whole
        return raws


_QUARANTINE = "quarantine"


@dataclass(frozen=True, slots=True)
class FileRepair:
    """What ``repair_log`` did to one damaged record file."""

    path: str
    quarantined_as: str
    damaged: list[DamagedRange]
    records_kept: int
    records_lost: int
    exact: bool
    bytes_lost: int
    torn_tail_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the report file and the CLI print it)."""
        return {
            "path": self.path,
            "quarantined_as": self.quarantined_as,
            "damaged": [
                {"start": d.start, "end": d.end, "records": d.records, "exact": d.exact}
                for d in self.damaged
            ],
            "records_kept": self.records_kept,
            "records_lost": self.records_lost,
            "records_lost_exact": self.exact,
            "bytes_lost": self.bytes_lost,
            "torn_tail_bytes": self.torn_tail_bytes,
        }


@dataclass(frozen=True, slots=True)
class RepairReport:
    """Every damaged file of an ingest log, what was kept and what was set aside."""

    directory: str
    checked: int
    repaired: list[FileRepair]
    quarantine: str | None

    @property
    def records_lost(self) -> int:
        """Records in the damaged ranges, over every file (a lower bound unless ``exact``)."""
        return sum(r.records_lost for r in self.repaired)

    @property
    def bytes_lost(self) -> int:
        """Bytes in the damaged ranges, over every file (exact)."""
        return sum(r.bytes_lost for r in self.repaired)

    @property
    def exact(self) -> bool:
        """Whether ``records_lost`` is exact (every damaged record's length header survived)."""
        return all(r.exact for r in self.repaired)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "directory": self.directory,
            "files_checked": self.checked,
            "files_repaired": len(self.repaired),
            "records_lost": self.records_lost,
            "records_lost_exact": self.exact,
            "bytes_lost": self.bytes_lost,
            "quarantine": self.quarantine,
            "files": [r.to_dict() for r in self.repaired],
        }


def repair_log(directory: Path | str, *, now: str | None = None) -> RepairReport:
    """Set the damaged parts of an ingest log's record files aside, keeping every intact record.

    For each segment (and the log's own dead-letter file) with bad bytes followed
    by intact records, the original file is kept under
    ``quarantine/<now>/`` (a hard link: moved aside, never deleted) and the file
    is rewritten, atomically, with its intact records only. The report says
    exactly which byte ranges were set aside and how many records they held.
    The log must not be open for writing (the writer lock is taken).
    """
    # CHECKS
    root = Path(directory)
    if not (root / "segments").is_dir():
        raise InputRejected(f"{root} holds no ingest log")
    lock_fd = _lock_writer(root / _WRITER_LOCK)
    try:
        # OPERATION
        stamp = now or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        quarantine = root / _QUARANTINE / stamp
        files = sorted((root / "segments").glob(f"{_SEGMENT_PREFIX}*{_SEGMENT_SUFFIX}"))
        dead_file = root / "deadletters" / "deadletters.log"
        if dead_file.exists():
            files.append(dead_file)
        repaired: list[FileRepair] = []
        for path in files:
            data = path.read_bytes()
            mapped = survey(data)
            if not mapped.damaged:
                continue  # intact, or only a torn tail, which opening the log drops
            aside = quarantine / path.relative_to(root)
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, aside)
            fsync_directory(aside.parent)
            write_atomically(path, b"".join(frame(body) for _, body in mapped.records))
            repaired.append(
                FileRepair(
                    path=str(path.relative_to(root)),
                    quarantined_as=str(aside.relative_to(root)),
                    damaged=mapped.damaged,
                    records_kept=len(mapped.records),
                    records_lost=sum(d.records for d in mapped.damaged),
                    exact=all(d.exact for d in mapped.damaged),
                    bytes_lost=sum(d.end - d.start for d in mapped.damaged),
                    torn_tail_bytes=mapped.torn_tail,
                )
            )
        report = RepairReport(
            str(root), len(files), repaired, str(quarantine.relative_to(root)) if repaired else None
        )
        if repaired:
            write_atomically(
                quarantine / "report.json", json.dumps(report.to_dict(), indent=2).encode()
            )
        return report
    finally:
        os.close(lock_fd)

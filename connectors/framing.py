"""Append-only record files: length + CRC framing, durable appends, torn-tail recovery.

Each record is ``u32 length | u32 crc32(body) | body`` (big-endian). A crash can
only tear the bytes of the last write, which was never acknowledged, so on open
the file is scanned and cut back to the end of its last complete record: a torn
tail is dropped, never half-read. The ingest log's epoch segments and the
dead-letter store both use this format.

Damage before the end is another matter: if complete, checksummed records
follow a bad one, the bad bytes are not a torn write but a damaged file (a bad
disk sector, a stray write), and records after it may have been acknowledged.
Opening such a file raises ``SegmentDamaged`` naming the file and the offset;
``survey`` maps every good record and every damaged range so a repair can
keep the good records and set the damaged bytes aside.

A write or fsync that fails (``ENOSPC`` on a full disk, ``EIO``) raises
``RecordWriteError`` and leaves the file as it was after its last successful
``sync``: no half-written record is left for a later append to follow.
"""

from __future__ import annotations

import errno
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from veristream.provers.durable import fsync_directory
from veristream.provers.errors import InputRejected, StoreError

HEADER = struct.Struct(">II")
MAX_RECORD_BYTES = 64 * 1024 * 1024


def frame(body: bytes) -> bytes:
    """The framed bytes of one record."""
    if len(body) > MAX_RECORD_BYTES:
        raise InputRejected(f"record of {len(body)} bytes exceeds {MAX_RECORD_BYTES}")
    return HEADER.pack(len(body), zlib.crc32(body)) + body


# Disk-full errnos: the caller should answer "retry later", not "broken".
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class SegmentDamaged(StoreError):
    """A record file holds bad bytes with good records after them (not a torn tail)."""

    def __init__(self, path: Path, offset: int, resume: int) -> None:
        self.path = path
        self.offset = offset
        self.resume = resume
        super().__init__(
            f"{path} is damaged at byte {offset}: {resume - offset} bad bytes before good "
            f"records resume at byte {resume}; `veristream ingest repair` sets the damage aside"
        )


class RecordWriteError(StoreError):
    """Appending to or syncing a record file failed; the file is back at its last durable state."""

    def __init__(self, path: Path, error: OSError) -> None:
        self.path = path
        self.errno = error.errno
        self.disk_full = error.errno in _FULL
        super().__init__(
            f"cannot write {path}: {error.strerror or error} "
            f"({errno.errorcode.get(error.errno or 0, 'EIO')}); nothing of this write was kept"
        )


def frame_end(data: bytes | memoryview, offset: int) -> int | None:
    """Where the record starting at ``offset`` ends, or ``None`` if no intact record starts there.

    A record has a body of at least one byte: no writer frames an empty body, so
    a run of zero bytes (what a torn write often leaves) is never read as records.
    """
    end = len(data)
    if offset + HEADER.size > end:
        return None
    length, crc = HEADER.unpack_from(data, offset)
    start = offset + HEADER.size
    if length == 0 or length > MAX_RECORD_BYTES or start + length > end:
        return None
    if zlib.crc32(data[start : start + length]) != crc:
        return None
    return start + length


def scan(data: bytes) -> tuple[list[bytes], int]:
    """The complete records at the start of ``data`` and the offset where they end.

    Scanning stops at the first record whose header or body is cut short or whose
    checksum does not match; everything from there on is the torn tail (or
    damage: see ``resume_after``).
    """
    records: list[bytes] = []
    offset = 0
    while (nxt := frame_end(data, offset)) is not None:
        records.append(bytes(data[offset + HEADER.size : nxt]))
        offset = nxt
    return records, offset


def resume_after(data: bytes | memoryview, bad: int) -> int | None:
    """The first offset after ``bad`` where an intact record starts, or ``None`` (a torn tail)."""
    for offset in range(bad + 1, len(data) - HEADER.size):
        if frame_end(data, offset) is not None:
            return offset
    return None


@dataclass(frozen=True, slots=True)
class DamagedRange:
    """Bad bytes ``[start, end)`` of a record file and the records they held.

    ``records`` is exact when ``exact``: the damaged records' length headers
    still chain from ``start`` to ``end``, so only their bodies were hit.
    Otherwise a header was hit too and ``records`` is a lower bound.
    """

    start: int
    end: int
    records: int
    exact: bool


@dataclass(frozen=True, slots=True)
class Survey:
    """Every intact record of a file (with its offset), the damaged ranges between, the torn tail."""

    records: list[tuple[int, bytes]]
    damaged: list[DamagedRange]
    torn_tail: int
    size: int


def _count_damaged(data: bytes, start: int, end: int) -> tuple[int, bool]:
    """How many records the bad range ``[start, end)`` held, following its length headers."""
    count, offset = 0, start
    while offset + HEADER.size <= end:
        length, _ = HEADER.unpack_from(data, offset)
        offset += HEADER.size + length
        count += 1
        if offset == end:
            return count, True
    return max(count, 1), False


def survey(data: bytes) -> Survey:
    """Map ``data``: intact records, damaged ranges (bad bytes with intact records after), torn tail."""
    records: list[tuple[int, bytes]] = []
    damaged: list[DamagedRange] = []
    offset = 0
    end = len(data)
    while offset < end:
        nxt = frame_end(data, offset)
        if nxt is not None:
            records.append((offset, data[offset + HEADER.size : nxt]))
            offset = nxt
            continue
        resume = resume_after(data, offset)
        if resume is None:
            break
        count, exact = _count_damaged(data, offset, resume)
        damaged.append(DamagedRange(offset, resume, count, exact))
        offset = resume
    return Survey(records, damaged, end - offset, end)


def _checked_scan(path: Path, data: bytes) -> tuple[list[bytes], int]:
    """``scan``, refusing a file whose bad bytes are followed by intact records."""
    records, good = scan(data)
    if good < len(data):
        resume = resume_after(data, good)
        if resume is not None:
            raise SegmentDamaged(path, good, resume)
    return records, good


class RecordFile:
    """One append-only framed file; thread-safe appends, explicit ``sync``.

    Opening for writing recovers the file: a torn tail is truncated away (and
    counted in ``torn_bytes``) so later appends never follow garbage. Opened
    with ``writable=False`` (a reader in another process) the file is never
    changed, and an incomplete last record, which may be a write in progress,
    is simply not read yet.
    """

    def __init__(self, path: Path, *, writable: bool = True) -> None:
        self.path = path
        self.writable = writable
        self._lock = threading.Lock()
        self._dirty = False
        self.torn_bytes = 0
        if not writable:
            self._fd = os.open(path, os.O_RDONLY) if path.exists() else -1
            records = self.records()
            self.count = len(records)
            self.size = sum(HEADER.size + len(r) for r in records)
            self._durable = (self.size, self.count)
            return
        created = not path.exists()
        data = b"" if created else path.read_bytes()
        records, good = _checked_scan(path, data)
        self.torn_bytes = len(data) - good
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            if self.torn_bytes:
                os.ftruncate(self._fd, good)
                os.fsync(self._fd)
            os.lseek(self._fd, good, os.SEEK_SET)
            if created:
                fsync_directory(path.parent)
        except OSError as error:
            raise RecordWriteError(path, error) from None
        self.count = len(records)
        self.size = good
        # (size, count) as of the last successful fsync: where a failed write goes back to
        self._durable = (self.size, self.count)

    def append(self, bodies: list[bytes]) -> None:
        """Write ``bodies`` as records in one write (not yet durable: call ``sync``)."""
        if not bodies:
            return
        if not self.writable:
            raise InputRejected(f"{self.path} is open read-only")
        blob = b"".join(frame(body) for body in bodies)
        with self._lock:
            view = memoryview(blob)
            try:
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
            except OSError as error:
                # A partial write would leave half a record for the next append to follow.
                self._truncate(*self._durable)
                raise RecordWriteError(self.path, error) from None
            self.count += len(bodies)
            self.size += len(blob)
            self._dirty = True

    def sync(self) -> None:
        """Flush appended records to stable storage (``fsync``); on failure drop what was not durable."""
        with self._lock:
            if self._dirty:
                try:
                    os.fsync(self._fd)
                except OSError as error:
                    self._truncate(*self._durable)
                    raise RecordWriteError(self.path, error) from None
                self._dirty = False
                self._durable = (self.size, self.count)

    def mark(self) -> tuple[int, int]:
        """``(size, count)`` now: a point ``rollback`` can return to."""
        with self._lock:
            return self.size, self.count

    def rollback(self, mark: tuple[int, int]) -> None:
        """Cut the file back to ``mark`` (records of a batch that was not acknowledged after all)."""
        with self._lock:
            self._truncate(*mark)

    def _truncate(self, size: int, count: int) -> None:
        # Shrinking a file needs no new blocks, so this works on a full disk too.
        os.ftruncate(self._fd, size)
        os.lseek(self._fd, size, os.SEEK_SET)
        self.size, self.count = size, count
        self._durable = (min(self._durable[0], size), min(self._durable[1], count))
        self._dirty = True

    def records(self) -> list[bytes]:
        """Every complete record, in append order (for a reader: as of now)."""
        with self._lock:
            if self._fd < 0:
                if self.writable or not self.path.exists():
                    return []
                self._fd = os.open(self.path, os.O_RDONLY)
            size = self.size if self.writable else os.fstat(self._fd).st_size
            data = os.pread(self._fd, size, 0)
        records, _ = _checked_scan(self.path, data)
        return records

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.records())

    def close(self) -> None:
        """Sync and close the file."""
        if self.writable:
            self.sync()
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

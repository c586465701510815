"""Append-only record files: length + CRC framing, durable appends, torn-tail recovery.

Each record is ``u32 length | u32 crc32(body) | body`` (big-endian). A crash can
only tear the bytes of the last write, which was never acknowledged, so on open
the file is scanned and cut back to the end of its last complete record: a torn
tail is dropped, never half-read. The ingest log's epoch segments and the
dead-letter store both use this format.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

from veristream.provers.durable import fsync_directory
from veristream.provers.errors import InputRejected

HEADER = struct.Struct(">II")
MAX_RECORD_BYTES = 64 * 1024 * 1024


def frame(body: bytes) -> bytes:
    """The framed bytes of one record."""
    if len(body) > MAX_RECORD_BYTES:
        raise InputRejected(f"record of {len(body)} bytes exceeds {MAX_RECORD_BYTES}")
    return HEADER.pack(len(body), zlib.crc32(body)) + body


def scan(data: bytes) -> tuple[list[bytes], int]:
    """The complete records at the start of ``data`` and the offset where they end.

    Scanning stops at the first record whose header or body is cut short or whose
    checksum does not match; everything from there on is the torn tail.
    """
    records: list[bytes] = []
    offset = 0
    end = len(data)
    while offset + HEADER.size <= end:
        length, crc = HEADER.unpack_from(data, offset)
        start = offset + HEADER.size
        if length > MAX_RECORD_BYTES or start + length > end:
            break
        body = data[start : start + length]
        if zlib.crc32(body) != crc:
            break
        records.append(body)
        offset = start + length
    return records, offset


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
            return
        created = not path.exists()
        data = b"" if created else path.read_bytes()
        records, good = scan(data)
        self.torn_bytes = len(data) - good
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if self.torn_bytes:
            os.ftruncate(self._fd, good)
            os.fsync(self._fd)
        os.lseek(self._fd, good, os.SEEK_SET)
        self.count = len(records)
        self.size = good
        if created:
            fsync_directory(path.parent)

    def append(self, bodies: list[bytes]) -> None:
        """Write ``bodies`` as records in one write (not yet durable: call ``sync``)."""
        if not bodies:
            return
        if not self.writable:
            raise InputRejected(f"{self.path} is open read-only")
        blob = b"".join(frame(body) for body in bodies)
        with self._lock:
            view = memoryview(blob)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self.count += len(bodies)
            self.size += len(blob)
            self._dirty = True

    def sync(self) -> None:
        """Flush appended records to stable storage (``fsync``)."""
        with self._lock:
            if self._dirty:
                os.fsync(self._fd)
                self._dirty = False

    def records(self) -> list[bytes]:
        """Every complete record, in append order (for a reader: as of now)."""
        with self._lock:
            if self._fd < 0:
                if self.writable or not self.path.exists():
                    return []
                self._fd = os.open(self.path, os.O_RDONLY)
            size = self.size if self.writable else os.fstat(self._fd).st_size
            data = os.pread(self._fd, size, 0)
        records, _ = scan(data)
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

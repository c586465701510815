"""The embedded chain's key-value store on disk: an append-only journal of committed batches.

py-evm keeps every trie node, block and receipt in one in-memory dict. Most keys are
content hashes written once; a few (the canonical head, number -> hash lookups) change.
Each ``save`` appends the batch of keys that are new or changed since the last save,
new keys first and changed ones last, closed by a commit record holding the batch's
length; ``load`` applies only complete, committed batches, so a crash mid-append loses
at most that batch and never leaves a head pointing at missing nodes. When the journal
grows past twice the live data it is rewritten whole (atomic rename).

Record: ``op (1 byte) | key length (4) | value length (4) | key | value``; op 1 puts,
2 deletes, 3 commits (its value is the batch's byte length, 8 bytes).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from veristream.provers.durable import write_atomically
from veristream.provers.errors import InputRejected

MAGIC = b"VSCHAIN2"
_PUT, _DELETE, _COMMIT = 1, 2, 3
_HEADER = struct.Struct(">BII")
_COMPACT_SLACK = 1 << 20


def _record(op: int, key: bytes, value: bytes) -> bytes:
    return _HEADER.pack(op, len(key), len(value)) + key + value


class StateJournal:
    """Loads and saves one store at ``path``; remembers what it last wrote."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._saved: dict[bytes, bytes] = {}
        self._file_bytes = 0

    def load(self, *, truncate: bool = True) -> dict[bytes, bytes]:
        """The store as of the last committed batch (empty when there is no file).

        ``truncate=False`` leaves a torn tail on disk (a reader beside a running writer)."""
        if not self.path.exists():
            return {}
        data = self.path.read_bytes()
        if data[: len(MAGIC)] != MAGIC:
            raise InputRejected(
                f"{self.path} is not a VeriStream chain state file (written by another version?): "
                "move it away to start a new embedded chain"
            )
        store: dict[bytes, bytes] = {}
        pending: list[tuple[int, bytes, bytes]] = []
        offset = committed = len(MAGIC)
        while offset + _HEADER.size <= len(data):
            op, klen, vlen = _HEADER.unpack_from(data, offset)
            end = offset + _HEADER.size + klen + vlen
            if end > len(data) or op not in (_PUT, _DELETE, _COMMIT):
                break  # a torn tail: the batch it belonged to never committed
            key = data[offset + _HEADER.size : offset + _HEADER.size + klen]
            value = data[offset + _HEADER.size + klen : end]
            offset = end
            if op != _COMMIT:
                pending.append((op, key, value))
                continue
            for pop, pkey, pvalue in pending:
                if pop == _PUT:
                    store[pkey] = pvalue
                else:
                    store.pop(pkey, None)
            pending = []
            committed = offset
        self._saved = dict(store)
        self._file_bytes = committed
        if committed != len(data) and truncate:
            # Drop the torn tail now so the next append starts on a record boundary.
            with open(self.path, "r+b") as f:
                f.truncate(committed)
        return store

    def save(self, store: dict[bytes, bytes]) -> None:
        """Persists ``store``: appends what changed since the last save, or rewrites it whole."""
        saved = self._saved
        new = [(k, v) for k, v in store.items() if k not in saved]
        changed = [(k, v) for k, v in store.items() if k in saved and saved[k] is not v and saved[k] != v]
        deleted = [k for k in saved if k not in store]
        if not (new or changed or deleted) and self.path.exists():
            return
        live = sum(len(k) + len(v) + _HEADER.size for k, v in store.items())
        if not self.path.exists() or self._file_bytes > 2 * live + _COMPACT_SLACK:
            self._rewrite(store)
        else:
            batch = b"".join(
                [_record(_PUT, k, v) for k, v in new]
                + [_record(_PUT, k, v) for k, v in changed]
                + [_record(_DELETE, k, b"") for k in deleted]
            )
            with open(self.path, "ab") as out:
                out.write(batch + _record(_COMMIT, b"", struct.pack(">Q", len(batch))))
                out.flush()
                os.fsync(out.fileno())
            self._file_bytes += len(batch) + _HEADER.size + 8
        self._saved = dict(store)

    def _rewrite(self, store: dict[bytes, bytes]) -> None:
        batch = b"".join(_record(_PUT, k, v) for k, v in store.items())
        write_atomically(self.path, MAGIC + batch + _record(_COMMIT, b"", struct.pack(">Q", len(batch))))
        self._file_bytes = len(MAGIC) + len(batch) + _HEADER.size + 8

"""The dead-letter store: every rejected message, with its reason, durably, in the work directory.

Nothing is dropped in VeriStream: a message that is not in an accepted batch is
here, with the stage that rejected it and why. Ingest writes its rejections
(malformed, oversized, late) and the pipeline its own (bad signatures, replays,
implausible values, ...). The store is one append-only framed file
(``deadletters.log``); a record's body is canonical JSON so it stays readable
with ordinary tools.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from veristream.connectors.framing import RecordFile
from veristream.provers.errors import InputRejected

_REASON_SHAPE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FILE = "deadletters.log"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected message: its bytes as they arrived, why, where, and for which epoch."""

    raw: bytes
    reason: str
    stage: str
    epoch: int | None = None
    detail: str = ""

    def to_json(self) -> bytes:
        """Canonical JSON of this dead letter (sorted keys, raw as 0x-hex)."""
        obj = {
            "detail": self.detail,
            "epoch": self.epoch,
            "raw": "0x" + self.raw.hex(),
            "reason": self.reason,
            "stage": self.stage,
        }
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()

    @staticmethod
    def from_json(body: bytes) -> DeadLetter:
        """Inverse of ``to_json``."""
        obj = json.loads(body)
        return DeadLetter(
            raw=bytes.fromhex(obj["raw"][2:]),
            reason=obj["reason"],
            stage=obj["stage"],
            epoch=obj["epoch"],
            detail=obj["detail"],
        )


def _check(item: DeadLetter) -> DeadLetter:
    if not isinstance(item.raw, bytes | bytearray):
        raise InputRejected(f"dead letter raw must be bytes, got {type(item.raw).__name__}")
    if not isinstance(item.reason, str) or not _REASON_SHAPE.match(item.reason):
        raise InputRejected(f"dead letter reason must be a snake_case identifier, got {item.reason!r}")
    if not isinstance(item.stage, str) or not item.stage:
        raise InputRejected("dead letter stage must be a non-empty string")
    if item.epoch is not None and (
        isinstance(item.epoch, bool) or not isinstance(item.epoch, int) or item.epoch < 0
    ):
        raise InputRejected(
            f"dead letter epoch must be a non-negative int or None, got {item.epoch!r}"
        )
    return DeadLetter(bytes(item.raw), item.reason, item.stage, item.epoch, str(item.detail))


class DeadLetterStore:
    """Append-only, durable dead letters in ``directory``; safe to share between threads.

    One process writes a store; another may open it with ``read_only=True`` and
    ``refresh()`` to see what was added since.
    """

    def __init__(self, directory: Path | str, *, read_only: bool = False) -> None:
        self.directory = Path(directory)
        self.read_only = read_only
        if not read_only:
            self.directory.mkdir(parents=True, exist_ok=True)
        self._file = RecordFile(self.directory / _FILE, writable=not read_only)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._stage_counts: Counter[tuple[str, str]] = Counter()
        self.refresh()

    def refresh(self) -> None:
        """Recount from disk (what a reader in another process calls to catch up)."""
        counts: Counter[str] = Counter()
        stage_counts: Counter[tuple[str, str]] = Counter()
        for body in self._file.records():
            letter = DeadLetter.from_json(body)
            counts[letter.reason] += 1
            stage_counts[(letter.stage, letter.reason)] += 1
        with self._lock:
            self._counts, self._stage_counts = counts, stage_counts

    def add(
        self, raw: bytes, reason: str, *, stage: str, epoch: int | None = None, detail: str = ""
    ) -> None:
        """Record one dead letter durably (written and fsynced before returning)."""
        self.add_many([DeadLetter(raw, reason, stage, epoch, detail)])

    def add_many(self, items: Iterable[DeadLetter], *, sync: bool = True) -> None:
        """Record several dead letters with one fsync (``sync=False`` leaves that to ``sync()``)."""
        checked = [_check(item) for item in items]
        if not checked:
            return
        if self.read_only:
            raise InputRejected(f"dead-letter store {self.directory} is open read-only")
        with self._lock:
            self._file.append([item.to_json() for item in checked])
            for item in checked:
                self._counts[item.reason] += 1
                self._stage_counts[(item.stage, item.reason)] += 1
        if sync:
            self._file.sync()

    def sync(self) -> None:
        """Make every added dead letter durable."""
        self._file.sync()

    def counts(self, stage: str | None = None) -> dict[str, int]:
        """Reason -> number of dead letters (of one ``stage`` when given)."""
        with self._lock:
            if stage is None:
                return dict(self._counts)
            return {r: n for (s, r), n in self._stage_counts.items() if s == stage}

    def read(self, epoch: int | None = None, *, stage: str | None = None) -> list[DeadLetter]:
        """Dead letters in the order they were added, filtered by epoch and stage when given."""
        letters = [DeadLetter.from_json(body) for body in self._file.records()]
        return [
            d
            for d in letters
            if (epoch is None or d.epoch == epoch) and (stage is None or d.stage == stage)
        ]

    def __len__(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def close(self) -> None:
        """Sync and close the store's file."""
        self._file.close()

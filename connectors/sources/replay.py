"""File replay: recorded readings from JSON-lines or Parquet, in timestamp order, at recorded or accelerated speed.

JSON lines: one envelope per line, as sent on the wire (what ``veristream
simulate --output FILE`` writes). Parquet: columns ``device_id`` (string),
``seq``, ``timestamp_ms`` (integers), ``payload``, ``signature`` (binary or
0x-hex strings) and optionally ``scheme``; other columns are ignored, so an
epoch's accepted batch replays too.

Messages are replayed in timestamp order (stable, so equal timestamps keep file
order). A line or row that does not parse is not dropped: it keeps its place
behind the message before it and goes to the log as it is, where it becomes a
dead letter. ``speed=1`` replays at the recorded pace, ``speed=k`` k times
faster, ``speed=None`` as fast as the sink takes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from veristream.connectors.ingest_log import AppendResult, IngestLog
from veristream.provers.encoding import canonical_json
from veristream.provers.errors import InputRejected

Sink = Callable[[Sequence[tuple[int, bytes]]], Sequence[AppendResult] | None]
Arrival = Literal["wall", "event"]


@dataclass(frozen=True, slots=True)
class ReplayStats:
    """What a replay did: messages sent, accepted by the sink, and its duration."""

    messages: int
    accepted: int
    rejected: int
    seconds: float


def detect_format(path: Path) -> Literal["jsonl", "parquet"]:
    """``parquet`` for ``.parquet``/``.pq`` files, else ``jsonl``."""
    return "parquet" if path.suffix.lower() in (".parquet", ".pq") else "jsonl"


def load_jsonl(path: Path) -> list[bytes]:
    """The non-empty lines of a JSON-lines file, as raw messages."""
    with open(path, "rb") as handle:
        return [line.rstrip(b"\r\n") for line in handle if line.strip()]


def _hex_field(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return value


def load_parquet(path: Path) -> list[bytes]:
    """One envelope per row of a Parquet file (a row that is not a reading stays as its JSON)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    missing = {"device_id", "seq", "timestamp_ms", "payload", "signature"} - set(table.column_names)
    if missing:
        raise InputRejected(f"{path} lacks the reading columns {sorted(missing)}")
    wanted = [
        c
        for c in ("device_id", "seq", "timestamp_ms", "payload", "signature", "scheme")
        if c in table.column_names
    ]
    raws: list[bytes] = []
    for row in table.select(wanted).to_pylist():
        envelope = {
            key: _hex_field(value)
            for key, value in row.items()
            if value is not None or key != "scheme"
        }
        try:
            raws.append(canonical_json(envelope))
        except (TypeError, ValueError):
            raws.append(repr(envelope).encode())
    return raws


def write_parquet(envelopes: Iterable[dict[str, Any]], path: Path) -> int:
    """Write envelope objects as a Parquet file of readings (binary payload and signature); returns rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = list(envelopes)
    table = pa.table(
        {
            "device_id": pa.array([r["device_id"] for r in rows], pa.string()),
            "seq": pa.array([r["seq"] for r in rows], pa.uint64()),
            "timestamp_ms": pa.array([r["timestamp_ms"] for r in rows], pa.uint64()),
            "payload": pa.array([bytes.fromhex(r["payload"][2:]) for r in rows], pa.binary()),
            "signature": pa.array([bytes.fromhex(r["signature"][2:]) for r in rows], pa.binary()),
            "scheme": pa.array([r.get("scheme", "secp256k1") for r in rows], pa.string()),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")
    return len(rows)


def _timestamp(raw: bytes) -> int | None:
    try:
        value = json.loads(raw).get("timestamp_ms")
    except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def timestamp_order(raws: Sequence[bytes]) -> list[tuple[int, bytes]]:
    """``(timestamp_ms, raw)`` in timestamp order; an unparseable message inherits the timestamp before it."""
    keyed: list[tuple[int, int, bytes]] = []
    last = 0
    for position, raw in enumerate(raws):
        ts = _timestamp(raw)
        if ts is not None:
            last = ts
        keyed.append((last, position, raw))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [(ts, raw) for ts, _, raw in keyed]


def load(path: Path, fmt: Literal["jsonl", "parquet"] | None = None) -> list[tuple[int, bytes]]:
    """A recorded file's messages in timestamp order."""
    kind = fmt or detect_format(path)
    raws = load_parquet(path) if kind == "parquet" else load_jsonl(path)
    return timestamp_order(raws)


def replay(
    messages: Sequence[tuple[int, bytes]],
    sink: Sink,
    *,
    speed: float | None = None,
    batch_size: int = 256,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ReplayStats:
    """Feed ``(timestamp_ms, raw)`` messages to ``sink`` in batches, paced by their timestamps / ``speed``."""
    if speed is not None and speed <= 0:
        raise InputRejected(f"speed must be positive, got {speed}")
    if batch_size <= 0:
        raise InputRejected(f"batch_size must be positive, got {batch_size}")
    start = clock()
    first_ts = messages[0][0] if messages else 0
    accepted = rejected = 0
    index = 0
    while index < len(messages):
        if speed is None:
            batch = messages[index : index + batch_size]
        else:
            # Everything due by now goes in one batch; then wait for the next one's time.
            due_ms = first_ts + (clock() - start) * 1000.0 * speed
            wait_s = (messages[index][0] - due_ms) / 1000.0 / speed
            if wait_s > 0:
                sleep(wait_s)
                due_ms = messages[index][0]
            end = index
            while end < len(messages) and end - index < batch_size and messages[end][0] <= due_ms:
                end += 1
            batch = messages[index : max(end, index + 1)]
        index += len(batch)
        results = sink(batch)
        if results is not None:
            accepted += sum(1 for r in results if r.accepted)
            rejected += sum(1 for r in results if not r.accepted)
    return ReplayStats(len(messages), accepted, rejected, clock() - start)


def log_sink(log: IngestLog, source: str, arrival: Arrival = "wall") -> Sink:
    """A sink appending to the ingest log; ``arrival="event"`` stamps each message's arrival with
    its own timestamp (a simulated clock, for deterministic replays of old recordings)."""

    def sink(batch: Sequence[tuple[int, bytes]]) -> list[AppendResult]:
        now = time.time_ns() // 1_000_000
        return log.append_batch(
            [(raw, source, ts if arrival == "event" else now) for ts, raw in batch]
        )

    return sink


def replay_file(
    path: Path,
    log: IngestLog,
    *,
    speed: float | None = None,
    fmt: Literal["jsonl", "parquet"] | None = None,
    arrival: Arrival = "wall",
) -> ReplayStats:
    """Replay a recorded file into the ingest log."""
    return replay(load(path, fmt), log_sink(log, f"file:{path.name}", arrival), speed=speed)

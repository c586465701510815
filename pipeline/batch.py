"""The epoch batch: accepted readings (and dead letters) as deterministic Parquet.

Byte-for-byte determinism is what lets every operator who rebuilds a batch get
the same CID: a fixed Arrow schema, rows in canonical order (accepted readings
by ``(device_id, seq)``, dead letters by their full ``order_key``), zstd at a
fixed level, a fixed row-group size, statistics on, no Arrow schema blob and no
key-value metadata, and nothing time-dependent. Parquet's footer does carry the
writer's ``created_by`` string (``parquet-cpp-arrow version X``), so the CIDs
are stable for a given pyarrow version; operators compare roots computed from
the batch rather than re-deriving its bytes, so a different pyarrow on an
operator's machine does not break verification.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from veristream.pipeline.aggregates import FieldStats
from veristream.pipeline.records import Candidate, Rejected
from veristream.pipeline.registry import device_address
from veristream.provers.encoding import keccak256
from veristream.provers.errors import InputRejected

ZSTD_LEVEL = 3
ROW_GROUP_SIZE = 65_536

ACCEPTED_SCHEMA = pa.schema(
    [
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("device", pa.binary(20), nullable=False),
        pa.field("seq", pa.uint64(), nullable=False),
        pa.field("timestamp_ms", pa.uint64(), nullable=False),
        pa.field("received_ms", pa.uint64(), nullable=False),
        pa.field("scheme", pa.string(), nullable=False),
        pa.field("payload", pa.binary(), nullable=False),
        pa.field("payload_hash", pa.binary(32), nullable=False),
        pa.field("signature", pa.binary(), nullable=False),
    ]
)

DEAD_LETTER_SCHEMA = pa.schema(
    [
        pa.field("reason", pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("received_ms", pa.uint64(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("raw", pa.binary(), nullable=False),
    ]
)


def write_parquet(table: pa.Table) -> bytes:
    """``table`` as Parquet bytes with VeriStream's fixed, deterministic writer settings."""
    sink = io.BytesIO()
    pq.write_table(
        table.replace_schema_metadata(None),
        sink,
        compression="zstd",
        compression_level=ZSTD_LEVEL,
        row_group_size=ROW_GROUP_SIZE,
        store_schema=False,
        write_statistics=True,
        use_dictionary=False,
        data_page_version="1.0",
        version="2.6",
    )
    return sink.getvalue()


def read_parquet(data: bytes, schema: pa.Schema) -> pa.Table:
    """Parquet bytes back as a table; ``ValueError`` if unreadable or not of ``schema``."""
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as error:
        raise InputRejected(f"not a readable Parquet batch: {error}") from None
    if not table.schema.remove_metadata().equals(schema):
        raise InputRejected(f"batch schema {table.schema} is not the expected {schema}")
    return table


def sort_accepted(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Accepted readings in the canonical batch and data-root order: by (device_id, seq)."""
    return sorted(candidates, key=Candidate.order_key)


def accepted_table(candidates: Sequence[Candidate]) -> pa.Table:
    """The accepted readings (already in canonical order) as an Arrow table."""
    readings = candidates
    columns: list[Any] = [
        [r.device_id for r in readings],
        [device_address(r.device_id) for r in readings],
        [r.seq for r in readings],
        [r.timestamp_ms for r in readings],
        [c.received_ms for c in candidates],
        [r.scheme for r in readings],
        [r.payload for r in readings],
        [keccak256(r.payload) for r in readings],
        [r.signature for r in readings],
    ]
    return pa.Table.from_arrays(
        [pa.array(col, type=f.type) for col, f in zip(columns, ACCEPTED_SCHEMA, strict=True)],
        schema=ACCEPTED_SCHEMA,
    )


def encode_accepted(candidates: Iterable[Candidate]) -> bytes:
    """The epoch batch: accepted readings sorted canonically, as deterministic Parquet."""
    return write_parquet(accepted_table(sort_accepted(candidates)))


def decode_accepted(data: bytes) -> list[Candidate]:
    """Readings of an epoch batch, in batch order; ``ValueError`` for anything malformed.

    ``payload_hash`` and ``device`` are derived columns: they are checked against
    the payload and device id, so a batch cannot carry a hash that its payload
    does not have.
    """
    table = read_parquet(data, ACCEPTED_SCHEMA)
    rows = table.to_pydict()
    # every operator decodes the whole batch at epoch end: whole-column checks and
    # construction in C, one address per device; the row loops only name a bad row
    payloads, device_ids = rows["payload"], rows["device_id"]
    if list(map(keccak256, payloads)) != rows["payload_hash"]:
        for i, (payload, payload_hash) in enumerate(zip(payloads, rows["payload_hash"], strict=True)):
            if keccak256(payload) != payload_hash:
                raise InputRejected(f"batch row {i}: payload_hash does not match the payload")
    addresses = {device_id: device_address(device_id) for device_id in set(device_ids)}
    if list(map(addresses.__getitem__, device_ids)) != rows["device"]:
        for i, (device_id, device) in enumerate(zip(device_ids, rows["device"], strict=True)):
            if addresses[device_id] != device:
                raise InputRejected(f"batch row {i}: device address does not match device_id")
    columns = zip(
        rows["received_ms"],
        range(table.num_rows),
        device_ids,
        rows["seq"],
        rows["timestamp_ms"],
        payloads,
        rows["signature"],
        rows["scheme"],
        repeat(b""),  # raw: a candidate rebuilt from a batch has no envelope
    )
    return list(map(Candidate._make, columns))


def encode_dead_letters(rejected: Iterable[Rejected]) -> bytes:
    """The epoch's dead letters with reasons, in canonical order, as deterministic Parquet."""
    ordered = sorted(rejected, key=Rejected.order_key)
    columns: list[Any] = [
        [r.reason for r in ordered],
        [r.stage for r in ordered],
        [r.device_id for r in ordered],
        [r.seq for r in ordered],
        [r.received_ms for r in ordered],
        [r.detail for r in ordered],
        [r.raw for r in ordered],
    ]
    table = pa.Table.from_arrays(
        [pa.array(col, type=f.type) for col, f in zip(columns, DEAD_LETTER_SCHEMA, strict=True)],
        schema=DEAD_LETTER_SCHEMA,
    )
    return write_parquet(table)


def decode_dead_letters(data: bytes) -> list[Rejected]:
    """Dead letters back from their batch."""
    rows = read_parquet(data, DEAD_LETTER_SCHEMA).to_pylist()
    return [
        Rejected(
            reason=row["reason"],
            stage=row["stage"],
            raw=row["raw"],
            received_ms=row["received_ms"],
            device_id=row["device_id"],
            seq=row["seq"],
            detail=row["detail"],
        )
        for row in rows
    ]


def aggregates_schema(quantiles: Sequence[int]) -> pa.Schema:
    """Schema of the per-device aggregates table for a job's quantiles."""
    fields = [
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("field", pa.string(), nullable=False),
        pa.field("count", pa.uint64(), nullable=False),
        pa.field("min", pa.int64(), nullable=False),
        pa.field("max", pa.int64(), nullable=False),
        pa.field("sum", pa.string(), nullable=False),
        pa.field("mean", pa.int64(), nullable=False),
    ]
    fields += [pa.field(f"q{q}", pa.int64(), nullable=False) for q in quantiles]
    return pa.schema(fields)


def encode_aggregates(
    stats: dict[str, dict[str, FieldStats]], quantiles: Sequence[int]
) -> bytes:
    """Per-device aggregates sorted by (device_id, field) as deterministic Parquet.

    ``sum`` is a decimal string: a sum of many int64 values may not fit int64.
    """
    schema = aggregates_schema(quantiles)
    rows: list[dict[str, Any]] = []
    for device_id in sorted(stats):
        for name in sorted(stats[device_id]):
            s = stats[device_id][name]
            row: dict[str, Any] = {
                "device_id": device_id,
                "field": name,
                "count": s.count,
                "min": s.min,
                "max": s.max,
                "sum": str(s.sum),
                "mean": s.mean,
            }
            row.update({f"q{q}": v for q, v in s.quantiles})
            rows.append(row)
    return write_parquet(pa.Table.from_pylist(rows, schema=schema))

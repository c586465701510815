"""The fuzzing properties of ``benchmarks/fuzz_ingest.py``, briefly (the benchmark runs them at volume)."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import pytest

from benchmarks.fuzz_ingest import PROPERTIES, Property, fuzz
from veristream.connectors.framing import HEADER
from veristream.connectors.ingest_log import IngestLog
from veristream.connectors.ipfs.car import encode_header, iter_blocks, read_header
from veristream.provers.errors import InputRejected, StoreError


@pytest.mark.parametrize("prop", PROPERTIES, ids=lambda p: p.name)
def test_malformed_input_is_refused_with_a_typed_error(prop: Property) -> None:
    result = fuzz(prop, 120)
    assert result["inputs"] == 120
    assert sum(result["verdicts"].values()) == 120


def test_RevertWhen_ASegmentHoldsAChecksummedRecordTooShortForTheLog(tmp_path: Path) -> None:
    # A record whose checksum is right but whose body is one byte: not a log record.
    (tmp_path / "segments").mkdir()
    body = b"x"
    (tmp_path / "segments" / "epoch-000000000000.log").write_bytes(
        HEADER.pack(len(body), zlib.crc32(body)) + body
    )
    with pytest.raises(InputRejected, match="shorter than its 17-byte header"):
        IngestLog(tmp_path, 60_000, 0)


def test_RevertWhen_ACarSectionNamesADigestLongerThanItsHash() -> None:
    # CIDv1 raw, sha2-256 (0x12) claiming a 33-byte digest
    cid = bytes([0x01, 0x55, 0x12, 33]) + b"\0" * 33
    root = bytes([0x01, 0x55, 0x12, 32]) + b"\0" * 32
    section = cid + b"data"
    header = encode_header([root])
    assert len(header) < 128 and len(section) < 128  # one-byte varints
    stream = io.BytesIO(bytes([len(header)]) + header + bytes([len(section)]) + section)
    read_header(stream)
    with pytest.raises((InputRejected, StoreError)):
        list(iter_blocks(stream))

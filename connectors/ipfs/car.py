"""CARv1 (Content Addressable aRchive) files: what ``ipfs dag export`` writes and ``ipfs dag import`` reads.

Layout: ``varint(len(header)) || header`` where the header is dag-cbor
``{"roots": [CID, ...], "version": 1}``, then one section per block:
``varint(len(cid) + len(block)) || cid || block`` (binary CID). The header is
encoded with the ``dag-cbor`` package (same authors as ``multiformats``), whose
output is canonical dag-cbor (keys sorted length-first), as go-car writes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

import dag_cbor
from multiformats import CID

from veristream.connectors.ipfs.cid import parse_cid, verify_block
from veristream.connectors.ipfs.unixfs import Block, _read_varint
from veristream.provers.errors import InputRejected
from veristream.provers.multibase import varint_encode

# kubo refuses blocks over 4 MiB on the wire (bitswap); a section far larger
# than that is a corrupt length, not a block, and must not make us allocate it.
MAX_SECTION = 8 * 1024 * 1024
MAX_HEADER = 1024 * 1024


def _read_stream_varint(stream: BinaryIO) -> int | None:
    """A varint read from ``stream``; ``None`` at a clean end of stream."""
    value = 0
    shift = 0
    first = True
    while True:
        byte = stream.read(1)
        if not byte:
            if first:
                return None
            raise InputRejected("CAR truncated inside a varint")
        first = False
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7
        if shift >= 64:
            raise InputRejected("CAR varint longer than 64 bits")


def _read_exact(stream: BinaryIO, length: int, what: str) -> bytes:
    data = stream.read(length)
    if len(data) != length:
        raise InputRejected(f"CAR truncated: {what} needs {length} bytes, got {len(data)}")
    return data


def encode_header(roots: list[bytes]) -> bytes:
    """The dag-cbor CARv1 header for ``roots`` (binary CIDs)."""
    header: bytes = dag_cbor.encode({"roots": [CID.decode(root) for root in roots], "version": 1})
    return header


def write_car(roots: list[bytes], blocks: Iterable[Block], out: BinaryIO) -> int:
    """Write a CARv1 with ``roots`` and ``blocks`` (in the given order) to ``out``; returns bytes written."""
    if not roots:
        raise InputRejected("a CAR needs at least one root")
    header = encode_header(roots)
    written = out.write(varint_encode(len(header)) + header)
    for block in blocks:
        written += out.write(varint_encode(len(block.cid) + len(block.data)))
        written += out.write(block.cid)
        written += out.write(block.data)
    return written


def _cid_length(section: bytes) -> int:
    """How many leading bytes of a CAR section are its CID."""
    if section[:2] == b"\x12\x20":
        return 34  # CIDv0: a bare sha2-256 multihash
    pos = 0
    try:
        for _ in range(3):  # version, codec, multihash code
            _, pos = _read_varint(section, pos)
        length, pos = _read_varint(section, pos)
    except ValueError:
        raise InputRejected("CAR section truncated inside its CID") from None
    if pos + length > len(section):
        raise InputRejected("CAR section shorter than its CID's digest")
    return pos + length


def read_header(stream: BinaryIO) -> list[bytes]:
    """Read a CARv1 header from ``stream``; returns the roots as binary CIDs."""
    length = _read_stream_varint(stream)
    if length is None or length == 0:
        raise InputRejected("not a CAR: empty input")
    if length > MAX_HEADER:
        raise InputRejected(f"not a CAR: header length {length} is implausible")
    raw = _read_exact(stream, length, "header")
    try:
        header = dag_cbor.decode(raw)
    except Exception as exc:  # dag_cbor raises its own error types for bad input
        raise InputRejected(f"not a CAR: header is not dag-cbor ({exc})") from None
    if not isinstance(header, dict):
        raise InputRejected("not a CAR: header is not a map")
    version = header.get("version")
    if version == 2:
        raise InputRejected("CARv2 is not supported: export a CARv1 (`ipfs dag export` does)")
    if version != 1:
        raise InputRejected(f"not a CARv1: header version {version!r}")
    roots = header.get("roots")
    if not isinstance(roots, list):
        raise InputRejected("not a CAR: header roots must be a list of CIDs")
    binary: list[bytes] = []
    for root in roots:
        if not isinstance(root, CID):
            raise InputRejected(f"not a CAR: header root {root!r} is not a CID")
        binary.append(bytes(root))
    return binary


def iter_blocks(stream: BinaryIO) -> Iterator[Block]:
    """The blocks after the header, each verified against its CID (``CidMismatch`` otherwise)."""
    while True:
        length = _read_stream_varint(stream)
        if length is None:
            return
        if length == 0 or length > MAX_SECTION:
            raise InputRejected(f"CAR section length {length} is out of range")
        section = _read_exact(stream, length, "block section")
        split = _cid_length(section)
        cid = parse_cid(section[:split])
        data = section[split:]
        verify_block(cid, data)
        yield Block(cid.binary, data)

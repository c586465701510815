"""UnixFS files as kubo's ``ipfs add --cid-version=1`` lays them out, and back.

The layout (what makes our CIDs equal kubo's for the same bytes):

- fixed 256 KiB chunks, each a **raw** block (codec 0x55);
- a file of one chunk is that raw block itself (``reduceSingleLeafToSelf``);
- otherwise a **balanced** tree: chunks are grouped 174 to a dag-pb node, those
  nodes 174 to a node, and so on until one root remains;
- each inner node is dag-pb (codec 0x70) whose Data is a UnixFS ``File`` with
  ``filesize`` and one ``blocksizes`` entry per link, links named ``""`` with
  ``Tsize`` = the child's block size plus everything under it;
- sha2-256 multihashes, CIDv1.

dag-pb is small enough to encode here (no maintained PyPI package does it; the
only one is a single 0.0.1 release). Its canonical form (the IPLD dag-pb spec):
``PBNode { Links = 2 (repeated PBLink), Data = 1 }`` with every link serialised
before Data, ``PBLink { Hash = 1, Name = 2, Tsize = 3 }`` in field order, and
UnixFS ``Data { Type = 1, Data = 2, filesize = 3, blocksizes = 4 (unpacked) }``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from veristream.connectors.ipfs.cid import (
    DAG_PB,
    RAW,
    ParsedCid,
    block_cid,
    format_cid,
    parse_cid,
    verify_block,
)
from veristream.provers.errors import InputRejected
from veristream.provers.multibase import varint_encode

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174

# UnixFS Data.Type values (unixfs.proto)
UNIXFS_RAW = 0
UNIXFS_FILE = 2

_WIRE_VARINT = 0
_WIRE_BYTES = 2


class Block(NamedTuple):
    """One IPLD block: its binary CID and its bytes."""

    cid: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class PBLink:
    """A dag-pb link: the child's binary CID, its name and its cumulative size."""

    hash: bytes
    name: str | None = ""
    tsize: int | None = None


@dataclass(frozen=True, slots=True)
class PBNode:
    """A decoded dag-pb node."""

    links: tuple[PBLink, ...]
    data: bytes | None


@dataclass(frozen=True, slots=True)
class UnixFSData:
    """The UnixFS message inside a dag-pb node's Data (the fields files use)."""

    type: int
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = ()


# --- protobuf wire format ---------------------------------------------------


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a varint at ``pos``; returns (value, next position)."""
    value = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise InputRejected("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 64:
            raise InputRejected("varint longer than 64 bits")


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """The (field number, wire type, value) triples of a protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == _WIRE_VARINT:
            value, pos = _read_varint(buf, pos)
            yield field, wire, value
        elif wire == _WIRE_BYTES:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise InputRejected("truncated length-delimited field")
            yield field, wire, buf[pos : pos + length]
            pos += length
        else:
            raise InputRejected(f"unexpected protobuf wire type {wire} (field {field})")


def _bytes_field(field: int, value: bytes) -> bytes:
    return varint_encode(field << 3 | _WIRE_BYTES) + varint_encode(len(value)) + value


def _uint_field(field: int, value: int) -> bytes:
    return varint_encode(field << 3 | _WIRE_VARINT) + varint_encode(value)


# --- dag-pb -----------------------------------------------------------------


def encode_pb_node(links: list[PBLink] | tuple[PBLink, ...], data: bytes | None) -> bytes:
    """Canonical dag-pb bytes of a node: links first (in order), then Data."""
    out = bytearray()
    for link in links:
        body = _bytes_field(1, link.hash)
        if link.name is not None:
            body += _bytes_field(2, link.name.encode("utf-8"))
        if link.tsize is not None:
            body += _uint_field(3, link.tsize)
        out += _bytes_field(2, body)
    if data is not None:
        out += _bytes_field(1, data)
    return bytes(out)


def decode_pb_node(block: bytes) -> PBNode:
    """Decode a dag-pb block; ``ValueError`` if it is not one."""
    links: list[PBLink] = []
    data: bytes | None = None
    for field, wire, value in _fields(block):
        if field == 2 and isinstance(value, bytes):
            links.append(_decode_pb_link(value))
        elif field == 1 and isinstance(value, bytes) and data is None:
            data = value
        else:
            raise InputRejected(f"not a dag-pb node: field {field} (wire type {wire})")
    return PBNode(tuple(links), data)


def _decode_pb_link(buf: bytes) -> PBLink:
    hash_: bytes | None = None
    name: str | None = None
    tsize: int | None = None
    for field, wire, value in _fields(buf):
        if field == 1 and wire == _WIRE_BYTES and isinstance(value, bytes):
            hash_ = value
        elif field == 2 and wire == _WIRE_BYTES and isinstance(value, bytes):
            try:
                name = value.decode("utf-8")
            except UnicodeDecodeError:
                raise InputRejected("dag-pb link name is not UTF-8") from None
        elif field == 3 and wire == _WIRE_VARINT and isinstance(value, int):
            tsize = value
        else:
            raise InputRejected(f"not a dag-pb link: field {field} (wire type {wire})")
    if hash_ is None:
        raise InputRejected("dag-pb link without Hash")
    return PBLink(hash_, name, tsize)


# --- UnixFS -------------------------------------------------------------------


def encode_unixfs(meta: UnixFSData) -> bytes:
    """UnixFS Data message bytes (blocksizes unpacked, as proto2 and kubo write them)."""
    out = _uint_field(1, meta.type)
    if meta.data:
        out += _bytes_field(2, meta.data)
    if meta.filesize is not None:
        out += _uint_field(3, meta.filesize)
    for size in meta.blocksizes:
        out += _uint_field(4, size)
    return out


def decode_unixfs(buf: bytes) -> UnixFSData:
    """Decode the UnixFS Data message; unknown fields (mode, mtime, hashType...) are ignored."""
    type_: int | None = None
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: list[int] = []
    for field, wire, value in _fields(buf):
        if field == 1 and wire == _WIRE_VARINT and isinstance(value, int):
            type_ = value
        elif field == 2 and wire == _WIRE_BYTES and isinstance(value, bytes):
            data = value
        elif field == 3 and wire == _WIRE_VARINT and isinstance(value, int):
            filesize = value
        elif field == 4 and wire == _WIRE_VARINT and isinstance(value, int):
            blocksizes.append(value)
        elif field == 4 and wire == _WIRE_BYTES and isinstance(value, bytes):
            # packed encoding: legal protobuf for a repeated scalar, so accept it
            pos = 0
            while pos < len(value):
                size, pos = _read_varint(value, pos)
                blocksizes.append(size)
    if type_ is None:
        raise InputRejected("UnixFS data without Type")
    return UnixFSData(type_, data, filesize, tuple(blocksizes))


# --- building a file DAG ----------------------------------------------------


class _Child(NamedTuple):
    cid: bytes
    tsize: int
    filesize: int


def iter_file_blocks(data: bytes) -> Iterator[Block]:
    """Every block of ``data`` imported as kubo does; the root comes last.

    Children are produced before their parents, so a store writing blocks in
    this order never holds a node whose children are missing.
    """
    view = memoryview(data)
    level: list[_Child] = []
    # One chunk even for empty input: the empty file is the empty raw block.
    for start in range(0, max(len(data), 1), CHUNK_SIZE):
        chunk = bytes(view[start : start + CHUNK_SIZE])
        cid = block_cid(RAW, chunk)
        yield Block(cid, chunk)
        level.append(_Child(cid, len(chunk), len(chunk)))
    if len(level) == 1:
        return
    while True:
        parents: list[_Child] = []
        for first in range(0, len(level), MAX_LINKS):
            group = level[first : first + MAX_LINKS]
            block = _file_node(group)
            cid = block_cid(DAG_PB, block)
            yield Block(cid, block)
            parents.append(
                _Child(
                    cid,
                    len(block) + sum(child.tsize for child in group),
                    sum(child.filesize for child in group),
                )
            )
        if len(parents) == 1:
            return
        level = parents


def _file_node(children: list[_Child]) -> bytes:
    """dag-pb bytes of an inner UnixFS file node over ``children``."""
    sizes = tuple(child.filesize for child in children)
    meta = UnixFSData(UNIXFS_FILE, None, sum(sizes), sizes)
    links = [PBLink(child.cid, "", child.tsize) for child in children]
    return encode_pb_node(links, encode_unixfs(meta))


def file_root(data: bytes) -> bytes:
    """Binary CID of ``data`` imported as a UnixFS file (the last block built)."""
    root = b""
    for block in iter_file_blocks(data):
        root = block.cid
    return root


def cid_of(data: bytes) -> str:
    """The CID ``ipfs add --cid-version=1`` gives ``data`` (base32), computed without storing."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InputRejected(f"cid_of needs bytes, got {type(data).__name__}")
    return format_cid(file_root(bytes(data)))


# --- reading a file DAG ------------------------------------------------------


def read_file(root: str | bytes, fetch: Callable[[bytes], bytes]) -> bytes:
    """Reassemble the file under ``root``, verifying every block against its CID.

    ``fetch`` maps a binary CID to the block's bytes as some store holds them;
    nothing it returns is trusted: each block is re-hashed (``CidMismatch``
    if it does not match) and the UnixFS sizes must add up (``ValueError``).
    """
    parts: list[bytes] = []
    _read_into(parse_cid(root), fetch, parts)
    return b"".join(parts)


def _read_into(cid: ParsedCid, fetch: Callable[[bytes], bytes], parts: list[bytes]) -> int:
    """Append the file bytes under ``cid`` to ``parts``; returns how many were appended."""
    block = fetch(cid.binary)
    verify_block(cid, block)
    if cid.codec == RAW:
        parts.append(block)
        return len(block)
    if cid.codec != DAG_PB:
        raise InputRejected(f"{format_cid(cid.binary)}: codec 0x{cid.codec:x} is not a UnixFS file")
    node = decode_pb_node(block)
    if node.data is None:
        raise InputRejected(f"{format_cid(cid.binary)}: dag-pb node without UnixFS data")
    meta = decode_unixfs(node.data)
    if meta.type not in (UNIXFS_FILE, UNIXFS_RAW):
        raise InputRejected(f"{format_cid(cid.binary)}: UnixFS type {meta.type} is not a file")
    if node.links and len(meta.blocksizes) != len(node.links):
        raise InputRejected(
            f"{format_cid(cid.binary)}: {len(node.links)} links but {len(meta.blocksizes)} blocksizes"
        )
    total = 0
    if meta.data:
        parts.append(meta.data)
        total += len(meta.data)
    for link, expected in zip(node.links, meta.blocksizes, strict=False):
        got = _read_into(parse_cid(link.hash), fetch, parts)
        if got != expected:
            raise InputRejected(
                f"{format_cid(cid.binary)}: child {format_cid(link.hash)} holds {got} bytes, "
                f"blocksizes says {expected}"
            )
        total += got
    if meta.filesize is not None and meta.filesize != total:
        raise InputRejected(f"{format_cid(cid.binary)}: filesize {meta.filesize} but {total} bytes")
    return total


def links_of(cid: bytes, block: bytes) -> list[bytes]:
    """Binary CIDs a block links to (none for raw blocks); used to walk a DAG."""
    codec = parse_cid(cid).codec
    if codec == RAW:
        return []
    if codec != DAG_PB:
        raise InputRejected(f"{format_cid(cid)}: cannot walk codec 0x{codec:x}")
    return [link.hash for link in decode_pb_node(block).links]

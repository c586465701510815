"""CIDs as VeriStream stores and signs them: CIDv1, sha2-256, base32 text.

Parsing goes through the ``multiformats`` package (any multibase, CIDv0 or v1),
so a malformed CID is refused in one place with a clear ``ValueError``. The hot
path (one CID per 256 KiB block) builds the binary form from a precomputed
prefix and formats base32 with the standard library: ``multiformats``'
multibase encoder costs as much per call as hashing the block. A test
checks both give the same text.
"""

from __future__ import annotations

import base64
import hashlib
from typing import NamedTuple

from multiformats import CID, multihash

from veristream.provers.errors import InputRejected, StoreError

RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12
_SHA2_256_LENGTH = 32


class CidMismatch(StoreError, ValueError):
    """Bytes received for a CID do not hash to that CID: refused, never returned."""


class ParsedCid(NamedTuple):
    """The parts of a CID that reading a block needs."""

    binary: bytes
    """The CID's binary form (CIDv0 is its bare multihash, CIDv1 has version and codec)."""
    version: int
    codec: int
    hash_code: int
    digest: bytes


def _prefix(codec: int) -> bytes:
    """The constant bytes before the digest of a CIDv1 over sha2-256."""
    probe = bytes(CID("base32", 1, codec, multihash.wrap(b"\x00" * _SHA2_256_LENGTH, "sha2-256")))
    return probe[:-_SHA2_256_LENGTH]


_PREFIX = {RAW: _prefix(RAW), DAG_PB: _prefix(DAG_PB)}


def block_cid(codec: int, block: bytes) -> bytes:
    """Binary CIDv1 (sha2-256) of ``block`` under ``codec`` (``RAW`` or ``DAG_PB``)."""
    prefix = _PREFIX.get(codec)
    if prefix is None:
        raise InputRejected(f"unsupported codec 0x{codec:x}: only raw and dag-pb blocks are built")
    return prefix + hashlib.sha256(block).digest()


def format_cid(binary: bytes) -> str:
    """Text form of a binary CID: base32 (``b...``) for v1, base58btc (``Qm...``) for v0."""
    if binary[:2] == b"\x12\x20":
        return str(CID.decode(binary))
    return "b" + base64.b32encode(binary).decode("ascii").rstrip("=").lower()


def parse_cid(cid: str | bytes) -> ParsedCid:
    """Parse a CID in text (any multibase, or base58 CIDv0) or binary form; ``ValueError`` if malformed."""
    if not isinstance(cid, str | bytes | bytearray):
        raise InputRejected(f"a CID must be str or bytes, got {type(cid).__name__}")
    if isinstance(cid, bytes | bytearray):
        # Fast path for the blocks we build ourselves (every link of a file DAG).
        for codec, prefix in _PREFIX.items():
            if len(cid) == len(prefix) + _SHA2_256_LENGTH and cid.startswith(prefix):
                binary = bytes(cid)
                return ParsedCid(binary, 1, codec, SHA2_256, binary[len(prefix) :])
    if isinstance(cid, str):
        cid = cid.strip()
    if not cid:
        raise InputRejected("empty CID")
    try:
        parsed = CID.decode(bytes(cid) if isinstance(cid, bytearray) else cid)
        # the digest is checked lazily (e.g. its length against the hash), so read it here
        return ParsedCid(
            binary=bytes(parsed),
            version=parsed.version,
            codec=parsed.codec.code,
            hash_code=parsed.hashfun.code,
            digest=bytes(parsed.raw_digest),
        )
    except Exception as exc:  # multiformats raises several unrelated types for bad input
        raise InputRejected(f"not a CID: {cid!r} ({exc})") from None


def cid_to_bytes(cid: str) -> bytes:
    """The binary form of ``cid`` (what ``EpochResult.batch_cid`` holds and keccak256 commits to)."""
    return parse_cid(cid).binary


def normalize_cid(cid: str | bytes) -> str:
    """The canonical text of ``cid``: base32 for CIDv1, base58btc for CIDv0."""
    return format_cid(parse_cid(cid).binary)


def verify_block(cid: ParsedCid, block: bytes) -> None:
    """Raise ``CidMismatch`` unless ``block`` hashes to ``cid``'s digest."""
    if cid.hash_code == SHA2_256:
        digest = hashlib.sha256(block).digest()
    else:
        try:
            digest = bytes(multihash.get(code=cid.hash_code).digest(block))
        except Exception as exc:
            raise InputRejected(
                f"cannot verify {format_cid(cid.binary)}: hash 0x{cid.hash_code:x} unsupported ({exc})"
            ) from None
        digest = bytes(multihash.unwrap(digest))
    if digest != cid.digest:
        raise CidMismatch(
            f"block does not match {format_cid(cid.binary)}: "
            f"got {len(block)} bytes hashing to {digest.hex()[:16]}..."
        )

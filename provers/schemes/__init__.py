"""Signature schemes for device readings, one module per curve.

Each scheme module owns its encodings (keys, signatures), its range checks and
the native call that verifies. ``veristream.provers.signing`` composes them; a
failed check reports a ``veristream.provers.reasons.SignatureFault``.
"""

from __future__ import annotations

from veristream.provers.errors import InputRejected

PRIVATE_KEY_LENGTH = 32


def ensure_private_key(private_key: bytes) -> bytes:
    """``private_key`` as 32 immutable bytes; ``ValueError`` for any other type or length."""
    if not isinstance(private_key, bytes | bytearray):
        raise InputRejected(f"private key must be bytes, got {type(private_key).__name__}")
    if len(private_key) != PRIVATE_KEY_LENGTH:
        raise InputRejected(f"private key must be {PRIVATE_KEY_LENGTH} bytes, got {len(private_key)}")
    return bytes(private_key)


def ensure_digest(digest: bytes) -> bytes:
    """``digest`` as 32 immutable bytes; ``ValueError`` otherwise."""
    if not isinstance(digest, bytes | bytearray) or len(digest) != 32:
        raise InputRejected("digest must be 32 bytes")
    return bytes(digest)

"""Signature schemes for device readings, one module per curve.

Each scheme module owns its encodings (keys, signatures), its range checks and
the native call that verifies. ``veristream.provers.signing`` composes them; the
reason strings below are what a failed check reports, and what the pipeline
writes into its dead-letter store.
"""

from __future__ import annotations

REASON_MALFORMED_READING = "malformed_reading"
REASON_UNSUPPORTED_SCHEME = "unsupported_scheme"
REASON_UNKNOWN_DEVICE = "unknown_device"
REASON_MALFORMED_KEY = "malformed_key"
REASON_MALFORMED_SIGNATURE = "malformed_signature"
REASON_BAD_V = "bad_v"
REASON_HIGH_S = "high_s"
REASON_BAD_SIGNATURE = "bad_signature"

REASONS = (
    REASON_MALFORMED_READING,
    REASON_UNSUPPORTED_SCHEME,
    REASON_UNKNOWN_DEVICE,
    REASON_MALFORMED_KEY,
    REASON_MALFORMED_SIGNATURE,
    REASON_BAD_V,
    REASON_HIGH_S,
    REASON_BAD_SIGNATURE,
)

PRIVATE_KEY_LENGTH = 32


def ensure_private_key(private_key: bytes) -> bytes:
    """``private_key`` as 32 immutable bytes; ``ValueError`` for any other type or length."""
    if not isinstance(private_key, bytes | bytearray):
        raise ValueError(f"private key must be bytes, got {type(private_key).__name__}")
    if len(private_key) != PRIVATE_KEY_LENGTH:
        raise ValueError(f"private key must be {PRIVATE_KEY_LENGTH} bytes, got {len(private_key)}")
    return bytes(private_key)


def ensure_digest(digest: bytes) -> bytes:
    """``digest`` as 32 immutable bytes; ``ValueError`` otherwise."""
    if not isinstance(digest, bytes | bytearray) or len(digest) != 32:
        raise ValueError("digest must be 32 bytes")
    return bytes(digest)

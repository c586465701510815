"""NIST P-256 ECDSA over the 32-byte reading digest, as secure elements sign it.

A secure element such as the ATECC608 signs an external 32-byte digest and
returns ``r || s`` raw, 64 bytes: that digest is the EIP-712 reading digest
itself (prehashed, no second hash), which is also what the P256VERIFY precompile
(RIP-7212 / EIP-7951) takes. ``s`` must be in the lower half of the order: ECDSA
allows ``(r, n - s)`` as a second valid signature, and a reading must have one
signature only, so devices (or their gateway) normalise ``s`` before sending.
Keys are 64-byte ``x || y`` (or 65 with the 0x04 prefix); device id:
``keccak256(x || y)[12:]``.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
)

from veristream.provers.errors import InputRejected
from veristream.provers.reasons import SignatureFault
from veristream.provers.schemes import (
    ensure_digest,
    ensure_private_key,
)

N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
HALF_N = N // 2
SIGNATURE_LENGTH = 64
PUBLIC_KEY_LENGTH = 64
CURVE = ec.SECP256R1()
_N_BYTES = N.to_bytes(32, "big")
_HALF_N_BYTES = HALF_N.to_bytes(32, "big")
_ZERO = bytes(32)
# DER headers by content length: every length here is below 128, so one length byte
_DER_INT = [bytes((0x02, n)) for n in range(33)]
_DER_INT_PADDED = [bytes((0x02, n + 1, 0x00)) for n in range(33)]
_DER_SEQ = [bytes((0x30, n)) for n in range(71)]
# Prehashed(SHA256) only declares "the 32 bytes given are the hash": the digest is signed as is
ALGORITHM = ec.ECDSA(Prehashed(hashes.SHA256()))
# RFC 6979 nonces: signing the same reading twice gives the same bytes, like the other schemes
_SIGNING_ALGORITHM = ec.ECDSA(Prehashed(hashes.SHA256()), deterministic_signing=True)


def signature_problem(signature: bytes) -> str | None:
    """Why ``signature`` is not a well-formed low-s ``r || s``, or None if it is."""
    if len(signature) != SIGNATURE_LENGTH:
        return SignatureFault.MALFORMED_SIGNATURE
    # Big-endian 32-byte strings compare like the integers they encode
    r = signature[:32]
    s = signature[32:]
    if r >= _N_BYTES or s >= _N_BYTES or r == _ZERO or s == _ZERO:
        return SignatureFault.MALFORMED_SIGNATURE
    if s > _HALF_N_BYTES:
        return SignatureFault.HIGH_S
    return None


def _der_integer(value: bytes) -> bytes:
    """DER INTEGER of a positive big-endian number (minimal, a 0x00 pad when the top bit is set)."""
    value = value.lstrip(b"\x00")
    if not value:
        return b"\x02\x01\x00"
    if value[0] & 0x80:
        return _DER_INT_PADDED[len(value)] + value
    return _DER_INT[len(value)] + value


def der_signature(signature: bytes) -> bytes:
    """The DER ``SEQUENCE { r, s }`` OpenSSL verifies, of a range-checked raw ``r || s``."""
    body = _der_integer(signature[:32]) + _der_integer(signature[32:])
    return _DER_SEQ[len(body)] + body


def load_public_key(public_key: bytes) -> ec.EllipticCurvePublicKey:
    """The parsed key of 64-byte ``x || y`` or 65-byte ``04 || x || y``; ``ValueError`` if invalid."""
    if not isinstance(public_key, bytes | bytearray):
        raise InputRejected(f"p256 public key must be bytes, got {type(public_key).__name__}")
    key = bytes(public_key)
    if len(key) == PUBLIC_KEY_LENGTH:
        key = b"\x04" + key
    elif not (len(key) == PUBLIC_KEY_LENGTH + 1 and key[0] == 4):
        raise InputRejected(f"p256 public key must be 64-byte x||y or 65 bytes 04||x||y, got {len(key)}")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(CURVE, key)
    except ValueError:
        raise InputRejected("p256 public key is not a point on the curve") from None


def canonical_public_key(public_key: bytes) -> bytes:
    """The 64-byte ``x || y`` form of a valid P-256 public key."""
    return load_public_key(public_key).public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )[1:]


def _private_key(private_key: bytes) -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(ensure_private_key(private_key), "big")
    if not 0 < scalar < N:
        raise InputRejected("p256 private scalar must be in [1, n-1]")
    return ec.derive_private_key(scalar, CURVE)


def public_key_of(private_key: bytes) -> bytes:
    """The 64-byte ``x || y`` public key of a 32-byte big-endian scalar."""
    return _private_key(private_key).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )[1:]


def sign(digest: bytes, private_key: bytes) -> bytes:
    """The 64-byte low-s ``r || s`` signature of the 32-byte digest (prehashed, RFC 6979 nonce)."""
    message = ensure_digest(digest)
    r, s = decode_dss_signature(_private_key(private_key).sign(message, _SIGNING_ALGORITHM))
    s = min(s, N - s)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify_der(digest: bytes, der: bytes, public_key: ec.EllipticCurvePublicKey) -> bool:
    """True iff the DER signature signs ``digest`` under the parsed key."""
    try:
        public_key.verify(der, digest, ALGORITHM)
    except InvalidSignature:
        return False
    return True


def check(digest: bytes, signature: bytes, public_key: ec.EllipticCurvePublicKey) -> str | None:
    """Why the raw ``r || s`` does not sign ``digest`` under the parsed key, or None if it does."""
    problem = signature_problem(signature)
    if problem is not None:
        return problem
    if not verify_der(digest, der_signature(signature), public_key):
        return SignatureFault.BAD_SIGNATURE
    return None

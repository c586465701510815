"""Ed25519 (RFC 8032) over the 32-byte reading digest, verified by libsodium.

Signatures are 64 bytes ``R || S``. ``S`` must be reduced (``S < L``), which
rules out the one malleability Ed25519 has; libsodium additionally refuses
small-order ``R`` and keys. Keys are the 32-byte encoded point; a key must be a
canonical point of the prime-order subgroup (libsodium's ``is_valid_point``).
Device id: ``keccak256(public_key)[12:]``.
"""

from __future__ import annotations

from typing import Any

from nacl._sodium import ffi as _ffi
from nacl._sodium import lib as _lib
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from veristream.provers.errors import InputRejected
from veristream.provers.reasons import SignatureFault
from veristream.provers.schemes import (
    ensure_digest,
    ensure_private_key,
)

L = 2**252 + 27742317777372353535851937790883648493
SIGNATURE_LENGTH = 64
PUBLIC_KEY_LENGTH = 32
_SIGNED_LENGTH = SIGNATURE_LENGTH + 32
_L_BYTES_BIG_ENDIAN = L.to_bytes(32, "big")


def signature_problem(signature: bytes) -> str | None:
    """Why ``signature`` is not a well-formed 64-byte signature with reduced ``S``, or None."""
    if len(signature) != SIGNATURE_LENGTH:
        return SignatureFault.MALFORMED_SIGNATURE
    # S is little-endian: reversed, its bytes compare like the integer
    if signature[:31:-1] >= _L_BYTES_BIG_ENDIAN:
        return SignatureFault.MALFORMED_SIGNATURE
    return None


def canonical_public_key(public_key: bytes) -> bytes:
    """The 32-byte key itself once checked: canonical, on the curve, not of small order."""
    if not isinstance(public_key, bytes | bytearray):
        raise InputRejected(f"ed25519 public key must be bytes, got {type(public_key).__name__}")
    key = bytes(public_key)
    if len(key) != PUBLIC_KEY_LENGTH:
        raise InputRejected(f"ed25519 public key must be {PUBLIC_KEY_LENGTH} bytes, got {len(key)}")
    if _lib.crypto_core_ed25519_is_valid_point(key) != 1:
        raise InputRejected("ed25519 public key is not a valid point of the prime-order subgroup")
    return key


def public_key_of(private_key: bytes) -> bytes:
    """The 32-byte public key of a 32-byte Ed25519 seed."""
    return bytes(SigningKey(ensure_private_key(private_key)).verify_key)


def sign(digest: bytes, private_key: bytes) -> bytes:
    """The 64-byte Ed25519 signature of the 32-byte digest under a 32-byte seed."""
    message = ensure_digest(digest)
    return bytes(SigningKey(ensure_private_key(private_key)).sign(message).signature)


def verify_reference(digest: bytes, signature: bytes, public_key: bytes) -> bool:
    """Verification through PyNaCl's public API: the baseline ``Verifier`` is measured against."""
    try:
        VerifyKey(public_key).verify(digest, signature)
    except BadSignatureError:
        return False
    return True


class Verifier:
    """Verifies through libsodium's ``crypto_sign_open`` with its output buffer reused.

    PyNaCl exposes no detached verify; its wrapper allocates two buffers per call,
    which this skips. One instance per thread.
    """

    __slots__ = ("_len", "_out")

    def __init__(self) -> None:
        self._out: Any = _ffi.new("unsigned char[]", _SIGNED_LENGTH)
        self._len: Any = _ffi.new("unsigned long long *")

    def verify(self, digest: bytes, signature: bytes, public_key: bytes) -> bool:
        """True iff ``signature`` (pre-checked) signs ``digest`` under the checked 32-byte key."""
        return (
            _lib.crypto_sign_open(
                self._out, self._len, signature + digest, _SIGNED_LENGTH, public_key
            )
            == 0
        )

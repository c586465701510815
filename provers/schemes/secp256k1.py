"""secp256k1: what Ethereum wallets and most DePIN devices sign with.

Signatures are 65 bytes ``r || s || v`` with ``v`` in {27, 28}, exactly what
``eth_signTypedData`` returns and what Solidity's ``ecrecover`` (and
OpenZeppelin's ``ECDSA.recover``) accept. ``v`` in {0, 1} is refused (``bad_v``):
a reading accepted here must also be accepted by the DeviceRegistry on chain.
``s`` must be in the lower half of the group order (EIP-2, non-malleable).
The device id is the signer's Ethereum address, recovered from the signature.
"""

from __future__ import annotations

from typing import Any

from coincurve import PrivateKey, PublicKey
from coincurve.context import GLOBAL_CONTEXT

from veristream.provers.encoding import keccak256
from veristream.provers.errors import InputRejected
from veristream.provers.reasons import SignatureFault
from veristream.provers.schemes import (
    ensure_digest,
    ensure_private_key,
)

try:
    # coincurve's own cffi handle: calling libsecp256k1 through it skips the
    # per-call buffer allocations and wrapper objects of the public API (~10%).
    from coincurve._libsecp256k1 import ffi as _ffi
    from coincurve._libsecp256k1 import lib as _lib
except ImportError:  # pragma: no cover - a coincurve that moved its binding
    _ffi = None
    _lib = None

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HALF_N = N // 2
SIGNATURE_LENGTH = 65
PUBLIC_KEY_LENGTH = 64
_V_OFFSET = 27
_N_BYTES = N.to_bytes(32, "big")
_HALF_N_BYTES = HALF_N.to_bytes(32, "big")
_ZERO = bytes(32)


def signature_problem(signature: bytes) -> str | None:
    """Why ``signature`` is not a well-formed low-s ``r||s||v`` signature, or None if it is."""
    if len(signature) != SIGNATURE_LENGTH:
        return SignatureFault.MALFORMED_SIGNATURE
    if signature[64] not in (27, 28):
        return SignatureFault.BAD_V
    # Big-endian 32-byte strings compare like the integers they encode
    r = signature[:32]
    s = signature[32:64]
    if r >= _N_BYTES or s >= _N_BYTES or r == _ZERO or s == _ZERO:
        return SignatureFault.MALFORMED_SIGNATURE
    if s > _HALF_N_BYTES:
        return SignatureFault.HIGH_S
    return None


def canonical_public_key(public_key: bytes) -> bytes:
    """The 64-byte ``x || y`` form of a public key given as x||y, SEC1 compressed or uncompressed.

    Raises ``ValueError`` for any other length or prefix, or a point off the curve.
    """
    if not isinstance(public_key, bytes | bytearray):
        raise InputRejected(f"secp256k1 public key must be bytes, got {type(public_key).__name__}")
    key = bytes(public_key)
    if len(key) == 64:
        key = b"\x04" + key
    elif not ((len(key) == 65 and key[0] == 4) or (len(key) == 33 and key[0] in (2, 3))):
        # libsecp256k1 would also take the hybrid 0x06/0x07 forms; nobody should send them
        raise InputRejected(f"secp256k1 public key must be 64-byte x||y or SEC1 33/65 bytes, got {len(key)}")
    try:
        point = PublicKey(key)
    except ValueError:
        raise InputRejected("secp256k1 public key is not a point on the curve") from None
    return point.format(compressed=False)[1:]


def address_of(public_key: bytes) -> bytes:
    """The 20-byte Ethereum address of a 64-byte ``x || y`` public key."""
    return keccak256(public_key)[12:]


def public_key_of(private_key: bytes) -> bytes:
    """The 64-byte ``x || y`` public key of a 32-byte secret; ``ValueError`` if out of range."""
    secret = ensure_private_key(private_key)
    try:
        key = PrivateKey(secret)
    except ValueError:
        raise InputRejected("secp256k1 secret must be in [1, n-1]") from None
    return key.public_key.format(compressed=False)[1:]


def sign(digest: bytes, private_key: bytes) -> bytes:
    """The 65-byte ``r || s || v`` signature (low s, v in {27, 28}) of a 32-byte digest."""
    message = ensure_digest(digest)
    secret = ensure_private_key(private_key)
    try:
        key = PrivateKey(secret)
    except ValueError:
        raise InputRejected("secp256k1 secret must be in [1, n-1]") from None
    # libsecp256k1 always produces low s, so no normalisation is needed
    raw = key.sign_recoverable(message, hasher=None)
    return raw[:64] + bytes((raw[64] + _V_OFFSET,))


def recover_address(digest: bytes, signature: bytes) -> bytes | None:
    """The signer's 20-byte address through coincurve's public API, or None if recovery fails.

    ``signature`` must already pass ``signature_problem``. This is the reference
    path the fast ``Recoverer`` is tested against, and its fallback.
    """
    compact = signature[:64] + bytes((signature[64] - _V_OFFSET,))
    try:
        point = PublicKey.from_signature_and_message(compact, digest, hasher=None)
    except ValueError:
        return None
    return address_of(point.format(compressed=False)[1:])


class Recoverer:
    """Recovers signer addresses straight through libsecp256k1, reusing its buffers.

    One instance per thread (the buffers are shared between calls).
    """

    __slots__ = ("_ctx", "_len", "_out", "_pub", "_sig")

    def __init__(self) -> None:
        self._ctx: Any = GLOBAL_CONTEXT.ctx
        self._sig: Any = None
        self._pub: Any = None
        self._out: Any = None
        self._len: Any = None
        if _ffi is not None:
            self._sig = _ffi.new("secp256k1_ecdsa_recoverable_signature *")
            self._pub = _ffi.new("secp256k1_pubkey *")
            self._out = _ffi.new("unsigned char[65]")
            self._len = _ffi.new("size_t *")

    def address(self, digest: bytes, signature: bytes) -> bytes | None:
        """The signer's 20-byte address, or None if no key recovers (``signature`` pre-checked)."""
        if _lib is None:  # pragma: no cover - see the import above
            return recover_address(digest, signature)
        ctx = self._ctx
        if not _lib.secp256k1_ecdsa_recoverable_signature_parse_compact(
            ctx, self._sig, signature[:64], signature[64] - _V_OFFSET
        ):
            return None
        if not _lib.secp256k1_ecdsa_recover(ctx, self._pub, self._sig, digest):
            return None
        self._len[0] = 65
        _lib.secp256k1_ec_pubkey_serialize(
            ctx, self._out, self._len, self._pub, _lib.SECP256K1_EC_UNCOMPRESSED
        )
        return keccak256(_ffi.buffer(self._out, 65)[1:])[12:]

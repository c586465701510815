"""BLS signatures on BN254 (alt_bn128), checkable by the EVM's ecAdd/ecMul/ecPairing.

Signatures and message hashes live in G1 (64 bytes), public keys in G2 (128
bytes), secret keys are ints in ``[1, r)``. Encodings are the precompiles' own
(EIP-196/197): big-endian 32-byte words, uncompressed, G2 coordinates with the
coefficient of ``i`` first. The hash to G1 is EigenLayer's try-and-increment over
keccak256, so a contract computes the same point. ``docs/bls.md`` is the
normative description; the contract implements exactly that.

Verify functions never raise: bad input is ``False``. Parsing and producing
functions raise ``ValueError`` saying what is wrong.

No clean native BN254 package exists for Python, so everything runs on plain
ints: ``_bn254_curve`` (group arithmetic: Jacobian inside, GLV on G1) and
``_bn254_pairing`` (the optimal ate pairing, value for value py-ecc's: sparse
lines, one shared Miller loop and a single final exponentiation per check, the
negated generator's lines computed once), far cheaper than py-ecc's naive
two-pairing comparison; py-ecc's ``optimized_bn128`` is the test oracle.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from veristream.provers.bls import _bn254_pairing
from veristream.provers.bls._bn254_curve import (
    G1_GENERATOR,
    G2_GENERATOR,
    Fp2,
    G1Point,
    G2Point,
    P,
    R,
    f2_neg,
    g1_add,
    g1_mul,
    g1_on_curve,
    g1_sum,
    g2_in_subgroup,
    g2_mul,
    g2_on_curve,
    g2_sum,
)
from veristream.provers.encoding import keccak256
from veristream.provers.errors import InputRejected

DST = b"VERISTREAM-BLS-BN254-SIG-V1"
POP_DST = b"VERISTREAM-BLS-BN254-POP-V2"

WORD = 32
G1_LENGTH = 2 * WORD
G2_LENGTH = 4 * WORD
PK_CACHE_SIZE = 4096

_NEG_G2: tuple[Fp2, Fp2] = (G2_GENERATOR[0], f2_neg(G2_GENERATOR[1]))
_SQRT_EXPONENT = (P + 1) // 4


# --- encodings -------------------------------------------------------------------


def _words(data: bytes, count: int, what: str) -> list[int]:
    if not isinstance(data, bytes):
        raise InputRejected(f"{what} must be bytes, got {type(data).__name__}")
    if len(data) != count * WORD:
        raise InputRejected(f"{what} must be {count * WORD} bytes, got {len(data)}")
    values = [int.from_bytes(data[i : i + WORD], "big") for i in range(0, len(data), WORD)]
    if any(v >= P for v in values):
        raise InputRejected(f"{what} has a coordinate >= the field modulus (non-canonical)")
    if not any(values):
        raise InputRejected(f"{what} is the point at infinity")
    return values


def encode_g1(point: G1Point) -> bytes:
    """The 64-byte EVM encoding ``x || y`` of an affine G1 point (all zeros for infinity)."""
    if point is None:
        return bytes(G1_LENGTH)
    return point[0].to_bytes(WORD, "big") + point[1].to_bytes(WORD, "big")


def encode_g2(point: G2Point) -> bytes:
    """The 128-byte EVM encoding ``x.imag || x.real || y.imag || y.real`` of an affine G2 point."""
    if point is None:
        return bytes(G2_LENGTH)
    (x_re, x_im), (y_re, y_im) = point
    return b"".join(v.to_bytes(WORD, "big") for v in (x_im, x_re, y_im, y_re))


def parse_g1(data: bytes, what: str = "G1 point") -> tuple[int, int]:
    """The affine G1 point ``(x, y)`` of a 64-byte encoding (G1 has cofactor 1).

    ``ValueError`` on a wrong length, a coordinate >= p, infinity, or a point off the curve.
    """
    x, y = _words(data, 2, what)
    if not g1_on_curve((x, y)):
        raise InputRejected(f"{what} is not on the curve y^2 = x^3 + 3")
    return (x, y)


@lru_cache(maxsize=PK_CACHE_SIZE)
def _parse_g2_cached(data: bytes) -> tuple[tuple[int, int], tuple[int, int]]:
    x_im, x_re, y_im, y_re = _words(data, 4, "")
    point = ((x_re, x_im), (y_re, y_im))
    if not g2_on_curve(point):
        raise InputRejected("is not on the twist curve y^2 = x^3 + 3/(9+i)")
    # the twist has a large cofactor: a point of another order would break the pairing check
    if not g2_in_subgroup(point):
        raise InputRejected("is not in the order-r subgroup of G2")
    return point


def parse_g2(data: bytes, what: str = "G2 point") -> tuple[tuple[int, int], tuple[int, int]]:
    """The affine G2 point ``((x.real, x.imag), (y.real, y.imag))`` of a 128-byte encoding.

    Cached by bytes (the subgroup check is a full scalar multiplication).
    ``ValueError`` on a wrong length, a coordinate >= p, infinity, a point off
    the twist, or a point outside the order-r subgroup.
    """
    if not isinstance(data, bytes):
        raise InputRejected(f"{what} must be bytes, got {type(data).__name__}")
    try:
        return _parse_g2_cached(bytes(data))
    except ValueError as exc:
        raise InputRejected(f"{what} {str(exc).lstrip()}") from None


def _check_secret_key(sk: int) -> int:
    if isinstance(sk, bool) or not isinstance(sk, int):
        raise InputRejected(f"secret key must be an int, got {type(sk).__name__}")
    if not 0 < sk < R:
        raise InputRejected("secret key must be in [1, r) for the BN254 group order r")
    return sk


def _check_message(message: bytes) -> bytes:
    if not isinstance(message, bytes):
        raise InputRejected(f"message must be bytes, got {type(message).__name__}")
    return message


def _check_list(name: str, items: Sequence[Any]) -> None:
    if isinstance(items, bytes | bytearray | str) or not isinstance(items, Sequence):
        raise InputRejected(f"{name} must be a list of bytes, got {type(items).__name__}")
    if not items:
        raise InputRejected(f"{name} must not be empty")


# --- hash to G1 --------------------------------------------------------------------


def _hash_to_g1_point(message: bytes, dst: bytes) -> tuple[int, int]:
    x = int.from_bytes(keccak256(dst + message), "big") % P
    while True:
        rhs = (x * x * x + 3) % P
        y = pow(rhs, _SQRT_EXPONENT, P)
        if y * y % P == rhs:
            return (x, y)
        x = (x + 1) % P


def hash_to_g1(message: bytes, dst: bytes = DST) -> bytes:
    """``H(message)`` in G1, 64 bytes: try-and-increment from keccak256(dst || message).

    x starts at keccak256(dst || message) mod p and increases by one until
    x^3 + 3 is a square; y = (x^3 + 3)^((p+1)/4) mod p as computed (no sign rule).
    """
    _check_message(message)
    if not isinstance(dst, bytes):
        raise InputRejected(f"dst must be bytes, got {type(dst).__name__}")
    return encode_g1(_hash_to_g1_point(message, dst))


# --- pairing ------------------------------------------------------------------------


def _g2_lines(point: G2Point) -> tuple[_bn254_pairing.Line, ...]:
    if point is None:
        raise InputRejected("a G2 point at infinity never reaches a pairing check here")
    if point == _NEG_G2:
        return _NEG_G2_LINES
    return _bn254_pairing.g2_lines(point)


# the negated generator is in every check: its Miller-loop lines are computed once
_NEG_G2_LINES = _bn254_pairing.g2_lines(_NEG_G2)


def _product_is_one(pairs: Sequence[tuple[G1Point, G2Point]]) -> bool:
    """Whether prod e(g1_i, g2_i) == 1: one shared Miller loop, one final exponentiation.

    Every G2 point here is a validated non-infinity subgroup point; a G1 point
    at infinity contributes 1.
    """
    return _bn254_pairing.product_is_one([(p1, _g2_lines(p2)) for p1, p2 in pairs])


# --- scheme -------------------------------------------------------------------------


def sk_to_pk(sk: int) -> bytes:
    """The 128-byte public key ``sk * G2``."""
    return encode_g2(g2_mul(G2_GENERATOR, _check_secret_key(sk)))


def sk_to_pk_g1(sk: int) -> bytes:
    """The 64-byte G1 twin ``sk * G1`` of the public key (what the contract stores per operator)."""
    return encode_g1(g1_mul(G1_GENERATOR, _check_secret_key(sk)))


def keys_match(pk_g1: bytes, pk_g2: bytes) -> bool:
    """Whether a 64-byte G1 key (what the registry stores) and a 128-byte G2 public key share one
    secret: e(pk_g1, G2) == e(G1, pk_g2). ``False`` on any bad input."""
    try:
        g1_point = parse_g1(pk_g1, "G1 public key")
        g2_point = parse_g2(pk_g2, "public key")
    except ValueError:
        return False
    # e(pk_g1, -G2) * e(G1, pk_g2) == 1
    return _product_is_one([(g1_point, _NEG_G2), (G1_GENERATOR, g2_point)])


def _core_sign(sk: int, message: bytes, dst: bytes) -> bytes:
    _check_secret_key(sk)
    _check_message(message)
    return encode_g1(g1_mul(_hash_to_g1_point(message, dst), sk))


def _core_verify(pk: bytes, message: bytes, signature: bytes, dst: bytes) -> bool:
    try:
        pk_point = parse_g2(pk, "public key")
        _check_message(message)
        sig_point = parse_g1(signature, "signature")
    except ValueError:
        return False
    # e(sig, -G2) * e(H(m), pk) == 1
    return _product_is_one([(sig_point, _NEG_G2), (_hash_to_g1_point(message, dst), pk_point)])


def sign(sk: int, message: bytes) -> bytes:
    """The 64-byte signature ``sk * H(message)`` under ``DST``."""
    return _core_sign(sk, message, DST)


def verify(pk: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``pk``'s signature of ``message``; ``False`` on any bad input."""
    return _core_verify(pk, message, signature, DST)


def sign_pop(sk: int, message: bytes) -> bytes:
    """A proof of possession over ``message``: ``sk * H(message)`` under ``POP_DST`` (64 bytes).

    The OperatorRegistry takes ``sign_pop(sk, digest)`` with ``digest`` its 32-byte
    ``keyRegistrationDigest``, which binds the proof to the chain, registry, set and operator.
    """
    return _core_sign(sk, message, POP_DST)


def verify_pop(pk: bytes, message: bytes, proof: bytes) -> bool:
    """Whether ``proof`` is ``sign_pop(sk, message)`` for ``pk``'s secret; ``False`` on bad input."""
    return _core_verify(pk, message, proof, POP_DST)


def pop_prove(sk: int) -> bytes:
    """The context-free proof of possession: ``sign_pop`` over the 128-byte public key itself."""
    return sign_pop(sk, sk_to_pk(sk))


def pop_verify(pk: bytes, proof: bytes) -> bool:
    """Whether ``proof`` is ``pop_prove`` of ``pk``'s secret key; ``False`` on bad input."""
    return verify_pop(pk, pk, proof)


def aggregate(signatures: Sequence[bytes]) -> bytes:
    """The G1 sum of one or more signatures (64 bytes; zeros if they cancel)."""
    _check_list("signatures", signatures)
    return encode_g1(g1_sum([parse_g1(s, "signature") for s in signatures]))


def aggregate_pks_g1(pks_g1: Sequence[bytes]) -> bytes:
    """The G1 sum of one or more ``sk_to_pk_g1`` keys (64 bytes)."""
    _check_list("G1 public keys", pks_g1)
    return encode_g1(g1_sum([parse_g1(pk, "G1 public key") for pk in pks_g1]))


def aggregate_pks_g2(pks_g2: Sequence[bytes]) -> bytes:
    """The G2 sum of one or more public keys (128 bytes)."""
    _check_list("public keys", pks_g2)
    return encode_g2(g2_sum([parse_g2(pk, "public key") for pk in pks_g2]))


def aggregate_verify(pks: Sequence[bytes], messages: Sequence[bytes], signature: bytes) -> bool:
    """Whether ``signature`` aggregates ``pks[i]``'s signature of ``messages[i]`` for every i.

    One Miller loop per key plus one, a single final exponentiation. ``False`` on
    empty input, a length mismatch or any bad key, message or signature.
    """
    try:
        _check_list("public keys", pks)
        _check_list("messages", messages)
        pk_points = [parse_g2(pk, "public key") for pk in pks]
        hashes = [_hash_to_g1_point(_check_message(m), DST) for m in messages]
        sig_point = parse_g1(signature, "signature")
    except ValueError:
        return False
    if len(pk_points) != len(hashes):
        return False
    pairs = [(sig_point, _NEG_G2), *zip(hashes, pk_points, strict=True)]
    return _product_is_one(pairs)


def fast_aggregate_verify(pks: Sequence[bytes], message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` aggregates every ``pks`` key's signature of ``message``.

    Sound only for keys whose proof of possession was checked. ``False`` on an
    empty list, any bad input, or keys summing to infinity.
    """
    try:
        _check_list("public keys", pks)
        apk = g2_sum([parse_g2(pk, "public key") for pk in pks])
        _check_message(message)
        sig_point = parse_g1(signature, "signature")
    except ValueError:
        return False
    if apk is None:
        return False
    return _product_is_one([(sig_point, _NEG_G2), (_hash_to_g1_point(message, DST), apk)])


# --- the contract's check ------------------------------------------------------------


def challenge(message: bytes, apk_g1: bytes, apk_g2: bytes, signature: bytes) -> int:
    """gamma = uint256(keccak256(abi.encodePacked(msgHash, apkG1, apkG2, sig))) mod r.

    ``msgHash`` is the 32-byte message itself; the packed points are their EVM
    encodings (64 + 128 + 64 bytes), so the preimage is 288 bytes.
    """
    if not isinstance(message, bytes) or len(message) != WORD:
        raise InputRejected("the on-chain check signs 32-byte messages only")
    for data, length, what in (
        (apk_g1, G1_LENGTH, "apk_g1"),
        (apk_g2, G2_LENGTH, "apk_g2"),
        (signature, G1_LENGTH, "signature"),
    ):
        if not isinstance(data, bytes) or len(data) != length:
            raise InputRejected(f"{what} must be {length} bytes")
    return int.from_bytes(keccak256(message + apk_g1 + apk_g2 + signature), "big") % R


def verify_g1_g2(apk_g1: bytes, apk_g2: bytes, message: bytes, signature: bytes) -> bool:
    """The contract's check: e(sig + gamma*apkG1, -G2) * e(H(m) + gamma*G1, apkG2) == 1.

    ``apk_g1`` is the signers' aggregate G1 key (computed on chain), ``apk_g2``
    the same key in G2 (supplied by the caller), ``message`` the 32-byte digest.
    The random ``gamma`` (``challenge``) ties both checks together: it holds
    exactly when ``signature`` is valid for ``apk_g2`` and both keys share one
    discrete log. ``False`` on any bad input.
    """
    try:
        gamma = challenge(message, apk_g1, apk_g2, signature)
        apk1 = parse_g1(apk_g1, "apk_g1")
        apk2 = parse_g2(apk_g2, "apk_g2")
        sig_point = parse_g1(signature, "signature")
    except ValueError:
        return False
    left = g1_add(sig_point, g1_mul(apk1, gamma))
    right = g1_add(_hash_to_g1_point(message, DST), g1_mul(G1_GENERATOR, gamma))
    return _product_is_one([(left, _NEG_G2), (right, apk2)])

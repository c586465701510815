"""BLS signatures on BLS12-381, Ethereum's ciphersuite ``BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_``.

Public keys are compressed G1 points (48 bytes), signatures compressed G2 points
(96 bytes), secret keys ints in ``[1, r)``. Every function returns the same bytes
and verdicts as py-ecc's ``G2ProofOfPossession`` (the test oracle); the backend is
blst through ``pyblst``, with py-ecc as the (far slower) fallback when the
native wheel is missing. See ``docs/bls.md`` for the input rules.

Verify functions never raise: bad input is ``False``. Parsing and producing
functions (``parse_pk``, ``parse_signature``, ``sk_to_pk``, ``sign``,
``aggregate``, the EVM encoders) raise ``ValueError`` saying what is wrong.

Public keys parsed once stay in an LRU cache (parsing checks the subgroup, which
costs more than the rest of a check), so a fixed committee is not re-parsed on
every aggregate check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from veristream.provers.errors import InputRejected

DST = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
POP_DST = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"

PUBLIC_KEY_LENGTH = 48
SIGNATURE_LENGTH = 96
CURVE_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
FIELD_MODULUS = int(
    "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab",
    16,
)
G1_GENERATOR = bytes.fromhex(
    "97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb"
)
EVM_FP_LENGTH = 64
PK_CACHE_SIZE = 4096
AGGREGATE_CACHE_SIZE = 256

_X_MASK = (1 << 381) - 1
_SIGN_BIT = 0x20
_G1_INFINITY = b"\xc0" + bytes(PUBLIC_KEY_LENGTH - 1)
_G2_INFINITY = b"\xc0" + bytes(SIGNATURE_LENGTH - 1)


# --- backend ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Backend:
    """The group operations this module needs, from blst or from py-ecc."""

    name: str
    p1: Any
    p2: Any
    miller_loop: Callable[[Any, Any], Any]
    final_verify: Callable[[Any, Any], bool]


def _load_backend(name: str) -> _Backend:
    if name == "blst":
        import pyblst

        return _Backend(
            "blst",
            pyblst.BlstP1Element,
            pyblst.BlstP2Element,
            pyblst.miller_loop,
            pyblst.final_verify,
        )
    if name == "py-ecc":
        from veristream.provers.bls import _pyecc12381 as slow

        return _Backend("py-ecc", slow.P1, slow.P2, slow.miller_loop, slow.final_verify)
    raise InputRejected(f"unknown BLS12-381 backend {name!r}: use 'blst' or 'py-ecc'")


def _default_backend() -> _Backend:
    try:
        return _load_backend("blst")
    except ImportError:
        # the native wheel is missing on this platform: stay correct, get slow
        return _load_backend("py-ecc")


_b = _default_backend()
_generator: Any = _b.p1.uncompress(G1_GENERATOR)


def backend() -> str:
    """Name of the backend in use: ``"blst"`` (pyblst) or ``"py-ecc"`` (pure-Python fallback)."""
    return _b.name


def use_backend(name: str) -> None:
    """Switch to the ``"blst"`` or ``"py-ecc"`` backend (clears the parsed-key cache)."""
    global _b, _generator
    _b = _load_backend(name)
    _generator = _b.p1.uncompress(G1_GENERATOR)
    _parse_pk_cached.cache_clear()
    _aggregate_point.cache_clear()


# --- parsing -----------------------------------------------------------------


def _check_secret_key(sk: int) -> int:
    if isinstance(sk, bool) or not isinstance(sk, int):
        raise InputRejected(f"secret key must be an int, got {type(sk).__name__}")
    if not 0 < sk < CURVE_ORDER:
        raise InputRejected("secret key must be in [1, r) for the BLS12-381 group order r")
    return sk


def _check_message(message: bytes) -> bytes:
    if not isinstance(message, bytes):
        raise InputRejected(f"message must be bytes, got {type(message).__name__}")
    return message


def _check_length(name: str, data: bytes, length: int) -> None:
    if not isinstance(data, bytes):
        raise InputRejected(f"{name} must be bytes, got {type(data).__name__}")
    if len(data) != length:
        raise InputRejected(f"{name} must be {length} bytes, got {len(data)}")


def _check_list(name: str, items: Sequence[Any]) -> None:
    # a bytes object is a Sequence too: iterating it would yield ints
    if isinstance(items, bytes | bytearray | str) or not isinstance(items, Sequence):
        raise InputRejected(f"{name} must be a list of bytes, got {type(items).__name__}")


@lru_cache(maxsize=PK_CACHE_SIZE)
def _parse_pk_cached(pk: bytes) -> Any:
    if pk == _G1_INFINITY:
        # an infinity key would let anyone sign for it; blst itself accepts it
        raise InputRejected("public key is the point at infinity")
    try:
        return _b.p1.uncompress(pk)
    except ValueError as exc:
        raise InputRejected(f"public key is not a valid G1 point in the subgroup: {exc}") from None


def parse_pk(pk: bytes) -> Any:
    """The G1 point of a 48-byte public key (cached; ``KeyValidate`` of the spec).

    ``ValueError`` when the key is not 48 bytes, not a canonical compressed
    encoding, not on the curve, not in the prime-order subgroup, or infinity.
    """
    _check_length("public key", pk, PUBLIC_KEY_LENGTH)
    return _parse_pk_cached(bytes(pk))


def parse_pks(pks: Sequence[bytes]) -> tuple[Any, ...]:
    """``parse_pk`` of every key, in order (each from the cache when seen before)."""
    _check_list("public keys", pks)
    return tuple(parse_pk(pk) for pk in pks)


def parse_signature(signature: bytes) -> Any:
    """The G2 point of a 96-byte signature.

    ``ValueError`` when it is not 96 bytes, not a canonical compressed encoding,
    not on the curve, not in the prime-order subgroup, or infinity.
    """
    _check_length("signature", signature, SIGNATURE_LENGTH)
    if signature == _G2_INFINITY:
        raise InputRejected("signature is the point at infinity")
    try:
        return _b.p2.uncompress(bytes(signature))
    except ValueError as exc:
        raise InputRejected(f"signature is not a valid G2 point in the subgroup: {exc}") from None


def key_validate(pk: bytes) -> bool:
    """Whether ``pk`` is a usable public key (``parse_pk`` would succeed)."""
    try:
        parse_pk(pk)
    except ValueError:
        return False
    return True


# --- core ----------------------------------------------------------------------


def _pairing_check(pairs: Sequence[tuple[Any, Any]], signature: Any) -> bool:
    """Whether prod e(pk_i, H_i) == e(G1, signature): Miller loops, one final exponentiation."""
    product = _b.miller_loop(pairs[0][0], pairs[0][1])
    for pk, hashed in pairs[1:]:
        product = product * _b.miller_loop(pk, hashed)
    return bool(_b.final_verify(product, _b.miller_loop(_generator, signature)))


def _core_sign(sk: int, message: bytes, dst: bytes) -> bytes:
    _check_secret_key(sk)
    _check_message(message)
    signature: bytes = _b.p2.hash_to_group(message, dst).scalar_mul(sk).compress()
    return signature


def _core_verify(pk: bytes, message: bytes, signature: bytes, dst: bytes) -> bool:
    try:
        pk_point = parse_pk(pk)
        _check_message(message)
        sig_point = parse_signature(signature)
    except ValueError:
        return False
    return _pairing_check([(pk_point, _b.p2.hash_to_group(message, dst))], sig_point)


def sk_to_pk(sk: int) -> bytes:
    """The 48-byte compressed public key ``sk * G1``."""
    pk: bytes = _generator.scalar_mul(_check_secret_key(sk)).compress()
    return pk


def sign(sk: int, message: bytes) -> bytes:
    """The 96-byte signature ``sk * H(message)`` under ``DST``."""
    return _core_sign(sk, message, DST)


def verify(pk: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``pk``'s signature of ``message``; ``False`` on any bad input."""
    return _core_verify(pk, message, signature, DST)


def aggregate(signatures: Sequence[bytes]) -> bytes:
    """The sum of one or more signatures (96 bytes); ``ValueError`` on an empty list or a bad one."""
    _check_list("signatures", signatures)
    if not signatures:
        raise InputRejected("cannot aggregate an empty list of signatures")
    total = _b.p2()
    for signature in signatures:
        total = total + parse_signature(signature)
    result: bytes = total.compress()
    return result


def aggregate_pks(pks: Sequence[bytes]) -> bytes:
    """The sum of one or more valid public keys (48 bytes; infinity if they cancel)."""
    points = parse_pks(pks)
    if not points:
        raise InputRejected("cannot aggregate an empty list of public keys")
    total = _b.p1()
    for point in points:
        total = total + point
    result: bytes = total.compress()
    return result


def aggregate_verify(pks: Sequence[bytes], messages: Sequence[bytes], signature: bytes) -> bool:
    """Whether ``signature`` aggregates ``pks[i]``'s signature of ``messages[i]`` for every i.

    Messages may repeat (the proof-of-possession ciphersuite allows it). ``False``
    on empty input, a length mismatch or any bad key, message or signature.
    """
    try:
        pk_points = parse_pks(pks)
        _check_list("messages", messages)
        for message in messages:
            _check_message(message)
        sig_point = parse_signature(signature)
    except ValueError:
        return False
    if not pk_points or len(pk_points) != len(messages):
        return False
    pairs = [(pk, _b.p2.hash_to_group(m, DST)) for pk, m in zip(pk_points, messages, strict=True)]
    return _pairing_check(pairs, sig_point)


@lru_cache(maxsize=AGGREGATE_CACHE_SIZE)
def _aggregate_point(pks: tuple[bytes, ...]) -> Any:
    """The sum of the keys' points, ``None`` for an empty list or a sum at infinity.

    Cached per key list: a committee that signs again costs one tuple hash here.
    """
    apk = _b.p1()
    for point in parse_pks(pks):
        apk = apk + point
    return None if not pks or apk == _b.p1() else apk


def fast_aggregate_verify(pks: Sequence[bytes], message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` aggregates every ``pks`` key's signature of the one ``message``.

    Sound only for keys whose proof of possession was checked (``pop_verify``).
    ``False`` on an empty list, any bad input, or keys summing to infinity.
    """
    try:
        _check_list("public keys", pks)
        for pk in pks:
            _check_length("public key", pk, PUBLIC_KEY_LENGTH)
        apk = _aggregate_point(tuple(bytes(pk) for pk in pks))
        _check_message(message)
        sig_point = parse_signature(signature)
    except ValueError:
        return False
    if apk is None:
        return False
    return _pairing_check([(apk, _b.p2.hash_to_group(message, DST))], sig_point)


def sign_pop(sk: int, message: bytes) -> bytes:
    """The BLS signature of ``message`` under the ciphersuite's ``POP_DST`` (96 bytes).

    The OperatorRegistry takes ``signature_to_evm(sign_pop(sk, digest))`` with ``digest`` its
    32-byte ``keyRegistrationDigest``, which binds the proof to the chain, registry, set and operator.
    """
    return _core_sign(sk, message, POP_DST)


def verify_pop(pk: bytes, message: bytes, proof: bytes) -> bool:
    """Whether ``proof`` is ``sign_pop(sk, message)`` for ``pk``'s secret; ``False`` on bad input."""
    return _core_verify(pk, message, proof, POP_DST)


def pop_prove(sk: int) -> bytes:
    """The ciphersuite's PopProve: ``sign_pop`` over ``sk``'s own public key."""
    return sign_pop(sk, sk_to_pk(sk))


def pop_verify(pk: bytes, proof: bytes) -> bool:
    """The ciphersuite's PopVerify of ``proof`` for ``pk``; ``False`` on bad input."""
    return verify_pop(pk, pk, proof)


# --- EVM (EIP-2537) encodings ----------------------------------------------------


def _fp_word(value: int) -> bytes:
    # EIP-2537: an Fp element is 64 bytes big-endian, the top 16 bytes zero
    return value.to_bytes(EVM_FP_LENGTH, "big")


def _g2_affine_words(compressed: bytes) -> bytes:
    """EIP-2537 G2 encoding (x.c0, x.c1, y.c0, y.c1) of a validated compressed point."""
    from py_ecc.bls.g2_primitives import signature_to_G2
    from py_ecc.optimized_bls12_381 import normalize

    x, y = normalize(signature_to_G2(compressed))  # type: ignore[arg-type]
    x0, x1 = (int(c) for c in x.coeffs)
    y0, y1 = (int(c) for c in y.coeffs)
    return _fp_word(x0) + _fp_word(x1) + _fp_word(y0) + _fp_word(y1)


def pk_to_evm(pk: bytes) -> bytes:
    """The 128-byte EIP-2537 G1 encoding (x || y, 64 bytes each) of a valid public key."""
    parse_pk(pk)
    q = FIELD_MODULUS
    x = int.from_bytes(pk, "big") & _X_MASK
    y = pow((x * x * x + 4) % q, (q + 1) // 4, q)
    # the sign flag marks the lexicographically larger of y and q - y
    if (2 * y > q) != bool(pk[0] & _SIGN_BIT):
        y = q - y
    return _fp_word(x) + _fp_word(y)


def signature_to_evm(signature: bytes) -> bytes:
    """The 256-byte EIP-2537 G2 encoding (x.c0 || x.c1 || y.c0 || y.c1) of a valid signature."""
    parse_signature(signature)
    return _g2_affine_words(bytes(signature))


def hash_to_g2_evm(message: bytes, dst: bytes = DST) -> bytes:
    """The 256-byte EIP-2537 encoding of ``H(message)`` (hash-to-curve with ``dst``)."""
    _check_message(message)
    if not isinstance(dst, bytes) or not 0 < len(dst) <= 255:
        raise InputRejected("dst must be 1 to 255 bytes")
    return _g2_affine_words(_b.p2.hash_to_group(message, dst).compress())

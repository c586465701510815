"""Pure-Python stand-in for the few blst operations ``bls12381`` uses (py-ecc underneath).

The shape mirrors pyblst (``P1``/``P2`` with ``uncompress``, ``compress``,
``scalar_mul``, ``hash_to_group``, ``+``, unary ``-``, ``==``; ``miller_loop`` and
``final_verify``) so ``bls12381`` runs unchanged on either. It is orders of
magnitude slower than blst and exists only so the proof core still works where
the native wheel cannot be installed.
"""

from __future__ import annotations

from hashlib import sha256
from typing import Any

from py_ecc.bls.g2_primitives import (
    G1_to_pubkey,
    G2_to_signature,
    pubkey_to_G1,
    signature_to_G2,
    subgroup_check,
)
from py_ecc.bls.hash_to_curve import hash_to_G2
from py_ecc.fields import optimized_bls12_381_FQ12 as FQ12
from py_ecc.optimized_bls12_381 import (
    Z1,
    Z2,
    add,
    eq,
    final_exponentiate,
    multiply,
    neg,
    pairing,
)

from veristream.provers.errors import InputRejected


class P1:
    """A point of G1 (public keys), py-ecc Jacobian coordinates inside."""

    __slots__ = ("point",)

    def __init__(self, point: Any = None) -> None:
        # like pyblst, the no-argument constructor is the point at infinity
        self.point = Z1 if point is None else point

    @classmethod
    def uncompress(cls, data: bytes) -> P1:
        """Parse 48 compressed bytes, enforcing the subgroup; ``ValueError`` otherwise."""
        try:
            point = pubkey_to_G1(data)  # type: ignore[arg-type]
        except (ValueError, AssertionError) as exc:
            raise InputRejected(f"bad G1 encoding: {exc}") from None
        if not subgroup_check(point):
            raise InputRejected("G1 point is not in the prime-order subgroup")
        return cls(point)

    def compress(self) -> bytes:
        return bytes(G1_to_pubkey(self.point))

    def scalar_mul(self, scalar: int) -> P1:
        return P1(multiply(self.point, scalar % _R))

    def __add__(self, other: P1) -> P1:
        return P1(add(self.point, other.point))

    def __neg__(self) -> P1:
        return P1(neg(self.point))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, P1) and eq(self.point, other.point)

    __hash__ = None  # type: ignore[assignment]


class P2:
    """A point of G2 (signatures, message hashes)."""

    __slots__ = ("point",)

    def __init__(self, point: Any = None) -> None:
        self.point = Z2 if point is None else point

    @classmethod
    def uncompress(cls, data: bytes) -> P2:
        """Parse 96 compressed bytes, enforcing the subgroup; ``ValueError`` otherwise."""
        try:
            point = signature_to_G2(data)  # type: ignore[arg-type]
        except (ValueError, AssertionError) as exc:
            raise InputRejected(f"bad G2 encoding: {exc}") from None
        if not subgroup_check(point):
            raise InputRejected("G2 point is not in the prime-order subgroup")
        return cls(point)

    @classmethod
    def hash_to_group(cls, message: bytes, dst: bytes) -> P2:
        return cls(hash_to_G2(message, dst, sha256))  # type: ignore[arg-type]

    def compress(self) -> bytes:
        return bytes(G2_to_signature(self.point))

    def scalar_mul(self, scalar: int) -> P2:
        return P2(multiply(self.point, scalar % _R))

    def __add__(self, other: P2) -> P2:
        return P2(add(self.point, other.point))

    def __neg__(self) -> P2:
        return P2(neg(self.point))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, P2) and eq(self.point, other.point)

    __hash__ = None  # type: ignore[assignment]


_R = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001


def miller_loop(p: P1, q: P2) -> Any:
    """The Miller loop of e(p, q), before the final exponentiation."""
    return pairing(q.point, p.point, final_exponentiate=False)


def final_verify(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` agree after the final exponentiation (one exponentiation)."""
    return bool(final_exponentiate(a / b) == FQ12.one())

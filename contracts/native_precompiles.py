"""The in-process EVM's BLS12-381 precompiles (EIP-2537) on blst instead of pure Python.

py-evm implements ``BLS12_PAIRING_CHECK`` and ``BLS12_MAP_FP2_TO_G2`` with py-ecc:
about two seconds per pairing check and a quarter of a second per map on one
core, which made every epoch submission and operator registration of the
embedded chain cost seconds. ``install_native_precompiles()`` swaps in:

- the pairing check on blst (``pyblst``): the same input rules (length, field
  range, on curve, in the subgroup; any violation is a ``VMError``, which the
  EVM turns into a failed call), the same gas, the same output;
- the map to G2 with py-ecc's SSWU map and a cofactor clearing by the
  endomorphism ``psi`` (RFC 9380, appendix G.3) instead of a 636-bit scalar
  multiplication: the same point, about five times faster.

Both are checked against py-evm's own implementation in
``tests/contracts/test_native_precompiles.py``. Without the native wheel nothing
is swapped (py-evm's versions stay, correct and slow).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth.abc import ComputationAPI
from eth.exceptions import VMError
from eth.precompiles.bls12_381.bls12_381_g2 import bytes_to_fq2, g2_optimized_3d_to_bytes
from eth.vm.forks.prague.computation import PragueComputation
from py_ecc.bls.hash_to_curve import map_to_curve_G2
from py_ecc.optimized_bls12_381.optimized_curve import FQ2, add, double, is_inf, multiply, neg

from veristream.provers.bls.bls12381 import FIELD_MODULUS

try:
    import pyblst
except ImportError:  # the native wheel is missing on this platform: py-evm's versions stay
    pyblst = None

PAIRING_CHECK_ADDRESS = (0x0F).to_bytes(20, "big")
MAP_FP2_TO_G2_ADDRESS = (0x11).to_bytes(20, "big")
PAIR_LENGTH = 384
PAIRING_BASE_GAS = 37_700
PAIRING_PER_PAIR_GAS = 32_600
MAP_FP2_TO_G2_GAS = 23_800

_P = FIELD_MODULUS
_HALF_P = (_P - 1) // 2
_G1_B = 4
_G2_B = (4, 4)  # 4 * (1 + i)
_BLS_X = 0xD201000000010000  # |x| of the curve parameter x = -0xd201000000010000
_G2_GENERATOR = bytes.fromhex(
    "93e02b6052719f607dacd3a088274f65596bd0d09920b61ab5da61bbdc7f5049334cf11213945d57e5ac7d055d042b7e"
    "024aa2b2f08f0a91260805272dc51051c6e47ad4fa403b02b4510b647ae3d1770bac0326a805bbefd48056c8c121bdb8"
)

_G1_GENERATOR = bytes.fromhex(
    "97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb"
)
_ONE_PLUS_I = FQ2([1, 1])
# psi's constants: 1 / (1 + i)^((p - 1) / 3) and 1 / (1 + i)^((p - 1) / 2)
_PSI_X = FQ2([1, 0]) / _ONE_PLUS_I ** ((_P - 1) // 3)
_PSI_Y = FQ2([1, 0]) / _ONE_PLUS_I ** ((_P - 1) // 2)


# --- encodings ---------------------------------------------------------------


def _fp(data: bytes) -> int:
    """A 64-byte big-endian field element; ``VMError`` when it is not below the modulus."""
    value = int.from_bytes(data, "big")
    if value >= _P:
        raise VMError("field element is not below the modulus")
    return value


def _fp2_mul(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return (a[0] * b[0] - a[1] * b[1]) % _P, (a[0] * b[1] + a[1] * b[0]) % _P


def _g1_point(data: bytes) -> Any | None:
    """The G1 point of a 128-byte EIP-2537 encoding (None for infinity); ``VMError`` off the
    curve or outside the subgroup."""
    x, y = _fp(data[:64]), _fp(data[64:])
    if x == 0 and y == 0:
        return None
    if (y * y - x * x * x - _G1_B) % _P:
        raise VMError("G1 point is not on the curve")
    flags = 0x80 | (0x20 if y > _HALF_P else 0)
    compressed = bytearray(x.to_bytes(48, "big"))
    compressed[0] |= flags
    try:
        return pyblst.BlstP1Element.uncompress(bytes(compressed))
    except ValueError:  # blst's error: not on the curve or not in the subgroup
        raise VMError("G1 point is not in the subgroup") from None


def _g2_point(data: bytes) -> Any | None:
    """The G2 point of a 256-byte EIP-2537 encoding (None for infinity); ``VMError`` off the
    curve or outside the subgroup."""
    x = (_fp(data[:64]), _fp(data[64:128]))
    y = (_fp(data[128:192]), _fp(data[192:]))
    if x == (0, 0) and y == (0, 0):
        return None
    x3 = _fp2_mul(_fp2_mul(x, x), x)
    y2 = _fp2_mul(y, y)
    if (y2[0] - x3[0] - _G2_B[0]) % _P or (y2[1] - x3[1] - _G2_B[1]) % _P:
        raise VMError("G2 point is not on the curve")
    # the compressed form is c1 then c0; the sign is that of c1, or of c0 when c1 is zero
    larger = y[1] > _HALF_P if y[1] else y[0] > _HALF_P
    compressed = bytearray(x[1].to_bytes(48, "big") + x[0].to_bytes(48, "big"))
    compressed[0] |= 0x80 | (0x20 if larger else 0)
    try:
        return pyblst.BlstP2Element.uncompress(bytes(compressed))
    except ValueError:  # blst's error: not on the curve or not in the subgroup
        raise VMError("G2 point is not in the subgroup") from None


# --- precompiles ---------------------------------------------------------------


def bls12_pairing_check(computation: ComputationAPI) -> None:
    """EIP-2537 ``BLS12_PAIRING_CHECK`` on blst: 1 when the product of the pairings is one."""
    data = bytes(computation.msg.data)
    if len(data) == 0 or len(data) % PAIR_LENGTH:
        raise VMError("Length of data must be a multiple of 384 bytes for BLS12_PAIRING_CHECK")
    k = len(data) // PAIR_LENGTH
    computation.consume_gas(PAIRING_PER_PAIR_GAS * k + PAIRING_BASE_GAS, "BLS12_PAIRING_CHECK gas")

    # every pair is checked before any is used: one bad point fails the whole call
    pairs = []
    for i in range(k):
        start = PAIR_LENGTH * i
        g1 = _g1_point(data[start : start + 128])
        g2 = _g2_point(data[start + 128 : start + PAIR_LENGTH])
        if g1 is not None and g2 is not None:  # a pair with infinity contributes one
            pairs.append((g1, g2))

    one = True
    if pairs:
        # prod e(P_i, Q_i) == 1  <=>  e(G, H) * prod_{i<k} e(P_i, Q_i) == e(G, H) * e(-P_k, Q_k)
        g1_gen = pyblst.BlstP1Element.uncompress(_G1_GENERATOR)
        g2_gen = pyblst.BlstP2Element.uncompress(_G2_GENERATOR)
        anchor = pyblst.miller_loop(g1_gen, g2_gen)
        left = anchor
        for g1, g2 in pairs[:-1]:
            left = left * pyblst.miller_loop(g1, g2)
        last_g1, last_g2 = pairs[-1]
        right = anchor * pyblst.miller_loop(-last_g1, last_g2)
        one = bool(pyblst.final_verify(left, right))
    computation.output = b"\x00" * 31 + (b"\x01" if one else b"\x00")


def _psi(point: Any) -> Any:
    """The untwist-Frobenius-twist endomorphism of G2 (projective coordinates)."""
    x, y, z = point
    return (_PSI_X * _conjugate(x), _PSI_Y * _conjugate(y), _conjugate(z))


def _conjugate(value: Any) -> Any:
    c0, c1 = value.coeffs
    return FQ2([int(c0), -int(c1)])


def clear_cofactor_g2(point: Any) -> Any:
    """``h_eff * point`` by RFC 9380 appendix G.3 (Budroni-Pintore): two 64-bit multiplications."""
    t1 = neg(multiply(point, _BLS_X))  # c1 * P, c1 = x < 0
    t2 = _psi(point)
    t3 = _psi(_psi(double(point)))
    t3 = add(t3, neg(t2))
    t2 = add(t1, t2)
    t2 = neg(multiply(t2, _BLS_X))
    t3 = add(t3, t2)
    t3 = add(t3, neg(t1))
    return add(t3, neg(point))


def bls12_map_fp2_to_g2(computation: ComputationAPI) -> None:
    """EIP-2537 ``BLS12_MAP_FP2_TO_G2``: py-ecc's SSWU map, the fast cofactor clearing."""
    data = bytes(computation.msg.data)
    if len(data) != 128:
        raise VMError("Length of data must be 128 bytes for BLS12_MAP_FP2_TO_G2")
    computation.consume_gas(MAP_FP2_TO_G2_GAS, "BLS12_MAP_FP2_TO_G2 gas")
    point = clear_cofactor_g2(map_to_curve_G2(bytes_to_fq2(data)))
    if is_inf(point):
        computation.output = b"\x00" * 256
        return
    computation.output = g2_optimized_3d_to_bytes(point)


NATIVE: dict[bytes, Callable[[ComputationAPI], None]] = {
    PAIRING_CHECK_ADDRESS: bls12_pairing_check,
    MAP_FP2_TO_G2_ADDRESS: bls12_map_fp2_to_g2,
}


def install_native_precompiles() -> bool:
    """Swap the native precompiles into py-evm's Prague computation (and the forks after it,
    which inherit its table); idempotent. False when blst is unavailable."""
    if pyblst is None:
        return False
    table = dict(PragueComputation._precompiles)
    for address, function in NATIVE.items():
        if address not in table:
            raise AssertionError(f"py-evm has no precompile at 0x{address.hex()}")
        table[address] = function
    PragueComputation._precompiles = table
    return True

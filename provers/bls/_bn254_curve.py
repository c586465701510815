"""BN254 base arithmetic in plain Python ints: Fp2 and affine points of G1 and of the G2 twist.

Affine coordinates because an inversion (``pow(x, -1, p)``, ~2 us) costs about
two products here, which makes affine steps cheaper than Jacobian ones in
Python. ``None`` is the point at infinity. G1: y^2 = x^3 + 3 over Fp; G2: the
D-type twist y^2 = x^3 + 3/xi over Fp2 = Fp[i]/(i^2 + 1), xi = 9 + i. An Fp2
element is ``(real, imag)``. py-ecc's ``optimized_bn128`` is the test oracle.
"""

from __future__ import annotations

P = 21888242871839275222246405745257275088696311157297823662689037894645226208583
R = 21888242871839275222246405745257275088548364400416034343698204186575808495617

Fp2 = tuple[int, int]
G1Point = tuple[int, int] | None
G2Point = tuple[Fp2, Fp2] | None

# --- Fp2 ------------------------------------------------------------------------------


def f2_add(a: Fp2, b: Fp2) -> Fp2:
    return ((a[0] + b[0]) % P, (a[1] + b[1]) % P)


def f2_sub(a: Fp2, b: Fp2) -> Fp2:
    return ((a[0] - b[0]) % P, (a[1] - b[1]) % P)


def f2_neg(a: Fp2) -> Fp2:
    return (-a[0] % P, -a[1] % P)


def f2_mul(a: Fp2, b: Fp2) -> Fp2:
    a0, a1 = a
    b0, b1 = b
    t0 = a0 * b0
    t1 = a1 * b1
    return ((t0 - t1) % P, ((a0 + a1) * (b0 + b1) - t0 - t1) % P)


def f2_sqr(a: Fp2) -> Fp2:
    a0, a1 = a
    return ((a0 + a1) * (a0 - a1) % P, 2 * a0 * a1 % P)


def f2_scale(a: Fp2, k: int) -> Fp2:
    return (a[0] * k % P, a[1] * k % P)


def f2_mul_xi(a: Fp2) -> Fp2:
    a0, a1 = a
    return ((9 * a0 - a1) % P, (a0 + 9 * a1) % P)


def f2_inv(a: Fp2) -> Fp2:
    a0, a1 = a
    t = pow(a0 * a0 + a1 * a1, -1, P)
    return (a0 * t % P, -a1 * t % P)


def f2_conj(a: Fp2) -> Fp2:
    return (a[0], -a[1] % P)


def f2_pow(a: Fp2, e: int) -> Fp2:
    result: Fp2 = (1, 0)
    while e:
        if e & 1:
            result = f2_mul(result, a)
        a = f2_sqr(a)
        e >>= 1
    return result


XI: Fp2 = (9, 1)
B2: Fp2 = f2_mul((3, 0), f2_inv(XI))

G1_GENERATOR: tuple[int, int] = (1, 2)
G2_GENERATOR: tuple[Fp2, Fp2] = (
    (
        10857046999023057135944570762232829481370756359578518086990519993285655852781,
        11559732032986387107991004021392285783925812861821192530917403151452391805634,
    ),
    (
        8495653923123431417604973247489272438418190587263600148770280649306958101930,
        4082367875863433681332203403145435568316851327593401208105741076214120093531,
    ),
)


def naf(n: int) -> list[int]:
    """Non-adjacent form of ``n >= 0``, least significant digit first (digits in {-1, 0, 1})."""
    digits = []
    while n:
        if n & 1:
            d = 2 - (n & 3)
            n -= d
        else:
            d = 0
        digits.append(d)
        n >>= 1
    return digits


# --- G1 ------------------------------------------------------------------------------------


def g1_on_curve(p: G1Point) -> bool:
    if p is None:
        return True
    x, y = p
    return (y * y - x * x * x - 3) % P == 0


def g1_neg(p: G1Point) -> G1Point:
    return None if p is None else (p[0], -p[1] % P)


def g1_double(p: G1Point) -> G1Point:
    if p is None or p[1] == 0:
        return None
    x, y = p
    slope = 3 * x * x * pow(2 * y, -1, P) % P
    x3 = (slope * slope - 2 * x) % P
    return (x3, (slope * (x - x3) - y) % P)


def g1_add(p: G1Point, q: G1Point) -> G1Point:
    if p is None:
        return q
    if q is None:
        return p
    (x1, y1), (x2, y2) = p, q
    if x1 == x2:
        return g1_double(p) if y1 == y2 else None
    slope = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (slope * slope - x1 - x2) % P
    return (x3, (slope * (x1 - x3) - y1) % P)


# GLV: phi(x, y) = (BETA x, y) is an endomorphism of G1 acting as multiplication
# by LAMBDA (BETA, LAMBDA cube roots of unity mod p and mod r). A scalar k splits
# into k1 + k2 LAMBDA with |k1|, |k2| ~ sqrt(r) using the short lattice basis
# (A1, B1), (A2, B2) of {(a, b): a + b LAMBDA = 0 mod r}, which halves the doublings.
BETA = 0x59E26BCEA0D48BACD4F263F1ACDB5C4F5763473177FFFFFE
LAMBDA = 0xB3C4D79D41A917585BFC41088D8DAAA78B17EA66B99C90DD
_A1, _B1 = 9931322734385697763, -147946756881789319000765030803803410728
_A2, _B2 = 147946756881789319010696353538189108491, 9931322734385697763


def glv_split(k: int) -> tuple[int, int]:
    """(k1, k2) with k = k1 + k2 * LAMBDA (mod r) and both about 128 bits."""
    k %= R
    # rounded coordinates of k in the lattice basis (det = r)
    c1 = (2 * _B2 * k + R) // (2 * R)
    c2 = (-2 * _B1 * k + R) // (2 * R)
    return k - c1 * _A1 - c2 * _A2, -c1 * _B1 - c2 * _B2


def g1_mul(p: G1Point, k: int) -> G1Point:
    """k * p for any int k (every point of G1 has order r): GLV split, joint double-and-add."""
    if p is None:
        return None
    k1, k2 = glv_split(k)
    a = p if k1 >= 0 else g1_neg(p)
    b = (BETA * p[0] % P, p[1] if k2 >= 0 else -p[1] % P)
    k1, k2 = abs(k1), abs(k2)
    table = (None, a, b, g1_add(a, b))
    result: G1Point = None
    for bit in range(max(k1.bit_length(), k2.bit_length()) - 1, -1, -1):
        result = g1_double(result)
        index = ((k1 >> bit) & 1) | (((k2 >> bit) & 1) << 1)
        if index:
            result = g1_add(result, table[index])
    return result


# --- G2 (the twist) ----------------------------------------------------------------------


def g2_on_curve(q: G2Point) -> bool:
    if q is None:
        return True
    x, y = q
    return f2_sqr(y) == f2_add(f2_mul(f2_sqr(x), x), B2)


def g2_neg(q: G2Point) -> G2Point:
    return None if q is None else (q[0], f2_neg(q[1]))


def g2_double(q: G2Point) -> G2Point:
    if q is None or q[1] == (0, 0):
        return None
    x, y = q
    xx = f2_sqr(x)
    slope = f2_mul(f2_add(f2_add(xx, xx), xx), f2_inv(f2_add(y, y)))
    x3 = f2_sub(f2_sqr(slope), f2_add(x, x))
    return (x3, f2_sub(f2_mul(slope, f2_sub(x, x3)), y))


def g2_add(p: G2Point, q: G2Point) -> G2Point:
    if p is None:
        return q
    if q is None:
        return p
    (x1, y1), (x2, y2) = p, q
    if x1 == x2:
        return g2_double(p) if y1 == y2 else None
    slope = f2_mul(f2_sub(y2, y1), f2_inv(f2_sub(x2, x1)))
    x3 = f2_sub(f2_sqr(slope), f2_add(x1, x2))
    return (x3, f2_sub(f2_mul(slope, f2_sub(x1, x3)), y1))


def g2_mul(q: G2Point, k: int) -> G2Point:
    """k * q for ``k >= 0`` (NAF double-and-add)."""
    result: G2Point = None
    neg = g2_neg(q)
    for digit in reversed(naf(k)):
        result = g2_double(result)
        if digit == 1:
            result = g2_add(result, q)
        elif digit == -1:
            result = g2_add(result, neg)
    return result


def g2_in_subgroup(q: G2Point) -> bool:
    """Whether r * q is infinity (the twist's cofactor is ~2^254: most twist points fail)."""
    return g2_mul(q, R) is None

"""BN254 base arithmetic in plain Python ints: Fp2 and affine points of G1 and of the G2 twist.

Points are affine at the interface; scalar multiplications and sums run in
Jacobian coordinates inside, because a CPython inversion (``pow(x, -1, p)``) costs about
17 products. ``None`` is the point at infinity. G1: y^2 = x^3 + 3 over Fp; G2: the
D-type twist y^2 = x^3 + 3/xi over Fp2 = Fp[i]/(i^2 + 1), xi = 9 + i. An Fp2
element is ``(real, imag)``. py-ecc's ``optimized_bn128`` is the test oracle.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def _jac_double(x: int, y: int, z: int) -> tuple[int, int, int]:
    """2(x : y : z) in Jacobian coordinates on y^2 = x^3 + 3 (dbl-2009-l, a = 0)."""
    a = x * x % P
    b = y * y % P
    c = b * b % P
    d = 2 * ((x + b) * (x + b) - a - c) % P
    e = 3 * a
    x3 = (e * e - 2 * d) % P
    return x3, (e * (d - x3) - 8 * c) % P, 2 * y * z % P


def _jac_add_affine(x1: int, y1: int, z1: int, x2: int, y2: int) -> tuple[int, int, int]:
    """(x1 : y1 : z1) + (x2, y2) with z1 != 0 (madd-2007-bl); z = 0 is infinity."""
    z1z1 = z1 * z1 % P
    h = (x2 * z1z1 - x1) % P
    r = 2 * (y2 * z1 * z1z1 - y1) % P
    if h == 0:
        return _jac_double(x1, y1, z1) if r == 0 else (1, 1, 0)
    hh = h * h % P
    i = 4 * hh
    j = h * i % P
    v = x1 * i % P
    x3 = (r * r - j - 2 * v) % P
    return x3, (r * (v - x3) - 2 * y1 * j) % P, ((z1 + h) * (z1 + h) - z1z1 - hh) % P


def g1_sum(points: Sequence[G1Point]) -> G1Point:
    """The sum of affine points with one inversion in all (Jacobian accumulator)."""
    x, y, z = 1, 1, 0
    for p in points:
        if p is not None:
            x, y, z = _jac_add_affine(x, y, z, *p) if z else (p[0], p[1], 1)
    if z == 0:
        return None
    z_inv = pow(z, -1, P)
    z_inv2 = z_inv * z_inv % P
    return (x * z_inv2 % P, y * z_inv2 * z_inv % P)


def g1_mul(p: G1Point, k: int) -> G1Point:
    """k * p for any int k (every point of G1 has order r).

    GLV split, then a joint double-and-add in Jacobian coordinates: here an
    inversion costs ~17 products, so the loop avoids them and converts once.
    """
    if p is None:
        return None
    k1, k2 = glv_split(k)
    a = p if k1 >= 0 else g1_neg(p)
    b = (BETA * p[0] % P, p[1] if k2 >= 0 else -p[1] % P)
    k1, k2 = abs(k1), abs(k2)
    table = (None, a, b, g1_add(a, b))
    x, y, z = 1, 1, 0
    for bit in range(max(k1.bit_length(), k2.bit_length()) - 1, -1, -1):
        if z:
            x, y, z = _jac_double(x, y, z)
        entry = table[((k1 >> bit) & 1) | (((k2 >> bit) & 1) << 1)]
        if entry is not None:
            x, y, z = _jac_add_affine(x, y, z, *entry) if z else (entry[0], entry[1], 1)
    if z == 0:
        return None
    z_inv = pow(z, -1, P)
    z_inv2 = z_inv * z_inv % P
    return (x * z_inv2 % P, y * z_inv2 * z_inv % P)


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


Jac2 = tuple[Fp2, Fp2, Fp2]
_JAC2_INFINITY: Jac2 = ((1, 0), (1, 0), (0, 0))


def _jac2_double(pt: Jac2) -> Jac2:
    """2 * pt in Jacobian coordinates on the twist (dbl-2009-l, a = 0)."""
    x, y, z = pt
    a = f2_sqr(x)
    b = f2_sqr(y)
    c = f2_sqr(b)
    xb = f2_add(x, b)
    d = f2_sub(f2_sqr(xb), f2_add(a, c))
    d = f2_add(d, d)
    e = f2_add(f2_add(a, a), a)
    x3 = f2_sub(f2_sqr(e), f2_add(d, d))
    c8 = f2_scale(c, 8)
    yz = f2_mul(y, z)
    return x3, f2_sub(f2_mul(e, f2_sub(d, x3)), c8), f2_add(yz, yz)


def _jac2_add_affine(pt: Jac2, q: tuple[Fp2, Fp2]) -> Jac2:
    """pt + q for affine q (madd-2007-bl); z = 0 is infinity."""
    x1, y1, z1 = pt
    if z1 == (0, 0):
        return (q[0], q[1], (1, 0))
    x2, y2 = q
    z1z1 = f2_sqr(z1)
    h = f2_sub(f2_mul(x2, z1z1), x1)
    r = f2_sub(f2_mul(y2, f2_mul(z1, z1z1)), y1)
    r = f2_add(r, r)
    if h == (0, 0):
        return _jac2_double(pt) if r == (0, 0) else _JAC2_INFINITY
    hh = f2_sqr(h)
    i = f2_scale(hh, 4)
    j = f2_mul(h, i)
    v = f2_mul(x1, i)
    x3 = f2_sub(f2_sub(f2_sqr(r), j), f2_add(v, v))
    y1j = f2_mul(y1, j)
    y3 = f2_sub(f2_mul(r, f2_sub(v, x3)), f2_add(y1j, y1j))
    z3 = f2_sub(f2_sqr(f2_add(z1, h)), f2_add(z1z1, hh))
    return x3, y3, z3


def _jac2_to_affine(pt: Jac2) -> G2Point:
    x, y, z = pt
    if z == (0, 0):
        return None
    z_inv = f2_inv(z)
    z_inv2 = f2_sqr(z_inv)
    return (f2_mul(x, z_inv2), f2_mul(y, f2_mul(z_inv2, z_inv)))


def g2_sum(points: Sequence[G2Point]) -> G2Point:
    """The sum of affine points with one inversion in all (Jacobian accumulator)."""
    acc = _JAC2_INFINITY
    for q in points:
        if q is not None:
            acc = _jac2_add_affine(acc, q)
    return _jac2_to_affine(acc)


def g2_mul(q: G2Point, k: int) -> G2Point:
    """k * q for ``k >= 0`` (NAF double-and-add in Jacobian coordinates)."""
    if q is None:
        return None
    neg = (q[0], f2_neg(q[1]))
    acc = _JAC2_INFINITY
    for digit in reversed(naf(k)):
        if acc[2] != (0, 0):
            acc = _jac2_double(acc)
        if digit == 1:
            acc = _jac2_add_affine(acc, q)
        elif digit == -1:
            acc = _jac2_add_affine(acc, neg)
    return _jac2_to_affine(acc)


def g2_in_subgroup(q: G2Point) -> bool:
    """Whether r * q is infinity (the twist's cofactor is ~2^254: most twist points fail)."""
    return g2_mul(q, R) is None

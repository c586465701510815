"""The optimal ate pairing on BN254 in plain Python integers, for ``prod e(P_i, Q_i) == 1`` checks.

py-ecc's ``optimized_bn128`` does every Miller-loop step in Fp12 and raises to
the whole ``(p^12 - 1) / r``. This module
computes the same pairing, value for value (the tests compare with py-ecc in
its own basis), with the usual tower and shortcuts:

- Fp2 = Fp[i]/(i^2 + 1), Fp6 = Fp2[v]/(v^3 - xi), Fp12 = Fp6[w]/(w^2 - v),
  xi = 9 + i, so w^6 = xi: the field py-ecc builds as Fp[w]/(w^12 - 18 w^6 + 82).
- The G2 point stays on the twist in affine Fp2 coordinates (one inversion a
  step is cheap with ``pow(x, -1, p)``); each line, untwisted through
  (x, y) -> (x w^2, y w^3), is sparse in Fp12: ``yP + (-l xP) w + (l xT - yT) w^3``.
  Factors in Fp6 (vertical lines, scalings) vanish in the final exponentiation.
- One Miller loop shares its squarings among all pairs, and lines of a fixed
  G2 point (the negated generator) are computed once.
- The final exponentiation splits into ``(p^6 - 1)(p^2 + 1)`` (conjugation,
  inverse, Frobenius) and the hard part ``(p^4 - p^2 + 1) / r``, computed exactly
  with three exponentiations by the curve parameter u (cyclotomic squarings)
  and Frobenius maps.
- The hot products (Fp6, the sparse line product, the cyclotomic square) are
  written out on flat ints with one reduction per coefficient: in CPython the
  calls and intermediate tuples of composed helpers cost more than the
  arithmetic (~1.4x).

Inputs are trusted here (validated by ``bn254``): G1 points affine ``(x, y)``
ints or ``None`` for infinity, G2 points affine ``((x0, x1), (y0, y1))`` in the
order-r subgroup, where ``x0`` is the real part.
"""

from __future__ import annotations

from collections.abc import Sequence

from veristream.provers.bls._bn254_curve import (
    XI,
    Fp2,
    P,
    f2_add,
    f2_conj,
    f2_inv,
    f2_mul,
    f2_mul_xi,
    f2_neg,
    f2_pow,
    f2_sqr,
    f2_sub,
    naf,
)

U = 4965661367192848881  # the BN parameter: p and r are polynomials in U
ATE_LOOP_COUNT = 6 * U + 2

Fp6 = tuple[Fp2, Fp2, Fp2]
Fp12 = tuple[Fp6, Fp6]
G1Affine = tuple[int, int]
G2Affine = tuple[Fp2, Fp2]
Line = tuple[Fp2, Fp2]  # (slope l, l*xT - yT): the line's w and w^3 coefficients before xP

# --- Fp6 --------------------------------------------------------------------------


def _f6_add(a: Fp6, b: Fp6) -> Fp6:
    (a00, a01), (a10, a11), (a20, a21) = a
    (b00, b01), (b10, b11), (b20, b21) = b
    return (
        ((a00 + b00) % P, (a01 + b01) % P),
        ((a10 + b10) % P, (a11 + b11) % P),
        ((a20 + b20) % P, (a21 + b21) % P),
    )


def _f6_sub(a: Fp6, b: Fp6) -> Fp6:
    (a00, a01), (a10, a11), (a20, a21) = a
    (b00, b01), (b10, b11), (b20, b21) = b
    return (
        ((a00 - b00) % P, (a01 - b01) % P),
        ((a10 - b10) % P, (a11 - b11) % P),
        ((a20 - b20) % P, (a21 - b21) % P),
    )


def _f6_neg(a: Fp6) -> Fp6:
    return (
        (-a[0][0] % P, -a[0][1] % P),
        (-a[1][0] % P, -a[1][1] % P),
        (-a[2][0] % P, -a[2][1] % P),
    )


def _f6_mul(a: Fp6, b: Fp6) -> Fp6:
    """Product in Fp6, schoolbook on flat ints with one reduction per coefficient.

    Written out rather than composed from Fp2 helpers: in CPython the calls and
    intermediate tuples cost more than the extra multiplications (~1.4x here).
    """
    (a00, a01), (a10, a11), (a20, a21) = a
    (b00, b01), (b10, b11), (b20, b21) = b
    # s = a1 b2 + a2 b1 and u = a2 b2 are the parts multiplied by xi = 9 + i
    s0 = a10 * b20 - a11 * b21 + a20 * b10 - a21 * b11
    s1 = a10 * b21 + a11 * b20 + a20 * b11 + a21 * b10
    u0 = a20 * b20 - a21 * b21
    u1 = a20 * b21 + a21 * b20
    return (
        ((a00 * b00 - a01 * b01 + 9 * s0 - s1) % P, (a00 * b01 + a01 * b00 + s0 + 9 * s1) % P),
        (
            (a00 * b10 - a01 * b11 + a10 * b00 - a11 * b01 + 9 * u0 - u1) % P,
            (a00 * b11 + a01 * b10 + a10 * b01 + a11 * b00 + u0 + 9 * u1) % P,
        ),
        (
            (a00 * b20 - a01 * b21 + a10 * b10 - a11 * b11 + a20 * b00 - a21 * b01) % P,
            (a00 * b21 + a01 * b20 + a10 * b11 + a11 * b10 + a20 * b01 + a21 * b00) % P,
        ),
    )


def _f6_mul_v(a: Fp6) -> Fp6:
    return (f2_mul_xi(a[2]), a[0], a[1])


def _f6_inv(a: Fp6) -> Fp6:
    a0, a1, a2 = a
    c0 = f2_sub(f2_sqr(a0), f2_mul_xi(f2_mul(a1, a2)))
    c1 = f2_sub(f2_mul_xi(f2_sqr(a2)), f2_mul(a0, a1))
    c2 = f2_sub(f2_sqr(a1), f2_mul(a0, a2))
    t = f2_add(f2_mul(a0, c0), f2_mul_xi(f2_add(f2_mul(a2, c1), f2_mul(a1, c2))))
    t_inv = f2_inv(t)
    return (f2_mul(c0, t_inv), f2_mul(c1, t_inv), f2_mul(c2, t_inv))


_F2_ZERO: Fp2 = (0, 0)
_F2_ONE: Fp2 = (1, 0)
_F6_ZERO: Fp6 = (_F2_ZERO, _F2_ZERO, _F2_ZERO)
_F6_ONE: Fp6 = (_F2_ONE, _F2_ZERO, _F2_ZERO)

# --- Fp12 -------------------------------------------------------------------------

ONE: Fp12 = (_F6_ONE, _F6_ZERO)


def f12_mul(a: Fp12, b: Fp12) -> Fp12:
    """Product in Fp12 (Karatsuba over Fp6)."""
    a0, a1 = a
    b0, b1 = b
    t0 = _f6_mul(a0, b0)
    t1 = _f6_mul(a1, b1)
    c1 = _f6_sub(_f6_mul(_f6_add(a0, a1), _f6_add(b0, b1)), _f6_add(t0, t1))
    return (_f6_add(t0, _f6_mul_v(t1)), c1)


def _f12_sqr(a: Fp12) -> Fp12:
    a0, a1 = a
    t = _f6_mul(a0, a1)
    c0 = _f6_sub(_f6_mul(_f6_add(a0, a1), _f6_add(a0, _f6_mul_v(a1))), _f6_add(t, _f6_mul_v(t)))
    return (c0, _f6_add(t, t))


def _f12_conj(a: Fp12) -> Fp12:
    """a^(p^6): w -> -w."""
    return (a[0], _f6_neg(a[1]))


def _f12_inv(a: Fp12) -> Fp12:
    a0, a1 = a
    t = _f6_inv(_f6_sub(_f6_mul(a0, a0), _f6_mul_v(_f6_mul(a1, a1))))
    return (_f6_mul(a0, t), _f6_neg(_f6_mul(a1, t)))


def _f12_mul_line(f: Fp12, y_p: int, b0: Fp2, b1: Fp2) -> Fp12:
    """f * (y_p + b0 w + b1 w^3), y_p in Fp: the sparse line product, flat.

    With f = sum f_j w^j and w^6 = xi, coefficient k of the product is
    y_p f_k + b0 f_(k-1) + b1 f_(k-3), indices below zero wrapping with a factor xi.
    """
    ((f00, f01), (f20, f21), (f40, f41)), ((f10, f11), (f30, f31), (f50, f51)) = f
    c0, c1 = b0
    d0, d1 = b1
    y = y_p
    # r0 = y f0 + xi (b0 f5 + b1 f3)
    s0 = c0 * f50 - c1 * f51 + d0 * f30 - d1 * f31
    s1 = c0 * f51 + c1 * f50 + d0 * f31 + d1 * f30
    r00 = y * f00 + 9 * s0 - s1
    r01 = y * f01 + s0 + 9 * s1
    # r1 = y f1 + b0 f0 + xi b1 f4
    s0 = d0 * f40 - d1 * f41
    s1 = d0 * f41 + d1 * f40
    r10 = y * f10 + c0 * f00 - c1 * f01 + 9 * s0 - s1
    r11 = y * f11 + c0 * f01 + c1 * f00 + s0 + 9 * s1
    # r2 = y f2 + b0 f1 + xi b1 f5
    s0 = d0 * f50 - d1 * f51
    s1 = d0 * f51 + d1 * f50
    r20 = y * f20 + c0 * f10 - c1 * f11 + 9 * s0 - s1
    r21 = y * f21 + c0 * f11 + c1 * f10 + s0 + 9 * s1
    # r3, r4, r5 = y f_k + b0 f_(k-1) + b1 f_(k-3), no wrap
    r30 = y * f30 + c0 * f20 - c1 * f21 + d0 * f00 - d1 * f01
    r31 = y * f31 + c0 * f21 + c1 * f20 + d0 * f01 + d1 * f00
    r40 = y * f40 + c0 * f30 - c1 * f31 + d0 * f10 - d1 * f11
    r41 = y * f41 + c0 * f31 + c1 * f30 + d0 * f11 + d1 * f10
    r50 = y * f50 + c0 * f40 - c1 * f41 + d0 * f20 - d1 * f21
    r51 = y * f51 + c0 * f41 + c1 * f40 + d0 * f21 + d1 * f20
    return (
        ((r00 % P, r01 % P), (r20 % P, r21 % P), (r40 % P, r41 % P)),
        ((r10 % P, r11 % P), (r30 % P, r31 % P), (r50 % P, r51 % P)),
    )


# Frobenius: a^(p^k) = sum conj^k(c_j) * xi^(j (p^k - 1) / 6) * w^j over a = sum c_j w^j
_FROB: dict[int, list[Fp2]] = {
    k: [f2_pow(XI, j * (P**k - 1) // 6) for j in range(6)] for k in (1, 2, 3)
}


def _f12_frobenius(a: Fp12, k: int) -> Fp12:
    (c0, c2, c4), (c1, c3, c5) = a
    coeffs = [c0, c1, c2, c3, c4, c5]
    if k % 2:
        coeffs = [f2_conj(c) for c in coeffs]
    gamma = _FROB[k]
    d = [f2_mul(c, g) for c, g in zip(coeffs, gamma, strict=True)]
    return ((d[0], d[2], d[4]), (d[1], d[3], d[5]))


# --- G2 on the twist and its lines ----------------------------------------------------


# most significant digit first, the leading 1 dropped (it is the starting T = Q)
_LOOP_DIGITS = naf(ATE_LOOP_COUNT)[::-1][1:]

# (square f before this line?) for each line of a G2 point, in order
_SCHEDULE: list[bool] = []
for _digit in _LOOP_DIGITS:
    _SCHEDULE.append(True)
    if _digit:
        _SCHEDULE.append(False)
_SCHEDULE += [False, False]  # the two Frobenius lines

_FROB_X = f2_pow(XI, (P - 1) // 3)
_FROB_Y = f2_pow(XI, (P - 1) // 2)


def _g2_frobenius(q: G2Affine) -> G2Affine:
    """pi(Q) on the twist: (conj(x) xi^((p-1)/3), conj(y) xi^((p-1)/2)); equals p*Q on G2."""
    return (f2_mul(f2_conj(q[0]), _FROB_X), f2_mul(f2_conj(q[1]), _FROB_Y))


def _line_and_add(t: G2Affine, q: G2Affine) -> tuple[Line, G2Affine]:
    (xt, yt), (xq, yq) = t, q
    slope = f2_mul(f2_sub(yq, yt), f2_inv(f2_sub(xq, xt)))
    x3 = f2_sub(f2_sqr(slope), f2_add(xt, xq))
    y3 = f2_sub(f2_mul(slope, f2_sub(xt, x3)), yt)
    return (slope, f2_sub(f2_mul(slope, xt), yt)), (x3, y3)


def _line_and_double(t: G2Affine) -> tuple[Line, G2Affine]:
    xt, yt = t
    xx = f2_sqr(xt)
    slope = f2_mul(f2_add(f2_add(xx, xx), xx), f2_inv(f2_add(yt, yt)))
    x3 = f2_sub(f2_sqr(slope), f2_add(xt, xt))
    y3 = f2_sub(f2_mul(slope, f2_sub(xt, x3)), yt)
    return (slope, f2_sub(f2_mul(slope, xt), yt)), (x3, y3)


def g2_lines(q: G2Affine) -> tuple[Line, ...]:
    """Every line of the Miller loop for ``q``, in ``_SCHEDULE`` order (independent of P)."""
    neg_q: G2Affine = (q[0], f2_neg(q[1]))
    lines: list[Line] = []
    t = q
    for digit in _LOOP_DIGITS:
        line, t = _line_and_double(t)
        lines.append(line)
        if digit:
            line, t = _line_and_add(t, q if digit == 1 else neg_q)
            lines.append(line)
    q1 = _g2_frobenius(q)
    q2 = _g2_frobenius(q1)
    line, t = _line_and_add(t, q1)
    lines.append(line)
    line, _ = _line_and_add(t, (q2[0], f2_neg(q2[1])))
    lines.append(line)
    return tuple(lines)


# --- pairing ------------------------------------------------------------------------


def miller_loop(pairs: Sequence[tuple[G1Affine | None, Sequence[Line]]]) -> Fp12:
    """prod f_{Q_i}(P_i) over the pairs, sharing each squaring of f among them."""
    active = [(p, lines) for p, lines in pairs if p is not None]
    f = ONE
    for k, square in enumerate(_SCHEDULE):
        if square:
            f = _f12_sqr(f)
        for (x_p, y_p), lines in active:
            slope, c = lines[k]
            f = _f12_mul_line(f, y_p, (-slope[0] * x_p % P, -slope[1] * x_p % P), c)
    return f


def _cyclotomic_sqr(a: Fp12) -> Fp12:
    """a^2 for a in the cyclotomic subgroup (after the easy part): Granger-Scott.

    Seen as Fp4^3 with Fp4 = Fp2[s]/(s^2 - xi), the pairs (z0, z1) = (c0.0, c1.1),
    (z2, z3) = (c1.0, c0.2) and (z4, z5) = (c0.1, c1.2) are squared,
    (x + y s)^2 = (x^2 + xi y^2) + 2xy s, then recombined as 3t -/+ 2z. Flat
    ints, one reduction per output coefficient (it is the final exponentiation's
    inner loop).
    """
    ((z00, z01), (z40, z41), (z30, z31)), ((z20, z21), (z10, z11), (z50, z51)) = a
    # (t0, t1) = (z0 + z1 s)^2
    q0 = z10 * z10 - z11 * z11
    q1 = z10 * z11
    t00 = z00 * z00 - z01 * z01 + 9 * q0 - 2 * q1
    t01 = 2 * z00 * z01 + q0 + 18 * q1
    t10 = 2 * (z00 * z10 - z01 * z11)
    t11 = 2 * (z00 * z11 + z01 * z10)
    # (t2, t3) = (z2 + z3 s)^2
    q0 = z30 * z30 - z31 * z31
    q1 = z30 * z31
    t20 = z20 * z20 - z21 * z21 + 9 * q0 - 2 * q1
    t21 = 2 * z20 * z21 + q0 + 18 * q1
    t30 = 2 * (z20 * z30 - z21 * z31)
    t31 = 2 * (z20 * z31 + z21 * z30)
    # (t4, t5) = (z4 + z5 s)^2
    q0 = z50 * z50 - z51 * z51
    q1 = z50 * z51
    t40 = z40 * z40 - z41 * z41 + 9 * q0 - 2 * q1
    t41 = 2 * z40 * z41 + q0 + 18 * q1
    t50 = 2 * (z40 * z50 - z41 * z51)
    t51 = 2 * (z40 * z51 + z41 * z50)
    # xi * t5
    x50 = 9 * t50 - t51
    x51 = t50 + 9 * t51
    return (
        (
            ((3 * t00 - 2 * z00) % P, (3 * t01 - 2 * z01) % P),
            ((3 * t20 - 2 * z40) % P, (3 * t21 - 2 * z41) % P),
            ((3 * t40 - 2 * z30) % P, (3 * t41 - 2 * z31) % P),
        ),
        (
            ((3 * x50 + 2 * z20) % P, (3 * x51 + 2 * z21) % P),
            ((3 * t10 + 2 * z10) % P, (3 * t11 + 2 * z11) % P),
            ((3 * t30 + 2 * z50) % P, (3 * t31 + 2 * z51) % P),
        ),
    )


_U_DIGITS = naf(U)[::-1]


def _exp_by_u(f: Fp12) -> Fp12:
    """f^u in the cyclotomic subgroup, where the inverse is the conjugate (signed digits are free)."""
    f_inv = _f12_conj(f)
    result = f
    for digit in _U_DIGITS[1:]:
        result = _cyclotomic_sqr(result)
        if digit == 1:
            result = f12_mul(result, f)
        elif digit == -1:
            result = f12_mul(result, f_inv)
    return result


def final_exponentiation(f: Fp12) -> Fp12:
    """f^((p^12 - 1) / r)."""
    # easy part: f^((p^6 - 1)(p^2 + 1)); the result is in the cyclotomic subgroup
    f = f12_mul(_f12_conj(f), _f12_inv(f))
    f = f12_mul(_f12_frobenius(f, 2), f)
    # hard part (p^4 - p^2 + 1)/r = l0 + l1 p + l2 p^2 + p^3 with l_i polynomials in u
    # (Scott et al., "On the final exponentiation for calculating pairings on
    # ordinary elliptic curves", BN curves): three exponentiations by u, Frobenius maps
    fu = _exp_by_u(f)
    fu2 = _exp_by_u(fu)
    fu3 = _exp_by_u(fu2)
    y0 = f12_mul(f12_mul(_f12_frobenius(f, 1), _f12_frobenius(f, 2)), _f12_frobenius(f, 3))
    y1 = _f12_conj(f)
    y2 = _f12_frobenius(fu2, 2)
    y3 = _f12_conj(_f12_frobenius(fu, 1))
    y4 = _f12_conj(f12_mul(fu, _f12_frobenius(fu2, 1)))
    y5 = _f12_conj(fu2)
    y6 = _f12_conj(f12_mul(fu3, _f12_frobenius(fu3, 1)))
    t0 = f12_mul(f12_mul(_cyclotomic_sqr(y6), y4), y5)
    t1 = f12_mul(f12_mul(y3, y5), t0)
    t0 = f12_mul(t0, y2)
    t1 = _cyclotomic_sqr(f12_mul(_cyclotomic_sqr(t1), t0))
    t0 = f12_mul(t1, y1)
    t1 = f12_mul(t1, y0)
    return f12_mul(_cyclotomic_sqr(t0), t1)


def pairing(p: G1Affine | None, q: G2Affine) -> Fp12:
    """e(p, q), the full optimal ate pairing (for tests and one-off use)."""
    return final_exponentiation(miller_loop([(p, g2_lines(q))]))


def product_is_one(pairs: Sequence[tuple[G1Affine | None, Sequence[Line]]]) -> bool:
    """Whether prod e(P_i, Q_i) == 1, given each Q_i's lines: one loop, one exponentiation."""
    return final_exponentiation(miller_loop(pairs)) == ONE

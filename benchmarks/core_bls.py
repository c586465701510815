"""BLS sign / verify / fast-aggregate-verify of 100 keys, both curves, ours beside py-ecc.

BLS12-381: ours is blst (pyblst); py-ecc's ``G2ProofOfPossession`` is the baseline.
BN254: ours is the pure-Python pairing of ``_bn254_pairing`` (one Miller loop,
one final exponentiation); the baseline is the naive py-ecc check, two full
``optimized_bn128`` pairings compared for equality. The committee's keys are
parsed before timing (a fixed, cached committee), as an operator set would be.
py-ecc runs once or twice per row: it takes seconds.
"""

from __future__ import annotations

from typing import Any

from benchmarks.measure import best_seconds, comparison

COMMITTEE = 100
MESSAGE = bytes(range(32))


def _secret_keys(order: int) -> list[int]:
    """Full-size keys (scalar multiplication time grows with the key's bit length)."""
    from veristream.provers.encoding import keccak256

    return [int.from_bytes(keccak256(b"operator %d" % i), "big") % order for i in range(COMMITTEE)]


def _rate(fn: Any, n: int, repeat: int) -> float:
    """Operations per second of ``fn`` run ``n`` times in a row, best of ``repeat``."""

    def batch() -> None:
        for _ in range(n):
            fn()

    return n / best_seconds(batch, repeat=repeat)


def _bls12381(quick: bool) -> list[dict[str, Any]]:
    from py_ecc.bls import G2ProofOfPossession as Oracle

    from veristream.provers.bls import bls12381 as bls

    n, slow_repeat = (20, 1) if quick else (200, 2)
    sks = _secret_keys(bls.CURVE_ORDER)
    pks = [bls.sk_to_pk(sk) for sk in sks]
    bls.parse_pks(pks)  # the committee is parsed once, then served from the cache
    signature = bls.sign(sks[0], MESSAGE)
    aggregate = bls.aggregate([bls.sign(sk, MESSAGE) for sk in sks])
    assert bls.fast_aggregate_verify(pks, MESSAGE, aggregate)
    oracle: Any = Oracle
    label = "py-ecc G2ProofOfPossession"
    return [
        comparison(
            "bls12381 sign",
            _rate(lambda: bls.sign(sks[0], MESSAGE), n, 3),
            _rate(lambda: oracle.Sign(sks[0], MESSAGE), 1, slow_repeat),
            "ops/s",
            label,
        ),
        comparison(
            "bls12381 verify",
            _rate(lambda: bls.verify(pks[0], MESSAGE, signature), n, 3),
            _rate(lambda: oracle.Verify(pks[0], MESSAGE, signature), 1, slow_repeat),
            "ops/s",
            label,
        ),
        comparison(
            f"bls12381 fast_aggregate_verify {COMMITTEE} keys",
            _rate(lambda: bls.fast_aggregate_verify(pks, MESSAGE, aggregate), n, 3),
            _rate(lambda: oracle.FastAggregateVerify(pks, MESSAGE, aggregate), 1, 1),
            "ops/s",
            label,
        ),
    ]


def _bn254(quick: bool) -> list[dict[str, Any]]:
    from py_ecc.fields import optimized_bn128_FQ as FQ
    from py_ecc.fields import optimized_bn128_FQ2 as FQ2
    from py_ecc.optimized_bn128 import G1, G2, add, multiply, pairing

    from veristream.provers.bls import bn254

    n, slow_repeat = (3, 1) if quick else (10, 2)
    sks = _secret_keys(bn254.R)
    pks = [bn254.sk_to_pk(sk) for sk in sks]

    def point(data: bytes) -> Any:
        x, y = bn254.parse_g1(data)
        return (FQ(x), FQ(y), FQ.one())

    def point2(data: bytes) -> Any:
        (x0, x1), (y0, y1) = bn254.parse_g2(data)
        return (FQ2([x0, x1]), FQ2([y0, y1]), FQ2.one())

    g2_points = [point2(pk) for pk in pks]  # parsed (and subgroup-checked) once, both sides
    signature = bn254.sign(sks[0], MESSAGE)
    aggregate = bn254.aggregate([bn254.sign(sk, MESSAGE) for sk in sks])
    apk_g1 = bn254.aggregate_pks_g1([bn254.sk_to_pk_g1(sk) for sk in sks])
    apk_g2 = bn254.aggregate_pks_g2(pks)
    assert bn254.fast_aggregate_verify(pks, MESSAGE, aggregate)
    assert bn254.verify_g1_g2(apk_g1, apk_g2, MESSAGE, aggregate)

    hashed, sig_point, agg_point = (
        point(bn254.hash_to_g1(MESSAGE)),
        point(signature),
        point(aggregate),
    )

    def naive_sign() -> None:
        multiply(point(bn254.hash_to_g1(MESSAGE)), sks[0])

    def naive_verify() -> bool:
        return bool(pairing(G2, sig_point) == pairing(g2_points[0], hashed))

    def naive_fav() -> bool:
        apk = g2_points[0]
        for q in g2_points[1:]:
            apk = add(apk, q)
        return bool(pairing(G2, agg_point) == pairing(apk, hashed))

    def naive_onchain() -> bool:
        # the contract's combined check with the naive py-ecc pairing product
        gamma = bn254.challenge(MESSAGE, apk_g1, apk_g2, aggregate)
        left = add(agg_point, multiply(point(apk_g1), gamma))
        right = add(hashed, multiply(G1, gamma))
        return bool(pairing(G2, left) == pairing(point2(apk_g2), right))

    label = "py-ecc optimized_bn128, two full pairings"
    return [
        comparison(
            "bn254 sign",
            _rate(lambda: bn254.sign(sks[0], MESSAGE), 10 * n, 3),
            _rate(naive_sign, 10 * n, 3),
            "ops/s",
            "py-ecc multiply(hash_to_g1, sk)",
        ),
        comparison(
            "bn254 verify",
            _rate(lambda: bn254.verify(pks[0], MESSAGE, signature), n, 3),
            _rate(naive_verify, 1, slow_repeat),
            "ops/s",
            label,
        ),
        comparison(
            f"bn254 fast_aggregate_verify {COMMITTEE} keys",
            _rate(lambda: bn254.fast_aggregate_verify(pks, MESSAGE, aggregate), n, 3),
            _rate(naive_fav, 1, slow_repeat),
            "ops/s",
            label,
        ),
        comparison(
            "bn254 verify_g1_g2 (the contract's check)",
            _rate(lambda: bn254.verify_g1_g2(apk_g1, apk_g2, MESSAGE, aggregate), n, 3),
            _rate(naive_onchain, 1, slow_repeat),
            "ops/s",
            label,
        ),
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Comparison rows (ops/s, ours / py-ecc) for both BLS schemes."""
    return _bls12381(quick) + _bn254(quick)

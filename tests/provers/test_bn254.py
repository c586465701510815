"""BLS on BN254: the spec in docs/bls.md, cross-checked against py-ecc and py-evm's precompile.

Every pairing check costs ~0.5 s in pure Python, so the tests that pair are few
and each checks something only a pairing can show.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from py_ecc.fields import optimized_bn128_FQ as FQ
from py_ecc.fields import optimized_bn128_FQ2 as FQ2
from py_ecc.optimized_bn128 import (
    FQ12,
    G1,
    G2,
    add,
    b2,
    final_exponentiate,
    is_on_curve,
    multiply,
    neg,
    normalize,
    pairing,
)

from veristream.provers.bls import _bn254_pairing, bn254
from veristream.provers.encoding import keccak256

P = bn254.P
R = bn254.R
secret_keys = st.integers(min_value=1, max_value=R - 1)
MESSAGE = keccak256(b"EpochResult digest stand-in")

# EIP-197's G2 generator, as the precompile takes it (imaginary part first)
EIP197_G2 = b"".join(
    v.to_bytes(32, "big")
    for v in (
        11559732032986387107991004021392285783925812861821192530917403151452391805634,
        10857046999023057135944570762232829481370756359578518086990519993285655852781,
        4082367875863433681332203403145435568316851327593401208105741076214120093531,
        8495653923123431417604973247489272438418190587263600148770280649306958101930,
    )
)


def _point_g1(data: bytes) -> Any:
    """py-ecc point of a 64-byte encoding (written here, independent of the module)."""
    return (FQ(int.from_bytes(data[:32], "big")), FQ(int.from_bytes(data[32:], "big")), FQ.one())


def _point_g2(data: bytes) -> Any:
    x_im, x_re, y_im, y_re = (int.from_bytes(data[i : i + 32], "big") for i in range(0, 128, 32))
    return (FQ2([x_re, x_im]), FQ2([y_re, y_im]), FQ2.one())


def _enc_g1(point: Any) -> bytes:
    x, y = normalize(point)
    return int(x).to_bytes(32, "big") + int(y).to_bytes(32, "big")


def _enc_g2(point: Any) -> bytes:
    x, y = normalize(point)
    words = (x.coeffs[1], x.coeffs[0], y.coeffs[1], y.coeffs[0])
    return b"".join(int(v).to_bytes(32, "big") for v in words)


def _sqrt_fp2(a: FQ2) -> FQ2 | None:
    """A square root in Fp2 = Fp[i]/(i^2+1) by the norm method, or None (independent of the module)."""
    a0, a1 = (int(c) for c in a.coeffs)
    norm = (a0 * a0 + a1 * a1) % P
    n = pow(norm, (P + 1) // 4, P)
    if n * n % P != norm:
        return None
    half = pow(2, P - 2, P)
    for candidate in (n, P - n):
        t = (a0 + candidate) * half % P
        x0 = pow(t, (P + 1) // 4, P)
        if x0 * x0 % P == t and x0:
            x1 = a1 * pow(2 * x0, P - 2, P) % P
            root = FQ2([x0, x1])
            if root * root == a:
                return root
    return None


def _off_subgroup_g2() -> bytes:
    x0 = 1
    while True:
        x = FQ2([x0, 1])
        y = _sqrt_fp2(x**3 + b2)
        if y is not None:
            point = (x, y, FQ2.one())
            assert is_on_curve(point, b2)
            if multiply(point, R)[2] != FQ2.zero():
                return _enc_g2(point)
        x0 += 1


# --- encodings and group math against py-ecc (no pairings) ------------------------------


def test_generator_encodings_follow_eip_196_197() -> None:
    assert bn254.sk_to_pk(1) == EIP197_G2
    assert bn254.sk_to_pk_g1(1) == (1).to_bytes(32, "big") + (2).to_bytes(32, "big")
    assert bn254.parse_g2(EIP197_G2) is not None


@settings(max_examples=10, deadline=None)
@given(sk=secret_keys, message=st.binary(max_size=80))
def test_group_math_matches_py_ecc(sk: int, message: bytes) -> None:
    hashed = bn254.hash_to_g1(message)
    h_point = _point_g1(hashed)
    assert bn254.sign(sk, message) == _enc_g1(multiply(h_point, sk))
    assert bn254.sk_to_pk_g1(sk) == _enc_g1(multiply(G1, sk))
    x, y = normalize(multiply(G2, sk))
    expected = b"".join(
        int(v).to_bytes(32, "big") for v in (x.coeffs[1], x.coeffs[0], y.coeffs[1], y.coeffs[0])
    )
    assert bn254.sk_to_pk(sk) == expected
    assert bn254.pop_prove(sk) == _enc_g1(
        multiply(_point_g1(bn254.hash_to_g1(bn254.sk_to_pk(sk), bn254.POP_DST)), sk)
    )
    assert bn254.sign_pop(sk, message) == _enc_g1(multiply(_point_g1(bn254.hash_to_g1(message, bn254.POP_DST)), sk))


@settings(max_examples=20, deadline=None)
@given(message=st.binary(max_size=64), dst=st.binary(min_size=1, max_size=40))
def test_hash_to_g1_follows_the_try_and_increment_spec(message: bytes, dst: bytes) -> None:
    out = bn254.hash_to_g1(message, dst)
    x = int.from_bytes(out[:32], "big")
    y = int.from_bytes(out[32:], "big")
    start = int.from_bytes(keccak256(dst + message), "big") % P
    assert (y * y - x**3 - 3) % P == 0
    # x is the first candidate at or after the keccak start whose rhs is a square
    steps = (x - start) % P
    assert steps < 64
    for k in range(steps):
        rhs = ((start + k) ** 3 + 3) % P
        assert pow(rhs, (P - 1) // 2, P) != 1
    assert y == pow((x**3 + 3) % P, (P + 1) // 4, P)


def test_hash_to_g1_increments_when_the_first_x_is_not_on_the_curve() -> None:
    for i in range(200):
        message = i.to_bytes(2, "big")
        start = int.from_bytes(keccak256(bn254.DST + message), "big") % P
        if pow((start**3 + 3) % P, (P - 1) // 2, P) != 1:
            assert int.from_bytes(bn254.hash_to_g1(message)[:32], "big") != start
            return
    pytest.fail("no message needed an increment")


@settings(max_examples=10, deadline=None)
@given(sks=st.lists(secret_keys, min_size=1, max_size=5))
def test_aggregates_are_group_sums(sks: list[int]) -> None:
    total = sum(sks) % R
    assert bn254.aggregate_pks_g1([bn254.sk_to_pk_g1(k) for k in sks]) == _enc_g1(
        multiply(G1, total)
    )
    assert bn254.aggregate_pks_g2([bn254.sk_to_pk(k) for k in sks]) == _enc_g2(multiply(G2, total))
    assert bn254.aggregate([bn254.sign(k, MESSAGE) for k in sks]) == _enc_g1(
        multiply(_point_g1(bn254.hash_to_g1(MESSAGE)), total)
    )


# --- malformed input ---------------------------------------------------------------------

GOOD_PK = bn254.sk_to_pk(7)
GOOD_SIG = bn254.sign(7, MESSAGE)


def _bad_g1() -> list[tuple[str, Any]]:
    x, y = int.from_bytes(GOOD_SIG[:32], "big"), int.from_bytes(GOOD_SIG[32:], "big")
    return [
        ("infinity", bytes(64)),
        ("off-curve", GOOD_SIG[:32] + ((y + 1) % P).to_bytes(32, "big")),
        ("non-canonical y", GOOD_SIG[:32] + (y + P).to_bytes(32, "big")),
        ("non-canonical x", (x + P).to_bytes(32, "big") + GOOD_SIG[32:]),
        ("short", GOOD_SIG[:63]),
        ("not bytes", bytearray(GOOD_SIG)),
    ]


def _bad_g2() -> list[tuple[str, Any]]:
    words = [GOOD_PK[i : i + 32] for i in range(0, 128, 32)]
    y_real = int.from_bytes(words[3], "big")
    return [
        ("infinity", bytes(128)),
        ("off-curve", b"".join(words[:3]) + ((y_real + 1) % P).to_bytes(32, "big")),
        ("non-canonical", b"".join(words[:3]) + (y_real + P).to_bytes(32, "big")),
        ("off-subgroup", _off_subgroup_g2()),
        ("swapped real/imag", words[1] + words[0] + words[3] + words[2]),
        ("short", GOOD_PK[:127]),
        ("not bytes", GOOD_PK.hex()),
    ]


@pytest.mark.parametrize(("label", "sig"), _bad_g1())
def test_malformed_signatures_are_rejected(label: str, sig: Any) -> None:
    with pytest.raises(ValueError, match="signature"):
        bn254.parse_g1(sig, "signature")
    with pytest.raises(ValueError, match="signature"):
        bn254.aggregate([sig])
    # no pairing runs: parsing fails first
    assert bn254.verify(GOOD_PK, MESSAGE, sig) is False
    assert bn254.fast_aggregate_verify([GOOD_PK], MESSAGE, sig) is False
    assert bn254.aggregate_verify([GOOD_PK], [MESSAGE], sig) is False
    assert bn254.pop_verify(GOOD_PK, sig) is False
    apk_g1 = bn254.sk_to_pk_g1(7)
    assert bn254.verify_g1_g2(apk_g1, GOOD_PK, MESSAGE, sig) is False
    with pytest.raises(ValueError, match="G1 public key"):
        bn254.aggregate_pks_g1([sig])


@pytest.mark.parametrize(("label", "pk"), _bad_g2())
def test_malformed_public_keys_are_rejected(label: str, pk: Any) -> None:
    with pytest.raises(ValueError, match="public key"):
        bn254.parse_g2(pk, "public key")
    with pytest.raises(ValueError, match="public key"):
        bn254.aggregate_pks_g2([pk])
    assert bn254.verify(pk, MESSAGE, GOOD_SIG) is False
    assert bn254.fast_aggregate_verify([pk], MESSAGE, GOOD_SIG) is False
    assert bn254.fast_aggregate_verify([GOOD_PK, pk], MESSAGE, GOOD_SIG) is False
    assert bn254.aggregate_verify([pk], [MESSAGE], GOOD_SIG) is False
    assert bn254.pop_verify(pk, GOOD_SIG) is False
    assert bn254.verify_g1_g2(bn254.sk_to_pk_g1(7), pk, MESSAGE, GOOD_SIG) is False


def test_off_subgroup_point_is_on_the_twist() -> None:
    # the off-subgroup case above must fail for the subgroup reason, not another
    with pytest.raises(ValueError, match="subgroup"):
        bn254.parse_g2(_off_subgroup_g2())


@pytest.mark.parametrize("sk", [0, -1, R, True, 2.0])
def test_bad_secret_keys_raise_value_error(sk: Any) -> None:
    for fn in (bn254.sk_to_pk, bn254.sk_to_pk_g1, bn254.pop_prove):
        with pytest.raises(ValueError, match="secret key"):
            fn(sk)
    with pytest.raises(ValueError, match="secret key"):
        bn254.sign(sk, MESSAGE)


def test_bad_lists_and_messages() -> None:
    with pytest.raises(ValueError, match="empty"):
        bn254.aggregate([])
    with pytest.raises(ValueError, match="list"):
        bn254.aggregate_pks_g2(GOOD_PK)
    with pytest.raises(ValueError, match="message"):
        bn254.sign(7, "text")
    assert bn254.fast_aggregate_verify([], MESSAGE, GOOD_SIG) is False
    assert bn254.aggregate_verify([GOOD_PK], [MESSAGE, MESSAGE], GOOD_SIG) is False
    assert bn254.verify(GOOD_PK, bytearray(MESSAGE), GOOD_SIG) is False
    with pytest.raises(ValueError, match="32-byte"):
        bn254.challenge(MESSAGE + b"!", bn254.sk_to_pk_g1(7), GOOD_PK, GOOD_SIG)
    assert bn254.verify_g1_g2(bn254.sk_to_pk_g1(7), GOOD_PK, MESSAGE[:31], GOOD_SIG) is False


def test_keys_summing_to_infinity_fail_fast_aggregate_verify() -> None:
    neg_pk = _enc_g2(neg(_point_g2(GOOD_PK)))
    assert bn254.aggregate_pks_g2([GOOD_PK, neg_pk]) == bytes(128)
    assert bn254.fast_aggregate_verify([GOOD_PK, neg_pk], MESSAGE, GOOD_SIG) is False


# --- pairing checks (each ~0.5 s) -------------------------------------------------------


def test_sign_verify_round_trip_and_tampering() -> None:
    sk = 0xDEADBEEF
    pk = bn254.sk_to_pk(sk)
    sig = bn254.sign(sk, MESSAGE)
    assert bn254.verify(pk, MESSAGE, sig)
    assert not bn254.verify(pk, keccak256(MESSAGE), sig)
    assert not bn254.verify(bn254.sk_to_pk(sk + 1), MESSAGE, sig)
    assert not bn254.verify(pk, MESSAGE, GOOD_SIG)  # another key's signature


def test_verify_agrees_with_py_ecc_naive_two_pairing_check() -> None:
    sk = 4242
    sig_point = _point_g1(bn254.sign(sk, MESSAGE))
    h_point = _point_g1(bn254.hash_to_g1(MESSAGE))
    assert pairing(G2, sig_point) == pairing(multiply(G2, sk), h_point)


def test_pop_round_trip_and_domain_separation() -> None:
    sk = 99991
    pk = bn254.sk_to_pk(sk)
    proof = bn254.pop_prove(sk)
    assert bn254.pop_verify(pk, proof)
    assert not bn254.verify(pk, pk, proof)  # the PoP is not a signature under DST
    digest = bytes(range(32))  # stands for an OperatorRegistry keyRegistrationDigest
    bound = bn254.sign_pop(sk, digest)
    assert bn254.verify_pop(pk, digest, bound)
    assert not bn254.verify_pop(pk, bytes(32), bound)
    assert not bn254.verify(pk, digest, bound)


def test_rogue_key_attack_passes_plain_fav_and_fails_pop() -> None:
    victim_sk = 0x5EC12E7
    victim_pk = bn254.sk_to_pk(victim_sk)
    # attacker picks a, publishes pk_rogue = a*G2 - pk_victim without knowing its secret key
    attacker_secret = 0xA77AC4
    rogue_point = add(multiply(G2, attacker_secret), neg(_point_g2(victim_pk)))
    rogue_pk = _enc_g2(rogue_point)
    # a*H(m) now "signs" for both keys: the aggregate key is a*G2
    forged = bn254.sign(attacker_secret, MESSAGE)
    assert bn254.fast_aggregate_verify([victim_pk, rogue_pk], MESSAGE, forged)
    # ...which is why registration demands a PoP: the attacker's best attempt fails
    attempted_proof = _enc_g1(
        multiply(_point_g1(bn254.hash_to_g1(rogue_pk, bn254.POP_DST)), attacker_secret)
    )
    assert not bn254.pop_verify(rogue_pk, attempted_proof)


def test_aggregate_verify_distinct_messages() -> None:
    sks = [5, 6, 7]
    messages = [keccak256(bytes([i])) for i in range(3)]
    pks = [bn254.sk_to_pk(k) for k in sks]
    sig = bn254.aggregate([bn254.sign(k, m) for k, m in zip(sks, messages, strict=True)])
    assert bn254.aggregate_verify(pks, messages, sig)
    assert not bn254.aggregate_verify(pks, messages[::-1], sig)


def test_on_chain_check_agrees_with_fast_aggregate_verify() -> None:
    committee = [101, 202, 303, 404]
    signers = committee[:3]  # 404 did not sign: the contract subtracts its G1 key
    apk_g1 = bn254.aggregate_pks_g1([bn254.sk_to_pk_g1(k) for k in signers])
    pks_g2 = [bn254.sk_to_pk(k) for k in signers]
    apk_g2 = bn254.aggregate_pks_g2(pks_g2)
    sig = bn254.aggregate([bn254.sign(k, MESSAGE) for k in signers])
    assert bn254.fast_aggregate_verify(pks_g2, MESSAGE, sig)
    assert bn254.verify_g1_g2(apk_g1, apk_g2, MESSAGE, sig)
    # G1 and G2 keys of different sets: the gamma combination catches it
    full_g1 = bn254.aggregate_pks_g1([bn254.sk_to_pk_g1(k) for k in committee])
    assert not bn254.verify_g1_g2(full_g1, apk_g2, MESSAGE, sig)
    # a signature missing one signer fails both checks
    partial = bn254.aggregate([bn254.sign(k, MESSAGE) for k in signers[:2]])
    assert not bn254.verify_g1_g2(apk_g1, apk_g2, MESSAGE, partial)


def test_on_chain_check_passes_py_evm_ecpairing_precompile() -> None:
    from eth.precompiles.ecpairing import _ecpairing

    sks = [11, 22]
    apk_g1 = bn254.aggregate_pks_g1([bn254.sk_to_pk_g1(k) for k in sks])
    apk_g2 = bn254.aggregate_pks_g2([bn254.sk_to_pk(k) for k in sks])
    sig = bn254.aggregate([bn254.sign(k, MESSAGE) for k in sks])
    gamma = bn254.challenge(MESSAGE, apk_g1, apk_g2, sig)
    left = _enc_g1(add(_point_g1(sig), multiply(_point_g1(apk_g1), gamma)))
    right = _enc_g1(add(_point_g1(bn254.hash_to_g1(MESSAGE)), multiply(G1, gamma)))
    neg_g2 = _enc_g2(neg(G2))
    # the exact bytes a contract hands to ecPairing (0x08)
    assert _ecpairing(left + neg_g2 + right + apk_g2) is True
    assert _ecpairing(left + neg_g2 + right + bn254.sk_to_pk(11)) is False


# --- the pure-Python pairing against py-ecc's ------------------------------------------


def _to_py_ecc_basis(f: Any) -> FQ12:
    """Our Fp12 (sum c_j w^j, c_j in Fp[i]) in py-ecc's basis Fp[w]/(w^12 - 18 w^6 + 82), i = w^6 - 9."""
    (c0, c2, c4), (c1, c3, c5) = f
    out = [0] * 12
    for j, (re, im) in enumerate((c0, c1, c2, c3, c4, c5)):
        out[j] = (out[j] + re - 9 * im) % P
        out[j + 6] = (out[j + 6] + im) % P
    return FQ12(out)


def _affine_g1(point: Any) -> tuple[int, int]:
    x, y = normalize(point)
    return (int(x), int(y))


def _affine_g2(point: Any) -> Any:
    x, y = normalize(point)
    return ((int(x.coeffs[0]), int(x.coeffs[1])), (int(y.coeffs[0]), int(y.coeffs[1])))


@settings(max_examples=3, deadline=None)
@given(a=secret_keys, b=secret_keys)
def test_pairing_equals_py_ecc_value_for_value(a: int, b: int) -> None:
    p1, q2 = multiply(G1, a), multiply(G2, b)
    ours = _bn254_pairing.pairing(_affine_g1(p1), _affine_g2(q2))
    assert _to_py_ecc_basis(ours) == pairing(q2, p1)


def test_pairing_is_bilinear_and_non_degenerate() -> None:
    a, b = 0x1234567, 0x7654321
    e = _bn254_pairing.pairing
    base = e(_affine_g1(G1), _affine_g2(G2))
    assert base != _bn254_pairing.ONE
    ab = e(_affine_g1(multiply(G1, a)), _affine_g2(multiply(G2, b)))
    ba = e(_affine_g1(multiply(G1, a * b % R)), _affine_g2(G2))
    assert ab == ba

    def power(f: Any, k: int) -> Any:
        result = _bn254_pairing.ONE
        for bit in bin(k)[2:]:
            result = _bn254_pairing.f12_mul(result, result)
            if bit == "1":
                result = _bn254_pairing.f12_mul(result, f)
        return result

    assert power(base, a * b) == ab
    assert power(base, R) == _bn254_pairing.ONE


def test_g2_frobenius_is_multiplication_by_p() -> None:
    q = multiply(G2, 987654321)
    assert _bn254_pairing._g2_frobenius(_affine_g2(q)) == _affine_g2(multiply(q, P % R))


@settings(max_examples=4, deadline=None)
@given(a=secret_keys, b=secret_keys, same=st.booleans())
def test_product_check_verdict_matches_py_ecc(a: int, b: int, same: bool) -> None:
    c = a * b % R if same else (a * b + 1) % R
    # e(aG1, bG2) * e(-cG1, G2) == 1 iff c == ab
    pairs = [(multiply(G1, a), multiply(G2, b)), (neg(multiply(G1, c)), G2)]
    ours = _bn254_pairing.product_is_one(
        [(_affine_g1(p1), _bn254_pairing.g2_lines(_affine_g2(q2))) for p1, q2 in pairs]
    )
    f = FQ12.one()
    for p1, q2 in pairs:
        f = f * pairing(q2, p1, final_exponentiate=False)
    assert ours is (final_exponentiate(f) == FQ12.one()) is same


# --- the int-affine group arithmetic against py-ecc ---------------------------------------


@settings(max_examples=10, deadline=None)
@given(a=secret_keys, b=secret_keys)
def test_affine_group_arithmetic_matches_py_ecc(a: int, b: int) -> None:
    from veristream.provers.bls import _bn254_curve as curve

    pa, pb = curve.g1_mul(curve.G1_GENERATOR, a), curve.g1_mul(curve.G1_GENERATOR, b)
    assert bn254.encode_g1(pa) == _enc_g1(multiply(G1, a))
    assert bn254.encode_g1(curve.g1_add(pa, pb)) == _enc_g1(multiply(G1, (a + b) % R))
    qa, qb = curve.g2_mul(curve.G2_GENERATOR, a), curve.g2_mul(curve.G2_GENERATOR, b)
    assert bn254.encode_g2(qa) == _enc_g2(multiply(G2, a))
    assert bn254.encode_g2(curve.g2_add(qa, qb)) == _enc_g2(multiply(G2, (a + b) % R))


def test_affine_group_special_cases() -> None:
    from veristream.provers.bls import _bn254_curve as curve

    p, q = curve.G1_GENERATOR, curve.G2_GENERATOR
    assert curve.g1_add(p, p) == curve.g1_double(p) == curve.g1_mul(p, 2)
    assert curve.g1_add(p, curve.g1_neg(p)) is None
    assert curve.g1_add(None, p) == p == curve.g1_add(p, None)
    assert curve.g1_mul(p, R) is None and curve.g1_mul(p, 0) is None
    assert curve.g2_add(q, q) == curve.g2_double(q) == curve.g2_mul(q, 2)
    assert curve.g2_add(q, curve.g2_neg(q)) is None
    assert curve.g2_in_subgroup(q)
    assert curve.g2_on_curve(q) and curve.g1_on_curve(p)
    off = _twist_point(_off_subgroup_g2())
    assert curve.g2_on_curve(off) and not curve.g2_in_subgroup(off)


def _twist_point(data: bytes) -> Any:
    x_im, x_re, y_im, y_re = (int.from_bytes(data[i : i + 32], "big") for i in range(0, 128, 32))
    return ((x_re, x_im), (y_re, y_im))


def test_cyclotomic_square_equals_generic_square() -> None:
    from veristream.provers.bls import _bn254_curve as curve

    f = _bn254_pairing.miller_loop(
        [(curve.g1_mul(curve.G1_GENERATOR, 5), _bn254_pairing.g2_lines(curve.G2_GENERATOR))]
    )
    # the easy part maps f into the cyclotomic subgroup, where the shortcut is valid
    g = _bn254_pairing.f12_mul(_bn254_pairing._f12_conj(f), _bn254_pairing._f12_inv(f))
    g = _bn254_pairing.f12_mul(_bn254_pairing._f12_frobenius(g, 2), g)
    assert _bn254_pairing._cyclotomic_sqr(g) == _bn254_pairing._f12_sqr(g)
    assert _bn254_pairing._cyclotomic_sqr(f) != _bn254_pairing._f12_sqr(f)


def test_docs_test_vector() -> None:
    """The vector published in docs/bls.md for the contract side (a change here is a spec change)."""
    m = keccak256(b"veristream test vector")
    sk = 42
    assert m.hex() == "0240d686d9f248e6e8bb028dd303c28ec63a90cf470785c170fae337523fd1bd"
    assert bn254.hash_to_g1(m).hex() == (
        "0880b0f81a08758ba05a0eda70e4dabc828055317c954f826e62e788da3f841f"
        "06308c3e229f89a3eb1b9c65a7eb4305e622bc965ff9b0f3314de4763de9101d"
    )
    assert bn254.sk_to_pk_g1(sk).hex() == (
        "0988f35db6971fd77c8f9afdae27f7fb355577586de4c517537d17882f9b3f34"
        "23baffa63fafc8c67007390a6e6dd52860b4a8ae95f49905d52cdb2c3b4cb203"
    )
    assert bn254.sk_to_pk(sk).hex() == (
        "12740934ba9615b77b6a49b06fcce83ce90d67b1d0e2a530069e3a7306569a91"
        "116da8c89a0d090f3d8644ada33a5f1c8013ba7204aeca62d66d931b99afe6e7"
        "25222d9816e5f86b4a7dedd00d04acc5c979c18bd22b834ea8c6d07c0ba441db"
        "076441042e77b6309644b56251f059cf14befc72ac8a6157d30924e58dc4c172"
    )
    sig = bn254.sign(sk, m)
    assert sig.hex() == (
        "0a4ea03430377e71586f96fbd9ab8bd04ed7e6b6c22a6091697f25fc8d659319"
        "0773b1f0eae22e9fa03032aec710ac9c719e2d2fad7ff38d518e0f5d98f9b619"
    )
    assert bn254.pop_prove(sk).hex() == (
        "17a5c9a5dee8a4c5b6be1ca1e0afe83f369cfd8f8c78627f30d183d1ca81d5b7"
        "240e1951d55336a478a63eb2cba619fe72718253f6fcd6dcdd498b77a239e414"
    )
    # the registry's PoP: sign_pop over a 32-byte keyRegistrationDigest, POP_DST V2
    assert bn254.sign_pop(sk, m).hex() == (
        "1a43b4f6e20dd203dd1cee9dbced7c918ec4c1d480571b0834831ed3d43b67f9"
        "2e346ce5948b1263024305590ba6b6c861d123f1c364114ff43514e051dfcae0"
    )
    gamma = bn254.challenge(m, bn254.sk_to_pk_g1(sk), bn254.sk_to_pk(sk), sig)
    assert gamma == 0x0E32768FE0C6374AD748C524D1C9575DC2BDC588EC8604471E63A8AA874CF854


def test_glv_constants_are_the_g1_endomorphism() -> None:
    from veristream.provers.bls import _bn254_curve as curve

    assert pow(curve.BETA, 3, P) == 1 and curve.BETA != 1
    assert (curve.LAMBDA**2 + curve.LAMBDA + 1) % R == 0
    x, y = normalize(multiply(G1, curve.LAMBDA))
    assert (int(x), int(y)) == (curve.BETA * 1 % P, 2)  # phi(G1) = (BETA * 1, 2)


@settings(max_examples=50, deadline=None)
@given(k=st.integers(min_value=-(2**300), max_value=2**300))
def test_glv_split_is_short_and_exact(k: int) -> None:
    from veristream.provers.bls import _bn254_curve as curve

    k1, k2 = curve.glv_split(k)
    assert (k1 + k2 * curve.LAMBDA - k) % R == 0
    assert abs(k1).bit_length() <= 128 and abs(k2).bit_length() <= 128


def test_g1_mul_edge_scalars_match_py_ecc() -> None:
    from veristream.provers.bls import _bn254_curve as curve

    for k in (1, 2, 3, R - 1, R + 1, curve.LAMBDA, curve.LAMBDA + 1, 2**128, -5):
        assert bn254.encode_g1(curve.g1_mul(curve.G1_GENERATOR, k)) == _enc_g1(multiply(G1, k % R))
    assert curve.g1_mul(curve.G1_GENERATOR, R) is None
    assert curve.g1_mul(None, 5) is None


def test_jacobian_sums_match_py_ecc_and_handle_cancellation() -> None:
    from veristream.provers.bls import _bn254_curve as curve

    ks = [3, 5, R - 3, 2**200 + 1]
    g1s = [curve.g1_mul(curve.G1_GENERATOR, k) for k in ks]
    g2s = [curve.g2_mul(curve.G2_GENERATOR, k) for k in ks]
    total = sum(ks) % R
    assert bn254.encode_g1(curve.g1_sum(g1s)) == _enc_g1(multiply(G1, total))
    assert bn254.encode_g2(curve.g2_sum(g2s)) == _enc_g2(multiply(G2, total))
    # 3 + (R - 3) cancels mid-way; doubling happens when a point meets itself
    assert curve.g1_sum(g1s[:3]) == g1s[1] and curve.g2_sum(g2s[:3]) == g2s[1]
    assert curve.g1_sum([g1s[0], g1s[0]]) == curve.g1_mul(curve.G1_GENERATOR, 6)
    assert curve.g2_sum([g2s[0], g2s[0]]) == curve.g2_mul(curve.G2_GENERATOR, 6)
    assert curve.g1_sum([g1s[0], g1s[2]]) is None and curve.g2_sum([g2s[0], g2s[2]]) is None
    assert curve.g1_sum([]) is None and curve.g2_sum([None]) is None

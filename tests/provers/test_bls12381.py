"""BLS12-381 (Ethereum POP ciphersuite): byte-identical to py-ecc, strict on malformed input.

py-ecc's ``G2ProofOfPossession`` is the oracle (~0.3 s a verify), so property
tests run few examples. The EVM encodings are checked against py-evm's own
EIP-2537 pairing precompile.
"""

from __future__ import annotations

from collections.abc import Iterator
from hashlib import sha256
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from py_ecc.bls import G2ProofOfPossession, hash_to_curve
from py_ecc.bls.g2_primitives import G1_to_pubkey, G2_to_signature, subgroup_check
from py_ecc.bls.point_compression import modular_squareroot_in_FQ2
from py_ecc.fields import optimized_bls12_381_FQ as FQ
from py_ecc.fields import optimized_bls12_381_FQ2 as FQ2
from py_ecc.optimized_bls12_381 import G1, b2, multiply, normalize

from veristream.provers.bls import bls12381 as bls

# py-ecc's annotations want NewType'd bytes; the oracle is called with plain bytes
Oracle: Any = G2ProofOfPossession
hash_to_G2: Any = hash_to_curve.hash_to_G2
R = bls.CURVE_ORDER
Q = bls.FIELD_MODULUS

secret_keys = st.integers(min_value=1, max_value=R - 1)
messages = st.binary(max_size=64)
oracle_settings = settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _neg_pk(pk: bytes) -> bytes:
    """-P for a compressed G1 point: same x, the other y (flip the sign flag)."""
    return bytes([pk[0] ^ 0x20]) + pk[1:]


def _off_subgroup_g1() -> bytes:
    x = 1
    while True:
        rhs = (x**3 + 4) % Q
        y = pow(rhs, (Q + 1) // 4, Q)
        if y * y % Q == rhs:
            point = (FQ(x), FQ(y), FQ(1))
            if not subgroup_check(point):
                return bytes(G1_to_pubkey(point))
        x += 1


def _off_subgroup_g2() -> bytes:
    x0 = 1
    while True:
        x = FQ2([x0, 1])
        y = modular_squareroot_in_FQ2(x**3 + b2)
        if y is not None:
            point = (x, y, FQ2.one())
            if not subgroup_check(point):
                return bytes(G2_to_signature(point))
        x0 += 1


# --- byte identity with py-ecc -------------------------------------------------------


@oracle_settings
@given(sk=secret_keys, message=messages)
def test_keys_signatures_and_pops_match_py_ecc(sk: int, message: bytes) -> None:
    pk = bls.sk_to_pk(sk)
    signature = bls.sign(sk, message)
    proof = bls.pop_prove(sk)
    assert pk == Oracle.SkToPk(sk)
    assert signature == Oracle.Sign(sk, message)
    assert proof == Oracle.PopProve(sk)
    assert bls.verify(pk, message, signature)
    assert bls.pop_verify(pk, proof)
    assert not bls.verify(pk, message + b"\x00", signature)


@settings(max_examples=3, deadline=None)
@given(sk=secret_keys, message=messages)
def test_py_ecc_accepts_our_signatures(sk: int, message: bytes) -> None:
    assert Oracle.Verify(bls.sk_to_pk(sk), message, bls.sign(sk, message))


@settings(max_examples=3, deadline=None)
@given(sks=st.lists(secret_keys, min_size=1, max_size=4), message=messages)
def test_aggregates_match_py_ecc(sks: list[int], message: bytes) -> None:
    pks = [bls.sk_to_pk(sk) for sk in sks]
    signatures = [bls.sign(sk, message) for sk in sks]
    aggregate = bls.aggregate(signatures)
    assert aggregate == Oracle.Aggregate(signatures)
    assert bls.aggregate_pks(pks) == Oracle._AggregatePKs(pks)
    ours = bls.fast_aggregate_verify(pks, message, aggregate)
    assert ours is Oracle.FastAggregateVerify(pks, message, aggregate) is True


def test_aggregate_verify_distinct_and_repeated_messages_match_py_ecc() -> None:
    sks = [3, 1 << 200, R - 5]
    msgs = [b"a", b"b", b"a"]  # repeats are allowed in the POP ciphersuite
    pks = [bls.sk_to_pk(sk) for sk in sks]
    signature = bls.aggregate([bls.sign(sk, m) for sk, m in zip(sks, msgs, strict=True)])
    assert bls.aggregate_verify(pks, msgs, signature)
    assert Oracle.AggregateVerify(pks, msgs, signature)
    swapped = [b"b", b"a", b"a"]
    assert not bls.aggregate_verify(pks, swapped, signature)
    assert not Oracle.AggregateVerify(pks, swapped, signature)
    assert not bls.aggregate_verify(pks[:2], msgs, signature)  # length mismatch
    assert not bls.aggregate_verify([], [], signature)


# --- tampering and the verdicts py-ecc gives ---------------------------------------------


@pytest.fixture(scope="module")
def signed() -> tuple[bytes, bytes, bytes]:
    sk = 0x1234567890ABCDEF
    message = b"epoch 7 result"
    return bls.sk_to_pk(sk), message, bls.sign(sk, message)


def test_tampered_inputs_fail_here_and_in_py_ecc(signed: tuple[bytes, bytes, bytes]) -> None:
    pk, message, signature = signed
    other_pk = bls.sk_to_pk(99)
    flipped = bytes([signature[0]]) + bytes([signature[1] ^ 1]) + signature[2:]
    cases = [
        (other_pk, message, signature),
        (pk, b"epoch 8 result", signature),
        (pk, message, bls.sign(99, message)),
        (pk, message, flipped),
    ]
    for case in cases:
        assert bls.verify(*case) is False
    assert Oracle.Verify(*cases[0]) is False
    assert Oracle.Verify(*cases[3]) is False


def test_pop_does_not_verify_as_a_plain_signature(signed: tuple[bytes, bytes, bytes]) -> None:
    pk, _, _ = signed
    proof = bls.pop_prove(0x1234567890ABCDEF)
    assert bls.pop_verify(pk, proof)
    assert not bls.verify(pk, pk, proof)  # domain separation between DST and POP_DST
    assert not bls.pop_verify(bls.sk_to_pk(5), proof)


def test_registration_pop_signs_a_digest_under_the_pop_tag(signed: tuple[bytes, bytes, bytes]) -> None:
    pk, _, _ = signed
    digest = bytes(range(32))  # stands for an OperatorRegistry keyRegistrationDigest
    proof = bls.sign_pop(0x1234567890ABCDEF, digest)
    assert bls.verify_pop(pk, digest, proof)
    assert not bls.verify_pop(pk, bytes(32), proof)  # bound to its digest
    assert not bls.verify(pk, digest, proof)  # and to POP_DST
    assert bls.sign_pop(0x1234567890ABCDEF, pk) == bls.pop_prove(0x1234567890ABCDEF)


def _malformed_pks() -> Iterator[tuple[str, Any]]:
    good = bls.sk_to_pk(42)
    yield "infinity", b"\xc0" + bytes(47)
    yield "off-subgroup", _off_subgroup_g1()
    yield "x >= q", (0x80 << 376 | Q).to_bytes(48, "big")
    yield "compression flag clear", bytes([good[0] & 0x7F]) + good[1:]
    yield "infinity flag with x", bytes([good[0] | 0x40]) + good[1:]
    yield "infinity with sign flag", b"\xe0" + bytes(47)
    yield "short", good[:47]
    yield "long", good + b"\x00"
    yield "not bytes", bytearray(good)
    yield "str", good.hex()


@pytest.mark.parametrize(("label", "pk"), list(_malformed_pks()))
def test_malformed_public_keys_are_rejected(
    label: str, pk: Any, signed: tuple[bytes, bytes, bytes]
) -> None:
    _, message, signature = signed
    with pytest.raises(ValueError, match=r"public key"):
        bls.parse_pk(pk)
    assert not bls.key_validate(pk)
    assert bls.verify(pk, message, signature) is False
    assert bls.fast_aggregate_verify([pk], message, signature) is False
    assert bls.aggregate_verify([pk], [message], signature) is False
    assert bls.pop_verify(pk, signature) is False
    if isinstance(pk, bytes):
        assert Oracle.KeyValidate(pk) is False
    with pytest.raises(ValueError):
        bls.pk_to_evm(pk)


@settings(max_examples=25, deadline=None)
@given(
    flags=st.sampled_from([0x80, 0xA0, 0xC0, 0xE0, 0x00, 0x40]),
    body=st.binary(min_size=47, max_size=47),
    top=st.integers(0, 31),
)
def test_random_public_key_bytes_validate_like_py_ecc(flags: int, body: bytes, top: int) -> None:
    pk = bytes([flags | top]) + body
    assert bls.key_validate(pk) is Oracle.KeyValidate(pk)


def _malformed_signatures() -> Iterator[tuple[str, Any]]:
    good = bls.sign(42, b"m")
    yield "infinity", b"\xc0" + bytes(95)
    yield "off-subgroup", _off_subgroup_g2()
    yield "x.c1 >= q", (0x80 << 376 | Q).to_bytes(48, "big") + good[48:]
    yield "x.c0 >= q", good[:48] + Q.to_bytes(48, "big")
    yield "compression flag clear", bytes([good[0] & 0x7F]) + good[1:]
    yield "infinity flag with x", bytes([good[0] | 0x40]) + good[1:]
    yield "short", good[:95]
    yield "not bytes", bytearray(good)


@pytest.mark.parametrize(("label", "signature"), list(_malformed_signatures()))
def test_malformed_signatures_are_rejected(
    label: str, signature: Any, signed: tuple[bytes, bytes, bytes]
) -> None:
    pk, message, _ = signed
    with pytest.raises(ValueError, match=r"signature"):
        bls.parse_signature(signature)
    with pytest.raises(ValueError, match=r"signature"):
        bls.aggregate([signature])
    assert bls.verify(pk, message, signature) is False
    assert bls.fast_aggregate_verify([pk], message, signature) is False
    assert bls.aggregate_verify([pk], [message], signature) is False
    assert bls.pop_verify(pk, signature) is False


def test_py_ecc_also_rejects_the_bad_signatures(signed: tuple[bytes, bytes, bytes]) -> None:
    pk, message, _ = signed
    for _, signature in _malformed_signatures():
        assert Oracle.Verify(pk, message, signature) is False


def test_keys_summing_to_infinity_fail_fast_aggregate_verify_like_py_ecc(
    signed: tuple[bytes, bytes, bytes],
) -> None:
    pk, message, signature = signed
    pks = [pk, _neg_pk(pk)]
    assert bls.aggregate_pks(pks) == b"\xc0" + bytes(47)
    assert bls.fast_aggregate_verify(pks, message, b"\xc0" + bytes(95)) is False
    assert Oracle.FastAggregateVerify(pks, message, b"\xc0" + bytes(95)) is False
    assert bls.fast_aggregate_verify([], message, signature) is False


@pytest.mark.parametrize("sk", [0, -1, R, R + 1, True, 1.0, "1"])
def test_bad_secret_keys_raise_value_error(sk: Any) -> None:
    with pytest.raises(ValueError, match="secret key"):
        bls.sk_to_pk(sk)
    with pytest.raises(ValueError, match="secret key"):
        bls.sign(sk, b"m")
    with pytest.raises(ValueError, match="secret key"):
        bls.pop_prove(sk)


def test_bad_messages_and_lists(signed: tuple[bytes, bytes, bytes]) -> None:
    pk, message, signature = signed
    with pytest.raises(ValueError, match="message"):
        bls.sign(5, "text")
    assert bls.verify(pk, bytearray(message), signature) is False
    with pytest.raises(ValueError, match="empty"):
        bls.aggregate([])
    with pytest.raises(ValueError, match="list"):
        bls.aggregate(signature)
    with pytest.raises(ValueError, match="empty"):
        bls.aggregate_pks([])
    assert bls.fast_aggregate_verify(pk, message, signature) is False


# --- caching and backends ------------------------------------------------------------------


def test_parsed_keys_are_cached() -> None:
    pks = [bls.sk_to_pk(sk) for sk in range(10, 20)]
    first = bls.parse_pks(pks)
    again = bls.parse_pks(pks)
    assert all(a is b for a, b in zip(first, again, strict=True))


def test_cached_committee_aggregate_stays_correct() -> None:
    sks = list(range(50, 60))
    pks = [bls.sk_to_pk(sk) for sk in sks]
    for message in (b"first", b"second"):
        signature = bls.aggregate([bls.sign(sk, message) for sk in sks])
        assert bls.fast_aggregate_verify(pks, message, signature)
        assert not bls.fast_aggregate_verify(pks[:-1], message, signature)
        assert not bls.fast_aggregate_verify(pks, message + b"!", signature)


def test_py_ecc_fallback_backend_gives_the_same_bytes() -> None:
    sk, message = 31337, b"fallback"
    expected_pk, expected_sig = bls.sk_to_pk(sk), bls.sign(sk, message)
    assert bls.backend() == "blst"
    # fills the blst key and aggregate caches, which a backend switch must drop
    assert bls.fast_aggregate_verify([expected_pk], message, expected_sig)
    try:
        bls.use_backend("py-ecc")
        assert bls.fast_aggregate_verify([expected_pk], message, expected_sig)
        assert bls.backend() == "py-ecc"
        assert bls.sk_to_pk(sk) == expected_pk
        assert bls.sign(sk, message) == expected_sig
        assert bls.verify(expected_pk, message, expected_sig)
        assert not bls.verify(expected_pk, message + b"!", expected_sig)
        with pytest.raises(ValueError, match="subgroup"):
            bls.parse_pk(_off_subgroup_g1())
    finally:
        bls.use_backend("blst")
    with pytest.raises(ValueError, match="backend"):
        bls.use_backend("milagro")


# --- EIP-2537 encodings --------------------------------------------------------------------


def _fp(value: Any) -> bytes:
    return int(value).to_bytes(64, "big")


@settings(max_examples=5, deadline=None)
@given(sk=secret_keys, message=messages)
def test_evm_encodings_match_py_ecc_points(sk: int, message: bytes) -> None:
    x, y = normalize(multiply(G1, sk))
    assert bls.pk_to_evm(bls.sk_to_pk(sk)) == _fp(x) + _fp(y)
    hx, hy = normalize(hash_to_G2(message, bls.DST, sha256))
    expected_h = _fp(hx.coeffs[0]) + _fp(hx.coeffs[1]) + _fp(hy.coeffs[0]) + _fp(hy.coeffs[1])
    assert bls.hash_to_g2_evm(message) == expected_h
    sx, sy = normalize(multiply(hash_to_G2(message, bls.DST, sha256), sk))
    expected_s = _fp(sx.coeffs[0]) + _fp(sx.coeffs[1]) + _fp(sy.coeffs[0]) + _fp(sy.coeffs[1])
    assert bls.signature_to_evm(bls.sign(sk, message)) == expected_s
    for word in (bls.pk_to_evm(bls.sk_to_pk(sk))[i : i + 64] for i in (0, 64)):
        assert word[:16] == bytes(16)


@pytest.mark.slow
def test_evm_encodings_pass_py_evm_eip2537_pairing_precompile() -> None:
    from eth.precompiles.bls12_381 import bls12_pairing_check

    sk, message = 0xC0FFEE, b"\x11" * 32
    neg_g1 = bls.pk_to_evm(_neg_pk(bls.G1_GENERATOR))

    def precompile(data: bytes) -> bool:
        computation = SimpleNamespace(
            msg=SimpleNamespace(data=data), consume_gas=lambda *_: None, output=b""
        )
        bls12_pairing_check(computation)  # type: ignore[arg-type]
        return bool(computation.output[-1] == 1)

    pk = bls.pk_to_evm(bls.sk_to_pk(sk))
    sig = bls.signature_to_evm(bls.sign(sk, message))
    # e(pk, H(m)) * e(-G1, sig) == 1 is exactly what an EIP-2537 verifier checks
    assert precompile(pk + bls.hash_to_g2_evm(message) + neg_g1 + sig)
    assert not precompile(pk + bls.hash_to_g2_evm(b"\x12" * 32) + neg_g1 + sig)


@pytest.mark.slow
def test_benchmark_runs_and_reports_both_schemes() -> None:
    from benchmarks import core_bls

    rows = core_bls.run(quick=True)
    names = [row["name"] for row in rows]
    assert any(name.startswith("bls12381 fast_aggregate_verify") for name in names)
    assert any(name.startswith("bn254 verify_g1_g2") for name in names)
    for row in rows:
        assert row["unit"] == "ops/s" and row["ours"] > 0 and row["baseline"] > 0

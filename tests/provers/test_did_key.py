"""Multibase, Multikey and did:key: encodings against the ``multiformats`` package, and every
malformed key refused. did-method-key itself is the oracle in ``test_credentials_reference.py``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiformats import multibase, varint

from veristream.provers import did_key
from veristream.provers.errors import InputRejected
from veristream.provers.multibase import (
    base58btc_decode,
    multibase_encode,
    multicodec_unwrap,
    multicodec_wrap,
    varint_decode,
    varint_encode,
)
from veristream.provers.multikey import (
    ED25519,
    P256,
    PublicKey,
    SecretKey,
    multikey_document,
    secret_key_of_document,
)
from veristream.provers.schemes.p256 import N


@given(st.binary(max_size=80))
def test_base58btc_matches_multiformats(data: bytes) -> None:
    ours = multibase_encode(data)
    assert ours == multibase.encode(data, "base58btc")
    assert base58btc_decode(ours[1:]) == data


@given(st.integers(0, 2**63 - 1))
def test_varint_matches_multiformats(value: int) -> None:
    assert varint_encode(value) == varint.encode(value)
    assert varint_decode(varint_encode(value) + b"\xff") == (value, len(varint.encode(value)))


def test_multicodec_prefixes_of_the_key_types() -> None:
    assert multicodec_wrap(0xED, b"") == bytes([0xED, 0x01])
    assert multicodec_wrap(0x1200, b"") == bytes([0x80, 0x24])
    assert multicodec_wrap(0x1300, b"") == bytes([0x80, 0x26])
    assert multicodec_wrap(0x1306, b"") == bytes([0x86, 0x26])
    assert multicodec_unwrap(bytes([0x80, 0x24, 7])) == (0x1200, b"\x07")
    with pytest.raises(InputRejected, match="not minimal"):
        varint_decode(bytes([0x80, 0x00]))
    with pytest.raises(InputRejected, match="truncated"):
        varint_decode(bytes([0x80]))


@given(st.binary(min_size=32, max_size=32))
def test_ed25519_did_key_round_trip(seed: bytes) -> None:
    key = SecretKey.from_raw(ED25519, seed)
    did = did_key.did_key(key.public_key)
    assert did.startswith("did:key:z6Mk")
    assert did_key.public_key_of_did(did) == key.public_key
    assert SecretKey.from_multibase(key.multibase) == key
    assert key.multibase.startswith("z3u2")
    assert key.public_key.verify(b"m", key.sign(b"m")) and not key.public_key.verify(b"n", key.sign(b"m"))


@given(st.integers(1, N - 1))
def test_p256_did_key_round_trip(scalar: int) -> None:
    key = SecretKey.from_raw(P256, scalar.to_bytes(32, "big"))
    did = did_key.did_key(key.public_key)
    assert did.startswith("did:key:zDn")
    assert len(key.public_key.raw) == 33 and key.public_key.raw[0] in (2, 3)
    assert did_key.public_key_of_did(did) == key.public_key
    assert SecretKey.from_multibase(key.multibase) == key
    signature = key.sign(b"m")
    assert key.public_key.verify(b"m", signature) and not key.public_key.verify(b"n", signature)


def test_did_document_and_dereferencing() -> None:
    key = SecretKey.from_raw(ED25519, bytes(range(32)))
    did = did_key.did_key(key.public_key)
    document = did_key.resolve(did)
    method_id = did_key.verification_method_id(did)
    assert method_id == f"{did}#{did[8:]}"
    assert document["@context"] == ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"]
    assert document["verificationMethod"] == [
        {"id": method_id, "type": "Multikey", "controller": did, "publicKeyMultibase": key.public_key.multibase}
    ]
    assert all(document[r] == [method_id] for r in did_key.VERIFICATION_RELATIONSHIPS)
    assert "keyAgreement" not in document
    assert did_key.dereference(did) == document
    assert did_key.dereference(method_id)["publicKeyMultibase"] == key.public_key.multibase
    with pytest.raises(InputRejected, match="names no verification method"):
        did_key.dereference(did + "#other")


def test_malformed_did_keys_are_refused() -> None:
    ed = SecretKey.from_raw(ED25519, bytes(32)).public_key
    secp256k1_key = multibase_encode(multicodec_wrap(0xE7, b"\x02" + bytes(32)))
    small_order = multibase_encode(multicodec_wrap(0xED, bytes(32)))  # the identity point
    not_on_curve = multibase_encode(multicodec_wrap(0x1200, b"\x02" + b"\xff" * 32))
    short = multibase_encode(multicodec_wrap(0xED, ed.raw[:31]))
    for did, match in [
        ("did:web:example.com", "not a did:key"),
        ("did:key:" + secp256k1_key, "0xe7"),
        ("did:key:" + small_order, "prime-order"),
        ("did:key:" + not_on_curve, "not a point"),
        ("did:key:" + short, "32 bytes"),
        ("did:key:" + ed.multibase + "#x", "nothing after"),
        ("did:key:" + ed.multibase[1:], "base58btc"),
        ("did:key:z0OIl", "outside the alphabet"),
    ]:
        with pytest.raises(InputRejected, match=match):
            did_key.resolve(did)


def test_secret_keys_are_checked_and_hidden() -> None:
    key = SecretKey.from_raw(P256, (5).to_bytes(32, "big"))
    assert key.raw.hex() not in repr(key) and key.multibase not in repr(key)
    for scheme, raw in [(P256, bytes(32)), (P256, N.to_bytes(32, "big")), (ED25519, bytes(31))]:
        with pytest.raises(InputRejected):
            SecretKey.from_raw(scheme, raw)
    document = multikey_document(key, key.public_key, "did:x:y", "did:x:y#k")
    assert secret_key_of_document(document) == key
    with pytest.raises(InputRejected, match="is not the public key"):
        secret_key_of_document({**document, "publicKeyMultibase": SecretKey.generate(P256).public_key.multibase})
    with pytest.raises(InputRejected, match="public key only"):
        secret_key_of_document({k: v for k, v in document.items() if k != "secretKeyMultibase"})
    with pytest.raises(InputRejected, match="0x1200"):
        SecretKey.from_multibase(key.public_key.multibase)
    legacy = SecretKey.from_raw(ED25519, bytes(range(32)))
    wrong_half = multibase_encode(multicodec_wrap(0x1300, legacy.raw + bytes(32)))
    with pytest.raises(InputRejected, match="does not match"):
        SecretKey.from_multibase(wrong_half)
    with pytest.raises(InputRejected, match="scheme"):
        PublicKey.from_raw("secp256k1", bytes(33))

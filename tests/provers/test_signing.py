"""Device readings and their signatures: digest, schemes, verdicts.

Oracles: eth-account (typed-data hashing and signing, Ethereum addresses),
eth-utils' keccak (pycryptodome, not our tiny-keccak), cryptography for Ed25519
and P-256, coincurve's public API for secp256k1 recovery.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from coincurve import PublicKey
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak as reference_keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from veristream.provers import signing
from veristream.provers.readings import SCHEMES, Domain, Reading
from veristream.provers.reasons import SignatureFault
from veristream.provers.schemes import ed25519, p256, secp256k1
from veristream.provers.signing import (
    Verdict,
    device_id_from_public_key,
    public_key_of,
    reading_digest,
    reading_typed_data,
    sign_reading,
    verify_many,
    verify_reading,
)

DOMAIN = Domain(chain_id=31337, verifying_contract="0x" + "5a" * 20)
UINT64_MAX = 2**64 - 1
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

uint64 = st.integers(min_value=0, max_value=UINT64_MAX)
payloads = st.binary(max_size=300)
secrets = st.binary(min_size=32, max_size=32).filter(
    lambda b: 0 < int.from_bytes(b, "big") < min(secp256k1.N, p256.N)
)
domains = st.builds(
    Domain,
    name=st.text(max_size=20),
    version=st.text(max_size=5),
    chain_id=st.integers(min_value=0, max_value=2**256 - 1),
    verifying_contract=st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
)


class Device:
    """A test device: its scheme, private key, public key and id."""

    def __init__(self, scheme: str, secret: bytes) -> None:
        self.scheme = scheme
        self.secret = secret
        self.public_key = public_key_of(scheme, secret)
        self.device_id = device_id_from_public_key(scheme, self.public_key)

    def reading(self, seq: int = 7, timestamp_ms: int = 1_767_225_600_000, payload: bytes = b"t=21.5") -> Reading:
        unsigned = Reading(self.device_id, seq, timestamp_ms, payload, b"", self.scheme)
        return sign_reading(unsigned, DOMAIN, self.secret)


def _device(scheme: str, label: int) -> Device:
    return Device(scheme, reference_keccak(f"{scheme}/{label}".encode()))


DEVICES = {scheme: _device(scheme, 1) for scheme in SCHEMES}
REGISTRY = {d.device_id: d.public_key for d in DEVICES.values()}


def typed_data(device: str, seq: int, timestamp: int, payload: bytes, domain: Domain) -> dict[str, Any]:
    """The EIP-712 message written out from the spec, independently of the module."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Reading": [
                {"name": "device", "type": "address"},
                {"name": "seq", "type": "uint64"},
                {"name": "timestamp", "type": "uint64"},
                {"name": "payloadHash", "type": "bytes32"},
            ],
        },
        "primaryType": "Reading",
        "domain": {
            "name": domain.name,
            "version": domain.version,
            "chainId": domain.chain_id,
            "verifyingContract": domain.verifying_contract,
        },
        "message": {
            "device": device,
            "seq": seq,
            "timestamp": timestamp,
            "payloadHash": reference_keccak(payload),
        },
    }


def eth_account_digest(message: dict[str, Any]) -> bytes:
    signable = encode_typed_data(full_message=message)
    return bytes(reference_keccak(b"\x19" + signable.version + signable.header + signable.body))


# DIGEST: eth-account is the oracle


@SETTINGS
@given(
    address=st.binary(min_size=20, max_size=20),
    seq=uint64,
    timestamp=uint64,
    payload=payloads,
    domain=domains,
)
def test_digest_equals_eth_account_typed_data_hash(
    address: bytes, seq: int, timestamp: int, payload: bytes, domain: Domain
) -> None:
    device = "0x" + address.hex()
    reading = Reading(device, seq, timestamp, payload, b"")
    expected = eth_account_digest(typed_data(device, seq, timestamp, payload, domain))
    assert reading_digest(reading, domain) == expected
    assert eth_account_digest(reading_typed_data(reading, domain)) == expected


@SETTINGS
@given(secret=secrets, seq=uint64, timestamp=uint64, payload=payloads, domain=domains)
def test_eth_account_signature_verifies_unchanged(
    secret: bytes, seq: int, timestamp: int, payload: bytes, domain: Domain
) -> None:
    account = Account.from_key(secret)
    message = typed_data(account.address, seq, timestamp, payload, domain)
    signed = Account.sign_typed_data(secret, full_message=message)
    reading = Reading(account.address, seq, timestamp, payload, bytes(signed.signature))
    assert bytes(signed.message_hash) == reading_digest(reading, domain)
    assert verify_many([reading], domain) == [Verdict(True, None)]
    registry = {account.address.lower(): public_key_of("secp256k1", secret)}
    assert verify_many([reading], domain, registry) == [Verdict(True, None)]
    # and ours is the signature eth-account makes (both RFC 6979, low s, v in {27, 28})
    assert sign_reading(reading._replace(signature=b""), domain, secret).signature == bytes(signed.signature)


@SETTINGS
@given(secret=secrets)
def test_secp256k1_device_id_is_the_ethereum_address(secret: bytes) -> None:
    public_key = public_key_of("secp256k1", secret)
    assert device_id_from_public_key("secp256k1", public_key) == Account.from_key(secret).address.lower()
    # the SEC1 forms name the same device
    point = PublicKey(b"\x04" + public_key)
    for form in (point.format(compressed=True), point.format(compressed=False)):
        assert device_id_from_public_key("secp256k1", form) == Account.from_key(secret).address.lower()


@SETTINGS
@given(secret=secrets)
def test_ed25519_and_p256_device_ids_hash_the_raw_key(secret: bytes) -> None:
    ed_key = Ed25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()
    assert public_key_of("ed25519", secret) == ed_key
    assert device_id_from_public_key("ed25519", ed_key) == "0x" + reference_keccak(ed_key)[12:].hex()
    p_key = (
        ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    assert public_key_of("p256", secret) == p_key[1:]
    assert device_id_from_public_key("p256", p_key) == "0x" + reference_keccak(p_key[1:])[12:].hex()


def test_domain_changes_the_digest_and_is_checked() -> None:
    reading = DEVICES["secp256k1"].reading()
    base = reading_digest(reading, DOMAIN)
    assert reading_digest(reading, Domain(chain_id=31337, verifying_contract="0x" + "5A" * 20)) == base
    assert reading_digest(reading, replace(DOMAIN, chain_id=1)) != base
    assert reading_digest(reading, replace(DOMAIN, verifying_contract="0x" + "5b" * 20)) != base
    assert reading_digest(reading, replace(DOMAIN, name="Other")) != base
    assert reading_digest(reading, replace(DOMAIN, version="2")) != base
    with pytest.raises(ValueError):
        Domain(verifying_contract="0x1234")
    with pytest.raises(ValueError):
        Domain(chain_id=-1)


@pytest.mark.parametrize(
    "bad",
    [
        {"device_id": "0x1234"},
        {"device_id": "ab" * 20},
        {"device_id": "0x" + "zz" * 20},
        {"device_id": "0x" + "ab " * 13 + "a"},
        {"seq": -1},
        {"seq": 2**64},
        {"timestamp_ms": 2**64},
        {"seq": True},
        {"payload": "text"},
    ],
)
def test_reading_digest_raises_value_error_on_malformed_fields(bad: dict[str, Any]) -> None:
    reading = DEVICES["secp256k1"].reading()._replace(**bad)
    with pytest.raises(ValueError):
        reading_digest(reading, DOMAIN)
    with pytest.raises(ValueError):
        sign_reading(reading, DOMAIN, DEVICES["secp256k1"].secret)


# ED25519 AND P256 against cryptography


@SETTINGS
@given(secret=st.binary(min_size=32, max_size=32), seq=uint64, payload=payloads)
def test_ed25519_signed_by_cryptography_verifies_and_ours_verify_there(
    secret: bytes, seq: int, payload: bytes
) -> None:
    device = Device("ed25519", secret)
    unsigned = Reading(device.device_id, seq, 0, payload, b"", "ed25519")
    digest = reading_digest(unsigned, DOMAIN)
    theirs = Ed25519PrivateKey.from_private_bytes(secret).sign(digest)
    keys = {device.device_id: device.public_key}
    assert verify_reading(unsigned._replace(signature=theirs), DOMAIN, keys).ok
    ours = sign_reading(unsigned, DOMAIN, secret).signature
    Ed25519PublicKey.from_public_bytes(device.public_key).verify(ours, digest)
    assert ours == theirs  # Ed25519 is deterministic


@SETTINGS
@given(secret=secrets, seq=uint64, payload=payloads)
def test_p256_signed_by_cryptography_verifies_and_ours_verify_there(
    secret: bytes, seq: int, payload: bytes
) -> None:
    device = Device("p256", secret)
    unsigned = Reading(device.device_id, seq, 0, payload, b"", "p256")
    digest = reading_digest(unsigned, DOMAIN)
    private = ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())
    r, s = decode_dss_signature(private.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))
    keys = {device.device_id: device.public_key}
    low, high = min(s, p256.N - s), max(s, p256.N - s)
    as_sent = unsigned._replace(signature=r.to_bytes(32, "big") + low.to_bytes(32, "big"))
    assert verify_reading(as_sent, DOMAIN, keys).ok
    malleated = unsigned._replace(signature=r.to_bytes(32, "big") + high.to_bytes(32, "big"))
    assert verify_reading(malleated, DOMAIN, keys) == Verdict(False, SignatureFault.HIGH_S)
    ours = sign_reading(unsigned, DOMAIN, secret).signature
    ours_r, ours_s = int.from_bytes(ours[:32], "big"), int.from_bytes(ours[32:], "big")
    assert ours_s <= p256.HALF_N
    private.public_key().verify(
        encode_dss_signature(ours_r, ours_s), digest, ec.ECDSA(Prehashed(hashes.SHA256()))
    )


# REJECTIONS


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize(
    "change",
    [
        {"payload": b"t=99.9"},
        {"seq": 8},
        {"timestamp_ms": 1_767_225_600_001},
    ],
)
def test_tampered_fields_fail(scheme: str, change: dict[str, Any]) -> None:
    reading = DEVICES[scheme].reading()
    assert verify_reading(reading, DOMAIN, REGISTRY).ok
    assert verify_reading(reading._replace(**change), DOMAIN, REGISTRY) == Verdict(False, SignatureFault.BAD_SIGNATURE)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_other_domain_fails(scheme: str) -> None:
    reading = DEVICES[scheme].reading()
    for domain in (replace(DOMAIN, chain_id=1), replace(DOMAIN, verifying_contract="0x" + "11" * 20)):
        assert verify_reading(reading, domain, REGISTRY) == Verdict(False, SignatureFault.BAD_SIGNATURE)


def test_secp256k1_reading_claimed_by_another_device_fails() -> None:
    reading = DEVICES["secp256k1"].reading()
    other = _device("secp256k1", 2)
    assert verify_reading(reading._replace(device_id=other.device_id), DOMAIN) == Verdict(
        False, SignatureFault.BAD_SIGNATURE
    )


def test_high_s_variant_of_a_valid_secp256k1_signature_is_rejected() -> None:
    reading = DEVICES["secp256k1"].reading()
    sig = reading.signature
    digest = reading_digest(reading, DOMAIN)
    s = int.from_bytes(sig[32:64], "big")
    flipped = sig[:32] + (secp256k1.N - s).to_bytes(32, "big") + bytes((55 - sig[64],))
    # the attack is real: libsecp256k1 recovers the same key from the malleated signature
    compact = flipped[:64] + bytes((flipped[64] - 27,))
    recovered = PublicKey.from_signature_and_message(compact, digest, hasher=None)
    assert recovered.format(compressed=False)[1:] == DEVICES["secp256k1"].public_key
    assert verify_reading(reading._replace(signature=flipped), DOMAIN) == Verdict(False, SignatureFault.HIGH_S)


def test_high_s_ed25519_variant_is_rejected() -> None:
    reading = DEVICES["ed25519"].reading()
    sig = reading.signature
    s_plus_l = (int.from_bytes(sig[32:], "little") + ed25519.L).to_bytes(32, "little")
    assert verify_reading(reading._replace(signature=sig[:32] + s_plus_l), DOMAIN, REGISTRY) == Verdict(
        False, SignatureFault.MALFORMED_SIGNATURE
    )


@pytest.mark.parametrize("v", [0, 1, 26, 29, 35, 36, 255])
def test_bad_v_is_rejected(v: int) -> None:
    reading = DEVICES["secp256k1"].reading()
    bad = reading._replace(signature=reading.signature[:64] + bytes((v,)))
    assert verify_reading(bad, DOMAIN) == Verdict(False, SignatureFault.BAD_V)


def test_other_v_is_a_bad_signature() -> None:
    reading = DEVICES["secp256k1"].reading()
    other = 55 - reading.signature[64]
    assert verify_reading(reading._replace(signature=reading.signature[:64] + bytes((other,))), DOMAIN) == (
        Verdict(False, SignatureFault.BAD_SIGNATURE)
    )


@pytest.mark.parametrize("scheme", SCHEMES)
def test_truncated_and_extended_signatures_are_malformed(scheme: str) -> None:
    reading = DEVICES[scheme].reading()
    sig = reading.signature
    for bad in (b"", sig[:1], sig[:-1], sig[:32], sig + b"\x00", sig + sig):
        assert verify_reading(reading._replace(signature=bad), DOMAIN, REGISTRY) == Verdict(
            False, SignatureFault.MALFORMED_SIGNATURE
        ), (scheme, len(bad))


@pytest.mark.parametrize("scheme", ["secp256k1", "p256"])
def test_ecdsa_scalars_out_of_range_are_malformed(scheme: str) -> None:
    order = {"secp256k1": secp256k1.N, "p256": p256.N}[scheme]
    reading = DEVICES[scheme].reading()
    sig = reading.signature
    r, s, tail = sig[:32], sig[32:64], sig[64:]
    zero, n = bytes(32), order.to_bytes(32, "big")
    for bad in (zero + s, r + zero, n + s, b"\xff" * 32 + s, r + n):
        assert verify_reading(reading._replace(signature=bad + tail), DOMAIN, REGISTRY) == Verdict(
            False, SignatureFault.MALFORMED_SIGNATURE
        )


@pytest.mark.parametrize("scheme", SCHEMES)
def test_signature_by_a_wrong_key_fails(scheme: str) -> None:
    device = DEVICES[scheme]
    intruder = _device(scheme, 3)
    forged = sign_reading(device.reading(), DOMAIN, intruder.secret)
    assert verify_reading(forged, DOMAIN, REGISTRY) == Verdict(False, SignatureFault.BAD_SIGNATURE)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_rotated_key_verifies_under_the_old_device_id(scheme: str) -> None:
    # DeviceRegistry.rotateKey keeps the device id and replaces the key: the
    # registry is authoritative, whatever id the new key would derive
    device = DEVICES[scheme]
    new = _device(scheme, 4)
    assert new.device_id != device.device_id
    rotated = {device.device_id: new.public_key}
    by_new_key = sign_reading(device.reading(), DOMAIN, new.secret)
    by_old_key = device.reading()
    assert verify_many([by_new_key, by_old_key], DOMAIN, rotated) == [
        Verdict(True, None),
        Verdict(False, SignatureFault.BAD_SIGNATURE),
    ]
    # before the rotation, the other way round
    assert verify_many([by_new_key, by_old_key], DOMAIN, REGISTRY) == [
        Verdict(False, SignatureFault.BAD_SIGNATURE),
        Verdict(True, None),
    ]
    # the new key does not sign for its own derived id: it is not registered there
    own = sign_reading(by_new_key._replace(device_id=new.device_id), DOMAIN, new.secret)
    assert verify_reading(own, DOMAIN, rotated) == Verdict(False, SignatureFault.UNKNOWN_DEVICE)
    # nor, without a registry, does a secp256k1 key sign for an id it does not derive
    if scheme == "secp256k1":
        assert verify_reading(by_new_key, DOMAIN, None) == Verdict(False, SignatureFault.BAD_SIGNATURE)


def test_secp256k1_rotation_from_an_empty_key() -> None:
    # registered without a key (the device id signs), then rotated to a full key
    device = DEVICES["secp256k1"]
    new = _device("secp256k1", 8)
    by_new_key = sign_reading(device.reading(), DOMAIN, new.secret)
    assert not verify_reading(by_new_key, DOMAIN, {device.device_id: b""}).ok
    assert verify_reading(device.reading(), DOMAIN, {device.device_id: b""}).ok
    for form in (new.public_key, PublicKey(b"\x04" + new.public_key).format(compressed=True)):
        rotated = {device.device_id: form}
        assert verify_reading(by_new_key, DOMAIN, rotated).ok
        assert verify_reading(device.reading(), DOMAIN, rotated) == Verdict(False, SignatureFault.BAD_SIGNATURE)


def test_rotation_is_per_device_in_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    # rotated and unrotated devices of every scheme interleaved, across settle windows
    devices = [_device(scheme, label) for scheme in SCHEMES for label in (20, 21)]
    new_keys = {d.device_id: _device(d.scheme, 100 + i) for i, d in enumerate(devices)}
    keys = {d.device_id: (new_keys[d.device_id].public_key if i % 2 else d.public_key) for i, d in enumerate(devices)}
    readings: list[Reading] = []
    expected: list[Verdict] = []
    for i, d in enumerate(devices):
        for signer in (d, new_keys[d.device_id]):
            readings.append(sign_reading(d.reading(seq=len(readings)), DOMAIN, signer.secret))
            current = signer is (new_keys[d.device_id] if i % 2 else d)
            expected.append(Verdict(True, None) if current else Verdict(False, SignatureFault.BAD_SIGNATURE))
    assert verify_many(readings, DOMAIN, keys) == expected
    monkeypatch.setattr(signing, "WINDOW", 3)
    assert verify_many(readings, DOMAIN, keys) == expected


@pytest.mark.parametrize(
    ("scheme", "key"),
    [
        ("secp256k1", b"\x04" * 64),
        ("secp256k1", b"\x06" + b"\x01" * 64),
        ("ed25519", b"\x01" * 31),
        ("ed25519", bytes(32)),  # small order
        ("p256", b"\x01" * 64),
        ("p256", b"\x02" + b"\x01" * 32),
        ("p256", "not bytes"),
    ],
)
def test_malformed_registry_key(scheme: str, key: Any) -> None:
    device = DEVICES[scheme]
    assert verify_reading(device.reading(), DOMAIN, {device.device_id: key}) == Verdict(
        False, SignatureFault.MALFORMED_KEY
    )
    if isinstance(key, bytes):
        with pytest.raises(ValueError):
            device_id_from_public_key(scheme, key)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_unknown_device(scheme: str) -> None:
    reading = DEVICES[scheme].reading()
    other = {_device(scheme, 5).device_id: _device(scheme, 5).public_key}
    assert verify_reading(reading, DOMAIN, other) == Verdict(False, SignatureFault.UNKNOWN_DEVICE)
    expected_without_registry = Verdict(True, None) if scheme == "secp256k1" else Verdict(False, SignatureFault.UNKNOWN_DEVICE)
    assert verify_reading(reading, DOMAIN, None) == expected_without_registry


@pytest.mark.parametrize("scheme", SCHEMES)
def test_device_ids_compare_case_insensitively(scheme: str) -> None:
    reading = DEVICES[scheme].reading()
    upper = reading._replace(device_id="0X" + reading.device_id[2:].upper())
    assert verify_reading(upper, DOMAIN, REGISTRY).ok


def test_registry_keyed_by_checksummed_address_finds_the_exact_spelling() -> None:
    device = DEVICES["secp256k1"]
    checksummed = Account.from_key(device.secret).address
    reading = device.reading()._replace(device_id=checksummed)
    assert verify_reading(reading, DOMAIN, {checksummed: device.public_key}).ok


def test_empty_secp256k1_registry_key_means_the_device_id_signs() -> None:
    # the DeviceRegistry registers secp256k1 devices without a key when the id is the signer
    secp = DEVICES["secp256k1"]
    assert verify_reading(secp.reading(), DOMAIN, {secp.device_id: b""}).ok
    forged = sign_reading(secp.reading(), DOMAIN, _device("secp256k1", 6).secret)
    assert verify_reading(forged, DOMAIN, {secp.device_id: b""}) == Verdict(False, SignatureFault.BAD_SIGNATURE)
    for scheme in ("ed25519", "p256"):
        device = DEVICES[scheme]
        assert verify_reading(device.reading(), DOMAIN, {device.device_id: b""}) == Verdict(
            False, SignatureFault.MALFORMED_KEY
        )


def test_registry_accepts_sec1_and_prefixed_key_forms() -> None:
    secp = DEVICES["secp256k1"]
    point = PublicKey(b"\x04" + secp.public_key)
    for form in (point.format(compressed=True), point.format(compressed=False), bytearray(secp.public_key)):
        assert verify_reading(secp.reading(), DOMAIN, {secp.device_id: form}).ok
    p = DEVICES["p256"]
    assert verify_reading(p.reading(), DOMAIN, {p.device_id: b"\x04" + p.public_key}).ok


@pytest.mark.parametrize(
    "bad",
    [
        {"device_id": "0x1234"},
        {"device_id": "ab" * 20 + "ab"},
        {"device_id": "0x" + "g" * 40},
        {"device_id": "0x" + "ab " * 13 + "a"},
        {"device_id": None},
        {"device_id": 12345},
        {"device_id": ["0x" + "00" * 20]},
        {"seq": -1},
        {"seq": 2**64},
        {"seq": 1.0},
        {"seq": None},
        {"timestamp_ms": 2**64},
        {"timestamp_ms": "now"},
        {"payload": "not bytes"},
        {"payload": None},
        {"signature": "0x00"},
        {"signature": None},
    ],
)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_malformed_readings_get_a_verdict_not_an_exception(scheme: str, bad: dict[str, Any]) -> None:
    reading = DEVICES[scheme].reading()._replace(**bad)
    assert verify_reading(reading, DOMAIN, REGISTRY) == Verdict(False, SignatureFault.MALFORMED_READING)


def test_not_a_reading_at_all_is_malformed() -> None:
    assert verify_many([None, "reading", 3], DOMAIN) == [Verdict(False, SignatureFault.MALFORMED_READING)] * 3


@pytest.mark.parametrize("scheme", ["rsa", "", "SECP256K1", None, 1])
def test_unsupported_scheme(scheme: Any) -> None:
    reading = DEVICES["secp256k1"].reading()._replace(scheme=scheme)
    assert verify_reading(reading, DOMAIN, REGISTRY) == Verdict(False, SignatureFault.UNSUPPORTED_SCHEME)
    with pytest.raises(ValueError):
        sign_reading(reading, DOMAIN, DEVICES["secp256k1"].secret)


# MANY READINGS


def test_mixed_schemes_in_one_call_keep_their_order(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    devices = [_device(scheme, label) for scheme in SCHEMES for label in range(10, 14)]
    keys = {d.device_id: d.public_key for d in devices}
    cases: list[tuple[Reading, Verdict]] = []
    for i in range(150):
        device = rng.choice(devices)
        reading = device.reading(seq=i, payload=rng.randbytes(rng.randrange(64)))
        kind = rng.randrange(4)
        if kind == 0:
            cases.append((reading, Verdict(True, None)))
        elif kind == 1:
            cases.append((reading._replace(seq=i + 1), Verdict(False, SignatureFault.BAD_SIGNATURE)))
        elif kind == 2:
            cases.append((reading._replace(signature=reading.signature[:-1]), Verdict(False, SignatureFault.MALFORMED_SIGNATURE)))
        else:
            cases.append((reading._replace(device_id="0x12"), Verdict(False, SignatureFault.MALFORMED_READING)))
    readings = [reading for reading, _ in cases]
    verdicts = verify_many(readings, DOMAIN, keys)
    assert verdicts == [expected for _, expected in cases]
    # across several settle windows, from a generator
    monkeypatch.setattr(signing, "WINDOW", 7)
    assert verify_many((r for r in readings), DOMAIN, keys) == verdicts
    assert verdicts == [verify_reading(r, DOMAIN, keys) for r in readings]
    assert verify_many([], DOMAIN, keys) == []


@SETTINGS
@given(
    scheme=st.sampled_from(SCHEMES),
    secret=secrets,
    seq=uint64,
    timestamp=uint64,
    payload=payloads,
    bit=st.integers(min_value=0, max_value=64 * 8 - 1),
)
def test_any_signature_bit_flip_is_rejected(
    scheme: str, secret: bytes, seq: int, timestamp: int, payload: bytes, bit: int
) -> None:
    device = Device(scheme, secret)
    reading = sign_reading(Reading(device.device_id, seq, timestamp, payload, b"", scheme), DOMAIN, secret)
    keys = {device.device_id: device.public_key}
    assert verify_reading(reading, DOMAIN, keys).ok
    flipped = bytearray(reading.signature)
    flipped[bit // 8] ^= 1 << (bit % 8)
    verdict = verify_reading(reading._replace(signature=bytes(flipped)), DOMAIN, keys)
    assert not verdict.ok
    assert verdict.reason in set(SignatureFault)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_signing_is_deterministic(scheme: str) -> None:
    reading = DEVICES[scheme].reading()
    again = sign_reading(reading._replace(signature=b""), DOMAIN, DEVICES[scheme].secret)
    assert again.signature == reading.signature


# FAST PATHS AGAINST THE PUBLIC APIS


@SETTINGS
@given(digest=st.binary(min_size=32, max_size=32), secret=secrets, tamper=st.booleans())
def test_fast_secp256k1_recovery_matches_coincurve_public_api(
    digest: bytes, secret: bytes, tamper: bool
) -> None:
    signature = secp256k1.sign(digest, secret)
    if tamper:
        digest = bytes((digest[0] ^ 1,)) + digest[1:]
    fast = secp256k1.Recoverer().address(digest, signature)
    assert fast == secp256k1.recover_address(digest, signature)
    assert (fast == bytes.fromhex(Account.from_key(secret).address[2:])) != tamper


@SETTINGS
@given(digest=st.binary(min_size=32, max_size=32), secret=st.binary(min_size=32, max_size=32), tamper=st.booleans())
def test_fast_ed25519_verify_matches_pynacl_public_api(digest: bytes, secret: bytes, tamper: bool) -> None:
    signature = ed25519.sign(digest, secret)
    key = ed25519.public_key_of(secret)
    if tamper:
        signature = signature[:5] + bytes((signature[5] ^ 0x40,)) + signature[6:]
    verifier = ed25519.Verifier()
    assert verifier.verify(digest, signature, key) == ed25519.verify_reference(digest, signature, key) == (not tamper)


@SETTINGS
@given(
    r=st.integers(min_value=1, max_value=p256.N - 1) | st.sampled_from([1, 127, 128, 255, 256, 2**255, p256.N - 1]),
    s=st.integers(min_value=1, max_value=p256.HALF_N) | st.sampled_from([1, 128, 2**248, 2**248 - 1, p256.HALF_N]),
)
def test_der_encoding_matches_cryptography(r: int, s: int) -> None:
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert p256.der_signature(raw) == encode_dss_signature(r, s)


def test_p256_check_with_another_key_is_bad_signature() -> None:
    reading = DEVICES["p256"].reading()
    digest = reading_digest(reading, DOMAIN)
    other = p256.load_public_key(_device("p256", 9).public_key)
    assert p256.check(digest, reading.signature, other) == SignatureFault.BAD_SIGNATURE
    with pytest.raises(InvalidSignature):
        other.verify(p256.der_signature(reading.signature), digest, p256.ALGORITHM)


# PUBLIC API EDGES


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("secret", [b"", b"\x01" * 31, b"\x01" * 33, "00" * 32])
def test_private_keys_must_be_32_bytes(scheme: str, secret: Any) -> None:
    with pytest.raises(ValueError):
        public_key_of(scheme, secret)


@pytest.mark.parametrize("scheme", ["secp256k1", "p256"])
def test_ecdsa_secrets_out_of_range(scheme: str) -> None:
    order = {"secp256k1": secp256k1.N, "p256": p256.N}[scheme]
    for bad in (bytes(32), order.to_bytes(32, "big"), b"\xff" * 32):
        with pytest.raises(ValueError):
            public_key_of(scheme, bad)
        with pytest.raises(ValueError):
            sign_reading(DEVICES[scheme].reading(), DOMAIN, bad)


def test_unsupported_scheme_in_key_functions() -> None:
    with pytest.raises(ValueError):
        public_key_of("rsa", b"\x01" * 32)
    with pytest.raises(ValueError):
        device_id_from_public_key("rsa", b"\x01" * 32)


def test_reasons_and_verdicts() -> None:
    assert len(set(SignatureFault)) == len(list(SignatureFault))
    assert {
        SignatureFault.BAD_SIGNATURE,
        SignatureFault.BAD_V,
        SignatureFault.HIGH_S,
        SignatureFault.MALFORMED_KEY,
        SignatureFault.MALFORMED_READING,
        SignatureFault.MALFORMED_SIGNATURE,
        SignatureFault.UNKNOWN_DEVICE,
        SignatureFault.UNSUPPORTED_SCHEME,
    } == set(SignatureFault)
    with pytest.raises(ValueError):
        Verdict(True, SignatureFault.BAD_V)
    with pytest.raises(ValueError):
        Verdict(False, None)


def test_values_survive_pickling_for_beam_and_ray() -> None:
    import pickle

    reading = DEVICES["p256"].reading()
    for value in (reading, DOMAIN, Verdict(False, SignatureFault.HIGH_S)):
        assert pickle.loads(pickle.dumps(value)) == value
    assert verify_many(pickle.loads(pickle.dumps([reading])), DOMAIN, REGISTRY) == [Verdict(True, None)]


DOC_VECTORS = {
    # scheme: (device id, digest, signature), as printed in docs/device-signatures.md
    "secp256k1": (
        "0x1a642f0e3c3af545e7acbd38b07251b3990914f1",
        "59b06772dc2fce40817c3048f8d82fe7225d613a0854d557af250180fe1d6a8a",
        "8a160a60fa5dadb00fed8806b5ded8d6947ce0e29702065d5e3b24ca0ed22c75"
        "51c5302e236bfc91e9de2d72fc9a1accfdd8bf7ea5c4d98fba98b63a1c0d75ac1b",
    ),
    "ed25519": (
        "0x97b1c813eae702332ba3eaa1625f942c5472626d",
        "61af22b905ff350a8405acbf7d4d3c59dd69e8923799f20c047a80c476058a28",
        "0292d9aa456153dc82518e027258709d1587a3c1bd037d1b31bdaf1158ba1efd"
        "24efcd5407dd2e411dcd701cfb995ee9c1fce3e00660b095c15a2e1f5e37b30f",
    ),
    "p256": (
        "0xa0e0162b1a12ed06d63dd1bf0cd5b0d1e6614b3c",
        "445f5a2a9bbace90d9c551b956252feed061b2f1e94ff75adc8acddb529102ca",
        "a7cfd1a8b8efdf2ace18783131af0f6cfca71f7fbfeab8d8969af5f2c42dfe58"
        "78a862f0e231ed9d8808c9f5ae755c34995269e42d7bd8f6b89ef44b358f7347",
    ),
}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_documented_vectors(scheme: str) -> None:
    domain = Domain(chain_id=1, verifying_contract="0x" + "5a" * 20)
    secret = b"\x01" * 32
    device_id, digest, signature = DOC_VECTORS[scheme]
    public_key = public_key_of(scheme, secret)
    assert device_id_from_public_key(scheme, public_key) == device_id
    reading = Reading(device_id, 42, 1_767_225_600_000, b'{"t":21.5}', b"", scheme)
    assert reading_digest(reading, domain).hex() == digest
    assert eth_account_digest(typed_data(device_id, 42, 1_767_225_600_000, b'{"t":21.5}', domain)).hex() == digest
    signed = sign_reading(reading, domain, secret)
    assert signed.signature.hex() == signature
    assert verify_reading(signed, domain, {device_id: public_key}).ok
    if scheme == "secp256k1":
        assert device_id == Account.from_key(secret).address.lower()


def test_benchmark_rows_are_well_formed() -> None:
    from benchmarks import core_signing

    rows = core_signing.run(quick=True)
    assert [row["name"] for row in rows] == [
        "verify_many secp256k1",
        "verify_many secp256k1 vs eth-account",
        "verify_many ed25519",
        "verify_many p256",
    ]
    for row in rows:
        assert row["unit"] == "readings/s"
        assert row["ours"] > 0 and row["baseline"] > 0
        assert row["ratio"] == pytest.approx(row["ours"] / row["baseline"])

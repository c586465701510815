"""The wire envelope: round trips, canonical bytes, and an error naming the field for every bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veristream.connectors.envelope import (
    MAX_SIGNATURE_BYTES,
    EnvelopeError,
    encode_reading,
    max_envelope_bytes,
    parse_reading,
    reading_to_envelope,
)
from veristream.provers.readings import Domain, Reading
from veristream.provers.signing import (
    device_id_from_public_key,
    public_key_of,
    sign_reading,
    verify_many,
)

GOOD: dict[str, Any] = {
    "device_id": "0x" + "ab" * 20,
    "seq": 7,
    "timestamp_ms": 1_767_225_600_000,
    "payload": "0x" + b'{"temp_c_x100":2150}'.hex(),
    "signature": "0x" + "11" * 65,
    "scheme": "secp256k1",
}

readings = st.builds(
    Reading,
    device_id=st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
    seq=st.integers(0, 2**64 - 1),
    timestamp_ms=st.integers(0, 2**64 - 1),
    payload=st.binary(max_size=4096),
    signature=st.binary(min_size=1, max_size=MAX_SIGNATURE_BYTES),
    scheme=st.sampled_from(["secp256k1", "ed25519", "p256"]),
)


@settings(max_examples=200, deadline=None)
@given(readings)
def test_round_trip_through_canonical_bytes(reading: Reading) -> None:
    raw = encode_reading(reading)
    assert parse_reading(raw) == reading
    assert parse_reading(raw.decode()) == reading
    assert parse_reading(json.loads(raw)) == reading
    # Canonical: sorted keys, no spaces, so encoding is a function of the reading alone.
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()


def test_device_id_is_lowercased_and_scheme_defaults_to_secp256k1() -> None:
    obj = {k: v for k, v in GOOD.items() if k != "scheme"}
    obj["device_id"] = "0x" + "AB" * 20
    reading = parse_reading(json.dumps(obj))
    assert reading.device_id == "0x" + "ab" * 20
    assert reading.scheme == "secp256k1"
    assert reading_to_envelope(reading)["device_id"] == reading.device_id


def _with(**changes: Any) -> dict[str, Any]:
    obj = dict(GOOD)
    for key, value in changes.items():
        if value is _DROP:
            del obj[key]
        else:
            obj[key] = value
    return obj


_DROP = object()

CASES = [
    (_with(seq=_DROP), "seq", "missing"),
    (_with(device_id=_DROP), "device_id", "missing"),
    (_with(payload=_DROP), "payload", "missing"),
    (_with(seq="7"), "seq", "wrong_type"),
    (_with(seq=True), "seq", "wrong_type"),
    (_with(seq=1.5), "seq", "wrong_type"),
    (_with(seq=-1), "seq", "out_of_range"),
    (_with(timestamp_ms=2**64), "timestamp_ms", "out_of_range"),
    (_with(device_id="0x1234"), "device_id", "not_hex"),
    (_with(device_id="ab" * 21), "device_id", "not_hex"),
    (_with(device_id="0x" + "zz" * 20), "device_id", "not_hex"),
    (_with(device_id=5), "device_id", "wrong_type"),
    (_with(payload="0xabc"), "payload", "not_hex"),
    (_with(payload="abcd"), "payload", "not_hex"),
    (_with(payload="0xgg"), "payload", "not_hex"),
    (_with(payload="0x0a  0b"), "payload", "not_hex"),
    (_with(device_id="0x" + "ab" * 19 + "  "), "device_id", "not_hex"),
    (_with(signature="0x\u0661\u0662"), "signature", "not_hex"),
    (_with(payload="0x" + "00" * 4097), "payload", "too_large"),
    (_with(signature="0x"), "signature", "empty"),
    (_with(signature="0x" + "00" * (MAX_SIGNATURE_BYTES + 1)), "signature", "too_large"),
    (_with(scheme="rsa"), "scheme", "unknown_scheme"),
    (_with(scheme=1), "scheme", "wrong_type"),
    (_with(extra=1), "extra", "unexpected"),
]


@pytest.mark.parametrize(("obj", "field", "reason"), CASES)
def test_each_bad_field_is_named(obj: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        parse_reading(json.dumps(obj).encode())
    assert (caught.value.field, caught.value.reason) == (field, reason)
    assert issubclass(EnvelopeError, ValueError)
    assert caught.value.to_dict()["field"] == field


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"   ", "empty"),
        (b"{not json", "not_json"),
        (b"\xff\xfe", "not_json"),
        (b"[1, 2]", "wrong_type"),
        (b'"a string"', "wrong_type"),
        (b"[" * 5000, "not_json"),
    ],
)
def test_whole_message_errors_name_the_envelope(raw: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        parse_reading(raw)
    assert caught.value.field == "envelope"
    assert caught.value.reason == reason


def test_oversized_message_is_refused_before_parsing() -> None:
    raw = b" " * (max_envelope_bytes(4096) + 1)
    with pytest.raises(EnvelopeError) as caught:
        parse_reading(raw)
    assert (caught.value.field, caught.value.reason) == ("envelope", "too_large")
    # A smaller limit is honoured for the payload too.
    with pytest.raises(EnvelopeError) as caught:
        parse_reading(json.dumps(GOOD), max_payload_bytes=4)
    assert (caught.value.field, caught.value.reason) == ("payload", "too_large")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    try:
        parse_reading(raw)
    except EnvelopeError as error:
        assert error.field and error.reason


@pytest.mark.parametrize("scheme", ["secp256k1", "ed25519", "p256"])
def test_a_signed_reading_survives_the_wire(scheme: str) -> None:
    domain = Domain(chain_id=31337, verifying_contract="0x" + "00" * 20)
    key = bytes(range(1, 33))
    public_key = public_key_of(scheme, key)
    device_id = device_id_from_public_key(scheme, public_key)
    reading = sign_reading(Reading(device_id, 1, 1000, b'{"x":1}', b"", scheme), domain, key)
    received = parse_reading(encode_reading(reading))
    assert received == reading
    assert verify_many([received], domain, {device_id: public_key})[0].ok


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=50)
    | st.text(alphabet="0123456789abcdefABCDEF xg\u0661", max_size=44).map(lambda t: "0x" + t)
    | st.sampled_from(["secp256k1", "ed25519", "p256", "0x" + "ab" * 20]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=5,
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["device_id", "seq", "timestamp_ms", "payload", "signature", "scheme"]),
    json_values,
)
def test_property_a_changed_field_is_the_one_named(field: str, value: Any) -> None:
    obj = dict(GOOD)
    obj[field] = value
    try:
        parse_reading(json.dumps(obj).encode())
    except EnvelopeError as error:
        assert error.field == field
    else:
        assert _valid(field, value), (field, value)


def _valid(field: str, value: Any) -> bool:
    """An independent statement of what each field accepts."""
    if field in ("seq", "timestamp_ms"):
        return type(value) is int and 0 <= value < 2**64
    if field == "scheme":
        return value in ("secp256k1", "ed25519", "p256")
    if not isinstance(value, str) or value[:2] not in ("0x", "0X"):
        return False
    digits = value[2:]
    is_hex = all(c in "0123456789abcdefABCDEF" for c in digits) and len(digits) % 2 == 0
    if field == "device_id":
        return is_hex and len(digits) == 40
    if field == "payload":
        return is_hex and len(digits) // 2 <= 4096
    return is_hex and 1 <= len(digits) // 2 <= 256

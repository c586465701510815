"""The pipeline's fast envelope path agrees with the careful parser on every input.

``parse_reading_fast`` must give exactly what ``parse_reading`` gives for a valid
envelope, and None (so the careful parser names the problem) for every invalid
one. The careful parser is reached here through a ``str`` input, which never
takes the fast path.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from veristream.connectors.envelope import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    EnvelopeError,
    encode_reading,
    parse_reading,
    parse_reading_fast,
)
from veristream.provers.readings import Reading

_HEXISH = st.text(alphabet="0123456789abcdefABCDEF xg", max_size=12)
_VALUES: Any = st.one_of(
    st.integers(min_value=-5, max_value=2**65),
    st.booleans(),
    st.none(),
    st.builds(lambda p, h: p + h, st.sampled_from(["0x", "0X", "", "x"]), _HEXISH),
    st.sampled_from(["secp256k1", "ed25519", "p256", "rsa", ""]),
    st.lists(st.integers(), max_size=2),
)


def _careful(raw: bytes, limit: int) -> tuple[str, int, int, bytes, bytes, str] | None:
    try:
        env = parse_reading(raw.decode("utf-8", "surrogatepass"), max_payload_bytes=limit)
    except EnvelopeError:
        return None
    return env.device_id, env.seq, env.timestamp_ms, env.payload, env.signature, env.scheme


def _base(seq: int, payload: bytes, signature: bytes) -> dict[str, Any]:
    reading = Reading("0x" + "Ab" * 20, seq, 1_700_000_000_000, payload, signature)
    obj: dict[str, Any] = json.loads(encode_reading(reading))
    return obj


@settings(max_examples=400, deadline=None)
@given(
    seq=st.integers(min_value=0, max_value=2**64 - 1),
    payload=st.binary(max_size=40),
    signature=st.binary(max_size=70),
    field=st.sampled_from(["device_id", "seq", "timestamp_ms", "payload", "signature", "scheme", "extra"]),
    value=_VALUES,
    mutate=st.integers(min_value=0, max_value=3),
    limit=st.sampled_from([8, 32, DEFAULT_MAX_PAYLOAD_BYTES]),
)
def test_fast_path_agrees_with_careful_parser(
    seq: int, payload: bytes, signature: bytes, field: str, value: Any, mutate: int, limit: int
) -> None:
    obj = _base(seq, payload, signature)
    if mutate == 1:
        obj[field] = value
    elif mutate == 2:
        obj.pop(field, None)
    raw = json.dumps(obj, separators=(",", ":"), sort_keys=mutate == 3).encode()
    fast = parse_reading_fast(raw, limit)
    careful = _careful(raw, limit)
    if fast is not None:
        assert fast == careful
    # every valid canonical envelope takes the fast path
    if mutate == 0:
        assert fast == careful
    # and through parse_reading (bytes) the answer is the careful one either way
    try:
        via_bytes: Any = parse_reading(raw, max_payload_bytes=limit)
        got: Any = (
            via_bytes.device_id,
            via_bytes.seq,
            via_bytes.timestamp_ms,
            via_bytes.payload,
            via_bytes.signature,
            via_bytes.scheme,
        )
    except EnvelopeError:
        got = None
    assert got == careful


def test_odd_but_valid_envelopes_fall_back() -> None:
    obj = _base(7, b"{}", b"\x01" * 65)
    spaced = json.dumps(obj, indent=1).encode()  # not starting with '{"'
    assert parse_reading_fast(spaced) is None
    assert _careful(spaced, DEFAULT_MAX_PAYLOAD_BYTES) is not None
    upper = dict(obj, payload="0X7B7D")
    raw = json.dumps(upper).encode()
    assert parse_reading_fast(raw) == _careful(raw, DEFAULT_MAX_PAYLOAD_BYTES)
    assert parse_reading_fast(b'{"device_id": 1}') is None
    assert parse_reading_fast(b'{"x"') is None

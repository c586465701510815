"""The throughput shortcuts of the per-reading checks change nothing.

- ``decode_payload`` parses with orjson where it agrees with ``json`` and asks
  ``json`` otherwise: its answer equals a ``json``-only run on every payload;
- ``data_leaf_hash`` writes the ABI words out itself: it equals the standard
  Merkle tree's leaf hash of the same row (``provers.merkle``);
- the data root from the checks' leaf hashes equals the root of the readings.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veristream.pipeline import checks, commitments
from veristream.pipeline.jobspec import FieldRule, ValidationSpec
from veristream.pipeline.records import Candidate
from veristream.pipeline.registry import device_address
from veristream.provers.merkle import standard_leaf_hash

_VALIDATION = ValidationSpec(
    fields={
        "t": FieldRule(min=-(2**70), max=2**70),
        "h": FieldRule(),
        "r": FieldRule(required=True, min=0, max=100),
    }
)

_SCALARS: Any = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)


def _payloads() -> Any:
    documents = st.one_of(
        st.dictionaries(st.sampled_from(["t", "h", "r", "x"]), _SCALARS, max_size=4),
        _SCALARS,
        st.lists(_SCALARS, max_size=2),
    )
    encoded = documents.map(lambda d: json.dumps(d).encode())
    odd = st.sampled_from(
        [
            b"\xef\xbb\xbf" + b'{"r": 1}',  # BOM: json takes it, orjson does not
            '{"r": 1}'.encode("utf-16"),
            b'{"r": 1, "r": 2}',  # duplicate keys: the last one wins in both
            b'{"r": "\\ud800"}',  # a lone surrogate
            b'{"r": 18446744073709551616}',  # one past uint64: a float to orjson
            b'{"r": 5, "t": -9223372036854775809}',
            b"{",
            b"\xff",
            b"",
            b' {"r": 3} ',
        ]
    )
    return st.one_of(encoded, odd, st.binary(max_size=12))


@settings(max_examples=500, deadline=None)
@given(payload=_payloads())
def test_decode_payload_matches_json_only(payload: bytes) -> None:
    fast = checks.decode_payload(payload, _VALIDATION)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(checks, "_fast_loads", json.loads)
        reference = checks.decode_payload(payload, _VALIDATION)
    assert fast == reference
    assert type(fast) is type(reference)


_ADDRESSES = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
_UINT64 = st.integers(min_value=0, max_value=2**64 - 1)


@settings(max_examples=200, deadline=None)
@given(device=_ADDRESSES, seq=_UINT64, ts=_UINT64, payload=st.binary(max_size=64))
def test_data_leaf_hash_is_the_standard_leaf(device: str, seq: int, ts: int, payload: bytes) -> None:
    candidate = Candidate(0, 0, device, seq, ts, payload, b"", "secp256k1")
    row = commitments.data_leaves([candidate])[0]
    expected = bytes.fromhex(standard_leaf_hash(commitments.DATA_LEAF_ENCODING, row)[2:])
    assert commitments.data_leaf_hash(device_address(device), seq, ts, payload) == expected
    assert commitments.data_leaf_hashes([candidate]) == [expected]


def test_data_leaf_hash_refuses_out_of_range_fields() -> None:
    with pytest.raises(ValueError):
        commitments.data_leaf_hash(b"\x01" * 20, 2**64, 0, b"")
    with pytest.raises(ValueError):
        commitments.data_leaf_hash(b"\x01" * 19, 0, 0, b"")


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["0x" + "ab" * 20, "0x" + "01" * 20]), _UINT64, _UINT64, st.binary(max_size=8)),
        max_size=30,
    ),
    seed=st.randoms(use_true_random=False),
)
def test_data_root_from_leaf_hashes_equals_root_of_readings(rows: list[Any], seed: Any) -> None:
    accepted = [Candidate(0, i, d, s, t, p, b"", "secp256k1") for i, (d, s, t, p) in enumerate(rows)]
    hashes = commitments.data_leaf_hashes(accepted)
    seed.shuffle(hashes)  # the tree sorts its leaves: their order is not part of the root
    assert commitments.data_root(accepted, b"".join(hashes)) == commitments.data_root(accepted)
    # hashes that do not cover every reading are not used
    assert commitments.data_root(accepted, b"".join(hashes[1:])) == commitments.data_root(accepted)

"""Bitstring Status List: encoding, entries and list credentials, cross-checked with Digital
Bazaar's vc-bitstring-status-list."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO
from veristream.provers import credentials
from veristream.provers.did_key import did_key
from veristream.provers.multikey import SecretKey
from veristream.provers.reasons import CredentialFault
from veristream.provers.status_list import (
    MIN_BITS,
    StatusList,
    StatusListRejected,
    entry_of,
    read_status_list_credential,
    revoked_spans,
    status_check,
    status_entry,
    status_list_credential,
    status_of,
)

SCRIPT = REPO / "tests" / "js" / "status_list_reference.mjs"
LIST_URL = "https://issuer.example/status/1"
FIRMWARE = "0x" + "ab" * 32


def _reference(node: str, tmp_path: Path, request: dict[str, Any]) -> dict[str, Any]:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    done = subprocess.run([node, str(SCRIPT), str(path)], capture_output=True, text=True, timeout=120, check=True)
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def test_bit_zero_is_the_left_most_bit_of_the_first_byte() -> None:
    status = StatusList.empty().set(0).set(9)
    assert status.bits[:2] == bytes([0x80, 0x40])
    assert status.get(0) and status.get(9) and not status.get(1)
    assert status.set(0, False).bits[0] == 0
    assert status.set_indices() == [0, 9]


def test_the_same_bits_encode_to_the_same_string() -> None:
    status = StatusList.empty().set(12345)
    assert status.encode() == StatusList.empty().set(12345).encode()
    assert status.encode().startswith("u") and "=" not in status.encode()


def test_a_list_shorter_than_the_minimum_is_refused() -> None:
    short = "u" + base64.urlsafe_b64encode(gzip.compress(bytes(MIN_BITS // 8 - 1))).rstrip(b"=").decode()
    with pytest.raises(StatusListRejected, match="fewer than the minimum 131072"):
        StatusList.decode(short)
    with pytest.raises(StatusListRejected, match="between 131072"):
        StatusList.empty(MIN_BITS - 8)


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        ("z123", "starting with 'u'"),
        ("u!!!", "not base64url"),
        ("u" + base64.urlsafe_b64encode(b"not gzip at all").decode().rstrip("="), "not GZIP"),
        (None, "starting with 'u'"),
    ],
)
def test_a_malformed_encoded_list_is_refused(encoded: Any, message: str) -> None:
    with pytest.raises(StatusListRejected, match=message):
        StatusList.decode(encoded)


def test_a_gzip_bomb_is_cut_off() -> None:
    bomb = gzip.compress(bytes(16 * 1024 * 1024), mtime=0)
    with pytest.raises(StatusListRejected, match="longer than"):
        StatusList.decode("u" + base64.urlsafe_b64encode(bomb).rstrip(b"=").decode())


@settings(max_examples=40, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=MIN_BITS - 1), max_size=30))
def test_encode_decode_round_trip(indices: set[int]) -> None:
    status = StatusList.empty()
    for index in indices:
        status = status.set(index)
    decoded = StatusList.decode(status.encode())
    assert decoded == status
    assert decoded.set_indices() == sorted(indices)


def test_entries_are_read_back_and_checked() -> None:
    credential = {"issuer": "did:example:a", "credentialStatus": status_entry(LIST_URL, 42)}
    entry = entry_of(credential)
    assert entry is not None and (entry.list_url, entry.index) == (LIST_URL, 42)
    assert entry_of({"issuer": "x"}) is None
    bad = {**credential, "credentialStatus": {**status_entry(LIST_URL, 1), "statusListIndex": "01"}}
    with pytest.raises(StatusListRejected, match="decimal string"):
        entry_of(bad)
    published = read_status_list_credential(
        status_list_credential(
            list_url=LIST_URL, issuer="did:example:a", status_list=StatusList.empty().set(42), valid_from="2030-01-01T00:00:00Z"
        )
    )
    assert status_of(credential, published) is True
    with pytest.raises(StatusListRejected, match="did not issue"):
        status_of({**credential, "issuer": "did:example:b"}, published)


def _issued_fleet(indices: list[int], revoked: set[int]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    issuer_key = SecretKey.generate("ed25519")
    issuer = did_key(issuer_key.public_key)
    status = StatusList.empty()
    for index in revoked:
        status = status.set(index)
    list_credential = credentials.issue(
        status_list_credential(list_url=LIST_URL, issuer=issuer, status_list=status, valid_from="2026-01-01T00:00:00Z"),
        issuer_key,
    )
    issued = []
    for index in indices:
        unsecured = credentials.device_credential(
            issuer=issuer,
            subject=did_key(SecretKey.generate("ed25519").public_key),
            model="WS-1",
            serial=f"SN-{index}",
            firmware_hash=FIRMWARE,
        )
        issued.append(credentials.issue({**unsecured, "credentialStatus": status_entry(LIST_URL, index)}, issuer_key))
    return list_credential, issued


def test_a_list_veristream_publishes_reads_the_same_in_the_reference_library(node: str, tmp_path: Path) -> None:
    indices = [0, 1, 7, 8, 9, 4095, 65536, MIN_BITS - 1]
    revoked = {0, 8, 65536, MIN_BITS - 1}
    list_credential, issued = _issued_fleet(indices, revoked)
    # both sides: the list credential and each device credential verify here
    assert credentials.verify(list_credential).verified
    published = read_status_list_credential(list_credential)
    ours = [status_of(c, published) for c in issued]
    assert ours == [i in revoked for i in indices]
    theirs = _reference(node, tmp_path, {"check": {"credentials": issued, "lists": {LIST_URL: list_credential}}})["check"]
    assert [r["verified"] for r in theirs] == [True] * len(indices), theirs
    assert [r["status"] for r in theirs] == ours


def test_a_tampered_list_fails_the_reference_libraries_proof_check(node: str, tmp_path: Path) -> None:
    list_credential, issued = _issued_fleet([3], set())
    forged = json.loads(json.dumps(list_credential))
    forged["credentialSubject"]["encodedList"] = StatusList.empty().set(3).encode()
    assert not credentials.verify(forged).verified
    theirs = _reference(node, tmp_path, {"check": {"credentials": issued, "lists": {LIST_URL: forged}}})["check"]
    assert theirs[0]["verified"] is False and "not verified" in theirs[0]["error"]


def test_a_list_the_reference_library_makes_decodes_the_same_here(node: str, tmp_path: Path) -> None:
    revoked = [0, 5, 8, 1000, 131070, 200_000]
    encoded = _reference(node, tmp_path, {"make": {"length": 262_144, "set": revoked}})["make"]
    decoded = StatusList.decode(encoded)
    assert decoded.length == 262_144
    assert decoded.set_indices() == revoked
    # pako's gzip differs byte for byte from Python's, the bits do not
    rebuilt = StatusList.empty(262_144)
    for index in revoked:
        rebuilt = rebuilt.set(index)
    assert StatusList.decode(rebuilt.encode()) == decoded


def test_revoked_spans_follow_the_versions_in_force() -> None:
    clear, revoked = StatusList.empty(), StatusList.empty().set(5)
    assert revoked_spans([(0, clear), (100, revoked), (200, revoked)], 5) == ((100, None),)
    assert revoked_spans([(0, clear), (100, revoked), (200, clear)], 5) == ((100, 200),)
    assert revoked_spans([(0, clear), (100, revoked)], 4) == ()
    with pytest.raises(StatusListRejected, match="increasing"):
        revoked_spans([(100, clear), (100, revoked)], 5)


def test_verify_with_a_status_check_refuses_a_revoked_credential() -> None:
    list_credential, issued = _issued_fleet([2, 3], {3})
    published = read_status_list_credential(list_credential)
    check = status_check({LIST_URL: published})
    assert credentials.verify(issued[0], status_check=check).verified
    revoked = credentials.verify(issued[1], status_check=check)
    assert not revoked.verified and revoked.reason == CredentialFault.REVOKED
    unknown = credentials.verify(issued[0], status_check=status_check({}))
    assert unknown.reason == CredentialFault.UNCHECKED_STATUS


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 10_000), st.booleans()), min_size=1, max_size=8, unique_by=lambda v: v[0]),
    st.lists(st.integers(0, 12_000), min_size=1, max_size=20),
)
def test_revoked_spans_agree_with_the_version_in_force_at_each_time(
    versions: list[tuple[int, bool]], moments: list[int]
) -> None:
    versions.sort()
    clear, set_ = StatusList.empty(), StatusList.empty().set(7)
    spans = revoked_spans([(start, set_ if bit else clear) for start, bit in versions], 7)
    for moment in moments:
        in_force = [bit for start, bit in versions if start <= moment]
        expected = bool(in_force) and in_force[-1]
        covered = any(start <= moment and (until is None or moment < until) for start, until in spans)
        assert covered == expected, (versions, moment, spans)

"""Verifiable credentials in VeriStream alone: issue and verify, and every way a credential is
refused, each with its reason. The reference-library cross-checks are in
``test_credentials_reference.py``."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REPO
from veristream.provers import credentials, did_key
from veristream.provers.credentials import CredentialRejected, device_claims, issue, verify
from veristream.provers.data_integrity import ECDSA_RDFC_2019, EDDSA_RDFC_2022
from veristream.provers.errors import InputRejected
from veristream.provers.jsonld import UnknownContext, canonize, context_document, document_loader
from veristream.provers.multibase import multibase_decode, multibase_encode
from veristream.provers.multikey import ED25519, P256, SecretKey
from veristream.provers.reasons import CredentialFault
from veristream.provers.schemes.p256 import N

NOW = datetime(2030, 6, 1, tzinfo=UTC)
ED_KEY = SecretKey.from_raw(ED25519, bytes(range(32)))
P_KEY = SecretKey.from_raw(P256, bytes(range(1, 33)))
OTHER_KEY = SecretKey.from_raw(ED25519, bytes(range(100, 132)))


def device(key: SecretKey = ED_KEY, **extra: Any) -> dict[str, Any]:
    credential = credentials.device_credential(
        issuer=did_key.did_key(key.public_key),
        subject="did:ethr:0x7a69:0x00000000000000000000000000000000000000aa",
        model="WX-1",
        serial="SN-0042",
        firmware_hash="0x" + "ab" * 32,
        manufacturer="Acme Sensors",
        valid_from="2026-01-01T00:00:00Z",
        valid_until="2036-01-01T00:00:00Z",
    )
    credential.update(extra)
    return credential


@pytest.fixture(scope="module", params=[ED_KEY, P_KEY], ids=["eddsa", "ecdsa"])
def signed(request: pytest.FixtureRequest) -> dict[str, Any]:
    return issue(device(request.param), request.param, created="2026-01-01T00:00:00Z")


def refused(document: Any, reason: CredentialFault, now: datetime = NOW) -> str:
    result = verify(document, now=now)
    assert not result.verified
    assert result.reason is reason, result
    assert result.detail and "\n" not in result.detail
    return result.detail


def test_issued_credentials_verify_and_name_their_issuer(signed: dict[str, Any]) -> None:
    result = verify(signed, now=NOW)
    assert result.verified and result.reason is None
    assert result.issuer == signed["issuer"] and result.issuer.startswith("did:key:z")
    assert result.cryptosuite == {ED25519: EDDSA_RDFC_2022, P256: ECDSA_RDFC_2019}[
        "ed25519" if result.issuer.startswith("did:key:z6Mk") else "p256"
    ]
    assert result.verification_method == did_key.verification_method_id(result.issuer)
    assert result.types == ("VerifiableCredential", "DeviceCredential")
    assert result.to_json()["verified"] is True
    proof = signed["proof"]
    assert proof["type"] == "DataIntegrityProof" and proof["proofPurpose"] == "assertionMethod"
    assert len(multibase_decode(proof["proofValue"])) == 64
    claims = device_claims(signed)
    assert (claims.subject, claims.model, claims.serial, claims.manufacturer) == (
        "did:ethr:0x7a69:0x00000000000000000000000000000000000000aa", "WX-1", "SN-0042", "Acme Sensors",
    )


# --- attacks: each is a credential someone could hand in to pass as another ----------------


def test_attack_property_added_after_signing_is_refused_not_ignored(signed: dict[str, Any]) -> None:
    """A property no context defines vanishes from the N-Quads, so it is outside the signature: an
    attacker adds `role: admin` to a genuine credential. Safe mode refuses it."""
    forged = copy.deepcopy(signed)
    forged["credentialSubject"]["role"] = "admin"
    assert "role" in refused(forged, CredentialFault.UNDEFINED_TERM)
    forged = copy.deepcopy(signed)
    forged["approvedBy"] = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    refused(forged, CredentialFault.UNDEFINED_TERM)


def test_attack_relative_ids_and_types_are_refused(signed: dict[str, Any]) -> None:
    """A relative IRI is dropped from the N-Quads just like an undefined term."""
    forged = copy.deepcopy(signed)
    forged["type"] = [*forged["type"], "AdminCredential"]
    refused(forged, CredentialFault.UNDEFINED_TERM)
    unsecured = device(ED_KEY)
    unsecured["credentialSubject"]["id"] = "device-7"
    with pytest.raises(CredentialRejected):
        issue(unsecured, ED_KEY)


def test_attack_changed_claims_break_the_signature(signed: dict[str, Any]) -> None:
    for path, value in [
        (("credentialSubject", "serial"), "SN-0043"),
        (("credentialSubject", "id"), "did:ethr:0x7a69:0x00000000000000000000000000000000000000bb"),
        (("credentialSubject", "firmwareHash"), "0x" + "cd" * 32),
        (("validUntil",), "2099-01-01T00:00:00Z"),
        (("proof", "created"), "2026-01-02T00:00:00Z"),
    ]:
        forged = copy.deepcopy(signed)
        target = forged
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        refused(forged, CredentialFault.BAD_SIGNATURE)


def test_attack_another_key_cannot_sign_for_the_issuer(signed: dict[str, Any]) -> None:
    """The attacker's key signs, and the proof names the attacker's key or the issuer's."""
    unsecured = {k: v for k, v in signed.items() if k != "proof"}
    attacker = did_key.did_key(OTHER_KEY.public_key)
    # 1. the attacker's own verification method, the genuine issuer named
    forged = issue({k: v for k, v in unsecured.items() if k != "issuer"}, OTHER_KEY)
    forged["issuer"] = signed["issuer"]
    assert attacker in refused(forged, CredentialFault.WRONG_ISSUER_KEY)
    # 2. the issuer's verification method named, the attacker's signature
    forged = copy.deepcopy(signed)
    forged_proof = issue({k: v for k, v in unsecured.items() if k != "issuer"}, OTHER_KEY)["proof"]
    forged["proof"]["proofValue"] = forged_proof["proofValue"]
    refused(forged, CredentialFault.BAD_SIGNATURE)
    # 3. a method of the issuer's DID that its document does not have
    forged = copy.deepcopy(signed)
    forged["proof"]["verificationMethod"] = signed["issuer"] + "#key-2"
    refused(forged, CredentialFault.UNRESOLVED_ISSUER)


def test_attack_cryptosuite_swapped_or_unsupported(signed: dict[str, Any]) -> None:
    forged = copy.deepcopy(signed)
    suite = forged["proof"]["cryptosuite"]
    forged["proof"]["cryptosuite"] = ECDSA_RDFC_2019 if suite == EDDSA_RDFC_2022 else EDDSA_RDFC_2022
    refused(forged, CredentialFault.WRONG_ISSUER_KEY)
    for other in ("bbs-2023", "ecdsa-sd-2023", "eddsa-jcs-2022", None):
        forged["proof"]["cryptosuite"] = other
        refused(forged, CredentialFault.UNSUPPORTED_CRYPTOSUITE)


def test_attack_proof_for_another_purpose_or_several_proofs(signed: dict[str, Any]) -> None:
    forged = copy.deepcopy(signed)
    forged["proof"]["proofPurpose"] = "authentication"
    assert "assertionMethod" in refused(forged, CredentialFault.MALFORMED_PROOF)
    refused({**signed, "proof": [signed["proof"], signed["proof"]]}, CredentialFault.MALFORMED_PROOF)
    assert verify({**signed, "proof": [signed["proof"]]}, now=NOW).verified
    refused({k: v for k, v in signed.items() if k != "proof"}, CredentialFault.MALFORMED_PROOF)
    for value in ("u" + "A" * 86, "zzz", "z" + "1" * 10, 7):
        refused({**signed, "proof": {**signed["proof"], "proofValue": value}}, CredentialFault.MALFORMED_PROOF)


def test_attack_protected_terms_cannot_be_redefined(signed: dict[str, Any]) -> None:
    """An inline context remapping `serial` would change what the signature means: refused."""
    forged = copy.deepcopy(signed)
    forged["@context"] = [*forged["@context"], {"serial": "https://attacker.example/serial"}]
    assert "protected" in refused(forged, CredentialFault.MALFORMED_CREDENTIAL)
    # `issuer` is scoped to the VerifiableCredential type, whose definition wins on the
    # credential: the outer remapping changes nothing signed, so it still verifies
    forged = copy.deepcopy(signed)
    forged["@context"] = [*forged["@context"], {"issuer": "https://attacker.example/issuer"}]
    unsecured = {k: v for k, v in signed.items() if k != "proof"}
    assert canonize({k: v for k, v in forged.items() if k != "proof"}) == canonize(unsecured)
    assert verify(forged, now=NOW).verified


def test_unknown_contexts_are_refused_anywhere(signed: dict[str, Any]) -> None:
    forged = copy.deepcopy(signed)
    forged["@context"].append("https://example.org/ctx/v1")
    assert "unknown context URL" in refused(forged, CredentialFault.UNKNOWN_CONTEXT)
    # nested inside an inline context
    forged = copy.deepcopy(signed)
    forged["@context"].append({"@import": "https://example.org/ctx/v1"})
    refused(forged, CredentialFault.UNKNOWN_CONTEXT)
    with pytest.raises(UnknownContext, match="unknown context URL"):
        document_loader("https://www.w3.org/2018/credentials/v1")
    with pytest.raises(UnknownContext):
        canonize({"@context": "http://127.0.0.1:9/ctx", "name": "x"})


def test_validity_window_with_the_reference_clock_skew(signed: dict[str, Any]) -> None:
    until = datetime(2036, 1, 1, tzinfo=UTC)
    since = datetime(2026, 1, 1, tzinfo=UTC)
    assert verify(signed, now=until + timedelta(seconds=300)).verified
    assert "2036-01-01T00:00:00Z" in refused(signed, CredentialFault.EXPIRED, until + timedelta(seconds=301))
    assert verify(signed, now=since - timedelta(seconds=300)).verified
    refused(signed, CredentialFault.NOT_YET_VALID, since - timedelta(seconds=301))
    assert verify(signed, now=until + timedelta(days=1), max_clock_skew_s=10**8).verified
    assert not verify(signed, now=until + timedelta(seconds=1), max_clock_skew_s=0).verified
    with pytest.raises(InputRejected, match="timezone-aware"):
        verify(signed, now=datetime(2030, 1, 1))
    assert verify(signed).verified  # now, by default


def test_malformed_credentials_are_refused_before_any_crypto(signed: dict[str, Any]) -> None:
    bad: list[Any] = [
        [],
        "a string",
        {**signed, "@context": ["https://www.w3.org/ns/did/v1", *signed["@context"]]},
        {**signed, "type": ["DeviceCredential"]},
        {**signed, "issuer": ["did:key:a", "did:key:b"]},
        {**signed, "issuer": "not a url"},
        {**signed, "credentialSubject": []},
        {**signed, "validUntil": "2036-01-01"},
        {**signed, "validFrom": "2026-01-01T00:00:00"},
        {**signed, "credentialSubject": {**signed["credentialSubject"], "firmwareHash": "0xab"}},
        {**signed, "credentialSubject": {**signed["credentialSubject"], "id": "urn:uuid:1"}},
        {**signed, "credentialSubject": {**signed["credentialSubject"], "model": ""}},
    ]
    for document in bad:
        refused(document, CredentialFault.MALFORMED_CREDENTIAL)


def test_issuers_that_do_not_resolve_offline(signed: dict[str, Any]) -> None:
    forged = {**signed, "issuer": "did:ethr:0x1:0x" + "11" * 20}
    forged["proof"] = {**signed["proof"], "verificationMethod": forged["issuer"] + "#controller"}
    assert "did:ethr" in refused(forged, CredentialFault.UNRESOLVED_ISSUER)
    broken = "did:key:z6Mk" + "1" * 44
    forged = {**signed, "issuer": broken, "proof": {**signed["proof"], "verificationMethod": broken + "#x"}}
    refused(forged, CredentialFault.UNRESOLVED_ISSUER)


def test_a_resolver_for_other_did_methods() -> None:
    """An issuer of another method verifies through a resolver that knows its document."""
    issuer = "did:web:maker.example"
    method = issuer + "#assert-1"
    document: dict[str, Any] = {
        "id": issuer,
        "verificationMethod": [
            {"id": "#assert-1", "type": "Multikey", "controller": issuer, "publicKeyMultibase": P_KEY.public_key.multibase}
        ],
        "assertionMethod": ["#assert-1"],
    }
    signed = issue(device(P_KEY, issuer=issuer), P_KEY, verification_method=method)
    assert verify(signed, now=NOW, resolver=lambda did: document).verified
    refused(signed, CredentialFault.UNRESOLVED_ISSUER)  # the default resolver is did:key only
    not_assertion = {**document, "assertionMethod": []}
    result = verify(signed, now=NOW, resolver=lambda did: not_assertion)
    assert result.reason is CredentialFault.WRONG_ISSUER_KEY
    other_controller = {**document, "verificationMethod": [{**document["verificationMethod"][0], "controller": "did:web:x"}]}
    assert verify(signed, now=NOW, resolver=lambda did: other_controller).reason is CredentialFault.WRONG_ISSUER_KEY


def test_p256_signatures_are_raw_r_s_and_high_s_twins_verify_as_webcrypto_does() -> None:
    signed = issue(device(P_KEY), P_KEY, created="2026-01-01T00:00:00Z")
    raw = multibase_decode(signed["proof"]["proofValue"])
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    assert 0 < r < N and 0 < s <= N // 2  # issued low-s
    twin = raw[:32] + (N - s).to_bytes(32, "big")
    assert verify({**signed, "proof": {**signed["proof"], "proofValue": multibase_encode(twin)}}, now=NOW).verified


def test_issue_refuses_what_it_cannot_sign_honestly() -> None:
    with pytest.raises(InputRejected, match="already has a proof"):
        issue(issue(device(), ED_KEY), ED_KEY)
    with pytest.raises(InputRejected, match="not the key's"):
        issue(device(P_KEY), ED_KEY)
    with pytest.raises(InputRejected, match="signs with a p256 key"):
        issue(device(), ED_KEY, ECDSA_RDFC_2019)
    with pytest.raises(InputRejected, match="unsupported cryptosuite"):
        issue(device(), ED_KEY, "bbs-2023")
    with pytest.raises(CredentialRejected, match="firmwareHash"):
        credentials.device_credential(issuer="did:key:x", subject="did:key:y", model="m", serial="s", firmware_hash="ab")


claims = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"], include_characters="\t\n\r"), min_size=1, max_size=40)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(claims, claims, st.sampled_from([ED_KEY, P_KEY]), st.data())
def test_any_claims_round_trip_and_any_change_is_caught(model: str, serial: str, key: SecretKey, data: st.DataObject) -> None:
    unsecured = device(key)
    unsecured["credentialSubject"].update(model=model, serial=serial)
    signed = issue(unsecured, key)
    assert verify(signed, now=NOW).verified
    field = data.draw(st.sampled_from(["model", "serial"]))
    changed = data.draw(claims.filter(lambda v: v != unsecured["credentialSubject"][field]))
    forged = copy.deepcopy(signed)
    forged["credentialSubject"][field] = changed
    assert verify(forged, now=NOW).reason is CredentialFault.BAD_SIGNATURE


def test_a_credential_status_is_never_silently_ignored() -> None:
    """A revocable credential verified without looking at its status could be a revoked one."""
    status = {
        "id": "https://maker.example/status/3#94567",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": "94567",
        "statusListCredential": "https://maker.example/status/3",
    }
    signed = issue(device(credentialStatus=status), ED_KEY)
    assert "credentialStatus" in refused(signed, CredentialFault.UNCHECKED_STATUS)
    seen: list[Any] = []
    assert verify(signed, now=NOW, status_check=seen.append).verified
    assert seen == [signed]

    def revoked(credential: Any) -> None:
        raise CredentialRejected(CredentialFault.BAD_SIGNATURE, "stand-in verdict of a status list")

    assert verify(signed, now=NOW, status_check=revoked).detail == "stand-in verdict of a status list"
    # the status check runs only for a credential that verified otherwise
    forged = {**signed, "credentialSubject": {**signed["credentialSubject"], "serial": "x"}}
    assert verify(forged, now=NOW, status_check=seen.append).reason is CredentialFault.BAD_SIGNATURE
    assert len(seen) == 1


def test_every_reason_and_every_device_term_is_documented() -> None:
    guide = (REPO / "docs" / "identity.md").read_text()
    for fault in CredentialFault:
        assert fault.meaning and f"| `{fault.value}` |" in guide, fault
    terms = context_document("https://veristream.dev/credentials/device/v1")["@context"]
    for term, iri in terms.items():
        if not term.startswith("@"):
            assert f"| `{term}` | `{iri}` |" in guide, term


@pytest.mark.parametrize(
    "when", ["2030-02-30T00:00:00Z", "2030-01-01T24:00:00Z", "-0001-01-01T00:00:00Z", "10000-01-01T00:00:00Z"]
)
def test_dates_the_calendar_lacks_are_malformed_not_a_crash(when: str) -> None:
    """Each matches the dateTimeStamp pattern, and none is a moment Python can compare."""
    unsecured = device()
    signed = issue(unsecured, ED_KEY)
    assert "validUntil" in refused({**signed, "validUntil": when}, CredentialFault.MALFORMED_CREDENTIAL)
    with pytest.raises(CredentialRejected):
        issue({**unsecured, "validFrom": when}, ED_KEY)
    assert verify({**signed, "validUntil": "2030-01-01T00:00:00.1234567891+14:00"}, now=NOW).reason is CredentialFault.BAD_SIGNATURE


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12)
    | st.sampled_from(["@id", "@type", "@context", "@value", "@list", "@graph", "did:key:z6Mk", "https://x.example/"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(
        st.text(max_size=8) | st.sampled_from(["@id", "@type", "@value", "@list", "@context", "@language", "id", "type"]),
        inner,
        max_size=3,
    ),
    max_leaves=8,
)
FUZZ_BASE = issue(device(), ED_KEY, created="2026-01-01T00:00:00Z")


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(_paths(FUZZ_BASE)[1:]), json_values)
def test_any_json_in_any_place_gets_a_verdict_never_an_exception(path: tuple[Any, ...], value: Any) -> None:
    forged = copy.deepcopy(FUZZ_BASE)
    target = forged
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    result = verify(forged, now=NOW)
    if forged != FUZZ_BASE:
        assert not result.verified or verify(FUZZ_BASE, now=NOW).verified
    assert result.verified or (result.reason in CredentialFault and result.detail)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(_paths(device())[1:]), json_values)
def test_issuing_any_json_signs_it_or_refuses_it_with_a_typed_error(path: tuple[Any, ...], value: Any) -> None:
    unsecured = device()
    target = unsecured
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        signed = issue(unsecured, ED_KEY)
    except InputRejected as exc:
        assert str(exc)
        return
    result = verify(signed, now=NOW)
    assert result.verified or result.reason in (CredentialFault.EXPIRED, CredentialFault.NOT_YET_VALID), result

"""did:key and Data Integrity credentials against the W3C reference stack, both ways.

Digital Bazaar's libraries (vc, data-integrity, eddsa-rdfc-2022, ecdsa-rdfc-2019,
Multikey, did-method-key, jsonld) run in node through ``tests/js/vc_reference.mjs``,
one process per test with every case batched into it. Keys come from hypothesis.
"""

from __future__ import annotations

import copy
import json
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.conftest import REPO
from veristream.provers import credentials, did_key
from veristream.provers.jsonld import NotCanonical, canonize
from veristream.provers.multibase import base58btc_decode, base58btc_encode
from veristream.provers.multikey import ED25519, P256, PublicKey, SecretKey
from veristream.provers.reasons import CredentialFault
from veristream.provers.schemes.p256 import N

SCRIPT = REPO / "tests" / "js" / "vc_reference.mjs"
# one example of a large batch per test (one node process); no shrinking: each try is a node run
SETTINGS = settings(deadline=None, max_examples=1, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
UNKNOWN_CONTEXT = "https://example.org/unknown-context/v1"
NOW = "2030-06-01T00:00:00Z"
NOW_DT = datetime(2030, 6, 1, tzinfo=UTC)


def reference(node: str, request: dict[str, list[Any]]) -> dict[str, list[dict[str, Any]]]:
    """One node process over every case of ``request`` (see the script for the operations)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "request.json"
        path.write_text(json.dumps(request))
        done = subprocess.run(
            [node, str(SCRIPT), str(path)], capture_output=True, text=True, timeout=300, cwd=REPO
        )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, list[dict[str, Any]]] = json.loads(done.stdout)
    return result


def b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_of(key: SecretKey) -> dict[str, str]:
    """The public JWK of ``key``: an encoding independent of Multikey for the JS side to start from."""
    if key.scheme == ED25519:
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url(key.public_key.raw)}
    numbers = ec.derive_private_key(int.from_bytes(key.raw, "big"), ec.SECP256R1()).public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": b64url(numbers.x.to_bytes(32, "big")), "y": b64url(numbers.y.to_bytes(32, "big"))}


seeds = st.binary(min_size=32, max_size=32)
scalars = st.integers(1, N - 1).map(lambda d: d.to_bytes(32, "big"))
keys = st.one_of(seeds.map(lambda s: SecretKey.from_raw(ED25519, s)), scalars.map(lambda s: SecretKey.from_raw(P256, s)))
text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"], include_characters="\t\n\r"), min_size=1, max_size=24)


@SETTINGS
@given(st.lists(keys, min_size=24, max_size=24, unique_by=lambda k: k.raw))
def test_did_key_documents_match_did_method_key_and_key_did_resolver(node: str, key_list: list[SecretKey]) -> None:
    # edge keys too: P-256 points of both parities (d = 1..4), an Ed25519 seed of zeros
    key_list += [SecretKey.from_raw(ED25519, bytes(32))]
    key_list += [SecretKey.from_raw(P256, d.to_bytes(32, "big")) for d in range(1, 5)]
    dids = [did_key.did_key(k.public_key) for k in key_list]
    both = reference(node, {"didKey": [{"scheme": k.scheme, "jwk": jwk_of(k)} for k in key_list], "keyDidResolver": dids})
    # a second implementation (key-did-resolver) states the keys in older types: the same bytes
    for key, did, answer in zip(key_list, dids, both["keyDidResolver"], strict=True):
        assert answer["ok"], answer
        (method,) = answer["value"]["verificationMethod"]
        assert method["id"] == did_key.verification_method_id(did) and method["controller"] == did
        assert answer["value"]["assertionMethod"] == [method["id"]]
        if key.scheme == ED25519:
            assert base58btc_decode(method["publicKeyBase58"]) == key.public_key.raw
        else:
            assert method["publicKeyJwk"] == jwk_of(key)
    out = both["didKey"]
    parities = set()
    for key, answer in zip(key_list, out, strict=True):
        assert answer["ok"], answer
        js = answer["value"]
        did = did_key.did_key(key.public_key)
        assert js["did"] == did
        assert did.startswith("did:key:z6Mk" if key.scheme == ED25519 else "did:key:zDn")
        ours = did_key.resolve(did)
        method = ours["verificationMethod"][0]
        for document in (js["document"], js["resolved"]):
            assert document["id"] == ours["id"]
            assert document["verificationMethod"] == ours["verificationMethod"]
            for relationship in did_key.VERIFICATION_RELATIONSHIPS:
                assert document[relationship] == ours[relationship], relationship
            assert set(ours["@context"]) <= set(document["@context"])
        assert js["method"] == did_key.dereference(method["id"])
        assert PublicKey.from_multibase(method["publicKeyMultibase"]) == key.public_key
        parities.add(key.public_key.raw[0] if key.scheme == P256 else None)
    assert {2, 3} <= parities


def device(issuer: str, number: int, **extra: Any) -> dict[str, Any]:
    credential = credentials.device_credential(
        issuer=issuer,
        subject=f"did:ethr:0x7a69:0x{number:040x}",
        model=f"WX-{number}",
        serial=f"SN-{number:05d}",
        firmware_hash="0x" + f"{number:02x}" * 32,
        manufacturer="Acme Sensors",
        valid_from="2026-01-01T00:00:00Z",
        valid_until="2036-01-01T00:00:00Z",
    )
    credential.update(extra)
    return credential


def refusal_cases(secured: dict[str, Any], other_key: SecretKey) -> dict[str, dict[str, Any]]:
    """The refusals both implementations must agree on, made from a good credential."""
    tampered = copy.deepcopy(secured)
    tampered["credentialSubject"]["serial"] += "-forged"
    wrong_key = credentials.issue(
        {k: v for k, v in secured.items() if k not in ("proof", "issuer")},
        other_key,
        created="2026-01-01T00:00:00Z",
    )
    # the other key signs, the credential still names the original issuer
    wrong_key["issuer"] = secured["issuer"]
    expired = secured  # verified after its validUntil
    unknown = copy.deepcopy(secured)
    unknown["@context"] = [*secured["@context"], UNKNOWN_CONTEXT]
    undefined = copy.deepcopy(secured)
    undefined["credentialSubject"]["role"] = "admin"  # outside the signature without safe mode
    return {
        "bad_signature": tampered,
        "wrong_issuer_key": wrong_key,
        "expired": expired,
        "unknown_context": unknown,
        "undefined_term": undefined,
    }


@SETTINGS
@given(st.lists(keys, min_size=4, max_size=4, unique_by=lambda k: k.raw), st.lists(text, min_size=4, max_size=4))
def test_credentials_veristream_issues_verify_in_the_reference_library(
    node: str, key_list: list[SecretKey], models: list[str]
) -> None:
    key_list += [SecretKey.from_raw(ED25519, bytes(range(32))), SecretKey.from_raw(P256, bytes(range(1, 33)))]
    models += ["Ω weather", "plain"]
    secured = []
    for number, (key, model) in enumerate(zip(key_list, models, strict=True)):
        unsecured = device(did_key.did_key(key.public_key), number)
        unsecured["credentialSubject"]["model"] = model
        secured.append(credentials.issue(unsecured, key, created="2026-01-01T00:00:00Z"))
    refusals = refusal_cases(secured[0], key_list[1]) | {
        f"{name}-p256": case for name, case in refusal_cases(secured[-1], key_list[-2]).items()
    }
    request = {
        "verify": [{"credential": c, "now": NOW} for c in secured]
        + [{"credential": c, "now": "2040-01-01T00:00:00Z" if name.startswith("expired") else NOW} for name, c in refusals.items()],
        "canonize": [{k: v for k, v in c.items() if k != "proof"} for c in secured],
        # Ed25519 signatures are deterministic: the library's proof must be ours, byte for byte
        "issue": [
            {
                "credential": {k: v for k, v in c.items() if k != "proof"},
                "key": {"type": "Multikey", "publicKeyMultibase": k.public_key.multibase, "secretKeyMultibase": k.multibase,
                        "controller": c["issuer"], "id": c["proof"]["verificationMethod"]},
                "cryptosuite": c["proof"]["cryptosuite"],
                "created": "2026-01-01T00:00:00Z",
            }
            for k, c in zip(key_list, secured, strict=True)
        ],
    }
    out = reference(node, request)
    verdicts = out["verify"]
    for credential, verdict in zip(secured, verdicts[: len(secured)], strict=True):
        assert verdict == {"ok": True, "value": {"verified": True, "errors": []}}, (credential["proof"]["cryptosuite"], verdict)
        assert credentials.verify(credential, now=NOW_DT).verified
    for (name, credential), verdict in zip(refusals.items(), verdicts[len(secured):], strict=True):
        assert verdict["ok"] and verdict["value"]["verified"] is False, (name, verdict)
        when = datetime(2040, 1, 1, tzinfo=UTC) if name.startswith("expired") else NOW_DT
        ours = credentials.verify(credential, now=when)
        assert not ours.verified and ours.reason == CredentialFault(name.removesuffix("-p256")), (name, ours)
        assert ours.detail
    for unsecured, answer in zip(request["canonize"], out["canonize"], strict=True):
        assert answer["ok"] and canonize(unsecured) == answer["value"]
    for key, ours, answer in zip(key_list, secured, out["issue"], strict=True):
        assert answer["ok"], answer
        theirs = answer["value"]
        assert credentials.verify(theirs, now=NOW_DT).verified
        if key.scheme == ED25519:
            assert theirs["proof"] == ours["proof"]
        else:
            # ECDSA signatures differ per nonce; both must verify, and the signed bytes agree
            assert {k: v for k, v in theirs["proof"].items() if k != "proofValue"} == {
                k: v for k, v in ours["proof"].items() if k != "proofValue"
            }


@SETTINGS
@given(st.lists(text, min_size=4, max_size=4))
def test_credentials_the_reference_library_issues_verify_in_veristream(node: str, models: list[str]) -> None:
    placeholder = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    plain = {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential"],
        "credentialSubject": {"id": "did:example:ebfeb1f712ebc6f1c276e12ec21", "name": "a subject"},
        "validUntil": "2036-01-01T00:00:00Z",
    }
    cases = []
    for number, (scheme, model) in enumerate(zip([ED25519, P256, ED25519, P256], models, strict=True)):
        credential = {k: v for k, v in device(placeholder, number).items() if k != "issuer"}
        credential["credentialSubject"]["model"] = model
        cases.append({"scheme": scheme, "credential": credential})
    cases += [{"scheme": ED25519, "credential": plain}, {"scheme": P256, "credential": plain}]
    # the library signs with its key but names another issuer: a wrong issuer key
    cases += [{"scheme": s, "credential": cases[0]["credential"], "issuer": placeholder} for s in (ED25519, P256)]
    out = reference(node, {"issueNew": cases})["issueNew"]
    issued = [answer["value"]["credential"] for answer in out if answer["ok"]]
    assert len(issued) == len(cases), out
    good, wrong_issuer = issued[:6], issued[6:]

    for credential in good:
        result = credentials.verify(credential, now=NOW_DT)
        assert result.verified, (credential["proof"]["cryptosuite"], result)
        assert result.issuer == credential["issuer"] and result.issuer.startswith("did:key:")
    assert {c["proof"]["cryptosuite"] for c in good} == {"eddsa-rdfc-2022", "ecdsa-rdfc-2019"}

    refused: list[tuple[str, dict[str, Any], datetime]] = []
    for credential in wrong_issuer:
        refused.append(("wrong_issuer_key", credential, NOW_DT))
    for credential in good[:2]:
        tampered = copy.deepcopy(credential)
        tampered["credentialSubject"]["firmwareHash"] = "0x" + "ee" * 32
        refused.append(("bad_signature", tampered, NOW_DT))
        refused.append(("expired", credential, datetime(2040, 1, 1, tzinfo=UTC)))
        refused.append(("not_yet_valid", credential, datetime(2025, 1, 1, tzinfo=UTC)))
        unsupported = copy.deepcopy(credential)
        unsupported["proof"]["cryptosuite"] = "bbs-2023"
        refused.append(("unsupported_cryptosuite", unsupported, NOW_DT))
        unknown = copy.deepcopy(credential)
        unknown["@context"].append(UNKNOWN_CONTEXT)
        refused.append(("unknown_context", unknown, NOW_DT))
    verdicts = reference(node, {"verify": [
        {"credential": c, "now": when.strftime("%Y-%m-%dT%H:%M:%SZ")} for _, c, when in refused
    ]})["verify"]
    for (reason, credential, when), verdict in zip(refused, verdicts, strict=True):
        ours = credentials.verify(credential, now=when)
        assert not ours.verified and ours.reason == CredentialFault(reason), (reason, ours)
        assert verdict["ok"] and verdict["value"]["verified"] is False, (reason, verdict)


def test_multibase_against_the_library_key_exports(node: str) -> None:
    """Secret and public Multikeys the library exports load here, and sign as the same key."""
    exported = reference(node, {"keygen": [{"scheme": ED25519}, {"scheme": P256}]})["keygen"]
    for answer in exported:
        key = answer["value"]
        secret = SecretKey.from_multibase(key["secretKeyMultibase"])
        assert secret.public_key.multibase == key["publicKeyMultibase"]
        assert did_key.did_key(secret.public_key) == key["controller"]
        assert key["id"] == did_key.verification_method_id(key["controller"])
    assert base58btc_encode(b"\x00\x00\x01") == "112"


def _set(path: tuple[str, ...], value: Any) -> Any:
    def change(document: dict[str, Any]) -> None:
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def test_what_json_ld_ignores_is_judged_as_the_reference_library_judges_it(node: str) -> None:
    """Values JSON-LD drops or treats specially: each side accepts or refuses the same ones
    (VeriStream is stricter only about a DeviceCredential's own claims)."""
    key = SecretKey.from_raw(ED25519, bytes(range(32)))
    signed = credentials.issue(device(did_key.did_key(key.public_key), 1), key, created="2026-01-01T00:00:00Z")
    subject = ("credentialSubject",)
    changes: dict[str, Any] = {
        "reserved-looking key": _set(("@foo",), "bar"),
        "reserved-looking key in the subject": _set((*subject, "@foo"), "bar"),
        "a null claim": _set((*subject, "manufacturer"), None),
        "a null name": _set(("name",), None),
        "an empty description": _set(("description",), []),
        "a malformed language tag": _set((*subject, "manufacturer"), {"@value": "Acme", "@language": "not a tag!"}),
        "types reordered": _set(("type",), ["DeviceCredential", "VerifiableCredential"]),
        "an id added": _set(("id",), "urn:uuid:0d2a1f4e-8c7b-4f1a-9d3e-2b6c5a4f3e21"),
        "an inline @vocab": lambda d: d["@context"].append({"@vocab": "https://attacker.example/#"}),
        "an inline @vocab and a new claim": lambda d: (
            d["@context"].append({"@vocab": "https://attacker.example/#"}),
            d["credentialSubject"].__setitem__("role", "admin"),
        ),
        "an undefined proof option": _set(("proof", "junk"), "x"),
        "a proof nonce added": _set(("proof", "nonce"), "x"),
        "a JSON literal": _set((*subject, "model"), {"@value": {"a": 1}, "@type": "@json"}),
        # stricter here: a DeviceCredential has one subject, its manufacturer a string
        "an empty manufacturer list": _set((*subject, "manufacturer"), []),
        "the subject twice": lambda d: d.__setitem__("credentialSubject", [d["credentialSubject"]] * 2),
    }
    stricter = {"an empty manufacturer list", "the subject twice"}
    variants = {}
    for name, change in changes.items():
        variant = copy.deepcopy(signed)
        change(variant)
        variants[name] = variant
    verdicts = reference(node, {"verify": [{"credential": v, "now": NOW} for v in variants.values()]})["verify"]
    for (name, variant), verdict in zip(variants.items(), verdicts, strict=True):
        ours = credentials.verify(variant, now=NOW_DT)
        assert verdict["ok"], verdict
        theirs = verdict["value"]["verified"]
        if name in stricter:
            assert ours.reason is CredentialFault.MALFORMED_CREDENTIAL, (name, ours)
            assert theirs == (name == "the subject twice"), (name, verdict)  # the same triples
        else:
            assert ours.verified == theirs, (name, ours, verdict)


def test_n_quads_agree_on_edge_values_and_the_rest_is_refused(node: str) -> None:
    """RDFC-1.0 N-Quads byte for byte on numbers, escapes and language tags; a value whose
    N-Quads would differ (pyld leaves some controls unescaped, JavaScript takes 1e-7 for an
    integer, JSON parsers round integers beyond 2**53) is refused instead of
    signed."""
    agreed: list[Any] = [
        1.5, 1e21, 0.1, 1, 2**53, -(2**53), 5.0, 1e20, True, -0.0, 123456789.125, 1.7976931348623157e308, 1e-6,
        "tab\tnewline\nreturn\rquote\"backslash\\", "\x80\ufffe\U0001f600é", "",
        {"@value": "x", "@language": "EN-us"},
        {"@value": "1", "@type": "http://www.w3.org/2001/XMLSchema#integer"},
        {"@id": "https://x.example/a?b=c#d"}, {"@id": "did:key:z6Mk%20x"},
    ]
    refused = [
        1e-7, 5e-324, 2**53 + 1, -(2**60), "x\x00y", "del\x7f", "a\bb", "a\fb", {"@value": "x", "@direction": "rtl", "@language": "ar"},
        {"@id": "https://x.example/a b"}, {"@id": "https://x.example/a\\b"}, {"@id": "urn:a{b}"},
    ]

    def document(value: Any) -> dict[str, Any]:
        return {"@context": ["https://www.w3.org/ns/credentials/v2", {"x": "https://x.example/x"}], "x": value}

    out = reference(node, {"canonize": [document(v) for v in agreed]})["canonize"]
    for value, answer in zip(agreed, out, strict=True):
        assert answer["ok"] and canonize(document(value)) == answer["value"], (value, answer)
    for value in refused:
        with pytest.raises(NotCanonical):
            canonize(document(value))

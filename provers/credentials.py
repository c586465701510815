"""W3C Verifiable Credentials 2.0 secured with Data Integrity, and the ``DeviceCredential``.

A ``DeviceCredential`` is a device's birth certificate from its manufacturer:
the subject is the device's DID, with its model, serial number and firmware
hash (and the manufacturer's name), in VeriStream's context
``https://veristream.dev/credentials/device/v1`` (docs/identity.md lists every
term). ``issue`` secures any VC 2.0 credential with an issuer key
(``eddsa-rdfc-2022`` for Ed25519, ``ecdsa-rdfc-2019`` for P-256); ``verify``
checks one, from whichever issuer, and says why when it does not verify
(``veristream.provers.reasons.CredentialFault``).

Issuers are DIDs. ``verify`` takes a ``resolver`` (DID -> DID document); the
default resolves ``did:key`` offline and nothing else. The proof's verification
method must be in the issuer's DID document, list the issuer as its
controller, and be referenced by ``assertionMethod``.

Validity (``validFrom``, ``validUntil``) is judged against ``now``; like the
reference libraries, a clock skew of ``max_clock_skew_s`` (default 300 s) is
tolerated at both ends.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from veristream.provers import did_key
from veristream.provers.data_integrity import (
    ASSERTION_METHOD,
    CRYPTOSUITES,
    ProofError,
    UnsupportedCryptosuite,
    create_proof,
    cryptosuite_for,
    parse_date_time,
    parse_proof,
    verify_proof,
)
from veristream.provers.errors import InputRejected
from veristream.provers.jsonld import (
    CREDENTIALS_V2,
    DEVICE_V1,
    UndefinedTerm,
    UnknownContext,
    context_document,
    context_urls,
)
from veristream.provers.multikey import PublicKey, SecretKey
from veristream.provers.reasons import CredentialFault

VERIFIABLE_CREDENTIAL = "VerifiableCredential"
DEVICE_CREDENTIAL = "DeviceCredential"
DEVICE_CREDENTIAL_CONTEXT = (CREDENTIALS_V2, DEVICE_V1)
DEFAULT_MAX_CLOCK_SKEW_S = 300

# DID Core syntax: did:<method>:<method-specific-id>
DID_PATTERN = re.compile(
    r"did:[a-z0-9]+:(?:(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})*:)*(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})+"
)
FIRMWARE_HASH_PATTERN = re.compile(r"0x[0-9a-fA-F]{64}")
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")

Resolver = Callable[[str], Mapping[str, Any]]
"""Resolves a DID to its DID document; raises ``InputRejected`` (or ``LookupError``) when it cannot."""
StatusCheck = Callable[[Mapping[str, Any]], None]
"""Checks the ``credentialStatus`` of a credential whose proof verified; raises
``CredentialRejected`` when the status says it no longer holds."""


class CredentialRejected(InputRejected):
    """A credential refused for ``fault`` (a ``CredentialFault``)."""

    def __init__(self, fault: CredentialFault, message: str) -> None:
        super().__init__(message)
        self.fault = fault


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """What ``verify`` found: ``verified``, and when not, ``reason`` (a ``CredentialFault``)
    and ``detail`` (one line); the issuer, key and cryptosuite as far as they were read."""

    verified: bool
    reason: CredentialFault | None = None
    detail: str = ""
    issuer: str | None = None
    verification_method: str | None = None
    cryptosuite: str | None = None
    types: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON object (the CLI's ``--json``)."""
        return {
            "verified": self.verified,
            "reason": None if self.reason is None else str(self.reason),
            "detail": self.detail,
            "issuer": self.issuer,
            "verification_method": self.verification_method,
            "cryptosuite": self.cryptosuite,
            "type": list(self.types),
        }


@dataclass(frozen=True, slots=True)
class DeviceClaims:
    """The claims of a ``DeviceCredential``: who says what about which device."""

    issuer: str
    subject: str
    model: str
    serial: str
    firmware_hash: str
    manufacturer: str | None


# --- reading a credential ---------------------------------------------------------------


def _reject(fault: CredentialFault, message: str) -> CredentialRejected:
    return CredentialRejected(fault, message)


def is_did(value: Any) -> bool:
    """Whether ``value`` is a DID (DID Core syntax, no path, query or fragment)."""
    return isinstance(value, str) and DID_PATTERN.fullmatch(value) is not None


def _values(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def credential_types(credential: Mapping[str, Any]) -> tuple[str, ...]:
    """The credential's ``type`` values."""
    return tuple(t for t in _values(credential.get("type")) if isinstance(t, str))


def issuer_of(credential: Mapping[str, Any]) -> str:
    """The issuer's id (``issuer`` is a URL or an object with an ``id``)."""
    issuer = credential.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, Mapping) else issuer
    if not isinstance(issuer_id, str) or not _URL_SCHEME.fullmatch(issuer_id):
        raise _reject(CredentialFault.MALFORMED_CREDENTIAL, f"issuer must be a URL (a DID), got {issuer_id!r}")
    return issuer_id


def check_credential(credential: Any) -> None:
    """``credential`` has the shape of a VC 2.0 credential: the VC 2.0 context first, every
    context shipped, a ``VerifiableCredential`` type, one issuer URL, subjects that are objects,
    dates that are ``dateTimeStamp``s; a ``DeviceCredential`` also has well-formed claims.
    ``CredentialRejected`` otherwise."""
    # STRUCTURE
    if not isinstance(credential, Mapping):
        raise _reject(CredentialFault.MALFORMED_CREDENTIAL, "a credential must be a JSON object")
    contexts = _values(credential.get("@context"))
    if not contexts or contexts[0] != CREDENTIALS_V2:
        raise _reject(
            CredentialFault.MALFORMED_CREDENTIAL, f"the first @context must be {CREDENTIALS_V2!r} (VC 2.0)"
        )
    for url in context_urls(credential):
        try:
            context_document(url)
        except UnknownContext as exc:
            raise _reject(CredentialFault.UNKNOWN_CONTEXT, str(exc)) from None
    types = credential_types(credential)
    if VERIFIABLE_CREDENTIAL not in types or len(types) != len(_values(credential.get("type"))):
        raise _reject(CredentialFault.MALFORMED_CREDENTIAL, f"type must include {VERIFIABLE_CREDENTIAL!r}")
    if isinstance(credential.get("issuer"), list):
        raise _reject(CredentialFault.MALFORMED_CREDENTIAL, "a credential has one issuer")
    issuer_of(credential)
    subjects = _values(credential.get("credentialSubject"))
    if not subjects or not all(isinstance(s, Mapping) and s for s in subjects):
        raise _reject(CredentialFault.MALFORMED_CREDENTIAL, "credentialSubject must be one or more non-empty objects")
    # DATES
    for field in ("validFrom", "validUntil"):
        if field in credential:
            try:
                parse_date_time(credential[field], field)
            except InputRejected as exc:
                raise _reject(CredentialFault.MALFORMED_CREDENTIAL, str(exc)) from None
    # DEVICE CLAIMS
    if DEVICE_CREDENTIAL in types:
        device_claims(credential)


def device_claims(credential: Mapping[str, Any]) -> DeviceClaims:
    """The claims of a ``DeviceCredential`` (not verified: call ``verify`` for that)."""
    # VALIDATE
    if DEVICE_CREDENTIAL not in credential_types(credential):
        raise _reject(CredentialFault.MALFORMED_CREDENTIAL, f"not a {DEVICE_CREDENTIAL}")
    if DEVICE_V1 not in context_urls(credential):
        raise _reject(CredentialFault.MALFORMED_CREDENTIAL, f"a {DEVICE_CREDENTIAL} needs the context {DEVICE_V1!r}")
    subject = credential.get("credentialSubject")
    if not isinstance(subject, Mapping):
        raise _reject(CredentialFault.MALFORMED_CREDENTIAL, f"a {DEVICE_CREDENTIAL} has one credentialSubject")
    # CLAIMS
    if not is_did(subject.get("id")):
        raise _reject(CredentialFault.MALFORMED_CREDENTIAL, f"credentialSubject.id must be the device's DID, got {subject.get('id')!r}")
    for field in ("model", "serial"):
        if not isinstance(subject.get(field), str) or not subject[field]:
            raise _reject(CredentialFault.MALFORMED_CREDENTIAL, f"credentialSubject.{field} must be a non-empty string")
    firmware = subject.get("firmwareHash")
    if not isinstance(firmware, str) or not FIRMWARE_HASH_PATTERN.fullmatch(firmware):
        raise _reject(
            CredentialFault.MALFORMED_CREDENTIAL,
            f"credentialSubject.firmwareHash must be 0x and 32 bytes of hex, got {firmware!r}",
        )
    manufacturer = subject.get("manufacturer")
    if manufacturer is not None and (not isinstance(manufacturer, str) or not manufacturer):
        raise _reject(CredentialFault.MALFORMED_CREDENTIAL, "credentialSubject.manufacturer must be a non-empty string")
    return DeviceClaims(
        issuer=issuer_of(credential),
        subject=subject["id"],
        model=subject["model"],
        serial=subject["serial"],
        firmware_hash=firmware.lower(),
        manufacturer=manufacturer,
    )


def device_credential(
    *,
    issuer: str,
    subject: str,
    model: str,
    serial: str,
    firmware_hash: str,
    manufacturer: str | None = None,
    valid_from: str | None = None,
    valid_until: str | None = None,
    credential_id: str | None = None,
) -> dict[str, Any]:
    """An unsecured ``DeviceCredential`` (``issue`` secures it)."""
    credential: dict[str, Any] = {"@context": list(DEVICE_CREDENTIAL_CONTEXT)}
    if credential_id is not None:
        credential["id"] = credential_id
    credential["type"] = [VERIFIABLE_CREDENTIAL, DEVICE_CREDENTIAL]
    credential["issuer"] = issuer
    if valid_from is not None:
        credential["validFrom"] = valid_from
    if valid_until is not None:
        credential["validUntil"] = valid_until
    claims: dict[str, Any] = {"id": subject, "model": model, "serial": serial, "firmwareHash": firmware_hash}
    if manufacturer is not None:
        claims["manufacturer"] = manufacturer
    credential["credentialSubject"] = claims
    check_credential(credential)
    return credential


# --- issuing ------------------------------------------------------------------------------


def utc_timestamp(moment: datetime) -> str:
    """``moment`` as a UTC ``dateTimeStamp`` to the second (``2030-01-01T00:00:00Z``)."""
    if moment.tzinfo is None:
        raise InputRejected("a timestamp needs a time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def issue(
    credential: Mapping[str, Any],
    issuer_key: SecretKey,
    cryptosuite: str | None = None,
    *,
    verification_method: str | None = None,
    created: str | None = None,
) -> dict[str, Any]:
    """``credential`` secured by ``issuer_key`` with a ``DataIntegrityProof`` (``cryptosuite``
    defaults to the key's: ``eddsa-rdfc-2022`` for Ed25519, ``ecdsa-rdfc-2019`` for P-256).

    The issuer is the key's ``did:key`` unless ``verification_method`` names the issuer's own
    key (a DID URL of the credential's ``issuer``). ``created`` defaults to now.
    """
    # VALIDATE
    unsecured = dict(credential)
    if "proof" in unsecured:
        raise InputRejected("the credential already has a proof")
    if verification_method is None:
        issuer = did_key.did_key(issuer_key.public_key)
        verification_method = did_key.verification_method_id(issuer)
        unsecured.setdefault("issuer", issuer)
        if issuer_of(unsecured) != issuer:
            raise InputRejected(
                f"the credential's issuer {issuer_of(unsecured)} is not the key's {issuer}: "
                "give the issuer's verification method"
            )
    elif verification_method.split("#", 1)[0] != issuer_of(unsecured):
        raise InputRejected(f"verification method {verification_method} is not the issuer's {issuer_of(unsecured)}")
    suite = cryptosuite or cryptosuite_for(issuer_key.scheme)
    if suite not in CRYPTOSUITES:
        raise UnsupportedCryptosuite(f"unsupported cryptosuite {suite!r}: one of {', '.join(CRYPTOSUITES)}")
    check_credential(unsecured)
    # SIGN
    proof = create_proof(
        unsecured,
        issuer_key,
        verification_method,
        cryptosuite=suite,
        created=created if created is not None else utc_timestamp(datetime.now(UTC)),
    )
    return {**unsecured, "proof": proof}


# --- verifying ----------------------------------------------------------------------------


def resolve_offline(did: str) -> Mapping[str, Any]:
    """The default resolver: ``did:key`` only, from the key itself."""
    if not did.startswith(did_key.PREFIX):
        method = ":".join(did.split(":")[:2])
        raise InputRejected(f"{method} DIDs do not resolve offline (did:key does)")
    return did_key.resolve(did)


def _absolute(reference: str, document_id: str) -> str:
    return document_id + reference if reference.startswith("#") else reference


def issuer_public_key(issuer: str, method_id: str, resolver: Resolver) -> PublicKey:
    """The public key of verification method ``method_id``, if it is an assertion key of
    ``issuer``: in the issuer's DID document, controlled by the issuer, referenced by
    ``assertionMethod`` and a ``Multikey``."""
    # RESOLVE
    if method_id.split("#", 1)[0] != issuer:
        raise _reject(
            CredentialFault.WRONG_ISSUER_KEY,
            f"verification method {method_id} is not a key of the issuer {issuer}",
        )
    try:
        document = resolver(issuer)
    except (InputRejected, LookupError) as exc:
        raise _reject(CredentialFault.UNRESOLVED_ISSUER, f"issuer {issuer} does not resolve: {exc}") from None
    if not isinstance(document, Mapping) or document.get("id") != issuer:
        raise _reject(CredentialFault.UNRESOLVED_ISSUER, f"the DID document resolved for {issuer} is not its own")
    # FIND THE METHOD
    methods = [m for m in _values(document.get("verificationMethod", [])) if isinstance(m, Mapping)]
    assertion = _values(document.get(ASSERTION_METHOD, []))
    for item in assertion:
        if isinstance(item, Mapping):
            methods.append(item)
    found = [m for m in methods if isinstance(m.get("id"), str) and _absolute(m["id"], issuer) == method_id]
    if not found:
        raise _reject(CredentialFault.UNRESOLVED_ISSUER, f"{issuer}'s DID document has no verification method {method_id}")
    method = found[0]
    referenced = {
        _absolute(item if isinstance(item, str) else str(item.get("id")), issuer) for item in assertion
    }
    if method_id not in referenced:
        raise _reject(CredentialFault.WRONG_ISSUER_KEY, f"{method_id} is not an assertionMethod of {issuer}")
    if method.get("controller") != issuer:
        raise _reject(CredentialFault.WRONG_ISSUER_KEY, f"{method_id} is controlled by {method.get('controller')}, not the issuer {issuer}")
    if method.get("type") != "Multikey":
        raise _reject(CredentialFault.WRONG_ISSUER_KEY, f"{method_id} is a {method.get('type')}, not a Multikey")
    try:
        return PublicKey.from_multibase(method.get("publicKeyMultibase"))
    except InputRejected as exc:
        raise _reject(CredentialFault.WRONG_ISSUER_KEY, f"{method_id}: {exc}") from None


def check_validity(credential: Mapping[str, Any], now: datetime, max_clock_skew_s: int = DEFAULT_MAX_CLOCK_SKEW_S) -> None:
    """``CredentialRejected`` when ``now`` is past ``validUntil`` or before ``validFrom``
    (give or take ``max_clock_skew_s``)."""
    skew = timedelta(seconds=max_clock_skew_s)
    if "validUntil" in credential and now - skew > parse_date_time(credential["validUntil"], "validUntil"):
        raise _reject(CredentialFault.EXPIRED, f"expired: validUntil {credential['validUntil']} has passed ({utc_timestamp(now)})")
    if "validFrom" in credential and now + skew < parse_date_time(credential["validFrom"], "validFrom"):
        raise _reject(CredentialFault.NOT_YET_VALID, f"not valid before {credential['validFrom']} ({utc_timestamp(now)})")


def verify(
    document: Any,
    *,
    now: datetime | None = None,
    resolver: Resolver = resolve_offline,
    max_clock_skew_s: int = DEFAULT_MAX_CLOCK_SKEW_S,
    status_check: StatusCheck | None = None,
) -> VerificationResult:
    """Whether ``document`` is a VC 2.0 credential whose one Data Integrity proof verifies,
    made by an assertion key of its issuer, valid at ``now`` (default: the current time).

    A credential with a ``credentialStatus`` verifies only through a ``status_check`` (as in
    the reference libraries): without one its revocation cannot be known. Never raises for a
    bad credential: the result names the fault."""
    if now is not None and now.tzinfo is None:
        raise InputRejected("now must be a timezone-aware datetime (e.g. datetime.now(UTC))")
    facts: dict[str, Any] = {}
    try:
        _verify(document, now or datetime.now(UTC), resolver, max_clock_skew_s, status_check, facts)
    except CredentialRejected as exc:
        return VerificationResult(False, exc.fault, str(exc), **facts)
    return VerificationResult(True, None, "", **facts)


def _verify(
    document: Any,
    now: datetime,
    resolver: Resolver,
    max_clock_skew_s: int,
    status_check: StatusCheck | None,
    facts: dict[str, Any],
) -> None:
    # CREDENTIAL
    check_credential(document)
    facts["issuer"] = issuer = issuer_of(document)
    facts["types"] = credential_types(document)
    # PROOF
    raw_proof = document.get("proof")
    if raw_proof is None:
        raise _reject(CredentialFault.MALFORMED_PROOF, "the credential has no proof (it is not secured)")
    if isinstance(raw_proof, list):
        if len(raw_proof) != 1:
            raise _reject(CredentialFault.MALFORMED_PROOF, f"one proof is verified, the credential has {len(raw_proof)}")
        raw_proof = raw_proof[0]
    try:
        proof = parse_proof(raw_proof)
    except UnsupportedCryptosuite as exc:
        raise _reject(CredentialFault.UNSUPPORTED_CRYPTOSUITE, str(exc)) from None
    except InputRejected as exc:
        raise _reject(CredentialFault.MALFORMED_PROOF, str(exc)) from None
    facts["cryptosuite"] = proof.cryptosuite
    facts["verification_method"] = proof.verification_method
    if proof.proof_purpose != ASSERTION_METHOD:
        raise _reject(CredentialFault.MALFORMED_PROOF, f"proofPurpose must be {ASSERTION_METHOD!r}, got {proof.proof_purpose!r}")
    # KEY
    public_key = issuer_public_key(issuer, proof.verification_method, resolver)
    # SIGNATURE
    unsecured = {key: value for key, value in document.items() if key != "proof"}
    try:
        valid = verify_proof(unsecured, proof, raw_proof, public_key)
    except UnknownContext as exc:
        raise _reject(CredentialFault.UNKNOWN_CONTEXT, str(exc)) from None
    except UndefinedTerm as exc:
        raise _reject(CredentialFault.UNDEFINED_TERM, str(exc)) from None
    except ProofError as exc:
        raise _reject(CredentialFault.WRONG_ISSUER_KEY, str(exc)) from None
    except InputRejected as exc:
        raise _reject(CredentialFault.MALFORMED_CREDENTIAL, str(exc)) from None
    if not valid:
        raise _reject(
            CredentialFault.BAD_SIGNATURE,
            f"the {proof.cryptosuite} proof does not verify under {proof.verification_method}: "
            "the credential was changed after signing, or another key signed it",
        )
    # VALIDITY
    check_validity(document, now, max_clock_skew_s)
    # STATUS
    if "credentialStatus" in document:
        if status_check is None:
            raise _reject(CredentialFault.UNCHECKED_STATUS, "the credential has a credentialStatus and no status check was given")
        status_check(document)


"""W3C Data Integrity proofs: ``eddsa-rdfc-2022`` (Ed25519) and ``ecdsa-rdfc-2019`` (P-256).

Both cryptosuites sign the same thing (Data Integrity EdDSA Cryptosuites v1.0,
ECDSA Cryptosuites v1.0, the RDFC variants):

1. the *proof configuration* is the proof without ``proofValue``, under the
   secured document's ``@context``;
2. the proof configuration and the document without its proof are each
   canonicalised with RDFC-1.0 (``veristream.provers.jsonld.canonize``) and
   hashed with SHA-256;
3. ``hashData = sha256(proofConfig) || sha256(document)``, 64 bytes, is signed:
   by Ed25519 as is, by P-256 ECDSA over SHA-256 of it (``veristream.provers.
   multikey``);
4. ``proofValue`` is the 64-byte signature in multibase base58btc (``z...``).

This module is I/O-free: finding the key of a verification method is the
caller's (``veristream.provers.credentials``). P-256 keys of this suite are
P-256 only (the suite's P-384 variant is not supported).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from veristream.provers.errors import InputRejected
from veristream.provers.jsonld import canonize
from veristream.provers.multibase import multibase_decode, multibase_encode
from veristream.provers.multikey import ED25519, P256, PublicKey, SecretKey

PROOF_TYPE = "DataIntegrityProof"
EDDSA_RDFC_2022 = "eddsa-rdfc-2022"
ECDSA_RDFC_2019 = "ecdsa-rdfc-2019"
CRYPTOSUITES: Mapping[str, str] = {EDDSA_RDFC_2022: ED25519, ECDSA_RDFC_2019: P256}
"""Cryptosuite -> the key scheme it signs with."""
ASSERTION_METHOD = "assertionMethod"

# XML Schema dateTimeStamp: a dateTime with its time zone (what `created`, `validFrom` and
# `validUntil` must be)
DATE_TIME_STAMP = re.compile(
    r"-?([1-9][0-9]{3,}|0[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T(([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?|(24:00:00(\.0+)?))"
    r"(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
)


class ProofError(InputRejected):
    """A proof that is not a well-formed Data Integrity proof of a supported cryptosuite."""


class UnsupportedCryptosuite(ProofError):
    """A Data Integrity proof of a cryptosuite VeriStream does not verify."""


def cryptosuite_for(scheme: str) -> str:
    """The cryptosuite that signs with a key of ``scheme``."""
    for suite, suite_scheme in CRYPTOSUITES.items():
        if suite_scheme == scheme:
            return suite
    raise UnsupportedCryptosuite(f"no supported cryptosuite signs with a {scheme!r} key")


def is_date_time_stamp(value: Any) -> bool:
    """Whether ``value`` is an XML Schema ``dateTimeStamp`` string (a time zone is required)."""
    return isinstance(value, str) and DATE_TIME_STAMP.fullmatch(value) is not None


def parse_date_time(value: Any, what: str) -> datetime:
    """The moment a ``dateTimeStamp`` names; ``InputRejected`` naming ``what`` for anything else,
    including dates the calendar lacks (February 30th) and years outside 0001..9999."""
    if not is_date_time_stamp(value):
        raise InputRejected(f"{what} must be a date-time with a time zone, e.g. 2030-01-01T00:00:00Z, got {value!r}")
    text = value.replace("Z", "+00:00").replace("z", "+00:00")
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise InputRejected(f"{what} {value!r} is not a date VeriStream can compare ({exc})") from None


@dataclass(frozen=True, slots=True)
class ProofOptions:
    """A checked proof: the fields every ``DataIntegrityProof`` of these suites has."""

    cryptosuite: str
    verification_method: str
    proof_purpose: str
    proof_value: bytes
    created: str | None


def parse_proof(proof: Any) -> ProofOptions:
    """``proof`` checked as a Data Integrity proof of a supported cryptosuite."""
    # VALIDATE
    if not isinstance(proof, Mapping):
        raise ProofError(f"proof must be an object, got {type(proof).__name__}")
    if proof.get("type") != PROOF_TYPE:
        raise ProofError(f"proof type must be {PROOF_TYPE!r}, got {proof.get('type')!r}")
    suite = proof.get("cryptosuite")
    if not isinstance(suite, str) or suite not in CRYPTOSUITES:
        raise UnsupportedCryptosuite(
            f"unsupported cryptosuite {suite!r}: only {', '.join(CRYPTOSUITES)} are verified"
        )
    method = proof.get("verificationMethod")
    if not isinstance(method, str) or not method:
        raise ProofError("proof.verificationMethod must be a URL string")
    purpose = proof.get("proofPurpose")
    if not isinstance(purpose, str):
        raise ProofError("proof.proofPurpose is required")
    created = proof.get("created")
    if created is not None and not is_date_time_stamp(created):
        raise ProofError(f"proof.created must be an XML Schema dateTimeStamp, got {created!r}")
    # DECODE
    signature = multibase_decode(proof.get("proofValue"), "proof.proofValue")
    if len(signature) != 64:
        raise ProofError(f"proof.proofValue must be a 64-byte signature, got {len(signature)} bytes")
    return ProofOptions(str(suite), method, purpose, signature, created)


def hash_data(document: Mapping[str, Any], proof: Mapping[str, Any]) -> bytes:
    """``sha256(canonical proof configuration) || sha256(canonical document)`` of an unsecured
    ``document`` and its ``proof`` (any ``proofValue`` in it is left out)."""
    if "@context" not in document:
        raise InputRejected("a secured document needs an @context")
    config = {key: value for key, value in proof.items() if key != "proofValue"}
    config["@context"] = document["@context"]
    config_hash = hashlib.sha256(canonize(config).encode()).digest()
    document_hash = hashlib.sha256(canonize(document).encode()).digest()
    return config_hash + document_hash


def create_proof(
    document: Mapping[str, Any],
    secret_key: SecretKey,
    verification_method: str,
    *,
    cryptosuite: str | None = None,
    created: str | None = None,
    proof_purpose: str = ASSERTION_METHOD,
) -> dict[str, Any]:
    """The ``DataIntegrityProof`` of an unsecured ``document`` by ``secret_key``, naming
    ``verification_method`` as the key that verifies it."""
    # VALIDATE
    suite = cryptosuite or cryptosuite_for(secret_key.scheme)
    if CRYPTOSUITES.get(suite) is None:
        raise UnsupportedCryptosuite(f"unsupported cryptosuite {suite!r}: one of {', '.join(CRYPTOSUITES)}")
    if CRYPTOSUITES[suite] != secret_key.scheme:
        raise InputRejected(f"{suite} signs with a {CRYPTOSUITES[suite]} key, not a {secret_key.scheme} one")
    if "proof" in document:
        raise InputRejected("the document already has a proof: secure the unsecured document")
    if created is not None and not is_date_time_stamp(created):
        raise InputRejected(f"created must be an XML Schema dateTimeStamp, got {created!r}")
    # PROOF CONFIGURATION
    proof: dict[str, Any] = {"type": PROOF_TYPE, "cryptosuite": suite}
    if created is not None:
        proof["created"] = created
    proof["verificationMethod"] = verification_method
    proof["proofPurpose"] = proof_purpose
    # SIGN
    data = hash_data(document, proof)
    signature = secret_key.sign(data)
    if not secret_key.public_key.verify(data, signature):
        raise AssertionError("a fresh signature does not verify")
    proof["proofValue"] = multibase_encode(signature)
    return proof


def verify_proof(document: Mapping[str, Any], proof: ProofOptions, raw_proof: Mapping[str, Any], public_key: PublicKey) -> bool:
    """Whether ``proof`` (parsed from ``raw_proof``) over the unsecured ``document`` verifies
    under ``public_key``; ``ProofError`` when the key cannot sign for the proof's cryptosuite."""
    if CRYPTOSUITES[proof.cryptosuite] != public_key.scheme:
        raise ProofError(
            f"{proof.cryptosuite} needs a {CRYPTOSUITES[proof.cryptosuite]} key, the verification method "
            f"holds a {public_key.scheme} one"
        )
    return public_key.verify(hash_data(document, raw_proof), proof.proof_value)

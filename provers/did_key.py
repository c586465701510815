"""``did:key``: a DID that is its own public key, resolved offline.

``did:key:<publicKeyMultibase>``: ``z6Mk...`` for Ed25519, ``zDn...`` for
P-256 (``veristream.provers.multikey``). Its DID document is derived from the
key alone: one ``Multikey`` verification method ``<did>#<publicKeyMultibase>``
controlled by the DID, referenced by ``authentication``, ``assertionMethod``,
``capabilityInvocation`` and ``capabilityDelegation``. No ``keyAgreement`` is
derived from an Ed25519 key (the method's ``enableEncryptionKeyDerivation``
option, off by default): VeriStream's issuers only sign.
"""

from __future__ import annotations

from typing import Any

from veristream.provers.errors import InputRejected
from veristream.provers.multikey import MULTIKEY_CONTEXT, PublicKey

DID_CONTEXT = "https://www.w3.org/ns/did/v1"
PREFIX = "did:key:"
VERIFICATION_RELATIONSHIPS = (
    "authentication",
    "assertionMethod",
    "capabilityDelegation",
    "capabilityInvocation",
)


def did_key(public_key: PublicKey) -> str:
    """The ``did:key`` of ``public_key``."""
    return PREFIX + public_key.multibase


def verification_method_id(did: str) -> str:
    """The id of the one verification method of a ``did:key``: ``<did>#<publicKeyMultibase>``."""
    public_key_of_did(did)
    return f"{did}#{did[len(PREFIX):]}"


def public_key_of_did(did: str) -> PublicKey:
    """The public key a ``did:key`` (no path, query or fragment) encodes; ``InputRejected`` for
    anything else."""
    if not isinstance(did, str) or not did.startswith(PREFIX):
        raise InputRejected(f"not a did:key: {did!r}")
    body = did[len(PREFIX):]
    if any(char in body for char in "/?#:"):
        raise InputRejected(f"did:key must be did:key:<publicKeyMultibase> with nothing after it, got {did!r}")
    try:
        return PublicKey.from_multibase(body)
    except InputRejected as exc:
        raise InputRejected(f"did:key {did!r}: {exc}") from None


def resolve(did: str) -> dict[str, Any]:
    """The DID document of a ``did:key`` (see the module)."""
    public_key = public_key_of_did(did)
    method_id = f"{did}#{public_key.multibase}"
    document: dict[str, Any] = {
        "@context": [DID_CONTEXT, MULTIKEY_CONTEXT],
        "id": did,
        "verificationMethod": [
            {
                "id": method_id,
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": public_key.multibase,
            }
        ],
    }
    for relationship in VERIFICATION_RELATIONSHIPS:
        document[relationship] = [method_id]
    return document


def dereference(did_url: str) -> dict[str, Any]:
    """What a ``did:key`` URL names: the DID document for a bare DID, the verification method
    (with the Multikey context) for ``<did>#<fragment>``; ``InputRejected`` if the fragment names
    no method of the document."""
    did, _, fragment = did_url.partition("#") if isinstance(did_url, str) else ("", "", "")
    document = resolve(did)
    if not fragment:
        return document
    for method in document["verificationMethod"]:
        if method["id"] == did_url:
            return {"@context": MULTIKEY_CONTEXT, **method}
    raise InputRejected(f"{did_url!r} names no verification method of {did}")

"""``did:ethr`` (ERC-1056): the DIDs of devices, and their documents from the registry's events.

A device's DID is ``did:ethr:<chain id in hex>:<device address>`` (``did:ethr:0x7a69:0xab..``
on chain 31337). The DeviceRegistry is the ERC-1056 registry of its devices (never a chain's
general-purpose one: it owns every DID it registers): it emits
``DIDOwnerChanged``, ``DIDAttributeChanged`` and ``DIDDelegateChanged`` for every change of a
device, each linking to the block of the device's previous change (``previousChange``), and
``changed(device)`` names the latest. The document as of a block and a time is a fold of those
events, as the ERC-1056 resolvers fold them (ethr-did-resolver's ``wrapDidDocument``):

- an attribute or delegate is in the document while its ``validTo`` (seconds) is at or after
  the time asked about; an event with the same name and value replaces the earlier one;
- verification methods are numbered ``#delegate-N`` by every key event up to the block, valid
  or not, and services ``#service-N`` likewise, so a method has the same id in every resolver;
- the identity owner's account is the ``#controller`` method (``EcdsaSecp256k1RecoveryMethod2020``),
  first in ``authentication`` and ``assertionMethod``; an owner of the zero address deactivates
  the DID.

Keys are ``Multikey`` verification methods (``did/pub/Secp256k1|Ed25519|P256/...`` signing keys,
``did/pub/X25519/enc/...`` key-agreement keys), with ``expires`` when their ``validTo`` is not
the registry's "never" (``NO_EXPIRY``). A secp256k1 device registered by its address alone has a
``veriKey`` delegate: an ``EcdsaSecp256k1RecoveryMethod2020`` naming its account
(``blockchainAccountId``), the only form an address takes. The identity owner of a device is
the DeviceRegistry itself, a contract: no ecrecover signature ever names it, so ``#controller``
lets no one sign as the device, and the document agrees with every ERC-1056 resolver's. The
beneficiary, who profits from the device, is not in the document at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from veristream.provers.did_key import DID_CONTEXT
from veristream.provers.errors import InputRejected
from veristream.provers.multibase import (
    multibase_decode,
    multibase_encode,
    multicodec_unwrap,
    multicodec_wrap,
)
from veristream.provers.multikey import MULTIKEY_CONTEXT, PUBLIC_CODECS

PREFIX = "did:ethr:"
RECOVERY_CONTEXT = "https://w3id.org/security/suites/secp256k1recovery-2020/v2"
NO_EXPIRY = (1 << 256) - 1
ZERO_ADDRESS = bytes(20)

OWNER_CHANGED, ATTRIBUTE_CHANGED, DELEGATE_CHANGED = "DIDOwnerChanged", "DIDAttributeChanged", "DIDDelegateChanged"
EVENT_KINDS = (OWNER_CHANGED, ATTRIBUTE_CHANGED, DELEGATE_CHANGED)

# multicodec of each attribute algorithm's public key (the registry emits compressed points)
KEY_CODECS = {
    "Secp256k1": 0xE7,
    "Ed25519": PUBLIC_CODECS["ed25519"],
    "P256": PUBLIC_CODECS["p256"],
    "X25519": 0xEC,
}
KEY_LENGTHS = {"Secp256k1": 33, "Ed25519": 32, "P256": 33, "X25519": 32}
X25519_KEY_AGREEMENT = "did/pub/X25519/enc/base58"
"""The attribute a device's owner publishes its X25519 key-agreement key as."""
ATTRIBUTE_NAME = re.compile(r"^did/(pub|svc)/(\w+)(/(\w+))?(/(\w+))?$")
_DID = re.compile(r"^did:ethr:(?:(0x[0-9a-fA-F]+):)?(0x[0-9a-fA-F]{40})$")


# IDENTIFIERS


@dataclass(frozen=True, slots=True)
class EthrDid:
    """A parsed ``did:ethr``: its chain and its 20-byte address; ``text`` as it was written."""

    chain_id: int
    address: bytes
    text: str

    @property
    def address_hex(self) -> str:
        """The address, lower-case ``0x`` hex."""
        return "0x" + self.address.hex()


def device_did(chain_id: int, address: bytes) -> str:
    """The DID of the identity ``address`` on chain ``chain_id``: ``did:ethr:0x<chain>:0x<address>``."""
    if len(address) != 20 or chain_id <= 0:
        raise InputRejected("a did:ethr names a 20-byte address on a chain with a positive id")
    return f"{PREFIX}{hex(chain_id)}:0x{address.hex()}"


def parse_did(text: str) -> EthrDid:
    """A ``did:ethr:[0x<chain id>:]0x<address>`` (no network: chain 1); ``InputRejected`` for
    anything else (another method, a network name, the public-key form, a path or fragment)."""
    if not isinstance(text, str) or not text.startswith(PREFIX):
        raise InputRejected(f"not a did:ethr: {text!r}")
    match = _DID.match(text)
    if match is None:
        raise InputRejected(
            f"{text!r} is not did:ethr:0x<chain id>:0x<40 hex digits> (a device's DID, as `veristream device show` prints it)"
        )
    chain, address = match.groups()
    chain_id = 1 if chain is None else int(chain, 16)
    if chain_id == 0:
        raise InputRejected(f"{text!r}: chain id 0 names no chain")
    return EthrDid(chain_id, bytes.fromhex(address[2:]), text)


# EVENTS


@dataclass(frozen=True, slots=True)
class DidEvent:
    """One ERC-1056 event of an identity, as emitted.

    ``DIDOwnerChanged`` carries ``owner``; ``DIDAttributeChanged`` ``name`` (the bytes32 as
    text), ``value`` and ``valid_to``; ``DIDDelegateChanged`` ``name`` (the delegate type),
    ``delegate`` and ``valid_to``. ``previous_change`` is the block of the identity's change
    before this one (0: none; this event's own block when an earlier event of it shares it).
    """

    kind: str
    block: int
    log_index: int
    previous_change: int
    owner: bytes | None = None
    name: str | None = None
    value: bytes | None = None
    delegate: bytes | None = None
    valid_to: int = 0


def bytes32_text(word: bytes) -> str | None:
    """An ERC-1056 name (bytes32) as text: UTF-8 without its trailing zero bytes; None when it is
    not UTF-8 (not a DID attribute, as resolvers skip it)."""
    try:
        return word.rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError:
        return None


def previous_block(events: Iterable[DidEvent], block: int) -> int:
    """The block the identity changed in before ``block``, from the events of ``block``: the
    earliest ``previous_change`` below it (0: none), as resolvers walk the links."""
    links = [e.previous_change for e in events if 0 < e.previous_change < block]
    return min(links, default=0)


# THE DOCUMENT


@dataclass(frozen=True, slots=True)
class DidResolution:
    """A DID document as of ``block`` and time ``now`` (seconds), with its versions: ``version_id``
    the block of the latest event folded (0: none), ``next_version_id`` the first block after
    ``block`` that changed it (None: none yet)."""

    document: dict[str, Any]
    deactivated: bool
    version_id: int
    next_version_id: int | None


def _xsd_datetime(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _multikey(method_id: str, did: str, algorithm: str, key: bytes, valid_to: int) -> dict[str, Any] | None:
    """A ``Multikey`` verification method, None for a key this document cannot state."""
    codec, length = KEY_CODECS.get(algorithm), KEY_LENGTHS.get(algorithm)
    if codec is None or len(key) != length:
        return None
    method: dict[str, Any] = {
        "id": method_id,
        "type": "Multikey",
        "controller": did,
        "publicKeyMultibase": multibase_encode(multicodec_wrap(codec, key)),
    }
    if valid_to != NO_EXPIRY:
        # valid through second valid_to: not to be used from the next one on
        method["expires"] = _xsd_datetime(valid_to + 1)
    return method


def did_document(did: EthrDid, events: Iterable[DidEvent], *, block: int, now: int) -> DidResolution:
    """The DID document of ``did`` as of the end of ``block`` at time ``now`` (seconds), folded
    from its ERC-1056 events (see the module); ``events`` in chain order, any blocks."""
    # STATE of the fold, keyed as resolvers key it: (event, name or type, value or delegate)
    methods: dict[tuple[str, str, bytes], dict[str, Any]] = {}
    assertion: dict[tuple[str, str, bytes], str] = {}
    authentication: dict[tuple[str, str, bytes], str] = {}
    agreement: dict[tuple[str, str, bytes], str] = {}
    services: dict[tuple[str, str, bytes], dict[str, Any]] = {}
    owner, deactivated = did.address, False
    delegates = service_count = version_id = 0
    next_version_id: int | None = None

    # FOLD
    for event in events:
        if event.block > block:
            next_version_id = event.block if next_version_id is None else min(next_version_id, event.block)
            continue
        version_id = max(version_id, event.block)
        if event.kind == OWNER_CHANGED:
            assert event.owner is not None
            owner = event.owner
            if owner == ZERO_ADDRESS:
                deactivated = True
                break
            continue
        name = event.name or ""
        subject = event.delegate if event.kind == DELEGATE_CHANGED else event.value
        key = (event.kind, name, subject or b"")
        if not (event.valid_to and event.valid_to >= now):
            # expired or revoked: still counted, so later ids stay those of every resolver
            if event.kind == DELEGATE_CHANGED or name.startswith("did/pub/"):
                delegates += 1
            elif name.startswith("did/svc/"):
                service_count += 1
            for table in (methods, assertion, authentication, agreement, services):
                table.pop(key, None)
            continue
        if event.kind == DELEGATE_CHANGED:
            delegates += 1
            if name in ("veriKey", "sigAuth") and event.delegate is not None:
                method_id = f"{did.text}#delegate-{delegates}"
                methods[key] = {
                    "id": method_id,
                    "type": "EcdsaSecp256k1RecoveryMethod2020",
                    "controller": did.text,
                    "blockchainAccountId": f"eip155:{did.chain_id}:0x{event.delegate.hex()}",
                }
                assertion[key] = method_id
                if name == "sigAuth":
                    authentication[key] = method_id
            continue
        match = ATTRIBUTE_NAME.match(name)
        if match is None or event.value is None:
            continue
        section, algorithm, purpose = match.group(1), match.group(2), match.group(4)
        if section == "pub":
            delegates += 1
            method_id = f"{did.text}#delegate-{delegates}"
            method = _multikey(method_id, did.text, algorithm, event.value, event.valid_to)
            if method is None:
                continue
            methods[key] = method
            if purpose == "enc":
                agreement[key] = method_id
            else:
                assertion[key] = method_id
                if purpose == "sigAuth":
                    authentication[key] = method_id
        else:
            service_count += 1
            services[key] = {
                "id": f"{did.text}#service-{service_count}",
                "type": algorithm,
                "serviceEndpoint": _endpoint(event.value),
            }

    # DOCUMENT
    document: dict[str, Any] = {"@context": [DID_CONTEXT, MULTIKEY_CONTEXT], "id": did.text}
    if deactivated:
        return DidResolution(document, True, version_id, next_version_id)
    document["@context"].append(RECOVERY_CONTEXT)
    controller_id = f"{did.text}#controller"
    controller = {
        "id": controller_id,
        "type": "EcdsaSecp256k1RecoveryMethod2020",
        "controller": did.text,
        "blockchainAccountId": f"eip155:{did.chain_id}:0x{owner.hex()}",
    }
    document["verificationMethod"] = [controller, *methods.values()]
    document["authentication"] = [controller_id, *authentication.values()]
    document["assertionMethod"] = [controller_id, *assertion.values()]
    if agreement:
        document["keyAgreement"] = list(agreement.values())
    if services:
        document["service"] = list(services.values())
    return DidResolution(document, False, version_id, next_version_id)


def _endpoint(value: bytes) -> Any:
    """A service endpoint as resolvers read it: JSON when it parses, else the text."""
    text = value.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def multikey_bytes(method: dict[str, Any]) -> tuple[int, bytes]:
    """``(multicodec, key)`` of a ``Multikey`` verification method."""
    text = method.get("publicKeyMultibase")
    if method.get("type") != "Multikey" or not isinstance(text, str):
        raise InputRejected(f"not a Multikey verification method: {method!r}")
    return multicodec_unwrap(multibase_decode(text, "publicKeyMultibase"))

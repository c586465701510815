"""The DeviceRegistry: device keys with their validity windows, beneficiaries, managers, revocation.

Every function takes the ``Chain`` and the ``Deployment``; reverts surface as
``ContractRevert`` carrying the Solidity custom error's name.

A device's keys are numbered from 1; key ``v`` signs the readings stamped in
``[effective_from, effective_until)`` (milliseconds; ``effective_until`` None for
the current key). Rotation is done by the registry owner or a manager
(``rotate_device_key``), or, for a secp256k1 device, by its beneficiary with an
authorization signed by the device's current key (``sign_key_rotation``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from veristream.contracts.chain import Chain, Receipt
from veristream.contracts.deploy import Deployment, checksum_address, contract
from veristream.provers.did_ethr import (
    ATTRIBUTE_CHANGED,
    DELEGATE_CHANGED,
    OWNER_CHANGED,
    DidEvent,
    bytes32_text,
    previous_block,
)
from veristream.provers.encoding import (
    address_word,
    eip712_digest,
    eip712_domain_separator,
    eip712_type_hash,
    keccak256,
    parse_address,
    uint_word,
)
from veristream.provers.errors import ChainError, InputRejected
from veristream.provers.readings import Domain
from veristream.provers.schemes import secp256k1

DEVICE_SCHEMES = {"secp256k1": 1, "ed25519": 2, "p256": 3}
_SCHEME_NAMES = {number: name for name, number in DEVICE_SCHEMES.items()}

KEY_ROTATION_TYPE = "KeyRotation(address device,uint8 scheme,bytes32 publicKeyHash,uint32 keyVersion)"
KEY_ROTATION_TYPE_HASH = eip712_type_hash(KEY_ROTATION_TYPE)


@dataclass(frozen=True, slots=True)
class DeviceKey:
    """One key of a device and the reading timestamps (ms) it signs for: ``[effective_from,
    effective_until)``, ``effective_until`` None while it is the current key."""

    version: int
    scheme: str
    public_key: bytes
    signer: str  # secp256k1: the address signatures recover to; else the zero address
    effective_from: int
    effective_until: int | None


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A device's record in the DeviceRegistry: the current key's fields and every key, oldest first."""

    device: str
    owner: str
    scheme: str
    key_version: int
    revoked_from: int
    signer: str
    public_key: bytes
    keys: tuple[DeviceKey, ...] = ()


def _device_scheme(scheme: str) -> int:
    try:
        return DEVICE_SCHEMES[scheme]
    except KeyError:
        raise InputRejected(f"device scheme must be one of {sorted(DEVICE_SCHEMES)}, got {scheme!r}") from None


def _device_key(version: int, record: Any) -> DeviceKey:
    """A ``DeviceKey`` from the contract's ``(signer, scheme, effectiveFrom, effectiveUntil, publicKey)``."""
    signer, scheme, effective_from, effective_until, public_key = record
    return DeviceKey(
        version=version,
        scheme=_SCHEME_NAMES.get(int(scheme), str(scheme)),
        public_key=bytes(public_key),
        signer=str(signer),
        effective_from=int(effective_from),
        effective_until=int(effective_until) or None,
    )


# KEY-ROTATION AUTHORIZATION


def key_rotation_digest(domain: Domain, device: str, scheme: str, public_key: bytes, key_version: int) -> bytes:
    """The EIP-712 digest of ``KeyRotation(device, scheme, keccak256(public_key), key_version)``
    under the DeviceRegistry's domain (``domain.verifying_contract`` is the registry):
    what a device's current secp256k1 key signs to let its beneficiary install ``public_key``
    as key version ``key_version`` (the current version + 1)."""
    struct_hash = keccak256(
        KEY_ROTATION_TYPE_HASH
        + address_word(parse_address(device))
        + uint_word(_device_scheme(scheme), 8)
        + keccak256(public_key)
        + uint_word(key_version, 32)
    )
    separator = eip712_domain_separator(domain.name, domain.version, domain.chain_id, domain.verifying_contract)
    return eip712_digest(separator, struct_hash)


def sign_key_rotation(
    private_key: bytes, domain: Domain, device: str, scheme: str, public_key: bytes, key_version: int
) -> bytes:
    """The 65-byte authorization (r||s||v) of ``key_rotation_digest`` by a device's current
    secp256k1 ``private_key``, for ``rotate_device_key(..., authorization=...)``."""
    return secp256k1.sign(key_rotation_digest(domain, device, scheme, public_key, key_version), private_key)


# TRANSACTIONS


def register_device(
    chain: Chain, dep: Deployment, device: str, owner: str, scheme: str = "secp256k1", public_key: bytes = b""
) -> Receipt:
    """Registers a device id with its beneficiary and first key, in force from timestamp 0
    (registry owner only)."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return chain.transact(
        registry.functions.registerDevice(checksum_address(device), checksum_address(owner), _device_scheme(scheme), public_key)
    )


def rotate_device_key(
    chain: Chain,
    dep: Deployment,
    device: str,
    scheme: str,
    public_key: bytes,
    *,
    sender: str | None = None,
    authorization: bytes | None = None,
) -> Receipt:
    """Ends the device's current key and starts ``public_key`` at the block's time, keeping the id.

    Without ``authorization`` the sender must be the registry owner or a manager; with it
    (``sign_key_rotation`` by the device's current secp256k1 key) the device's beneficiary may
    send it too.
    """
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    address, number = checksum_address(device), _device_scheme(scheme)
    if authorization is None:
        return chain.transact(registry.functions.rotateKey(address, number, public_key), sender=sender)
    return chain.transact(
        registry.functions.rotateKeyWithAuthorization(address, number, public_key, authorization), sender=sender
    )


def set_manager(
    chain: Chain, dep: Deployment, account: str, enabled: bool = True, *, sender: str | None = None
) -> Receipt:
    """Grants (or withdraws) the manager role: rotating any device's key (registry owner only)."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return chain.transact(registry.functions.setManager(checksum_address(account), enabled), sender=sender)


def revoke_device(
    chain: Chain, dep: Deployment, device: str, revoked_from_ms: int, *, sender: str | None = None
) -> Receipt:
    """Revokes a device for readings stamped at or after ``revoked_from_ms`` (its beneficiary,
    a manager or the registry owner)."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return chain.transact(registry.functions.revokeDevice(checksum_address(device), revoked_from_ms), sender=sender)


def set_device_owner(
    chain: Chain, dep: Deployment, device: str, owner: str, *, sender: str | None = None
) -> Receipt:
    """Changes a device's beneficiary (the beneficiary, a manager or the registry owner)."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return chain.transact(registry.functions.setDeviceOwner(checksum_address(device), checksum_address(owner)), sender=sender)


def _bytes32_name(name: str) -> bytes:
    encoded = name.encode()
    if len(encoded) > 32:
        raise InputRejected(f"an ERC-1056 attribute name is at most 32 bytes, got {name!r}")
    return encoded.ljust(32, b"\x00")


def set_did_attribute(
    chain: Chain, dep: Deployment, device: str, name: str, value: bytes, validity_s: int, *, sender: str | None = None
) -> Receipt:
    """Publishes attribute ``name`` = ``value`` of the device's DID for ``validity_s`` seconds
    (the device's owner, a manager or the registry owner): a key-agreement key
    (``did/pub/X25519/enc/base58``, 32 bytes) or a service (``did/svc/<type>``)."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return chain.transact(
        registry.functions.setAttribute(checksum_address(device), _bytes32_name(name), value, validity_s), sender=sender
    )


def revoke_did_attribute(
    chain: Chain, dep: Deployment, device: str, name: str, value: bytes, *, sender: str | None = None
) -> Receipt:
    """Revokes attribute ``name`` = ``value`` of the device's DID (as ``set_did_attribute``)."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return chain.transact(
        registry.functions.revokeAttribute(checksum_address(device), _bytes32_name(name), value), sender=sender
    )


# VIEWS


def registry_deployment(chain: Chain, address: str) -> Deployment:
    """The ``Deployment`` the functions of this module take, for a DeviceRegistry known only by
    its ``address`` (a job's ``devices.address``): they read no other field, which stay zero.
    ``InputRejected`` when no contract is deployed there."""
    registry = checksum_address(address)
    if not bytes(chain.w3.eth.get_code(registry)):
        raise InputRejected(f"no contract is deployed at {registry} on chain {chain.chain_id}")
    zero = "0x" + "00" * 20
    return Deployment(
        chain_id=int(chain.chain_id),
        operator_registry=zero,
        epoch_verifier=zero,
        reward_distributor=zero,
        device_registry=registry,
        reward_token=None,
        activation_delay=0,
        deployer=zero,
    )


def deployment_block(chain: Chain, dep: Deployment) -> int:
    """The block the DeviceRegistry was deployed in: the first with its code (a binary search
    over past states); 0 when the node keeps no past state to search (not an archive node)."""
    registry = checksum_address(dep.device_registry)
    low, high = 0, int(chain.w3.eth.block_number)
    try:
        while low < high:
            middle = (low + high) // 2
            if bytes(chain.w3.eth.get_code(registry, block_identifier=middle)):
                high = middle
            else:
                low = middle + 1
    except Exception:
        # a pruned node cannot answer for old blocks: reading the events from genesis is slower, not wrong
        return 0
    return low


def is_manager(chain: Chain, dep: Deployment, account: str) -> bool:
    """Whether ``account`` holds the registry's manager role."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return bool(chain.call(registry.functions.isManager(checksum_address(account))))


def device_info(chain: Chain, dep: Deployment, device: str) -> DeviceInfo:
    """A device's record with its key history; ``ContractRevert("UnknownDevice")`` when it is
    not registered."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    address = checksum_address(device)
    owner, scheme, version, revoked, signer, key = chain.call(registry.functions.deviceOf(address))
    history = chain.call(registry.functions.keyHistory(address))
    return DeviceInfo(
        device=address,
        owner=str(owner),
        scheme=_SCHEME_NAMES.get(int(scheme), str(scheme)),
        key_version=int(version),
        revoked_from=int(revoked),
        signer=str(signer),
        public_key=bytes(key),
        keys=tuple(_device_key(index + 1, record) for index, record in enumerate(history)),
    )


def device_key_at(chain: Chain, dep: Deployment, device: str, timestamp_ms: int) -> DeviceKey:
    """The key in force for a reading of ``device`` stamped ``timestamp_ms`` (``keyAt``)."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    version, record = chain.call(registry.functions.keyAt(checksum_address(device), timestamp_ms))
    return _device_key(int(version), record)


@dataclass(frozen=True, slots=True)
class DeviceChange:
    """One DeviceRegistry event about a device, for a pipeline following the registry.

    ``DeviceKeyRotated`` carries ``keyVersion`` and ``effectiveFrom``: the new key signs from
    then, and the previous key's window ends there.
    """

    kind: str  # DeviceRegistered | DeviceKeyRotated | DeviceOwnerChanged | DeviceRevoked
    device: str
    block_number: int
    log_index: int
    args: dict[str, Any]


DEVICE_EVENTS = ("DeviceRegistered", "DeviceKeyRotated", "DeviceOwnerChanged", "DeviceRevoked")


def device_changes(
    chain: Chain, dep: Deployment, *, from_block: int = 0, to_block: int | str = "latest"
) -> list[DeviceChange]:
    """Every device event of the DeviceRegistry in the block range, in chain order
    (``ManagerSet`` names no device and is not among them)."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    changes: list[DeviceChange] = []
    for kind in DEVICE_EVENTS:
        for log in getattr(registry.events, kind).get_logs(from_block=from_block, to_block=to_block):
            args = {
                k: (bytes(v) if isinstance(v, bytes | bytearray) else v) for k, v in dict(log["args"]).items()
            }
            changes.append(
                DeviceChange(kind, str(args["device"]), int(log["blockNumber"]), int(log["logIndex"]), args)
            )
    changes.sort(key=lambda c: (c.block_number, c.log_index))
    return changes


def reading_digest(
    chain: Chain, dep: Deployment, device: str, seq: int, timestamp: int, payload_hash: bytes
) -> bytes:
    """The EIP-712 reading digest as the DeviceRegistry computes it."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return bytes(chain.call(registry.functions.readingDigest(checksum_address(device), seq, timestamp, payload_hash)))


def check_reading_signature(
    chain: Chain,
    dep: Deployment,
    device: str,
    seq: int,
    timestamp: int,
    payload_hash: bytes,
    signature: bytes,
) -> bool:
    """Whether the registry accepts a secp256k1 reading signature (key, status, low s)."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return bool(
        chain.call(
            registry.functions.verifyReadingSignature(checksum_address(device), seq, timestamp, payload_hash, signature)
        )
    )


# DID (ERC-1056) VIEWS


DID_EVENT_SIGNATURES = {
    OWNER_CHANGED: "DIDOwnerChanged(address,address,uint256)",
    ATTRIBUTE_CHANGED: "DIDAttributeChanged(address,bytes32,bytes,uint256,uint256)",
    DELEGATE_CHANGED: "DIDDelegateChanged(address,bytes32,address,uint256,uint256)",
}
_DID_TOPICS = {"0x" + keccak256(sig.encode()).hex(): kind for kind, sig in DID_EVENT_SIGNATURES.items()}


def last_did_change(chain: Chain, dep: Deployment, identity: str) -> int:
    """``changed(identity)``: the block of the identity's latest DID event (0: none)."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return int(chain.call(registry.functions.changed(checksum_address(identity))))


def did_events(chain: Chain, dep: Deployment, identity: str) -> list[DidEvent]:
    """Every ERC-1056 event of ``identity`` in chain order, found as a did:ethr resolver finds
    them: from ``changed(identity)`` back through each event's ``previousChange``, one block's
    logs at a time (no scan from the deployment block)."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    identity_topic = "0x" + address_word(parse_address(identity)).hex()
    handlers = {topic: getattr(registry.events, kind)() for topic, kind in _DID_TOPICS.items()}
    history: list[DidEvent] = []
    block = last_did_change(chain, dep, identity)
    while block:
        logs = chain.w3.eth.get_logs(
            {
                "address": registry.address,
                "fromBlock": block,
                "toBlock": block,
                "topics": [list(_DID_TOPICS), identity_topic],
            }
        )
        found = [_did_event(handlers["0x" + bytes(log["topics"][0]).hex()].process_log(log)) for log in logs]
        if not found:
            raise ChainError(
                f"the DeviceRegistry's changes of {identity} link to block {block}, but the node returns no "
                "logs there: it keeps no logs that old (use a node with the chain's full log history)"
            )
        found.sort(key=lambda e: e.log_index)
        history[:0] = found
        block = previous_block(found, block)
    return history


def _did_event(log: Any) -> DidEvent:
    """A decoded ERC-1056 log as a ``DidEvent``."""
    args = dict(log["args"])
    kind = str(log["event"])
    common = {
        "kind": kind,
        "block": int(log["blockNumber"]),
        "log_index": int(log["logIndex"]),
        "previous_change": int(args["previousChange"]),
    }
    if kind == OWNER_CHANGED:
        return DidEvent(**common, owner=parse_address(args["owner"]))
    if kind == ATTRIBUTE_CHANGED:
        return DidEvent(
            **common, name=bytes32_text(bytes(args["name"])), value=bytes(args["value"]), valid_to=int(args["validTo"])
        )
    return DidEvent(
        **common,
        name=bytes32_text(bytes(args["delegateType"])),
        delegate=parse_address(args["delegate"]),
        valid_to=int(args["validTo"]),
    )

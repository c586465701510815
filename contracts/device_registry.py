"""The DeviceRegistry: device keys with their history, owners and revocation.

Every function takes the ``Chain`` and the ``Deployment``; reverts surface as
``ContractRevert`` carrying the Solidity custom error's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from veristream.contracts.chain import Chain, Receipt
from veristream.contracts.deploy import Deployment, checksum_address, contract
from veristream.provers.errors import InputRejected

DEVICE_SCHEMES = {"secp256k1": 1, "ed25519": 2, "p256": 3}


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A device's record in the DeviceRegistry."""

    device: str
    owner: str
    scheme: str
    key_version: int
    revoked_from: int
    signer: str
    public_key: bytes


def _device_scheme(scheme: str) -> int:
    try:
        return DEVICE_SCHEMES[scheme]
    except KeyError:
        raise InputRejected(f"device scheme must be one of {sorted(DEVICE_SCHEMES)}, got {scheme!r}") from None


def register_device(
    chain: Chain, dep: Deployment, device: str, owner: str, scheme: str = "secp256k1", public_key: bytes = b""
) -> Receipt:
    """Registers a device id with its beneficiary and key (registry owner only)."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return chain.transact(
        registry.functions.registerDevice(checksum_address(device), checksum_address(owner), _device_scheme(scheme), public_key)
    )


def rotate_device_key(
    chain: Chain, dep: Deployment, device: str, scheme: str, public_key: bytes, *, sender: str | None = None
) -> Receipt:
    """Replaces a device's key, keeping its id (device owner or registry owner)."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return chain.transact(
        registry.functions.rotateKey(checksum_address(device), _device_scheme(scheme), public_key), sender=sender
    )


def revoke_device(
    chain: Chain, dep: Deployment, device: str, revoked_from_ms: int, *, sender: str | None = None
) -> Receipt:
    """Revokes a device for readings stamped at or after ``revoked_from_ms``."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return chain.transact(registry.functions.revokeDevice(checksum_address(device), revoked_from_ms), sender=sender)


def set_device_owner(
    chain: Chain, dep: Deployment, device: str, owner: str, *, sender: str | None = None
) -> Receipt:
    """Changes a device's beneficiary."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return chain.transact(registry.functions.setDeviceOwner(checksum_address(device), checksum_address(owner)), sender=sender)


def device_info(chain: Chain, dep: Deployment, device: str) -> DeviceInfo:
    """A device's record; ``ContractRevert("UnknownDevice")`` when it is not registered."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    owner, scheme, version, revoked, signer, key = chain.call(registry.functions.deviceOf(checksum_address(device)))
    names = {v: k for k, v in DEVICE_SCHEMES.items()}
    return DeviceInfo(
        device=checksum_address(device),
        owner=str(owner),
        scheme=names.get(int(scheme), str(scheme)),
        key_version=int(version),
        revoked_from=int(revoked),
        signer=str(signer),
        public_key=bytes(key),
    )


@dataclass(frozen=True, slots=True)
class DeviceChange:
    """One DeviceRegistry event, for a pipeline following the registry."""

    kind: str  # DeviceRegistered | DeviceKeyRotated | DeviceOwnerChanged | DeviceRevoked
    device: str
    block_number: int
    log_index: int
    args: dict[str, Any]


DEVICE_EVENTS = ("DeviceRegistered", "DeviceKeyRotated", "DeviceOwnerChanged", "DeviceRevoked")


def device_changes(
    chain: Chain, dep: Deployment, *, from_block: int = 0, to_block: int | str = "latest"
) -> list[DeviceChange]:
    """Every DeviceRegistry event in the block range, in chain order."""
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

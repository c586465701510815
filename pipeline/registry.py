"""The device registry as the pipeline sees it: keys, schemes, beneficiaries, revocations.

Embedded mode reads a JSON file (the simulator writes one); at scale the same
view is read from the on-chain DeviceRegistry. Each device has a 20-byte
address: for secp256k1 devices it is the device id itself (the signer's
Ethereum address); other ids map to ``keccak256(utf8(device_id))[12:]`` so the
data root's ``address`` leaf field is defined for every scheme.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veristream.provers.encoding import keccak256, parse_address
from veristream.provers.errors import InputRejected


def device_address(device_id: str) -> bytes:
    """The 20-byte address standing for ``device_id`` in the data root."""
    try:
        return parse_address(device_id)
    except ValueError:
        return keccak256(device_id.encode())[12:]


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One registered device."""

    device_id: str
    scheme: str
    public_key: bytes
    beneficiary: bytes
    revoked_at_ms: int | None = None

    def revoked_at(self, timestamp_ms: int) -> bool:
        """Whether a reading stamped ``timestamp_ms`` comes after the device's revocation."""
        return self.revoked_at_ms is not None and timestamp_ms >= self.revoked_at_ms


@dataclass(frozen=True, slots=True)
class DeviceRegistryView:
    """All devices of a job, by id."""

    devices: Mapping[str, DeviceInfo]

    def keys(self) -> dict[str, bytes]:
        """Public keys by device id, as ``verify_many`` takes them."""
        return {d: info.public_key for d, info in self.devices.items()}

    def get(self, device_id: str) -> DeviceInfo | None:
        """The device, or None when it is not registered."""
        return self.devices.get(device_id)


def _hex(value: Any, field: str) -> bytes:
    if not isinstance(value, str):
        raise InputRejected(f"{field} must be a hex string")
    text = value[2:] if value.startswith(("0x", "0X")) else value
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise InputRejected(f"{field} is not hex: {value!r}") from None


def parse_device(entry: Mapping[str, Any], index: int) -> DeviceInfo:
    """One registry entry; ``ValueError`` naming the entry and field otherwise."""
    where = f"devices[{index}]"
    if not isinstance(entry, Mapping):
        raise InputRejected(f"{where} must be an object")
    device_id = entry.get("device_id")
    if not isinstance(device_id, str) or not device_id:
        raise InputRejected(f"{where}.device_id must be a non-empty string")
    # verify_many looks keys up by lower-case id; one spelling everywhere keeps sorting stable
    device_id = device_id.lower()
    scheme = entry.get("scheme", "secp256k1")
    if not isinstance(scheme, str):
        raise InputRejected(f"{where}.scheme must be a string")
    public_key = _hex(entry.get("public_key"), f"{where}.public_key")
    beneficiary_text = entry.get("beneficiary") or entry.get("owner")
    beneficiary = (
        parse_address(beneficiary_text) if beneficiary_text else device_address(device_id)
    )
    revoked = entry.get("revoked_at_ms")
    if revoked is not None and (isinstance(revoked, bool) or not isinstance(revoked, int) or revoked < 0):
        raise InputRejected(f"{where}.revoked_at_ms must be a non-negative integer")
    return DeviceInfo(device_id, scheme, public_key, beneficiary, revoked)


def parse_registry(data: Any) -> DeviceRegistryView:
    """A registry from its JSON form: ``{"devices": [...]}`` or a bare list of entries."""
    entries = data.get("devices") if isinstance(data, Mapping) else data
    if not isinstance(entries, list):
        raise InputRejected("a device registry is a list of devices or {'devices': [...]}")
    devices: dict[str, DeviceInfo] = {}
    for index, entry in enumerate(entries):
        info = parse_device(entry, index)
        if info.device_id in devices:
            raise InputRejected(f"devices[{index}].device_id {info.device_id!r} is registered twice")
        devices[info.device_id] = info
    return DeviceRegistryView(devices)


def load_registry(path: str | Path) -> DeviceRegistryView:
    """Read a registry file (JSON); ``ValueError`` with the problem otherwise."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise InputRejected(f"cannot read device registry {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise InputRejected(f"device registry {path} is not JSON: {error}") from None
    return parse_registry(data)

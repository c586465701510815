"""Devices on the job's chain: the DeviceRegistry a job names by ``devices.address``.

``chain_devices`` is how the run, the live loop, operators and the auditor read the registry
(``veristream.pipeline.device_view``: its events cached in the work directory, views as of any
block). ``register``, ``rotate``, ``revoke``, ``key_agreement`` and ``show`` are
``veristream device ...``: they send from (or read as) the chain's sender, the registry's owner
on a chain a run deployed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

from veristream.chain import connect_job_chain
from veristream.contracts import (
    ContractRevert,
    DeviceChange,
    device_changes,
    device_info,
    register_device,
    revoke_device,
    rotate_device_key,
)
from veristream.contracts.chain import Chain, Receipt
from veristream.contracts.deploy import Deployment, checksum_address
from veristream.contracts.device_registry import (
    DEVICE_SCHEMES,
    deployment_block,
    registry_deployment,
    revoke_did_attribute,
    set_did_attribute,
)
from veristream.pipeline.device_view import (
    OWNER_CHANGED,
    REGISTERED,
    REVOKED,
    ROTATED,
    ChainDevices,
    RegistryEvent,
)
from veristream.pipeline.jobspec import JobSpec
from veristream.provers.did_ethr import X25519_KEY_AGREEMENT, device_did
from veristream.provers.encoding import parse_address
from veristream.provers.errors import InputRejected

_SCHEME_NAMES = {number: name for name, number in DEVICE_SCHEMES.items()}


# READING THE REGISTRY FOR THE PIPELINE


class ChainRegistryReader:
    """The pipeline's ``RegistryReader`` over a connected chain and the DeviceRegistry on it."""

    def __init__(self, chain: Chain, dep: Deployment) -> None:
        self._chain = chain
        self._dep = dep

    @property
    def chain_id(self) -> int:
        """The chain's id."""
        return int(self._chain.chain_id)

    def head(self) -> int:
        """The latest block's number."""
        return int(self._chain.w3.eth.block_number)

    def block_hash(self, number: int) -> bytes:
        """The hash of block ``number``."""
        return bytes(self._chain.w3.eth.get_block(number)["hash"])

    def first_block(self) -> int:
        """The block the registry was deployed in."""
        return deployment_block(self._chain, self._dep)

    def events(self, from_block: int, to_block: int) -> Sequence[RegistryEvent]:
        """The registry's device events of the blocks, in chain order."""
        return [registry_event(c) for c in device_changes(self._chain, self._dep, from_block=from_block, to_block=to_block)]


def registry_event(change: DeviceChange) -> RegistryEvent:
    """A DeviceRegistry event as the pipeline's view folds it."""
    args = change.args
    common = {
        "kind": change.kind,
        "device": "0x" + parse_address(change.device).hex(),
        "block": change.block_number,
        "log_index": change.log_index,
    }
    if change.kind == REGISTERED:
        return RegistryEvent(
            **common,
            scheme=_scheme_name(args["scheme"]),
            public_key=bytes(args["publicKey"]),
            owner=parse_address(args["owner"]),
        )
    if change.kind == ROTATED:
        return RegistryEvent(
            **common,
            scheme=_scheme_name(args["scheme"]),
            public_key=bytes(args["publicKey"]),
            effective_from_ms=int(args["effectiveFrom"]),
        )
    if change.kind == OWNER_CHANGED:
        return RegistryEvent(**common, owner=parse_address(args["newOwner"]))
    if change.kind == REVOKED:
        return RegistryEvent(**common, revoked_from_ms=int(args["revokedFrom"]))
    raise InputRejected(f"not a device event: {change.kind}")


def _scheme_name(number: Any) -> str:
    # an unknown number stays visible as itself: the readings' checks then refuse it
    return _SCHEME_NAMES.get(int(number), str(number))


@contextlib.contextmanager
def _job_reader(job: JobSpec, address: str) -> Iterator[ChainRegistryReader]:
    chain = connect_job_chain(job)
    try:
        yield ChainRegistryReader(chain, registry_deployment(chain, address))
    finally:
        chain.close()


@contextlib.contextmanager
def _lent_reader(chain: Chain, address: str) -> Iterator[ChainRegistryReader]:
    yield ChainRegistryReader(chain, registry_deployment(chain, address))


def chain_devices(job: JobSpec, chain: Chain | None = None) -> ChainDevices | None:
    """The job's on-chain device registry (``devices.address``) for ``job_context``, None for a
    registry file. It connects to the job's chain when it must read blocks it has not cached,
    or reads through ``chain`` when the caller holds the connection (an embedded chain opens
    in one place at a time)."""
    address = job.devices.address
    if address is None:
        return None
    connect = partial(_job_reader, job, address) if chain is None else partial(_lent_reader, chain, address)
    return ChainDevices(address, job.work_dir, connect)


# THE COMMANDS


@contextlib.contextmanager
def _registry(job: JobSpec) -> Iterator[tuple[Chain, Deployment]]:
    """The job's chain and its DeviceRegistry, closed (and saved) afterwards."""
    if job.devices.address is None:
        raise InputRejected(
            f"job {job.job_id!r} reads its devices from a file (devices.file): `veristream device` "
            "manages the DeviceRegistry a job names by devices.address"
        )
    chain = connect_job_chain(job)
    try:
        yield chain, registry_deployment(chain, job.devices.address)
    finally:
        chain.close()


def _public_key(text: str | None) -> bytes:
    if not text:
        return b""
    try:
        return bytes.fromhex(text.removeprefix("0x").removeprefix("0X"))
    except ValueError:
        raise InputRejected(f"--public-key is not hex: {text!r}") from None


def _address(text: str, option: str) -> str:
    try:
        return checksum_address(text)
    except ValueError:
        raise InputRejected(f"{option} must be a 0x-prefixed 20-byte address, got {text!r}") from None


def _sent(receipt: Receipt, device: str, **fields: Any) -> dict[str, Any]:
    return {"device": device, **fields, "tx_hash": receipt.tx_hash, "block": receipt.block_number}


def _refused(error: ContractRevert, device: str, dep: Deployment) -> InputRejected:
    """A registry revert as one line naming the device and the rule it broke."""
    return InputRejected(f"the DeviceRegistry at {dep.device_registry} refused device {device}: {error}")


def register(job: JobSpec, device: str, owner: str, scheme: str, public_key: str | None = None) -> dict[str, Any]:
    """Register ``device`` with its beneficiary ``owner`` and first key, in force from timestamp 0
    (the registry's owner only). A secp256k1 device may leave out its key: its id is the key's
    address; ed25519 and p256 devices must give it."""
    device, owner = _address(device, "--device"), _address(owner, "--owner")
    key = _public_key(public_key)
    if scheme not in DEVICE_SCHEMES:
        raise InputRejected(f"--scheme must be one of {', '.join(DEVICE_SCHEMES)}, got {scheme!r}")
    if scheme != "secp256k1" and not key:
        raise InputRejected(f"a {scheme} device needs --public-key")
    with _registry(job) as (chain, dep):
        try:
            receipt = register_device(chain, dep, device, owner, scheme, key)
        except ContractRevert as error:
            raise _refused(error, device, dep) from None
    return _sent(receipt, device, owner=owner, scheme=scheme)


def rotate(job: JobSpec, device: str, scheme: str, public_key: str, authorization: str | None = None) -> dict[str, Any]:
    """Replace the device's key from the block's time on; its id and earlier keys stay. Without
    ``authorization`` the sender must be the registry's owner or a manager; with it (the current
    secp256k1 key's signature, ``sign_key_rotation``) the device's beneficiary may send it."""
    device = _address(device, "--device")
    key = _public_key(public_key)
    if not key:
        raise InputRejected("--public-key is required: the new key, given in full")
    signature = None if authorization is None else _public_key(authorization)
    with _registry(job) as (chain, dep):
        try:
            receipt = rotate_device_key(chain, dep, device, scheme, key, authorization=signature)
            current = device_info(chain, dep, device).keys[-1]
        except ContractRevert as error:
            raise _refused(error, device, dep) from None
    return _sent(receipt, device, scheme=scheme, key_version=current.version, effective_from_ms=current.effective_from)


def revoke(job: JobSpec, device: str, from_ms: int | None = None) -> dict[str, Any]:
    """Revoke the device for readings stamped at or after ``from_ms`` (default: the chain's
    latest block time); a past time revokes readings already sent."""
    device = _address(device, "--device")
    if from_ms is not None and not 0 <= from_ms < 1 << 64:
        raise InputRejected("--from-ms must be a timestamp in milliseconds")
    with _registry(job) as (chain, dep):
        revoked_from = chain.timestamp() * 1000 if from_ms is None else from_ms
        try:
            receipt = revoke_device(chain, dep, device, revoked_from)
            revoked = device_info(chain, dep, device).revoked_from
        except ContractRevert as error:
            raise _refused(error, device, dep) from None
    return _sent(receipt, device, revoked_from_ms=revoked)


def key_agreement(
    job: JobSpec, device: str, public_key: str, validity_s: int, revoke_key: bool = False
) -> dict[str, Any]:
    """Publish (or, with ``revoke_key``, revoke) a 32-byte X25519 key-agreement key in the
    device's DID document for ``validity_s`` seconds (the device's beneficiary, a manager or the
    registry's owner): others then encrypt to the device with it."""
    device = _address(device, "--device")
    key = _public_key(public_key)
    if len(key) != 32:
        raise InputRejected(f"--public-key must be a 32-byte X25519 key, got {len(key)} bytes")
    if not 0 < validity_s < 1 << 64:
        raise InputRejected("--validity must be a positive number of seconds")
    with _registry(job) as (chain, dep):
        try:
            if revoke_key:
                receipt = revoke_did_attribute(chain, dep, device, X25519_KEY_AGREEMENT, key)
            else:
                receipt = set_did_attribute(chain, dep, device, X25519_KEY_AGREEMENT, key, validity_s)
        except ContractRevert as error:
            raise _refused(error, device, dep) from None
        did = device_did(int(chain.chain_id), parse_address(device))
    return _sent(receipt, device, did=did, key_agreement="0x" + key.hex(), revoked=revoke_key)


def show(job: JobSpec, device: str) -> dict[str, Any]:
    """The device as the registry holds it: its DID, current key, every key with its window,
    beneficiary and revocation (``revoked_from_ms`` None while it is not revoked)."""
    device = _address(device, "--device")
    with _registry(job) as (chain, dep):
        try:
            info = device_info(chain, dep, device)
        except ContractRevert as error:
            raise _refused(error, device, dep) from None
        did = device_did(int(chain.chain_id), parse_address(info.device))
    return {
        "device": info.device,
        "did": did,
        "registry": dep.device_registry,
        "owner": info.owner,
        "scheme": info.scheme,
        "key_version": info.key_version,
        "public_key": "0x" + info.public_key.hex(),
        "signer": info.signer,
        "revoked_from_ms": info.revoked_from or None,
        "keys": [
            {
                "version": k.version,
                "scheme": k.scheme,
                "public_key": "0x" + k.public_key.hex(),
                "signer": k.signer,
                "effective_from_ms": k.effective_from,
                "effective_until_ms": k.effective_until,
            }
            for k in info.keys
        ],
    }


def render_show(info: dict[str, Any]) -> str:
    """``show``'s result as lines for a terminal."""
    revoked = info["revoked_from_ms"]
    lines = [
        f"device      {info['device']}",
        f"did         {info['did']}",
        f"registry    {info['registry']}",
        f"owner       {info['owner']}",
        f"scheme      {info['scheme']}",
        f"key         v{info['key_version']} {info['public_key'] if info['public_key'] != '0x' else '(the device id)'}",
        f"revoked     {'no' if revoked is None else f'from {revoked} ms'}",
        "keys",
    ]
    for key in info["keys"]:
        until = "now" if key["effective_until_ms"] is None else f"{key['effective_until_ms']} ms"
        lines.append(f"  v{key['version']} {key['scheme']:9} [{key['effective_from_ms']} ms, {until}) {key['public_key']}")
    return "\n".join(lines)

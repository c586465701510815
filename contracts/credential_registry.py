"""The CredentialRegistry: issuers' status-list anchors and devices' credential anchors.

Every function takes the ``Chain`` and the ``Deployment`` (its ``credential_registry``);
reverts surface as ``ContractRevert`` carrying the Solidity custom error's name.

A status list is named by its issuer's DID and its URL. Each published version
carries the IPFS CID of its ``BitstringStatusListCredential`` and that
credential's ``validFrom`` (unix seconds; it must increase, so an older list is
never published again over a newer one), and takes effect at its block's time:
``status_list_history`` lists the versions in order, for a pipeline choosing the
list in force at a reading's timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from veristream.contracts.chain import Chain, Receipt
from veristream.contracts.deploy import Deployment, checksum_address, contract
from veristream.provers.errors import InputRejected

NAME = "CredentialRegistry"


@dataclass(frozen=True, slots=True)
class StatusListVersion:
    """One published version of a status list: its credential's CID and ``validFrom`` (s), and
    the block time (s) it took effect."""

    issuer: str
    list_url: str
    cid: str
    valid_from: int
    anchored_at: int
    version: int
    block_number: int


@dataclass(frozen=True, slots=True)
class CredentialAnchor:
    """A device's credential as recorded with it: keccak256 of its canonical JSON, its CID."""

    device: str
    credential_hash: bytes
    cid: str
    anchored_at: int


def _registry(chain: Chain, dep: Deployment) -> Any:
    if dep.credential_registry is None:
        raise InputRejected("the deployment has no CredentialRegistry: redeploy with `veristream chain deploy`")
    return contract(chain, NAME, dep.credential_registry)


# TRANSACTIONS


def set_publisher(chain: Chain, dep: Deployment, issuer: str, publisher: str, *, sender: str | None = None) -> Receipt:
    """Authorises ``publisher`` to publish ``issuer``'s status lists (registry owner only); the
    zero address withdraws it."""
    registry = _registry(chain, dep)
    return chain.transact(registry.functions.setPublisher(issuer, checksum_address(publisher)), sender=sender)


def publish_status_list(
    chain: Chain, dep: Deployment, issuer: str, list_url: str, cid: str, valid_from: int, *, sender: str | None = None
) -> Receipt:
    """Anchors version ``cid`` of ``issuer``'s list ``list_url`` (its publisher only; ``valid_from``
    later than the current version's)."""
    registry = _registry(chain, dep)
    return chain.transact(registry.functions.publishStatusList(issuer, list_url, cid, valid_from), sender=sender)


def anchor_device_credential(
    chain: Chain, dep: Deployment, device: str, credential_hash: bytes, cid: str, *, sender: str | None = None
) -> Receipt:
    """Records a registered device's credential (the DeviceRegistry's owner or a manager)."""
    registry = _registry(chain, dep)
    return chain.transact(
        registry.functions.anchorDeviceCredential(checksum_address(device), credential_hash, cid),
        sender=sender,
    )


# VIEWS


def publisher_of(chain: Chain, dep: Deployment, issuer: str) -> str | None:
    """The account authorised to publish ``issuer``'s lists (None: none)."""
    registry = _registry(chain, dep)
    address = str(chain.call(registry.functions.publisherOf(issuer)))
    return None if int(address, 16) == 0 else address


def current_status_list(chain: Chain, dep: Deployment, issuer: str, list_url: str) -> StatusListVersion | None:
    """The current version of ``issuer``'s list ``list_url`` (None: never published)."""
    registry = _registry(chain, dep)
    cid, valid_from, anchored_at, version = chain.call(registry.functions.statusList(issuer, list_url))
    if int(version) == 0:
        return None
    return StatusListVersion(issuer, list_url, str(cid), int(valid_from), int(anchored_at), int(version), -1)


def status_list_history(
    chain: Chain, dep: Deployment, issuer: str, list_url: str, *, to_block: int | str = "latest"
) -> list[StatusListVersion]:
    """Every version of ``issuer``'s list ``list_url`` published up to ``to_block``, oldest first,
    each with the time its block was mined."""
    registry = _registry(chain, dep)
    key = chain.call(registry.functions.listKey(issuer, list_url))
    logs = registry.events.StatusListPublished.get_logs(
        from_block=0, to_block=to_block, argument_filters={"listKey": key}
    )
    versions = []
    for log in sorted(logs, key=lambda entry: (int(entry["blockNumber"]), int(entry["logIndex"]))):
        args = log["args"]
        block = chain.w3.eth.get_block(int(log["blockNumber"]))
        versions.append(
            StatusListVersion(
                issuer=str(args["issuer"]),
                list_url=str(args["listUrl"]),
                cid=str(args["cid"]),
                valid_from=int(args["validFrom"]),
                anchored_at=int(block["timestamp"]),
                version=int(args["version"]),
                block_number=int(log["blockNumber"]),
            )
        )
    return versions


def device_credential(chain: Chain, dep: Deployment, device: str) -> CredentialAnchor | None:
    """The credential recorded with ``device`` (None: none)."""
    registry = _registry(chain, dep)
    credential_hash, cid, anchored_at = chain.call(registry.functions.deviceCredential(checksum_address(device)))
    if bytes(credential_hash) == bytes(32):
        return None
    return CredentialAnchor(checksum_address(device), bytes(credential_hash), str(cid), int(anchored_at))

"""The epoch manifest and VeriStream's canonical JSON.

Canonical JSON here: UTF-8, keys sorted, no insignificant whitespace, integers
only (no floats), byte strings as ``0x`` lower-case hex. The same value always
serialises to the same bytes, so a manifest's CID is a commitment to it.

A manifest links everything one epoch produced: the job and epoch, the CIDs of
the accepted batch, the dead letters, the per-device aggregates and the state
after the epoch, the previous epoch's manifest CID (a hash chain any auditor
can walk back from IPFS), the three Merkle roots (data, aggregates, rewards),
the CIDs of the three trees' OpenZeppelin ``standard-v1`` dumps (``trees``;
null for an empty tree), the reward split and the counts; for a job whose
devices are on chain, the block the device registry was read at; for a job whose
devices hold credentials, the credentials and status lists the epoch pinned.

Version 2 added ``aggregates_root`` and ``trees``; a version-1 manifest is
refused (the committee signs the manifest's CID, so its fields are not optional).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from veristream.provers.encoding import canonical_json
from veristream.provers.errors import InputRejected

MANIFEST_VERSION = 2
TREE_NAMES = ("data", "aggregates", "rewards")


@dataclass(frozen=True, slots=True)
class RewardSummary:
    """How one epoch's budget was split (all amounts in the token's smallest unit)."""

    budget: int
    paid: int
    remainder: int
    carry_out: int
    sink_paid: int
    beneficiaries: int


@dataclass(frozen=True, slots=True)
class TreeDumps:
    """The CIDs of an epoch's three trees' ``standard-v1`` dumps (None: the tree is empty)."""

    data: str | None
    aggregates: str | None
    rewards: str | None


@dataclass(frozen=True, slots=True)
class Manifest:
    """Everything one epoch produced, by content address."""

    job_id: str
    epoch: int
    start_ms: int
    end_ms: int
    batch_cid: str
    dead_letter_cid: str
    aggregates_cid: str
    state_cid: str
    prev_manifest_cid: str | None
    data_root: str
    aggregates_root: str
    reward_root: str
    readings_in: int
    accepted: int
    rejected: dict[str, int]
    rewards: RewardSummary
    trees: TreeDumps
    version: int = MANIFEST_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    # the block the on-chain device registry (devices.address) was read at; absent, not null,
    # for a registry file, so those manifests (and their CIDs) are what they always were
    device_registry_block: int | None = None
    # for a job with devices.credentials: the device credentials and status-list versions the
    # epoch's decisions rest on (pipeline.credential_status.CredentialPins); absent otherwise
    credential_status: dict[str, Any] | None = None

    def to_json(self) -> bytes:
        """The manifest as canonical JSON."""
        fields = asdict(self)
        if self.device_registry_block is None:
            del fields["device_registry_block"]
        if self.credential_status is None:
            del fields["credential_status"]
        return canonical_json(fields, integers_only=True)


def manifest_from_json(data: bytes) -> Manifest:
    """A manifest back from its JSON; ``ValueError`` when it is not one."""
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputRejected(f"manifest is not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise InputRejected("manifest must be a JSON object")
    if raw.get("version") != MANIFEST_VERSION:
        raise InputRejected(f"unsupported manifest version {raw.get('version')!r}")
    block = raw.get("device_registry_block")
    if block is not None and (isinstance(block, bool) or not isinstance(block, int) or block < 0):
        raise InputRejected(f"manifest device_registry_block must be a block number, got {block!r}")
    pins = raw.get("credential_status")
    if pins is not None and not isinstance(pins, dict):
        raise InputRejected(f"manifest credential_status must be an object, got {pins!r}")
    try:
        rewards = RewardSummary(**raw.pop("rewards"))
        trees = raw.pop("trees")
        if not isinstance(trees, dict):
            raise TypeError("trees must be an object")
        dumps = TreeDumps(**trees)
        if any(cid is not None and not isinstance(cid, str) for cid in (dumps.data, dumps.aggregates, dumps.rewards)):
            raise TypeError(f"trees must hold CIDs or null, got {trees!r}")
        return Manifest(rewards=rewards, trees=dumps, **raw)
    except (TypeError, KeyError) as error:
        raise InputRejected(f"manifest fields do not match: {error}") from None

"""The two Merkle commitments of an epoch, as OpenZeppelin ``StandardMerkleTree``s.

Data root: one leaf per accepted reading, ``[device, seq, timestamp,
payloadHash]`` with encoding ``["address", "uint64", "uint64", "bytes32"]``,
values listed in the canonical batch order (by ``(device_id, seq)``).

Reward root: one leaf per beneficiary with a positive running total,
``[account, cumulativeAmount]`` with encoding ``["address", "uint256"]``, the
amount being everything the account earned up to and including this epoch;
values listed by account (ascending bytes). The distributor pays the difference
between the proven cumulative amount and what the account already claimed.

An epoch with no leaves has the zero root (``bytes32(0)``): OpenZeppelin's
tree cannot be empty, and no proof verifies against zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from veristream.pipeline.records import Candidate
from veristream.pipeline.registry import device_address

from veristream.encoding import keccak256

DATA_LEAF_ENCODING = ["address", "uint64", "uint64", "bytes32"]
REWARD_LEAF_ENCODING = ["address", "uint256"]
ZERO_ROOT = b"\x00" * 32


def data_leaves(accepted: Sequence[Candidate]) -> list[list[Any]]:
    """Leaf values of the data tree for accepted readings already in canonical order."""
    # readings come grouped by device: its address is parsed once, not once per reading
    addresses: dict[str, str] = {}
    leaves: list[list[Any]] = []
    for c in accepted:
        address = addresses.get(c.device_id)
        if address is None:
            address = addresses[c.device_id] = "0x" + device_address(c.device_id).hex()
        leaves.append([address, c.seq, c.timestamp_ms, "0x" + keccak256(c.payload).hex()])
    return leaves


def reward_leaves(cumulative: Mapping[bytes, int]) -> list[list[Any]]:
    """Leaf values of the reward tree: accounts with a positive total, ascending."""
    return [["0x" + a.hex(), cumulative[a]] for a in sorted(cumulative) if cumulative[a] > 0]


def tree_of(values: list[list[Any]], encoding: list[str]) -> Any:
    """The OpenZeppelin-compatible tree of ``values`` (None when there are none)."""
    if not values:
        return None
    from veristream.provers.merkle import StandardMerkleTree

    return StandardMerkleTree.of(values, encoding)


def root_bytes(tree: Any) -> bytes:
    """A tree's root as 32 bytes; the zero root for no tree."""
    if tree is None:
        return ZERO_ROOT
    root = tree.root
    if isinstance(root, bytes):
        return root
    return bytes.fromhex(str(root)[2:])


def data_root(accepted: Sequence[Candidate]) -> bytes:
    """The data root of an epoch's accepted readings (canonical order)."""
    return root_bytes(tree_of(data_leaves(accepted), DATA_LEAF_ENCODING))


def reward_root(cumulative: Mapping[bytes, int]) -> bytes:
    """The reward root over the running totals."""
    return root_bytes(tree_of(reward_leaves(cumulative), REWARD_LEAF_ENCODING))


def reward_proof(cumulative: Mapping[bytes, int], account: bytes) -> tuple[int, list[bytes]]:
    """``(cumulativeAmount, proof)`` for ``account`` in the reward tree; ``ValueError`` if absent."""
    values = reward_leaves(cumulative)
    wanted = "0x" + account.hex()
    for index, (leaf_account, amount) in enumerate(values):
        if leaf_account == wanted:
            tree = tree_of(values, REWARD_LEAF_ENCODING)
            proof = [p if isinstance(p, bytes) else bytes.fromhex(p[2:]) for p in tree.get_proof(index)]
            return amount, proof
    raise ValueError(f"account {wanted} has no reward")

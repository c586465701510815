"""The three Merkle commitments of an epoch, as OpenZeppelin ``StandardMerkleTree``s.

Data root: one leaf per accepted reading, ``[device, seq, timestamp,
payloadHash]`` with encoding ``["address", "uint64", "uint64", "bytes32"]``,
values listed in the canonical batch order (by ``(device_id, seq)``).

Aggregates root: one leaf per (device, aggregated field) with at least one
value in the epoch, ``[device, field, count, min, max, sum, percents,
quantiles]`` with encoding ``["address", "string", "uint64", "int256",
"int256", "int256", "uint8[]", "int256[]"]``: the device's address as in the
data tree, the field's name, the statistics of ``pipeline.aggregates`` in the
field's integer units (the mean is ``sum / count`` rounded down, so it is not
a column), the job's quantile percentages (ascending, as the job spec keeps them) and
the nearest-rank value of each. Values listed by device address (ascending
bytes), then field name (ascending UTF-8 bytes).

Reward root: one leaf per beneficiary with a positive running total,
``[account, cumulativeAmount]`` with encoding ``["address", "uint256"]``, the
amount being everything the account earned up to and including this epoch;
values listed by account (ascending bytes). The distributor pays the difference
between the proven cumulative amount and what the account already claimed.

An epoch with no leaves has the zero root (``bytes32(0)``): OpenZeppelin's
tree cannot be empty, and no proof verifies against zero.

Each tree is stored as OpenZeppelin's ``standard-v1`` dump (``dump_json``), so
any client can ``StandardMerkleTree.load`` it and make its own proofs; in the
dumps every integer of a leaf value is a decimal string (JavaScript's numbers
lose digits above 2**53, and ``load`` hashes every value again).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from veristream.pipeline.aggregates import FieldStats
from veristream.pipeline.records import Candidate
from veristream.pipeline.registry import device_address
from veristream.provers import merkle_core
from veristream.provers.encoding import AbiType, canonical_json, keccak256, parse_abi_type
from veristream.provers.errors import InputRejected
from veristream.provers.merkle import StandardMerkleTree

DATA_LEAF_ENCODING = ["address", "uint64", "uint64", "bytes32"]
REWARD_LEAF_ENCODING = ["address", "uint256"]
AGGREGATE_LEAF_ENCODING = ["address", "string", "uint64", "int256", "int256", "int256", "uint8[]", "int256[]"]
ZERO_ROOT = b"\x00" * 32
_ZERO_12 = b"\x00" * 12


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


def data_leaf_hash(device: bytes, seq: int, timestamp_ms: int, payload: bytes) -> bytes:
    """The standard leaf hash of one accepted reading's data leaf,
    ``keccak256(keccak256(abi.encode(device, seq, timestamp, keccak256(payload))))``;
    ``device`` is ``registry.device_address`` of its id.

    The ABI words are written out here (every column is one static word), so a
    reading costs three keccaks; ``ValueError`` for a field out of its type's range.
    """
    if len(device) != 20 or not (0 <= seq < 1 << 64 and 0 <= timestamp_ms < 1 << 64):
        raise InputRejected(f"not a data leaf: device {device.hex()}, seq {seq}, timestamp {timestamp_ms}")
    encoded = (
        _ZERO_12 + device + seq.to_bytes(32, "big") + timestamp_ms.to_bytes(32, "big") + keccak256(payload)
    )
    return keccak256(keccak256(encoded))


def data_leaf_hashes(readings: Sequence[Candidate]) -> list[bytes]:
    """``data_leaf_hash`` of each reading, in order (each device's address parsed once)."""
    addresses: dict[str, bytes] = {}
    out: list[bytes] = []
    for c in readings:
        address = addresses.get(c.device_id)
        if address is None:
            address = addresses[c.device_id] = device_address(c.device_id)
        out.append(data_leaf_hash(address, c.seq, c.timestamp_ms, c.payload))
    return out


def aggregate_leaves(stats: Mapping[str, Mapping[str, FieldStats]]) -> list[list[Any]]:
    """Leaf values of the aggregates tree: one per device and field (``stats[device_id][field]``),
    by device address, then field name."""
    keyed: list[tuple[bytes, bytes, str, list[Any]]] = []
    for device_id, fields in stats.items():
        address = device_address(device_id)
        for name, s in fields.items():
            percents = [q for q, _ in s.quantiles]
            values = [v for _, v in s.quantiles]
            leaf = ["0x" + address.hex(), name, s.count, s.min, s.max, s.sum, percents, values]
            # the device id breaks a tie between two ids naming one address, so the order is total
            keyed.append((address, name.encode(), device_id, leaf))
    keyed.sort(key=lambda item: item[:3])
    return [leaf for *_, leaf in keyed]


def reward_leaves(cumulative: Mapping[bytes, int]) -> list[list[Any]]:
    """Leaf values of the reward tree: accounts with a positive total, ascending."""
    return [["0x" + a.hex(), cumulative[a]] for a in sorted(cumulative) if cumulative[a] > 0]


def tree_of(values: list[list[Any]], encoding: list[str]) -> Any:
    """The OpenZeppelin-compatible tree of ``values`` (None when there are none)."""
    if not values:
        return None

    return StandardMerkleTree.of(values, encoding)


def root_bytes(tree: Any) -> bytes:
    """A tree's root as 32 bytes; the zero root for no tree."""
    if tree is None:
        return ZERO_ROOT
    root = tree.root
    if isinstance(root, bytes):
        return root
    return bytes.fromhex(str(root)[2:])


def data_root(accepted: Sequence[Candidate], leaf_hashes: bytes | None = None) -> bytes:
    """The data root of an epoch's accepted readings (canonical order).

    ``leaf_hashes``: their ``data_leaf_hash``es concatenated, when the caller
    already has them (the pipeline computes them beside each signature check);
    the tree sorts its leaves, so their order does not matter.
    """
    if leaf_hashes is None or len(leaf_hashes) != 32 * len(accepted):
        return root_bytes(tree_of(data_leaves(accepted), DATA_LEAF_ENCODING))
    if not accepted:
        return ZERO_ROOT

    ordered, _ = merkle_core.sort_hashes(leaf_hashes)
    return merkle_core.node_at(merkle_core.make_merkle_tree(ordered), 0)


def reward_root(cumulative: Mapping[bytes, int]) -> bytes:
    """The reward root over the running totals."""
    return root_bytes(reward_tree(cumulative))


def aggregates_root(stats: Mapping[str, Mapping[str, FieldStats]]) -> bytes:
    """The aggregates root of an epoch's per-device statistics (``stats[device_id][field]``)."""
    return root_bytes(aggregates_tree(stats))


# THE TREES, WHOLE (for their dumps)


def data_tree(accepted: Sequence[Candidate], leaf_hashes: bytes | None = None) -> StandardMerkleTree | None:
    """The data tree of accepted readings in canonical order (None for none); ``leaf_hashes``
    as for ``data_root`` (each reading is then not hashed again)."""
    if not accepted:
        return None
    values = data_leaves(accepted)
    if leaf_hashes is None or len(leaf_hashes) != 32 * len(accepted):
        return StandardMerkleTree.of(values, DATA_LEAF_ENCODING)
    return StandardMerkleTree.of_leaf_hashes(values, DATA_LEAF_ENCODING, leaf_hashes)


def aggregates_tree(stats: Mapping[str, Mapping[str, FieldStats]]) -> StandardMerkleTree | None:
    """The aggregates tree (None when no device has a value of an aggregated field)."""
    result: StandardMerkleTree | None = tree_of(aggregate_leaves(stats), AGGREGATE_LEAF_ENCODING)
    return result


def reward_tree(cumulative: Mapping[bytes, int]) -> StandardMerkleTree | None:
    """The reward tree over the running totals (None before anyone earned)."""
    result: StandardMerkleTree | None = tree_of(reward_leaves(cumulative), REWARD_LEAF_ENCODING)
    return result


def _decimal_column(column: Sequence[Any]) -> list[Any]:
    return list(map(str, column))


def _decimal_arrays_column(column: Sequence[Any]) -> list[Any]:
    return [list(map(str, values)) for values in column]


def _same_column(column: Sequence[Any]) -> Sequence[Any]:
    return column


def _json_safe_column(abi_type: AbiType) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """How a leaf column goes into a dump: integers (and arrays of them) as decimal strings."""
    if abi_type.kind in ("uint", "int"):
        return _decimal_column
    if abi_type.kind == "array" and abi_type.items[0].kind in ("uint", "int"):
        return _decimal_arrays_column
    if abi_type.kind in ("array", "tuple"):
        raise InputRejected(f"a dump column of type {abi_type.canonical} is not supported")
    return _same_column


def dump_json(tree: StandardMerkleTree) -> bytes:
    """The tree's ``standard-v1`` dump as canonical JSON, every integer in its leaf values a
    decimal string: what is stored on IPFS, and loads with ``StandardMerkleTree.load`` in
    JavaScript (``@openzeppelin/merkle-tree``) and here alike."""
    converters = [_json_safe_column(parse_abi_type(t)) for t in tree.leaf_encoding]
    dump = tree.dump()
    # column by column: a large data tree's 10^5 rows are converted without a Python call per value
    columns = [convert(column) for convert, column in zip(converters, zip(*tree.values, strict=True), strict=True)]
    for entry, row in zip(dump["values"], zip(*columns, strict=True), strict=True):
        entry["value"] = list(row)
    return canonical_json(dump)


def reward_proofs(cumulative: Mapping[bytes, int]) -> list[tuple[str, int, list[bytes]]]:
    """``(account, cumulativeAmount, proof)`` of every leaf of the reward tree, in leaf order,
    from one build of the tree (what a batched claim of every account sends)."""
    values = reward_leaves(cumulative)
    tree = tree_of(values, REWARD_LEAF_ENCODING)
    out: list[tuple[str, int, list[bytes]]] = []
    for index, (account, amount) in enumerate(values):
        proof = [p if isinstance(p, bytes) else bytes.fromhex(p[2:]) for p in tree.get_proof(index)]
        out.append((account, amount, proof))
    return out


def reward_proof(cumulative: Mapping[bytes, int], account: bytes) -> tuple[int, list[bytes]]:
    """``(cumulativeAmount, proof)`` for ``account`` in the reward tree; ``ValueError`` if absent."""
    values = reward_leaves(cumulative)
    wanted = "0x" + account.hex()
    for index, (leaf_account, amount) in enumerate(values):
        if leaf_account == wanted:
            tree = tree_of(values, REWARD_LEAF_ENCODING)
            proof = [p if isinstance(p, bytes) else bytes.fromhex(p[2:]) for p in tree.get_proof(index)]
            return amount, proof
    raise InputRejected(f"account {wanted} has no reward")

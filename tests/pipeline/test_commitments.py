"""The aggregates tree and the trees' dumps against @openzeppelin/merkle-tree: leaves in their
documented order, roots and proofs equal to the JavaScript library's, and every dump an epoch
stores loading there with the manifest's roots and the same proofs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.pipeline_fleet import fleet, honest_epoch, make_job
from tests.provers.test_merkle import SETTINGS, oz
from veristream.connectors.ipfs import EmbeddedStore
from veristream.pipeline import commitments
from veristream.pipeline.aggregates import FieldStats, field_stats
from veristream.pipeline.commitments import (
    AGGREGATE_LEAF_ENCODING,
    ZERO_ROOT,
    aggregate_leaves,
    aggregates_root,
    aggregates_tree,
    dump_json,
)
from veristream.pipeline.compute import job_context
from veristream.pipeline.publish import run_epoch
from veristream.pipeline.registry import device_address
from veristream.pipeline.state import JobState
from veristream.provers.errors import InputRejected
from veristream.provers.merkle import StandardMerkleTree, verify_proof

INT256 = st.integers(-(2**255), 2**255 - 1)


def stats(values: list[int], quantiles: tuple[int, ...] = (50, 90)) -> FieldStats:
    found = field_stats(values, quantiles)
    assert found is not None
    return found


def test_aggregate_leaves_are_ordered_by_device_address_then_field_bytes() -> None:
    named = "station-7"  # not an address: its address is the hash of its id
    hexed = "0x" + "ff" * 20
    low = "0x00000000000000000000000000000000000000AB"  # mixed case parses to the same bytes
    table = {
        hexed: {"z": stats([1]), "é": stats([2]), "a": stats([3])},
        named: {"temp": stats([5, -7, 9])},
        low: {"temp": stats([-(2**70), 2**70])},
    }
    leaves = aggregate_leaves(table)
    keys = [(bytes.fromhex(leaf[0][2:]), leaf[1].encode()) for leaf in leaves]
    assert keys == sorted(keys) and len(leaves) == 5
    # "é" is 0xc3a9 in UTF-8: after "z" (0x7a), although Python orders "é" after "z" too
    assert [leaf[1] for leaf in leaves if leaf[0] == hexed] == ["a", "z", "é"]
    assert leaves[0][0] == "0x" + "00" * 18 + "00ab"
    named_leaf = next(leaf for leaf in leaves if leaf[0] == "0x" + device_address(named).hex())
    # count, min, max, sum, percents, nearest-rank values; integers, no mean column
    assert named_leaf[1:] == ["temp", 3, -7, 9, 7, [50, 90], [5, 9]]
    big = next(leaf for leaf in leaves if leaf[0] == leaves[0][0])
    assert big[3:6] == [-(2**70), 2**70, 0]
    assert aggregates_root({}) == ZERO_ROOT and aggregates_tree({"d": {}}) is None


@pytest.mark.parametrize("bad", [2**255, -(2**255) - 1])
def test_an_aggregate_outside_int256_is_refused(bad: int) -> None:
    row = FieldStats(count=1, min=bad, max=bad, sum=bad, mean=bad, quantiles=((50, bad),))
    with pytest.raises(InputRejected, match="int256"):
        aggregates_root({"0x" + "11" * 20: {"f": row}})


_ROW = st.tuples(
    st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
    st.text(min_size=1, max_size=6),
    st.integers(1, 2**64 - 1),
    INT256,
    INT256,
    INT256,
    st.lists(st.tuples(st.integers(1, 100), INT256), max_size=3),
)


_TABLE = st.lists(_ROW, min_size=1, max_size=10, unique_by=lambda r: (r[0], r[1]))


@settings(SETTINGS, max_examples=6)
@given(st.lists(_TABLE, min_size=1, max_size=8))
def test_aggregates_trees_and_dumps_match_openzeppelin(node: str, tables: list[list[Any]]) -> None:
    # several trees per node process: starting node is most of the cost
    trees, cases = [], []
    for rows in tables:
        table: dict[str, dict[str, FieldStats]] = {}
        for address, name, count, low, high, total, quantiles in rows:
            table.setdefault(address, {})[name] = FieldStats(count, low, high, total, 0, tuple(quantiles))
        tree = aggregates_tree(table)
        assert tree is not None and tree.root_bytes == aggregates_root(table)
        assert len(tree) == len(rows) == len(aggregate_leaves(table))
        dumped = json.loads(dump_json(tree))
        trees.append((tree, dumped))
        cases.append({"values": [d["value"] for d in dumped["values"]], "encoding": AGGREGATE_LEAF_ENCODING})
    # OpenZeppelin builds the same trees from the same (JSON-safe) leaves, and loads our dumps
    result = oz(node, cases, [dumped for _, dumped in trees])
    for (tree, _), case, loaded in zip(trees, result["cases"], result["loads"], strict=True):
        assert case["root"] == tree.root and loaded == {"ok": True, "root": tree.root, "proofs": case["proofs"]}
        assert case["proofs"] == [tree.get_proof(i) for i in range(len(tree))]
        assert StandardMerkleTree.load(case["dump"]).root == tree.root


def test_of_leaf_hashes_is_of_without_hashing_again() -> None:
    rows = [["0x" + bytes([i] * 20).hex(), i, 1000 + i, "0x" + bytes([i] * 32).hex()] for i in range(9)]
    whole = StandardMerkleTree.of(rows, commitments.DATA_LEAF_ENCODING)
    hashes = b"".join(bytes.fromhex(whole.leaf_hash(row)[2:]) for row in rows)
    fast = StandardMerkleTree.of_leaf_hashes(rows, commitments.DATA_LEAF_ENCODING, hashes)
    assert fast.dump() == whole.dump()
    with pytest.raises(InputRejected, match="not the hash of row"):
        StandardMerkleTree.of_leaf_hashes(rows[::-1], commitments.DATA_LEAF_ENCODING, hashes)


def test_every_stored_dump_loads_in_openzeppelin_with_the_manifest_roots(node: str, tmp_path: Path) -> None:
    devices = fleet(4)
    job = make_job(tmp_path, devices)
    store = EmbeddedStore(tmp_path / "ipfs")
    outcome = run_epoch(job_context(job), 0, honest_epoch(devices, 0, per_device=6), JobState(), store)
    manifest = outcome.manifest
    trees = {"data": manifest.trees.data, "aggregates": manifest.trees.aggregates, "rewards": manifest.trees.rewards}
    roots = {"data": manifest.data_root, "aggregates": manifest.aggregates_root, "rewards": manifest.reward_root}
    assert all(trees.values()) and manifest.aggregates_root == "0x" + outcome.computation.aggregates_root.hex()
    dumps = {name: json.loads(store.get(str(cid))) for name, cid in trees.items()}
    assert [len(d["values"]) for d in dumps.values()] == [24, 8, 4]  # readings; devices x 2 fields; earners
    assert all(isinstance(x, str) for d in dumps.values() for v in d["values"] for x in v["value"][1:2])
    loaded = oz(node, [], list(dumps.values()))["loads"]
    for (name, dump), result in zip(dumps.items(), loaded, strict=True):
        assert result["ok"] and result["root"] == roots[name], (name, result)
        ours = StandardMerkleTree.load(dump)
        assert result["proofs"] == [ours.get_proof(i) for i in range(len(ours))]
        first = dump["values"][0]["value"]
        assert verify_proof(roots[name], dump["leafEncoding"], first, result["proofs"][0])
    # the aggregates dump is the pipeline's statistics, one leaf per device and field
    stats = outcome.computation.stats
    assert dumps["aggregates"] == json.loads(
        dump_json(StandardMerkleTree.of(aggregate_leaves(stats), AGGREGATE_LEAF_ENCODING))
    )
    # an epoch without readings links no dumps but the reward tree it carries
    empty = run_epoch(job_context(job), 1, [], outcome.state, store)
    assert empty.manifest.trees.data is None and empty.manifest.trees.aggregates is None
    assert empty.manifest.trees.rewards == manifest.trees.rewards
    assert empty.manifest.aggregates_root == "0x" + ZERO_ROOT.hex()

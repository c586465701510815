"""StandardMerkleTree against @openzeppelin/merkle-tree itself, eth-abi, and its own reference code.

The JavaScript library runs in node through ``tests/js/oz_merkle.mjs``, one
process per test with many trees in it. The native hot path is checked
against the pure-Python reference of ``merkle_core`` function by function.
"""

from __future__ import annotations

import copy
import json
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import eth_abi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_keccak import keccak256 as oracle_keccak

from tests.conftest import REPO
from veristream.provers import merkle_core as core
from veristream.provers.encoding import abi_encode, abi_python_value, parse_abi_type
from veristream.provers.merkle import (
    StandardMerkleTree,
    standard_leaf_hash,
    verify_multi_proof,
    verify_proof,
)

SCRIPT = REPO / "tests" / "js" / "oz_merkle.mjs"
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def oz(node: str, cases: list[dict[str, Any]], loads: list[Any] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    """One node process: build every case and load every dump with the OZ library."""
    with tempfile.TemporaryDirectory() as folder:
        request = Path(folder) / "request.json"
        request.write_text(json.dumps({"cases": cases, "loads": list(loads)}))
        done = subprocess.run(
            [node, str(SCRIPT), "check", str(request)], capture_output=True, text=True, timeout=600, cwd=REPO
        )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- value strategies: JSON values as OZ users write them -----------------------

STATIC_TYPES = ["address", "bool", "uint8", "uint64", "uint256", "int8", "int256", "bytes4", "bytes32"]
DYNAMIC_TYPES = ["string", "bytes", "uint256[]", "address[2]", "bytes32[]"]


def int_json(value: int) -> st.SearchStrategy[Any]:
    """An int as OZ JSON may carry it: a safe JSON number, a decimal string, or 0x-hex."""
    options: list[Any] = [str(value)]
    if abs(value) < 2**53:
        options.append(value)
    if value >= 0:
        options.append(hex(value))
    return st.sampled_from(options)


def value_of(type_str: str) -> st.SearchStrategy[Any]:
    if type_str.endswith("[]"):
        return st.lists(value_of(type_str[:-2]), max_size=3)
    if type_str.endswith("]"):
        inner, length = type_str[:-1].split("[")
        return st.lists(value_of(inner), min_size=int(length), max_size=int(length))
    if type_str == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
    if type_str == "bool":
        return st.booleans()
    if type_str.startswith("uint"):
        bits = int(type_str[4:])
        return st.integers(0, 2**bits - 1).flatmap(int_json)
    if type_str.startswith("int"):
        bits = int(type_str[3:])
        return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1).map(str)
    if type_str.startswith("bytes") and type_str != "bytes":
        size = int(type_str[5:])
        return st.binary(min_size=size, max_size=size).map(lambda b: "0x" + b.hex())
    if type_str == "bytes":
        return st.binary(max_size=70).map(lambda b: "0x" + b.hex())
    assert type_str == "string"
    return st.text(max_size=40)


@st.composite
def tree_case(draw: st.DrawFn, max_rows: int = 24) -> dict[str, Any]:
    encoding = draw(st.lists(st.sampled_from(STATIC_TYPES + DYNAMIC_TYPES), min_size=1, max_size=3))
    row = st.tuples(*[value_of(t) for t in encoding]).map(list)
    values = draw(st.lists(row, min_size=1, max_size=max_rows))
    n = len(values)
    multi = [
        draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n)),
        draw(st.lists(st.integers(0, n - 1), unique=True, min_size=1, max_size=n)),
    ]
    return {"values": values, "encoding": encoding, "sortLeaves": draw(st.booleans()), "multi": multi}


def random_rows(rng: random.Random, n: int) -> list[list[Any]]:
    return [["0x" + rng.randbytes(20).hex(), str(rng.getrandbits(rng.choice([8, 64, 100, 256])))] for _ in range(n)]


def compact(obj: Any) -> str:
    """JSON text as JavaScript's JSON.stringify writes it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def assert_same_as_oz(case: dict[str, Any], theirs: dict[str, Any]) -> StandardMerkleTree:
    """Root, dump (as JSON text), every proof, leaf hashes and the multiproofs equal OZ's."""
    tree = StandardMerkleTree.of(case["values"], case["encoding"], sort_leaves=case["sortLeaves"])
    assert tree.root == theirs["root"]
    assert compact(tree.dump()) == compact(theirs["dump"])
    assert [tree.get_proof(i) for i in range(len(tree))] == theirs["proofs"]
    assert [tree.leaf_hash(v) for v in case["values"]] == theirs["leafHashes"]
    assert tree.render() == theirs["render"]
    assert theirs["verified"]
    for indices, their_multi in zip(case["multi"], theirs["multi"], strict=True):
        ours = tree.get_multi_proof(indices)
        assert compact(ours) == compact(their_multi["multiproof"])
        assert their_multi["valid"] and tree.verify_multi_proof(ours)
    return tree


# --- cross-checks with @openzeppelin/merkle-tree ------------------------------


def test_readme_example_matches_oz(node: str) -> None:
    values = [
        ["0x1111111111111111111111111111111111111111", "5000000000000000000"],
        ["0x2222222222222222222222222222222222222222", "2500000000000000000"],
    ]
    case = {"values": values, "encoding": ["address", "uint256"], "sortLeaves": True, "multi": [[0, 1], []]}
    (theirs,) = oz(node, [case])["cases"]
    tree = assert_same_as_oz(case, theirs)
    assert tree.root == "0xd4dee0beab2d53f2cc83e567171bd2820e49898130a22622b10ead383e90bd77"


def test_sizes_one_two_three_and_powers_of_two_plus_one_match_oz(node: str) -> None:
    rng = random.Random(7)
    sizes = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 64, 65, 129, 257, 1000]
    cases = []
    for n in sizes:
        for sort in (True, False):
            indices = list(range(n))
            multi = [rng.sample(indices, min(n, 3)), rng.sample(indices, n // 2 + 1), indices, []]
            cases.append({"values": random_rows(rng, n), "encoding": ["address", "uint256"], "sortLeaves": sort, "multi": multi})
    result = oz(node, cases)
    for case, theirs in zip(cases, result["cases"], strict=True):
        assert_same_as_oz(case, theirs)


@settings(SETTINGS, max_examples=20)
@given(st.lists(tree_case(), min_size=10, max_size=20))
def test_random_trees_of_random_types_match_oz(node: str, cases: list[dict[str, Any]]) -> None:
    result = oz(node, cases)
    for case, theirs in zip(cases, result["cases"], strict=True):
        assert_same_as_oz(case, theirs)


def test_each_library_loads_the_others_dumps(node: str) -> None:
    rng = random.Random(11)
    cases = [
        {"values": random_rows(rng, n), "encoding": ["address", "uint256"], "sortLeaves": n % 2 == 0, "multi": []}
        for n in (1, 2, 3, 9, 40)
    ]
    cases.append(
        {"values": [["a", "0x01", True], ["b", "0x", False], ["ü", "0xffee", True]], "encoding": ["string", "bytes", "bool"], "sortLeaves": True, "multi": []}
    )
    ours = [StandardMerkleTree.of(c["values"], c["encoding"], sort_leaves=c["sortLeaves"]) for c in cases]
    result = oz(node, cases, loads=[t.dump() for t in ours])
    # OZ loads ours: same root, same proofs
    for tree, loaded in zip(ours, result["loads"], strict=True):
        assert loaded["ok"], loaded
        assert loaded["root"] == tree.root
        assert loaded["proofs"] == [tree.get_proof(i) for i in range(len(tree))]
    # we load OZ's: same root, proofs, and a dump identical to the one loaded
    for theirs in result["cases"]:
        tree = StandardMerkleTree.load(theirs["dump"])
        assert tree.root == theirs["root"]
        assert [tree.get_proof(i) for i in range(len(tree))] == theirs["proofs"]
        assert compact(tree.dump()) == compact(theirs["dump"])


def test_oz_and_we_both_reject_broken_dumps(node: str) -> None:
    tree = StandardMerkleTree.of(random_rows(random.Random(3), 5), ["address", "uint256"])
    good = tree.dump()
    broken = []
    wrong_format = copy.deepcopy(good)
    wrong_format["format"] = "standard-v2"
    broken.append(wrong_format)
    wrong_encoding = copy.deepcopy(good)
    wrong_encoding["leafEncoding"] = ["address", "uint128"]
    broken.append(wrong_encoding)
    tampered_node = copy.deepcopy(good)
    tampered_node["tree"][1] = "0x" + "00" * 32
    broken.append(tampered_node)
    tampered_value = copy.deepcopy(good)
    tampered_value["values"][2]["value"][1] = "1"
    broken.append(tampered_value)
    moved_value = copy.deepcopy(good)
    moved_value["values"][0]["treeIndex"] = good["values"][1]["treeIndex"]
    moved_value["values"][1]["treeIndex"] = good["values"][0]["treeIndex"]
    broken.append(moved_value)
    result = oz(node, [], loads=broken)
    for dump, theirs in zip(broken, result["loads"], strict=True):
        assert not theirs["ok"]
        with pytest.raises(ValueError):
            StandardMerkleTree.load(dump)


def test_empty_tree_is_rejected_like_oz(node: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="non-zero number of leaves"):
        StandardMerkleTree.of([], ["address", "uint256"])
    with pytest.raises(ValueError, match="non-zero number of leaves"):
        core.make_merkle_tree([])
    request = tmp_path / "empty.json"
    request.write_text(json.dumps({"cases": [{"values": [], "encoding": ["address"], "multi": []}]}))
    done = subprocess.run(
        [node, str(SCRIPT), "check", str(request)], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.returncode != 0 and "non-zero number of leaves" in done.stderr


# --- proofs: attacks and malformed input -----------------------------------------


@pytest.fixture(scope="module")
def tree17() -> StandardMerkleTree:
    return StandardMerkleTree.of(random_rows(random.Random(5), 17), ["address", "uint256"])


def test_every_proof_verifies_by_index_and_by_value(tree17: StandardMerkleTree) -> None:
    for i, value in tree17.entries():
        proof = tree17.get_proof(i)
        assert proof == tree17.get_proof(value)
        assert tree17.verify(i, proof) and tree17.verify(value, proof)
        assert verify_proof(tree17.root, tree17.leaf_encoding, value, proof)
        assert standard_leaf_hash(tree17.leaf_encoding, value) == tree17.leaf_hash(value)


def test_tampered_proof_is_rejected(tree17: StandardMerkleTree) -> None:
    proof = tree17.get_proof(4)
    for k in range(len(proof)):
        bad = list(proof)
        flipped = bytearray.fromhex(bad[k][2:])
        flipped[k % 32] ^= 1
        bad[k] = "0x" + flipped.hex()
        assert not tree17.verify(4, bad)
    assert not tree17.verify(4, proof[:-1])
    assert not tree17.verify(4, [*proof, proof[0]])


def test_proof_for_another_leaf_is_rejected(tree17: StandardMerkleTree) -> None:
    for i in range(len(tree17)):
        other = tree17.get_proof((i + 1) % len(tree17))
        if other != tree17.get_proof(i):
            assert not tree17.verify(i, other)


def test_value_not_in_tree_is_rejected(tree17: StandardMerkleTree) -> None:
    outsider = ["0x" + "ab" * 20, "1"]
    assert not tree17.verify(outsider, tree17.get_proof(0))
    with pytest.raises(ValueError, match="not in tree"):
        tree17.get_proof(outsider)


def test_internal_node_presented_as_a_leaf_is_rejected() -> None:
    # A tree of pairs of bytes32: an attacker offers an internal node's two
    # children as a "value" with the proof of that node. Double hashing of
    # leaves makes the leaf differ from the node, so it fails.
    rng = random.Random(9)
    rows = [["0x" + rng.randbytes(32).hex(), "0x" + rng.randbytes(32).hex()] for _ in range(8)]
    tree = StandardMerkleTree.of(rows, ["bytes32", "bytes32"])
    flat = bytes.fromhex("".join(n[2:] for n in tree.dump()["tree"]))
    node = 1
    left, right = core.node_at(flat, 3), core.node_at(flat, 4)
    lo, hi = sorted([left, right])
    proof_of_node = [core.node_at(flat, 2)]
    # At the core level, the bare node plus its path does reach the root ...
    assert core.process_proof(core.node_at(flat, node), proof_of_node) == flat[:32]
    # ... but not as a standard leaf, in either order, here or through verify_proof.
    for pair in ([lo, hi], [hi, lo]):
        value = ["0x" + pair[0].hex(), "0x" + pair[1].hex()]
        assert not tree.verify(value, ["0x" + p.hex() for p in proof_of_node])
        assert not verify_proof(tree.root, tree.leaf_encoding, value, ["0x" + proof_of_node[0].hex()])
    with pytest.raises(ValueError, match="not a leaf"):
        core.get_proof(flat, node)


def test_malformed_proofs_raise(tree17: StandardMerkleTree) -> None:
    proof = tree17.get_proof(0)
    for bad in (["0x1234"], ["zz" * 32], [proof[0][:-2] + "zz"], "0x" + "00" * 32, [None]):
        with pytest.raises(ValueError):
            tree17.verify(0, bad)
    with pytest.raises(ValueError, match="out of bounds"):
        tree17.get_proof(17)
    with pytest.raises(ValueError, match="out of bounds"):
        tree17.get_proof(-1)


def test_multiproofs_attacks_and_malformed(tree17: StandardMerkleTree) -> None:
    multi = tree17.get_multi_proof([1, 5, 9])
    assert tree17.verify_multi_proof(multi)
    assert verify_multi_proof(tree17.root, tree17.leaf_encoding, multi)
    tampered = copy.deepcopy(multi)
    tampered["proof"][0] = "0x" + "11" * 32
    assert not tree17.verify_multi_proof(tampered)
    swapped = copy.deepcopy(multi)
    swapped["leaves"][0], swapped["leaves"][1] = swapped["leaves"][1], swapped["leaves"][0]
    assert not tree17.verify_multi_proof(swapped)
    with pytest.raises(ValueError, match="duplicated"):
        tree17.get_multi_proof([1, 1])
    short = copy.deepcopy(multi)
    short["proofFlags"] = short["proofFlags"][:-1]
    with pytest.raises(ValueError):
        tree17.verify_multi_proof(short)
    with pytest.raises(ValueError):
        tree17.verify_multi_proof({"leaves": [], "proof": []})
    flags_only = {"leaves": multi["leaves"], "proof": [], "proofFlags": [True] * (len(multi["leaves"]) - 1)}
    assert not tree17.verify_multi_proof(flags_only)


@pytest.mark.parametrize(
    ("rows", "encoding", "message"),
    [
        ([["0x1234", "1"]], ["address", "uint256"], r"row 0: column 0 \(address\)"),
        ([["0x" + "11" * 20, str(2**256)]], ["address", "uint256"], r"row 0: column 1 \(uint256\).*does not fit"),
        ([["0x" + "11" * 20, "-1"]], ["address", "uint256"], r"column 1 \(uint256\)"),
        ([["0x" + "11" * 20, 256]], ["address", "uint8"], r"does not fit uint8"),
        ([["0x" + "11" * 20, "12ab"]], ["address", "uint256"], r"column 1"),
        ([["0x" + "11" * 20, 1.5]], ["address", "uint256"], r"column 1"),
        ([["0x" + "11" * 20, True]], ["address", "uint256"], r"bool"),
        ([[1]], ["bool"], r"row 0: column 0 \(bool\)"),
        ([["0x" + "11" * 31]], ["bytes32"], r"must be 32 bytes"),
        ([["0x" + "11" * 20]], ["address", "uint256"], r"row 0: a row must have 2 values"),
        (["0x" + "11" * 20], ["address"], r"row 0: a row must be a list"),
        ([[128]], ["int8"], r"does not fit int8"),
        ([[[1, 2]]], ["uint8[3]"], r"needs 3 items"),
        ([[5]], ["string"], r"string must be a str"),
        ([["0x1"]], ["bytes"], r"whole bytes"),
    ],
)
def test_values_that_do_not_fit_name_row_and_column(rows: list[Any], encoding: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StandardMerkleTree.of(rows, encoding)


def test_bad_row_deep_in_a_large_tree_is_named() -> None:
    rows = random_rows(random.Random(1), 3000)
    rows[2345][0] = "0x" + "g1" * 20
    with pytest.raises(ValueError, match="row 2345: column 0"):
        StandardMerkleTree.of(rows, ["address", "uint256"])


def test_unknown_types_raise() -> None:
    for encoding in (["uint7"], ["addr"], [], "address", ["bytes33"]):
        with pytest.raises(ValueError):
            StandardMerkleTree.of([["0x" + "11" * 20]], encoding)


def test_malformed_dumps_raise() -> None:
    tree = StandardMerkleTree.of(random_rows(random.Random(2), 6), ["address", "uint256"])
    good = tree.dump()
    assert StandardMerkleTree.load(json.loads(json.dumps(good))).root == tree.root

    def broken(change: Any) -> dict[str, Any]:
        dump = copy.deepcopy(good)
        change(dump)
        return dump

    cases = [
        [],
        {},
        broken(lambda d: d.pop("format")),
        broken(lambda d: d.pop("leafEncoding")),
        broken(lambda d: d.update(leafEncoding=["uint7", "uint256"])),
        broken(lambda d: d.update(tree=[])),
        broken(lambda d: d.update(tree="0x00")),
        broken(lambda d: d["tree"].pop()),
        broken(lambda d: d["tree"].__setitem__(0, "0x" + "00" * 31)),
        broken(lambda d: d["tree"].__setitem__(0, "not hex")),
        broken(lambda d: d["tree"].__setitem__(0, "0x" + "00" * 31 + "  ")),
        broken(lambda d: d["tree"].__setitem__(0, d["tree"][0][:-2])),
        broken(lambda d: d["values"].pop()),
        broken(lambda d: d["values"][0].__setitem__("treeIndex", 0)),
        broken(lambda d: d["values"][0].__setitem__("treeIndex", "7")),
        broken(lambda d: d["values"][0].__setitem__("treeIndex", d["values"][1]["treeIndex"])),
        broken(lambda d: d["values"][0].pop("treeIndex")),
        broken(lambda d: d["values"][0].__setitem__("value", ["0x" + "11" * 20, "1"])),
    ]
    for dump in cases:
        with pytest.raises(ValueError):
            StandardMerkleTree.load(dump)


# --- ABI encoding against eth-abi ---------------------------------------------------


@st.composite
def typed_row(draw: st.DrawFn) -> tuple[list[str], list[Any]]:
    encoding = draw(st.lists(st.sampled_from([*STATIC_TYPES, *DYNAMIC_TYPES, "(address,uint8)", "uint16[2][]"]), min_size=1, max_size=4))
    values = []
    for t in encoding:
        if t == "(address,uint8)":
            values.append(draw(st.tuples(value_of("address"), value_of("uint8")).map(list)))
        elif t == "uint16[2][]":
            values.append(draw(st.lists(value_of("uint16[2]"), max_size=3)))
        else:
            values.append(draw(value_of(t)))
    return encoding, values


@SETTINGS
@given(typed_row())
def test_abi_encoding_matches_eth_abi(row: tuple[list[str], list[Any]]) -> None:
    encoding, values = row
    types = [parse_abi_type(t) for t in encoding]
    expected = eth_abi.encode([t.canonical for t in types], [abi_python_value(t, v) for t, v in zip(types, values, strict=True)])
    assert abi_encode(types, values) == expected


# --- native hot path against the pure-Python reference ---------------------------


def test_native_extension_is_built() -> None:
    # The speed targets depend on it; a silent fallback would hide a broken build.
    assert core.NATIVE, "veristream.provers._merkle_native was not built (pip install -e . needs gcc)"


native = core.native_module()


@SETTINGS
@given(st.binary(max_size=600))
def test_native_keccak_matches_tiny_keccak(data: bytes) -> None:
    assert native is not None
    assert native.keccak256(data) == oracle_keccak(data)


@SETTINGS
@given(st.integers(0, 11), st.sampled_from([1, 32, 64, 96, 135, 136, 137, 160, 320]), st.randoms())
def test_native_leaf_hashes_match_reference(n: int, width: int, rng: random.Random) -> None:
    records = [rng.randbytes(width) for _ in range(n)]
    assert core.hash_leaves(b"".join(records), width) == core._py_leaf_hashes(records)


@SETTINGS
@given(st.lists(st.sampled_from([bytes(32), b"\x01" * 32, b"\x00" * 8 + b"\xff" * 24]) | st.binary(min_size=32, max_size=32), max_size=60))
def test_native_sort_matches_stable_reference(hashes: list[bytes]) -> None:
    flat = b"".join(hashes)
    ordered, ranks = core.sort_hashes(flat)
    ref_ordered, ref_ranks = core._py_sort_hashes(flat)
    assert ordered == ref_ordered and list(ranks) == ref_ranks


def test_native_sort_of_many_with_duplicates_matches_reference() -> None:
    rng = random.Random(6)
    pool = [rng.randbytes(32) for _ in range(5)] + [bytes(2) + rng.randbytes(30) for _ in range(5)]
    hashes = [rng.choice(pool) if rng.random() < 0.5 else rng.randbytes(32) for _ in range(20000)]
    flat = b"".join(hashes)
    ordered, ranks = core.sort_hashes(flat)
    assert (ordered, list(ranks)) == core._py_sort_hashes(flat)


def test_native_tree_matches_reference() -> None:
    rng = random.Random(4)
    for n in [*range(1, 70), 127, 128, 129, 255, 256, 257, 1000, 4097]:
        leaves = rng.randbytes(32 * n)
        assert core.make_merkle_tree(leaves) == core._py_build_tree(leaves), n


@SETTINGS
@given(st.lists(st.sampled_from(STATIC_TYPES), min_size=1, max_size=4).flatmap(
    lambda enc: st.tuples(st.just(enc), st.lists(st.tuples(*[value_of(t) for t in enc]), min_size=1, max_size=20))
))
def test_native_static_encoder_matches_eth_abi(case: tuple[list[str], list[tuple[Any, ...]]]) -> None:
    encoding, rows = case
    assert native is not None
    types = [parse_abi_type(t) for t in encoding]
    kinds = tuple(({"address": 0, "uint": 1, "int": 2, "bool": 3, "bytesN": 4}[t.kind], t.size or 0) for t in types)
    words, missed = native.encode_static([list(r) for r in rows], kinds)
    # The native path may leave a row to Python; whatever it did encode is exact.
    canonical = [t.canonical for t in types]
    width = 32 * len(types)
    for i, row in enumerate(rows):
        if i not in missed:
            python_values = [abi_python_value(t, v) for t, v in zip(types, row, strict=True)]
            assert words[i * width : (i + 1) * width] == eth_abi.encode(canonical, python_values)
    # Only forms outside the fast path are left: here, that is no JSON form at all.
    assert missed == []


def test_native_static_encoder_takes_the_common_forms_and_hands_back_the_rest() -> None:
    assert native is not None
    kinds = ((0, 0), (1, 256), (2, 16), (3, 0), (4, 4))
    good = [
        ["0x" + "ab" * 20, 5, -3, True, "0x01020304"],
        [bytes(20), "123456789012345678901234567890", 32767, False, b"\x01\x02\x03\x04"],
        ["0X" + "CD" * 20, "0xff", -32768, False, "0xAABBCCDD"],
        ["0x" + "ab" * 20, "0", "-32768", True, "0x01020304"],
        ["0x" + "ab" * 20, 2**256 - 1, 0, True, "0x01020304"],
    ]
    words, missed = native.encode_static(good, kinds)
    assert missed == []
    types = [parse_abi_type(t) for t in ("address", "uint256", "int16", "bool", "bytes4")]
    assert words == b"".join(abi_encode(types, row) for row in good)
    for bad_value, column in [
        (2**256, 1), (-1, 1), ("-1", 1), (32768, 2), (-32769, 2), ("-32769", 2), ("-0x1", 2), ("-", 2),
        (1, 3), ("0x0102", 4), ("0x" + "ab" * 19, 0), ("12a", 1), ("0x", 1), (1.0, 1),
    ]:
        row = list(good[0])
        row[column] = bad_value
        _, missed = native.encode_static([good[0], row, good[1]], kinds)
        assert missed == [1], (bad_value, column)
    with pytest.raises(ValueError):
        native.encode_static(good, ((4, 33),))
    with pytest.raises(ValueError):
        native.encode_static(good, ((1, 7),))


def test_tree_without_native_path_is_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = random_rows(random.Random(8), 300)
    fast = StandardMerkleTree.of(rows, ["address", "uint256"])
    monkeypatch.setattr(core, "_native", None)
    monkeypatch.setattr(core, "native_module", lambda: None)
    slow = StandardMerkleTree.of(rows, ["address", "uint256"])
    assert slow.dump() == fast.dump()
    assert StandardMerkleTree.load(fast.dump()).root == fast.root
    assert slow.get_multi_proof([3, 7, 250]) == fast.get_multi_proof([3, 7, 250])


# --- command line ---------------------------------------------------------------


def test_cli_build_proof_verify(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from veristream.cli import app

    rows = random_rows(random.Random(12), 9)
    (tmp_path / "rows.json").write_text(json.dumps({"values": rows, "encoding": ["address", "uint256"]}))
    runner = CliRunner()
    built = runner.invoke(app, ["merkle", "build", str(tmp_path / "rows.json"), "-o", str(tmp_path / "tree.json")])
    assert built.exit_code == 0, built.output
    tree = StandardMerkleTree.of(rows, ["address", "uint256"])
    assert built.output.strip() == tree.root
    proved = runner.invoke(app, ["merkle", "proof", str(tmp_path / "tree.json"), "4"])
    assert proved.exit_code == 0, proved.output
    answer = json.loads(proved.output)
    assert answer["proof"] == tree.get_proof(4) and answer["value"] == rows[4]
    args = ["merkle", "verify", tree.root, "address,uint256", json.dumps(rows[4])]
    assert runner.invoke(app, [*args, json.dumps(answer["proof"])]).exit_code == 0
    assert runner.invoke(app, [*args, json.dumps(tree.get_proof(5))]).exit_code == 1
    bad = runner.invoke(app, ["merkle", "build", str(tmp_path / "rows.json"), "--encoding", "address,uint8"])
    assert bad.exit_code != 0 and "row" in bad.output


def test_tree_pickles_for_ray_workers(tree17: StandardMerkleTree) -> None:
    import pickle

    tree17.get_proof(tree17.at(3))  # fills the lazy lookup too
    again = pickle.loads(pickle.dumps(tree17))
    assert again.dump() == tree17.dump()
    assert again.get_proof(tree17.at(5)) == tree17.get_proof(5)

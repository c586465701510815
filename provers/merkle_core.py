"""The format of OpenZeppelin's Merkle trees, as pure functions over bytes.

A tree of ``n`` leaves is ``2n - 1`` nodes of 32 bytes in one flat buffer, in
``@openzeppelin/merkle-tree``'s array layout: node ``i`` has children ``2i + 1``
and ``2i + 2``, leaf ``k`` (in the order given) sits at node ``2n - 2 - k``, and
an internal node is ``keccak256`` of its two children in ascending byte order
(what ``MerkleProof.sol`` recomputes). Proofs, multiproofs and their checks
follow ``core.ts`` of that library step for step, so the outputs are identical.

The whole-tree loops (leaf hashing, sorting, node hashing) run in the native
module ``_merkle_native`` when it was built; the ``_py_*`` functions here are
the reference it is tested against and the fallback without a C compiler.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType

from veristream.provers.encoding import keccak256
from veristream.provers.errors import InputRejected

NODE = 32


try:
    from veristream.provers import _merkle_native
except ImportError:  # pragma: no cover - only without a C compiler at install time
    _merkle_native = None
_native: ModuleType | None = _merkle_native
NATIVE = _native is not None


def native_module() -> ModuleType | None:
    """The native hot path (``_merkle_native``) when it was built, else None."""
    return _native


# --- hashes --------------------------------------------------------------



def leaf_hash_of_encoding(encoded: bytes) -> bytes:
    """A standard leaf: keccak256(keccak256(abi.encode(values)))."""
    return keccak256(keccak256(encoded))


def _py_leaf_hashes(encoded: Sequence[bytes]) -> bytes:
    return b"".join(map(keccak256, map(keccak256, encoded)))


def hash_leaves(encoded: Sequence[bytes] | bytes, width: int | None = None) -> bytes:
    """Standard leaf hashes, concatenated, of ABI encodings.

    ``encoded`` is either a sequence of encodings or, with ``width``, one flat
    buffer of equal-width records (the static-type fast path).
    """
    if width is not None:
        if not isinstance(encoded, bytes | bytearray | memoryview):
            raise InputRejected("a width needs one flat buffer of records")
        if width <= 0 or len(encoded) % width:
            raise InputRejected(f"buffer of {len(encoded)} bytes is not records of {width} bytes")
        if _native is not None:
            flat: bytes = _native.leaf_hashes(encoded, width)
            return flat
        view = bytes(encoded)
        return _py_leaf_hashes([view[i : i + width] for i in range(0, len(view), width)])
    if isinstance(encoded, bytes | bytearray | memoryview):
        raise InputRejected("a flat buffer needs its record width")
    return _py_leaf_hashes(encoded)


# --- sorting -------------------------------------------------------------


def _check_flat(buffer: bytes, what: str) -> int:
    if len(buffer) % NODE:
        raise InputRejected(f"{what} must be a whole number of 32-byte nodes, got {len(buffer)} bytes")
    return len(buffer) // NODE


def _py_sort_hashes(hashes: bytes) -> tuple[bytes, list[int]]:
    n = len(hashes) // NODE
    items = [hashes[i * NODE : (i + 1) * NODE] for i in range(n)]
    order = sorted(range(n), key=items.__getitem__)  # stable, as JavaScript's sort
    ranks = [0] * n
    for position, index in enumerate(order):
        ranks[index] = position
    return b"".join(items[i] for i in order), ranks


def sort_hashes(hashes: bytes) -> tuple[bytes, Sequence[int]]:
    """Leaf hashes in ascending order, and the rank of each input in that order.

    Equal hashes keep their input order (a stable sort), as OpenZeppelin's
    ``prepare`` does with JavaScript's stable ``Array.sort``.
    """
    _check_flat(hashes, "hashes")
    if _native is not None:
        ordered, packed = _native.sort_hashes(hashes)
        ranks = array("I")  # 4 bytes on every platform CPython builds the extension for
        ranks.frombytes(packed)
        return ordered, ranks
    return _py_sort_hashes(hashes)


# --- tree ----------------------------------------------------------------


def _py_build_tree(leaves: bytes) -> bytes:
    n = len(leaves) // NODE
    m = 2 * n - 1
    nodes: list[bytes] = [b""] * (n - 1) + [
        leaves[(n - 1 - k) * NODE : (n - k) * NODE] for k in range(n)
    ]
    # Array level [2^d - 1, 2^(d+1) - 1) holds independent nodes whose children
    # are in the next level: hash one level per list comprehension, deepest first.
    top = 1
    while top - 1 < n - 1:
        top *= 2
    while top > 1:
        first, end = top // 2 - 1, min(top - 1, n - 1)
        if first < end:
            children = nodes[2 * first + 1 : 2 * end + 1]
            nodes[first:end] = [
                keccak256(a + b if a <= b else b + a)
                for a, b in zip(children[0::2], children[1::2], strict=True)
            ]
        top //= 2
    assert len(nodes) == m
    return b"".join(nodes)


def make_merkle_tree(leaves: Sequence[bytes] | bytes) -> bytes:
    """Every node of the tree over ``leaves`` (32-byte hashes, in leaf order), flat.

    ``ValueError`` on zero leaves or a leaf that is not 32 bytes, as OZ's
    ``makeMerkleTree`` throws.
    """
    if isinstance(leaves, bytes | bytearray | memoryview):
        flat = bytes(leaves)
        _check_flat(flat, "leaves")
    else:
        for i, leaf in enumerate(leaves):
            if not isinstance(leaf, bytes | bytearray) or len(leaf) != NODE:
                raise InputRejected(f"leaf {i} must be 32 bytes")
        flat = b"".join(leaves)
    if not flat:
        raise InputRejected("expected a non-zero number of leaves")
    if _native is not None:
        tree: bytes = _native.build_tree(flat)
        return tree
    return _py_build_tree(flat)



def node_at(tree: bytes, index: int) -> bytes:
    """Node ``index`` of a flat tree."""
    if not 0 <= index < len(tree) // NODE:
        raise InputRejected(f"node {index} is outside a tree of {len(tree) // NODE} nodes")
    return tree[index * NODE : (index + 1) * NODE]


def is_leaf_index(tree: bytes, index: int) -> bool:
    """Whether ``index`` is a leaf node of the tree (a node without children)."""
    m = len(tree) // NODE
    return 0 <= index < m and 2 * index + 1 >= m


def _check_leaf(tree: bytes, index: int) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or not is_leaf_index(tree, index):
        raise InputRejected(f"index {index!r} is not a leaf")


def _check_node(node: bytes, what: str) -> None:
    if not isinstance(node, bytes | bytearray) or len(node) != NODE:
        raise InputRejected(f"{what} must be a 32-byte node")


# --- single proofs -------------------------------------------------------


def get_proof(tree: bytes, index: int) -> list[bytes]:
    """The sibling path from leaf node ``index`` up to the root."""
    _check_leaf(tree, index)
    proof = []
    while index > 0:
        sibling = index - 1 if index % 2 == 0 else index + 1
        proof.append(tree[sibling * NODE : (sibling + 1) * NODE])
        index = (index - 1) // 2
    return proof


def process_proof(leaf: bytes, proof: Iterable[bytes]) -> bytes:
    """The root that ``proof`` leads to from ``leaf`` (``MerkleProof.processProof``)."""
    _check_node(leaf, "leaf")
    node = bytes(leaf)
    for i, sibling in enumerate(proof):
        _check_node(sibling, f"proof element {i}")
        node = keccak256(node + sibling if node <= sibling else sibling + node)
    return node


# --- multiproofs ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MultiProof:
    """Leaves (in the order they are consumed), sibling nodes and flags, as OZ's ``MultiProof``."""

    leaves: list[bytes]
    proof: list[bytes]
    proof_flags: list[bool]


def get_multi_proof(tree: bytes, indices: Sequence[int]) -> MultiProof:
    """A multiproof of the leaf nodes ``indices`` (``getMultiProof`` of ``core.ts``)."""
    for index in indices:
        _check_leaf(tree, index)
    ordered = sorted(indices, reverse=True)
    if len(set(ordered)) != len(ordered):
        raise InputRejected("cannot prove a duplicated index")
    stack = deque(ordered)
    proof: list[bytes] = []
    flags: list[bool] = []
    while stack and stack[0] > 0:
        j = stack.popleft()
        sibling = j - 1 if j % 2 == 0 else j + 1
        parent = (j - 1) // 2
        if stack and stack[0] == sibling:
            flags.append(True)
            stack.popleft()
        else:
            flags.append(False)
            proof.append(tree[sibling * NODE : (sibling + 1) * NODE])
        stack.append(parent)
    if not ordered:
        proof.append(tree[:NODE])
    return MultiProof([tree[i * NODE : (i + 1) * NODE] for i in ordered], proof, flags)


def process_multi_proof(multiproof: MultiProof) -> bytes:
    """The root a multiproof leads to (``processMultiProof``); ``ValueError`` if malformed."""
    # VALIDATE
    for i, leaf in enumerate(multiproof.leaves):
        _check_node(leaf, f"leaf {i}")
    for i, node in enumerate(multiproof.proof):
        _check_node(node, f"proof element {i}")
    flags = multiproof.proof_flags
    if any(not isinstance(flag, bool) for flag in flags):
        raise InputRejected("proof flags must be booleans")
    if len(multiproof.proof) < sum(1 for flag in flags if not flag):
        raise InputRejected("invalid multiproof format: fewer proof nodes than false flags")
    if len(multiproof.leaves) + len(multiproof.proof) != len(flags) + 1:
        raise InputRejected("leaves and multiproof are not compatible")
    # OPERATION
    stack = deque(bytes(leaf) for leaf in multiproof.leaves)
    proof = deque(bytes(node) for node in multiproof.proof)
    for flag in flags:
        if not stack:
            raise InputRejected("invalid multiproof: flags consume more leaves than given")
        a = stack.popleft()
        if flag:
            if not stack:
                raise InputRejected("invalid multiproof: flags consume more leaves than given")
            b = stack.popleft()
        else:
            b = proof.popleft()
        stack.append(keccak256(a + b if a <= b else b + a))
    if len(stack) + len(proof) != 1:
        raise InputRejected("invalid multiproof: it does not end in one root")
    return stack.pop() if stack else proof.popleft()


# --- validation ----------------------------------------------------------


def is_valid_merkle_tree(tree: bytes) -> bool:
    """Whether a flat buffer is a well-formed tree: every internal node hashes its children."""
    m = len(tree) // NODE
    if m == 0 or len(tree) % NODE or m % 2 == 0:
        return False
    n = (m + 1) // 2
    # Rebuilding from the leaves checks every internal node, at native speed.
    leaves = b"".join(tree[(m - 1 - k) * NODE : (m - k) * NODE] for k in range(n))
    return make_merkle_tree(leaves) == bytes(tree)

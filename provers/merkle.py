"""``StandardMerkleTree``: OpenZeppelin's standard Merkle tree, in Python.

Roots, proofs, multiproofs and ``dump()`` output are identical to
``@openzeppelin/merkle-tree``'s ``StandardMerkleTree`` for the same rows and
leaf encoding, so a proof made here verifies with ``MerkleProof.sol`` and a
dump made here loads in the JavaScript library (and the other way round).

    tree = StandardMerkleTree.of([["0x1111...", "5000000000000000000"]], ["address", "uint256"])
    tree.root                    # "0x..."
    proof = tree.get_proof(0)    # list of "0x..." sibling hashes
    tree.verify(0, proof)        # True

The tree keeps its nodes in one flat buffer (``merkle_core``); hex strings are
made only for what a caller asks for.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from veristream.provers import merkle_core as core
from veristream.provers.encoding import AbiType, abi_encode, parse_abi_type
from veristream.provers.errors import InputRejected
from veristream.provers.merkle_core import NODE

FORMAT = "standard-v1"

# Column kinds of merkle_core's native static encoder (see _merkle_native.c).
_NATIVE_KIND = {"address": 0, "uint": 1, "int": 2, "bool": 3, "bytesN": 4}


def _hex(node: bytes) -> str:
    return "0x" + node.hex()


def _parse_node(value: Any, what: str) -> bytes:
    """A 32-byte node from ``0x``-hex (or bytes); ``ValueError`` otherwise."""
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
    elif isinstance(value, str) and value[:2] in ("0x", "0X"):
        try:
            raw = bytes.fromhex(value[2:])
        except ValueError:
            raise InputRejected(f"{what} is not hex: {value!r}") from None
    else:
        raise InputRejected(f"{what} must be 0x-hex, got {value!r}")
    if len(raw) != NODE:
        raise InputRejected(f"{what} must be 32 bytes, got {len(raw)}")
    return raw


def _parse_nodes(nodes: list[Any]) -> bytes:
    """A dump's ``tree`` as one flat buffer; the first bad node is named."""
    if all(isinstance(x, str) and len(x) == 66 and x[:2] in ("0x", "0X") for x in nodes):
        # One fromhex for the lot; it skips whitespace, so the length tells
        # whether every node really was 64 hex digits.
        try:
            flat = bytes.fromhex("".join([x[2:] for x in nodes]))
        except ValueError:
            flat = b""
        if len(flat) == NODE * len(nodes):
            return flat
    return b"".join(_parse_node(node, f"tree node {i}") for i, node in enumerate(nodes))


def _parse_encoding(leaf_encoding: Sequence[str]) -> list[AbiType]:
    if isinstance(leaf_encoding, str) or not isinstance(leaf_encoding, Sequence):
        raise InputRejected("leaf encoding must be a list of ABI type strings")
    if not leaf_encoding:
        raise InputRejected("leaf encoding must name at least one ABI type")
    return [parse_abi_type(t) for t in leaf_encoding]


def _encode_row(types: Sequence[AbiType], row: Any, index: int) -> bytes:
    try:
        return abi_encode(types, row)
    except ValueError as exc:
        raise InputRejected(f"row {index}: {exc}") from None


def _leaf_hashes(types: Sequence[AbiType], rows: list[Any]) -> bytes:
    """Standard leaf hashes of every row, concatenated, in row order."""
    if all(t.is_static_word for t in types):
        width = NODE * len(types)
        native = core.native_module()
        if native is not None:
            # The native encoder takes the rows it can; each row it leaves out
            # is encoded here (or raises the ValueError naming row and column).
            kinds = tuple((_NATIVE_KIND[t.kind], t.size or 0) for t in types)
            words, missed = native.encode_static(rows, kinds)
            for i in missed:
                words[i * width : (i + 1) * width] = _encode_row(types, rows[i], i)
            return core.hash_leaves(words, width)
        flat = b"".join([_encode_row(types, row, i) for i, row in enumerate(rows)])
        return core.hash_leaves(flat, width)
    return core.hash_leaves([_encode_row(types, row, i) for i, row in enumerate(rows)])


def standard_leaf_hash(leaf_encoding: Sequence[str], value: Sequence[Any]) -> str:
    """The standard leaf hash keccak256(keccak256(abi.encode(value))) of one row, 0x-hex."""
    types = _parse_encoding(leaf_encoding)
    return _hex(core.leaf_hash_of_encoding(_encode_row(types, value, 0)))


def verify_proof(root: str, leaf_encoding: Sequence[str], value: Sequence[Any], proof: Sequence[str]) -> bool:
    """Whether ``proof`` proves ``value`` under ``root`` (OZ's static ``StandardMerkleTree.verify``)."""
    types = _parse_encoding(leaf_encoding)
    leaf = core.leaf_hash_of_encoding(_encode_row(types, value, 0))
    nodes = [_parse_node(p, f"proof element {i}") for i, p in enumerate(proof)]
    return core.process_proof(leaf, nodes) == _parse_node(root, "root")


def verify_multi_proof(root: str, leaf_encoding: Sequence[str], multiproof: dict[str, Any]) -> bool:
    """Whether a multiproof (``{"leaves", "proof", "proofFlags"}``) proves its values under ``root``."""
    types = _parse_encoding(leaf_encoding)
    return _process_multi(types, multiproof) == _parse_node(root, "root")


def _process_multi(types: Sequence[AbiType], multiproof: Any) -> bytes:
    if not isinstance(multiproof, dict) or set(multiproof) != {"leaves", "proof", "proofFlags"}:
        raise InputRejected('a multiproof is {"leaves": [...], "proof": [...], "proofFlags": [...]}')
    values, proof, flags = multiproof["leaves"], multiproof["proof"], multiproof["proofFlags"]
    if not all(isinstance(x, list | tuple) for x in (values, proof, flags)):
        raise InputRejected("multiproof leaves, proof and proofFlags must be lists")
    leaves = [core.leaf_hash_of_encoding(_encode_row(types, v, i)) for i, v in enumerate(values)]
    nodes = [_parse_node(p, f"proof element {i}") for i, p in enumerate(proof)]
    return core.process_multi_proof(core.MultiProof(leaves, nodes, list(flags)))


class StandardMerkleTree:
    """A Merkle tree over ABI-encoded rows, byte-compatible with OpenZeppelin's.

    Build one with :meth:`of` or :meth:`load`; ``values[i]`` is row ``i`` as
    given, ``root`` the 0x-hex root.
    """

    __slots__ = ("_lookup", "_ranks", "_tree", "_types", "_values", "leaf_encoding")

    def __init__(
        self,
        tree: bytes,
        values: list[Any],
        ranks: Sequence[int],
        leaf_encoding: list[str],
        types: list[AbiType],
    ) -> None:
        """Internal: use :meth:`of` or :meth:`load`."""
        self._tree = tree
        self._values = values
        self._ranks = ranks  # value i is leaf ranks[i], i.e. node 2n - 2 - ranks[i]
        self.leaf_encoding = leaf_encoding
        self._types = types
        self._lookup: dict[bytes, int] | None = None

    # --- construction ----------------------------------------------------

    @classmethod
    def of(
        cls,
        values: Sequence[Sequence[Any]],
        leaf_encoding: Sequence[str],
        *,
        sort_leaves: bool = True,
    ) -> StandardMerkleTree:
        """The tree of ``values`` (rows) ABI-encoded as ``leaf_encoding``.

        Leaves are sorted by hash unless ``sort_leaves`` is False, as OZ's
        default. ``ValueError`` on zero rows, an unknown type, or a value that
        does not fit its type (naming its row and column).
        """
        # VALIDATE
        types = _parse_encoding(leaf_encoding)
        rows = list(values)
        if not rows:
            raise InputRejected("expected a non-zero number of leaves")
        # HASH, SORT, BUILD
        hashes = _leaf_hashes(types, rows)
        if sort_leaves:
            ordered, ranks = core.sort_hashes(hashes)
        else:
            ordered, ranks = hashes, range(len(rows))
        tree = core.make_merkle_tree(ordered)
        return cls(tree, rows, ranks, list(leaf_encoding), types)

    @classmethod
    def of_leaf_hashes(
        cls, values: Sequence[Sequence[Any]], leaf_encoding: Sequence[str], leaf_hashes: bytes
    ) -> StandardMerkleTree:
        """The tree :meth:`of` builds for ``values``, from their standard leaf hashes the caller
        already has (concatenated, in row order): a large tree is not hashed twice.

        The first and last rows are hashed again as a check that the hashes are of these rows
        under this encoding (``ValueError`` otherwise); the rest is the caller's word.
        """
        # VALIDATE
        types = _parse_encoding(leaf_encoding)
        rows = list(values)
        if not rows:
            raise InputRejected("expected a non-zero number of leaves")
        if len(leaf_hashes) != NODE * len(rows):
            raise InputRejected(f"{len(leaf_hashes)} bytes of leaf hashes for {len(rows)} rows")
        for i in {0, len(rows) - 1}:
            if core.leaf_hash_of_encoding(_encode_row(types, rows[i], i)) != leaf_hashes[i * NODE : (i + 1) * NODE]:
                raise InputRejected(f"leaf hash {i} is not the hash of row {i}")
        # SORT, BUILD
        ordered, ranks = core.sort_hashes(leaf_hashes)
        return cls(core.make_merkle_tree(ordered), rows, ranks, list(leaf_encoding), types)

    @classmethod
    def load(cls, data: dict[str, Any]) -> StandardMerkleTree:
        """A tree from OZ's ``standard-v1`` dump, fully re-validated.

        ``ValueError`` unless every node hashes its children, every value
        hashes to its leaf, and values and leaves match one to one.
        """
        # VALIDATE: shape
        if not isinstance(data, dict):
            raise InputRejected("a dump must be a JSON object")
        if data.get("format") != FORMAT:
            raise InputRejected(f"unknown format {data.get('format')!r}, expected {FORMAT!r}")
        if "leafEncoding" not in data:
            raise InputRejected("expected leaf encoding")
        types = _parse_encoding(data["leafEncoding"])
        nodes, entries = data.get("tree"), data.get("values")
        if not isinstance(nodes, list) or not isinstance(entries, list):
            raise InputRejected("a dump needs 'tree' and 'values' lists")
        if not nodes:
            raise InputRejected("the dump's tree is empty")
        tree = _parse_nodes(nodes)
        m = len(nodes)
        n = (m + 1) // 2
        if m % 2 == 0 or len(entries) != n:
            raise InputRejected(f"a tree of {m} nodes cannot hold {len(entries)} values")
        # VALIDATE: values against leaves
        rows: list[Any] = []
        ranks = [0] * n
        seen = set()
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or set(entry) != {"value", "treeIndex"}:
                raise InputRejected(f"value {i} must be {{'value': ..., 'treeIndex': ...}}")
            tree_index = entry["treeIndex"]
            if isinstance(tree_index, bool) or not isinstance(tree_index, int):
                raise InputRejected(f"value {i}: treeIndex must be an integer")
            if not core.is_leaf_index(tree, tree_index) or tree_index in seen:
                raise InputRejected(f"value {i}: treeIndex {tree_index} is not a distinct leaf")
            seen.add(tree_index)
            rows.append(entry["value"])
            ranks[i] = m - 1 - tree_index
        hashes = _leaf_hashes(types, rows)
        for i in range(n):
            node = (m - 1 - ranks[i]) * NODE
            if tree[node : node + NODE] != hashes[i * NODE : (i + 1) * NODE]:
                raise InputRejected(f"value {i} does not hash to its leaf {entries[i]['treeIndex']}")
        # VALIDATE: nodes
        if not core.is_valid_merkle_tree(tree):
            raise InputRejected("the dump's tree is invalid: a node is not the hash of its children")
        return cls(tree, rows, ranks, list(data["leafEncoding"]), types)

    # --- views -----------------------------------------------------------

    @property
    def root(self) -> str:
        """The root, 0x-hex."""
        return _hex(self._tree[:NODE])

    @property
    def root_bytes(self) -> bytes:
        """The root, 32 bytes."""
        return self._tree[:NODE]

    @property
    def values(self) -> list[Any]:
        """The rows, in the order given."""
        return self._values

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def at(self, index: int) -> Any:
        """Row ``index``."""
        return self._values[self._value_index(index)]

    def entries(self) -> Iterator[tuple[int, Any]]:
        """``(index, row)`` pairs, as OZ's ``entries()``."""
        return enumerate(self._values)

    def tree_index(self, index: int) -> int:
        """The node of row ``index`` in the array layout (its ``treeIndex``)."""
        return len(self._tree) // NODE - 1 - self._ranks[self._value_index(index)]

    def leaf_hash(self, value: Sequence[Any]) -> str:
        """The standard leaf hash of a row under this tree's encoding, 0x-hex."""
        return _hex(core.leaf_hash_of_encoding(_encode_row(self._types, value, 0)))

    def render(self) -> str:
        """The tree drawn as text (OZ's ``render()``), for debugging small trees."""
        m = len(self._tree) // NODE
        lines = []
        stack: list[tuple[int, list[int]]] = [(0, [])]
        while stack:
            i, path = stack.pop()
            prefix = "".join("│  " if p else "   " for p in path[:-1])
            prefix += "".join("├─ " if p else "└─ " for p in path[-1:])
            lines.append(f"{prefix}{i}) {_hex(core.node_at(self._tree, i))}")
            if 2 * i + 2 < m:
                stack.append((2 * i + 2, [*path, 0]))
                stack.append((2 * i + 1, [*path, 1]))
        return "\n".join(lines)

    # --- proofs ----------------------------------------------------------

    def get_proof(self, index_or_value: int | Sequence[Any]) -> list[str]:
        """The proof of one row (by index or by value), checked before it is returned."""
        i = self._resolve(index_or_value)
        node = self.tree_index(i)
        proof = core.get_proof(self._tree, node)
        # SANITY: a proof that does not verify is never handed out
        if core.process_proof(core.node_at(self._tree, node), proof) != self.root_bytes:
            raise AssertionError("unable to prove value")
        return [_hex(p) for p in proof]

    def get_multi_proof(self, indices_or_values: Sequence[int | Sequence[Any]]) -> dict[str, Any]:
        """A multiproof of several rows: ``{"leaves": rows, "proof": [...], "proofFlags": [...]}``."""
        indices = [self._resolve(x) for x in indices_or_values]
        nodes = [self.tree_index(i) for i in indices]
        multi = core.get_multi_proof(self._tree, nodes)
        # SANITY
        if core.process_multi_proof(multi) != self.root_bytes:
            raise AssertionError("unable to prove values")
        # Leaves back to rows through the hash lookup, as OZ does (equal hashes
        # give the last row with that hash).
        lookup = self._hash_lookup()
        return {
            "leaves": [self._values[lookup[leaf]] for leaf in multi.leaves],
            "proof": [_hex(p) for p in multi.proof],
            "proofFlags": list(multi.proof_flags),
        }

    def verify(self, index_or_value: int | Sequence[Any], proof: Sequence[str]) -> bool:
        """Whether ``proof`` proves the row (by index or value) under this root.

        ``ValueError`` on a malformed proof element or a row that does not fit
        the encoding; False for a well-formed proof that does not lead here.
        """
        if isinstance(index_or_value, int) and not isinstance(index_or_value, bool):
            value = self._values[self._value_index(index_or_value)]
        else:
            value = index_or_value
        leaf = core.leaf_hash_of_encoding(_encode_row(self._types, value, 0))
        if isinstance(proof, str) or not isinstance(proof, Sequence):
            raise InputRejected("a proof is a list of 0x-hex nodes")
        nodes = [_parse_node(p, f"proof element {i}") for i, p in enumerate(proof)]
        return core.process_proof(leaf, nodes) == self.root_bytes

    def verify_multi_proof(self, multiproof: dict[str, Any]) -> bool:
        """Whether a multiproof (as :meth:`get_multi_proof` returns) proves its rows here."""
        return _process_multi(self._types, multiproof) == self.root_bytes

    # --- serialisation ---------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """OZ's ``standard-v1`` dump: format, leafEncoding, tree (0x-hex), values with treeIndex."""
        m = len(self._tree) // NODE
        tree_hex = "0x" + self._tree.hex()
        # One hex conversion for the whole buffer, then slices: 66 chars a node.
        nodes = ["0x" + tree_hex[2 + 64 * i : 66 + 64 * i] for i in range(m)]
        return {
            "format": FORMAT,
            "leafEncoding": list(self.leaf_encoding),
            "tree": nodes,
            "values": [
                {"value": value, "treeIndex": m - 1 - rank}
                for value, rank in zip(self._values, self._ranks, strict=True)
            ],
        }

    def dumps(self) -> str:
        """:meth:`dump` as JSON text."""
        return json.dumps(self.dump())

    # --- helpers ---------------------------------------------------------

    def _value_index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self._values):
            raise InputRejected(f"index {index!r} out of bounds for {len(self._values)} values")
        return index

    def _resolve(self, index_or_value: int | Sequence[Any]) -> int:
        if isinstance(index_or_value, int) and not isinstance(index_or_value, bool):
            return self._value_index(index_or_value)
        return self._leaf_lookup(index_or_value)

    def _hash_lookup(self) -> dict[bytes, int]:
        if self._lookup is None:
            # Built on first use: a tree that is only built and dumped never pays
            # for it. Later rows overwrite earlier ones with the same leaf, as in OZ.
            m = len(self._tree) // NODE
            tree = self._tree
            self._lookup = {
                tree[(m - 1 - rank) * NODE : (m - rank) * NODE]: i for i, rank in enumerate(self._ranks)
            }
        return self._lookup

    def _leaf_lookup(self, value: Any) -> int:
        leaf = core.leaf_hash_of_encoding(_encode_row(self._types, value, 0))
        found = self._hash_lookup().get(leaf)
        if found is None:
            raise InputRejected("leaf is not in tree")
        return found

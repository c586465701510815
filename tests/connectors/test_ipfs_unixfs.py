"""CIDs and UnixFS layout: known vectors, IPFS's own importer as the oracle, DAG reading."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multiformats import CID, multihash

from tests.conftest import REPO
from veristream.connectors.ipfs import CidMismatch, cid_of, cid_to_bytes, normalize_cid
from veristream.connectors.ipfs.cid import DAG_PB, RAW, block_cid, format_cid, parse_cid
from veristream.connectors.ipfs.unixfs import (
    CHUNK_SIZE,
    MAX_LINKS,
    PBLink,
    UnixFSData,
    decode_pb_node,
    decode_unixfs,
    encode_pb_node,
    encode_unixfs,
    iter_file_blocks,
    read_file,
)
from veristream.provers.epoch_result import EpochResult, epoch_result_struct_hash

IMPORTER = REPO / "tests" / "js" / "unixfs_import.mjs"
EMPTY = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
HELLO = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def js_import(node: str, data: bytes, tmp: Path) -> dict[str, object]:
    """Root and blocks as IPFS's UnixFS importer (npm ipfs-unixfs-importer) builds them."""
    path = tmp / f"input-{len(data)}.bin"
    path.write_bytes(data)
    done = subprocess.run(
        [node, str(IMPORTER), str(path)], capture_output=True, check=True, cwd=REPO, timeout=300
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def our_blocks(data: bytes) -> list[tuple[str, int, str | None]]:
    return sorted(
        (format_cid(b.cid), len(b.data), b.data.hex() if b.cid[1] == DAG_PB else None)
        for b in iter_file_blocks(data)
    )


def their_blocks(result: dict[str, object]) -> list[tuple[str, int, str | None]]:
    blocks = result["blocks"]
    assert isinstance(blocks, list)
    return sorted((b["cid"], b["size"], b.get("hex")) for b in blocks)


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


# --- known vectors -----------------------------------------------------------


def test_known_vectors() -> None:
    assert cid_of(b"") == EMPTY
    assert cid_of(b"hello world\n") == HELLO


def test_single_chunk_is_a_raw_block() -> None:
    data = random_bytes(CHUNK_SIZE, 1)
    blocks = list(iter_file_blocks(data))
    assert len(blocks) == 1
    assert blocks[0].cid == block_cid(RAW, data)
    assert parse_cid(cid_of(data)).codec == RAW


def test_cid_of_rejects_non_bytes() -> None:
    with pytest.raises(ValueError, match="bytes"):
        cid_of(cast(Any, "hello"))


# --- IPFS's own importer as the oracle ---------------------------------------


@pytest.mark.parametrize(
    ("size", "leaves", "depth"),
    [
        (CHUNK_SIZE + 1, 2, 1),
        (5 * 1024 * 1024, 20, 1),
        (MAX_LINKS * CHUNK_SIZE + 7, MAX_LINKS + 1, 2),
    ],
    ids=["256KiB+1", "5MiB", "174x256KiB+7"],
)
def test_multi_chunk_matches_js_importer(
    node: str, tmp_path: Path, size: int, leaves: int, depth: int
) -> None:
    data = random_bytes(size, size)
    theirs = js_import(node, data, tmp_path)
    ours = our_blocks(data)
    # Every block byte for byte: raw leaves by CID and size, inner nodes by their bytes.
    assert ours == their_blocks(theirs)
    assert cid_of(data) == theirs["root"]
    raw = [b for b in ours if b[2] is None]
    assert len(raw) == leaves
    root = decode_pb_node(bytes.fromhex(next(b[2] for b in ours if b[0] == theirs["root"]) or ""))
    root_meta = decode_unixfs(root.data or b"")
    assert root_meta.filesize == size
    if depth == 2:
        # 175 leaves need a second layer: a root over a full node and a one-leaf node.
        assert len(root.links) == 2
        assert root_meta.blocksizes == (MAX_LINKS * CHUNK_SIZE, 7)


BOUNDARY_SIZES = st.sampled_from([0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE])


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    size=st.one_of(BOUNDARY_SIZES, st.integers(0, 3 * CHUNK_SIZE + 17)),
    seed=st.integers(0, 2**32 - 1),
)
def test_small_sizes_match_js_importer(node: str, tmp_path: Path, size: int, seed: int) -> None:
    data = random_bytes(size, seed)
    theirs = js_import(node, data, tmp_path)
    assert cid_of(data) == theirs["root"]
    assert our_blocks(data) == their_blocks(theirs)


# --- reading back ------------------------------------------------------------


def _as_store(data: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    blocks = {b.cid: b.data for b in iter_file_blocks(data)}
    root = list(blocks)[-1]
    return root, blocks


@settings(max_examples=25, deadline=None)
@given(size=st.integers(0, 4 * CHUNK_SIZE + 3), seed=st.integers(0, 2**32 - 1))
def test_read_file_round_trips(size: int, seed: int) -> None:
    data = random_bytes(size, seed)
    root, blocks = _as_store(data)
    assert read_file(format_cid(root), blocks.__getitem__) == data


def test_read_file_refuses_a_tampered_leaf() -> None:
    data = random_bytes(3 * CHUNK_SIZE, 7)
    root, blocks = _as_store(data)
    leaf = next(cid for cid in blocks if cid[1] == RAW)
    tampered = bytearray(blocks[leaf])
    tampered[100] ^= 1
    blocks[leaf] = bytes(tampered)
    with pytest.raises(CidMismatch):
        read_file(root, blocks.__getitem__)


def test_read_file_refuses_inconsistent_blocksizes() -> None:
    # A well-hashed node that lies about its children's sizes is malformed, not a file.
    leaf_a, leaf_b = b"a" * 10, b"b" * 5
    cid_a, cid_b = block_cid(RAW, leaf_a), block_cid(RAW, leaf_b)
    meta = UnixFSData(2, None, 16, (10, 6))
    node = encode_pb_node([PBLink(cid_a, "", 10), PBLink(cid_b, "", 5)], encode_unixfs(meta))
    root = block_cid(DAG_PB, node)
    blocks = {cid_a: leaf_a, cid_b: leaf_b, root: node}
    with pytest.raises(ValueError, match="blocksizes"):
        read_file(root, blocks.__getitem__)


def test_read_file_refuses_non_file_nodes() -> None:
    directory = encode_pb_node([], encode_unixfs(UnixFSData(1)))
    root = block_cid(DAG_PB, directory)
    with pytest.raises(ValueError, match="not a file"):
        read_file(root, {root: directory}.__getitem__)


def test_dag_pb_decode_refuses_garbage() -> None:
    with pytest.raises(ValueError):
        decode_pb_node(b"\x0a\xff")
    with pytest.raises(ValueError):
        decode_pb_node(b"\x1d\x00\x00\x00\x00")


@given(
    links=st.lists(
        st.tuples(st.binary(min_size=1, max_size=40), st.text(max_size=8), st.integers(0, 2**63)),
        max_size=5,
    ),
    data=st.one_of(st.none(), st.binary(max_size=50)),
)
def test_dag_pb_round_trips(links: list[tuple[bytes, str, int]], data: bytes | None) -> None:
    encoded = encode_pb_node([PBLink(h, n, t) for h, n, t in links], data)
    node = decode_pb_node(encoded)
    assert [(link.hash, link.name, link.tsize) for link in node.links] == links
    assert node.data == data


# --- CID forms ------------------------------------------------------------------


@given(digest=st.binary(min_size=32, max_size=32), codec=st.sampled_from([RAW, DAG_PB]))
def test_fast_base32_matches_multiformats(digest: bytes, codec: int) -> None:
    reference = CID("base32", 1, codec, multihash.wrap(digest, "sha2-256"))
    binary = bytes(reference)
    assert format_cid(binary) == str(reference)
    assert parse_cid(str(reference)).binary == binary
    assert parse_cid(binary).digest == digest


def test_cid_to_bytes_and_epoch_result() -> None:
    binary = cid_to_bytes(HELLO)
    assert binary == bytes.fromhex("01551220") + hashlib.sha256(b"hello world\n").digest()
    result = EpochResult(b"\x01" * 32, 3, b"\x02" * 32, b"\x04" * 32, b"\x03" * 32, binary, binary)
    assert len(epoch_result_struct_hash(result)) == 32


def test_normalize_accepts_other_bases_and_v0() -> None:
    assert normalize_cid(str(CID.decode(HELLO).encode("base58btc"))) == HELLO
    assert normalize_cid(f"  {HELLO}\n") == HELLO
    v0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    assert normalize_cid(v0) == v0


@pytest.mark.parametrize("bad", ["", "hello", "bafy", "b" + "a" * 10, 42, b"\x01"])
def test_bad_cids_are_value_errors(bad: object) -> None:
    with pytest.raises(ValueError):
        cid_to_bytes(cast(Any, bad))


def test_verify_other_hash_functions() -> None:
    # CIDs from other writers may use another multihash; get must still verify them.
    data = b"some block"
    wrapped = multihash.digest(data, "sha2-512")
    cid = CID("base32", 1, "raw", wrapped)
    assert read_file(str(cid), {bytes(cid): data}.__getitem__) == data
    with pytest.raises(CidMismatch):
        read_file(str(cid), {bytes(cid): data + b"!"}.__getitem__)

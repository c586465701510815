"""EmbeddedStore: put/get/pin/has on disk, tamper detection, crash-safe writes, CARv1."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any, cast

import dag_cbor
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import CID

from veristream.connectors.ipfs import (
    BlockNotFound,
    BlockStore,
    CidMismatch,
    EmbeddedStore,
    cid_of,
    cid_to_bytes,
)
from veristream.connectors.ipfs.car import iter_blocks, read_header, write_car
from veristream.connectors.ipfs.cid import RAW, block_cid, format_cid
from veristream.connectors.ipfs.unixfs import CHUNK_SIZE, Block, iter_file_blocks

HELLO = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def block_files(store: EmbeddedStore) -> list[Path]:
    return sorted(p for p in (store.path / "blocks").rglob("*") if p.is_file())


def test_is_a_blockstore(tmp_path: Path) -> None:
    assert isinstance(EmbeddedStore(tmp_path), BlockStore)


def test_put_returns_kubo_cids_and_get_round_trips(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    assert store.put(b"hello world\n") == HELLO
    data = random_bytes(5 * CHUNK_SIZE + 11, 1)
    cid = store.put(data)
    assert cid == cid_of(data)
    assert cid.startswith("bafybei")  # multi-chunk: a dag-pb root
    assert store.get(cid) == data
    assert store.get(HELLO) == b"hello world\n"
    assert store.put(b"") == cid_of(b"")
    assert store.get(cid_of(b"")) == b""


def test_state_survives_reopening(tmp_path: Path) -> None:
    data = random_bytes(3 * CHUNK_SIZE, 2)
    cid = EmbeddedStore(tmp_path).put(data)
    again = EmbeddedStore(tmp_path)
    assert again.get(cid) == data
    assert again.pins() == [cid]


def test_put_is_idempotent_and_shares_blocks(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    data = random_bytes(2 * CHUNK_SIZE + 1, 3)
    store.put(data)
    before = block_files(store)
    assert store.put(data) == cid_of(data)
    assert block_files(store) == before
    # A file sharing its first chunk adds only its own blocks.
    store.put(data[:CHUNK_SIZE] + b"tail")
    assert len(block_files(store)) == len(before) + 2


def test_get_accepts_other_cid_forms(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    store.put(b"hello world\n")
    other_base = str(CID.decode(HELLO).encode("base58btc"))
    assert store.get(other_base) == b"hello world\n"
    assert store.get(cast(Any, cid_to_bytes(HELLO))) == b"hello world\n"


def test_tampered_block_on_disk_is_refused(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    data = random_bytes(2 * CHUNK_SIZE + 5, 4)
    cid = store.put(data)
    leaf = next(b for b in iter_file_blocks(data) if b.cid[1] == RAW)
    path = store._block_path(leaf.cid)
    path.write_bytes(b"X" + path.read_bytes()[1:])
    with pytest.raises(CidMismatch):
        store.get(cid)


def test_missing_blocks(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    data = random_bytes(3 * CHUNK_SIZE, 5)
    cid = store.put(data, pin=False)
    assert store.has(cid)
    assert not store.has(HELLO)
    with pytest.raises(BlockNotFound):
        store.get(HELLO)
    store._block_path(next(iter_file_blocks(data)).cid).unlink()
    assert not store.has(cid)  # the root is there, a leaf is not
    with pytest.raises(BlockNotFound):
        store.get(cid)
    with pytest.raises(BlockNotFound):
        store.pin(cid)


def test_pins(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    cid = store.put(b"unpinned", pin=False)
    assert store.pins() == []
    store.pin(cid)
    store.pin(cid)
    assert store.pins() == [cid]
    store.unpin(cid)
    store.unpin(cid)
    assert store.pins() == []


def test_bad_input_is_value_error(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    with pytest.raises(ValueError):
        store.put(cast(Any, "text"))
    with pytest.raises(ValueError):
        store.get("not-a-cid")
    with pytest.raises(ValueError):
        store.has("")


def test_no_temporary_files_left(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    store.put(random_bytes(2 * CHUNK_SIZE + 1, 6))
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_torn_write_is_invisible(tmp_path: Path) -> None:
    # A crash mid-write leaves a partial file in tmp/, never under blocks/:
    # the next put writes the block whole and reads see only complete blocks.
    store = EmbeddedStore(tmp_path)
    data = random_bytes(CHUNK_SIZE + 9, 7)
    (tmp_path / "tmp" / "tmpcrash").write_bytes(data[:1000])
    assert not store.has(cid_of(data))
    cid = store.put(data)
    assert EmbeddedStore(tmp_path).get(cid) == data


# --- CAR ------------------------------------------------------------------------


def test_car_round_trips_between_stores(tmp_path: Path) -> None:
    source = EmbeddedStore(tmp_path / "a")
    data = random_bytes(4 * CHUNK_SIZE + 3, 8)
    cid = source.put(data)
    car = tmp_path / "batch.car"
    size = source.export_car(cid, car)
    assert size == car.stat().st_size
    target = EmbeddedStore(tmp_path / "b")
    assert target.import_car(car) == [cid]
    assert target.get(cid) == data
    assert target.pins() == [cid]


def test_car_layout_is_carv1(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    data = random_bytes(2 * CHUNK_SIZE + 1, 9)
    cid = store.put(data)
    out = io.BytesIO()
    store.export_car(cid, out)
    raw = out.getvalue()
    # Parse the header independently with dag-cbor: {roots: [CID], version: 1}.
    assert raw[0] < 0x80
    header = dag_cbor.decode(raw[1 : 1 + raw[0]])
    assert header == {"roots": [CID.decode(cid)], "version": 1}
    stream = io.BytesIO(raw)
    assert read_header(stream) == [cid_to_bytes(cid)]
    blocks = list(iter_blocks(stream))
    # Root first, then its children in link order (as `ipfs dag export`).
    assert [b.cid for b in blocks] == [cid_to_bytes(cid)] + [
        b.cid for b in iter_file_blocks(data) if b.cid[1] == RAW
    ]


@settings(max_examples=20, deadline=None)
@given(chunks=st.lists(st.binary(max_size=300), min_size=1, max_size=6))
def test_car_write_read_round_trips(chunks: list[bytes]) -> None:
    blocks = [Block(block_cid(RAW, chunk), chunk) for chunk in chunks]
    out = io.BytesIO()
    write_car([blocks[0].cid], blocks, out)
    stream = io.BytesIO(out.getvalue())
    assert read_header(stream) == [blocks[0].cid]
    assert list(iter_blocks(stream)) == blocks


def test_car_with_a_tampered_block_is_refused(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "a")
    data = random_bytes(CHUNK_SIZE + 100, 10)
    cid = store.put(data)
    out = io.BytesIO()
    store.export_car(cid, out)
    raw = bytearray(out.getvalue())
    raw[-50] ^= 0xFF  # inside the last leaf
    target = EmbeddedStore(tmp_path / "b")
    with pytest.raises(CidMismatch):
        target.import_car(io.BytesIO(bytes(raw)))
    assert target.pins() == []


def test_car_missing_blocks_is_refused(tmp_path: Path) -> None:
    data = random_bytes(2 * CHUNK_SIZE, 11)
    blocks = list(iter_file_blocks(data))
    out = io.BytesIO()
    write_car([blocks[-1].cid], blocks[1:], out)  # the first leaf is missing
    target = EmbeddedStore(tmp_path)
    with pytest.raises(BlockNotFound, match=format_cid(blocks[-1].cid)):
        target.import_car(io.BytesIO(out.getvalue()))
    assert target.pins() == []


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x05abc",
        b"\x03\xa0\x00\x00",
        bytes([len(dag_cbor.encode({"roots": [], "version": 2}))])
        + dag_cbor.encode({"roots": [], "version": 2}),
        bytes([len(dag_cbor.encode({"roots": ["x"], "version": 1}))])
        + dag_cbor.encode({"roots": ["x"], "version": 1}),
    ],
    ids=["empty", "truncated", "not-cbor", "carv2", "root-not-cid"],
)
def test_malformed_cars_are_value_errors(tmp_path: Path, raw: bytes) -> None:
    with pytest.raises(ValueError):
        EmbeddedStore(tmp_path).import_car(io.BytesIO(raw))


def test_truncated_block_section_is_value_error(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "a")
    cid = store.put(b"hello world\n")
    out = io.BytesIO()
    store.export_car(cid, out)
    with pytest.raises(ValueError, match="truncated"):
        EmbeddedStore(tmp_path / "b").import_car(io.BytesIO(out.getvalue()[:-3]))


def test_export_of_missing_dag_refused(tmp_path: Path) -> None:
    with pytest.raises(BlockNotFound):
        EmbeddedStore(tmp_path).export_car(HELLO, tmp_path / "x.car")
    assert not (tmp_path / "x.car").exists()


def test_a_torn_block_file_is_rewritten(tmp_path: Path) -> None:
    # Without fsync a crash can leave a block file short; the next put repairs it.
    store = EmbeddedStore(tmp_path, durable=False)
    data = random_bytes(CHUNK_SIZE + 9, 12)
    cid = store.put(data)
    leaf = next(iter_file_blocks(data))
    store._block_path(leaf.cid).write_bytes(b"")
    with pytest.raises(CidMismatch):
        store.get(cid)
    assert store.put(data) == cid
    assert store.get(cid) == data


def test_cli_round_trip(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from veristream.cli import app

    runner = CliRunner()
    source = tmp_path / "batch.bin"
    data = random_bytes(CHUNK_SIZE + 77, 13)
    source.write_bytes(data)
    store_a, store_b = str(tmp_path / "a"), str(tmp_path / "b")
    cid = cid_of(data)
    assert runner.invoke(app, ["ipfs", "cid", str(source)]).output.strip() == cid
    assert runner.invoke(app, ["ipfs", "put", str(source), "--store", store_a]).output.strip() == cid
    car = tmp_path / "batch.car"
    assert runner.invoke(app, ["ipfs", "export-car", cid, str(car), "--store", store_a]).exit_code == 0
    imported = runner.invoke(app, ["ipfs", "import-car", str(car), "--store", store_b])
    assert imported.output.strip() == cid
    out = tmp_path / "out.bin"
    assert runner.invoke(app, ["ipfs", "get", cid, "-o", str(out), "--store", store_b]).exit_code == 0
    assert out.read_bytes() == data


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    from veristream.connectors.ipfs import RpcStore, open_store
    from veristream.pipeline.jobspec import IpfsSpec

    embedded = open_store(IpfsSpec(), tmp_path)
    assert isinstance(embedded, EmbeddedStore)
    assert embedded.put(b"x") == open_store(IpfsSpec(), tmp_path).put(b"x")
    assert (tmp_path / "ipfs").is_dir()
    remote = open_store(IpfsSpec(mode="rpc", url="http://127.0.0.1:5001"), tmp_path)
    assert isinstance(remote, RpcStore)
    remote.close()

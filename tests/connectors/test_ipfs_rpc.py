"""RpcStore against a real IPFS node (js-ipfs, started here) and against lying or failing fake nodes."""

from __future__ import annotations

import io
import json
import random
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlparse

import pytest

from tests.conftest import free_port
from tests.ipfs_node import jsipfs_node
from veristream.connectors.ipfs import (
    BlockNotFound,
    BlockStore,
    CidMismatch,
    EmbeddedStore,
    RpcError,
    RpcStore,
    cid_of,
)
from veristream.connectors.ipfs.car import write_car
from veristream.connectors.ipfs.unixfs import CHUNK_SIZE, MAX_LINKS, iter_file_blocks

HELLO = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


# --- a real node -------------------------------------------------------------


@pytest.fixture(scope="module")
def ipfs_url() -> Iterator[str]:
    with jsipfs_node() as url:
        yield url


@pytest.fixture()
def rpc(ipfs_url: str) -> Iterator[RpcStore]:
    with RpcStore(ipfs_url, timeout=30.0) as store:
        yield store


@pytest.mark.services
def test_node_answers_version(rpc: RpcStore) -> None:
    assert isinstance(rpc, BlockStore)
    assert rpc.version()["Version"]


@pytest.mark.services
@pytest.mark.parametrize(
    "size",
    [0, 12, CHUNK_SIZE, CHUNK_SIZE + 1, 5 * 1024 * 1024],
    ids=["empty", "12B", "256KiB", "256KiB+1", "5MiB"],
)
def test_node_gives_the_embedded_cid(rpc: RpcStore, tmp_path: Path, size: int) -> None:
    data = random_bytes(size, size)
    embedded = EmbeddedStore(tmp_path).put(data)
    assert rpc.put(data) == embedded == cid_of(data)
    assert rpc.get(embedded) == data
    assert rpc.cat(embedded) == data
    assert rpc.has(embedded)


@pytest.mark.services
@pytest.mark.slow
def test_node_gives_the_embedded_cid_for_two_layers(rpc: RpcStore, tmp_path: Path) -> None:
    data = random_bytes(MAX_LINKS * CHUNK_SIZE + 7, 174)
    cid = rpc.put(data)
    local = EmbeddedStore(tmp_path)
    assert cid == local.put(data)
    assert rpc.get(cid) == data
    ours, theirs = io.BytesIO(), io.BytesIO()
    local.export_car(cid, ours)
    rpc.export_car(cid, theirs)
    assert ours.getvalue() == theirs.getvalue()


@pytest.mark.services
def test_known_vector_on_the_node(rpc: RpcStore) -> None:
    assert rpc.put(b"hello world\n") == HELLO


@pytest.mark.services
def test_pin_and_has(rpc: RpcStore) -> None:
    data = random_bytes(1000, 99)
    cid = rpc.put(data, pin=False)
    rpc.pin(cid)
    assert rpc.has(cid)


@pytest.mark.services
def test_missing_content(ipfs_url: str) -> None:
    absent = cid_of(b"never added to this node")
    with RpcStore(ipfs_url, timeout=4.0, probe_timeout=1.0) as store:
        assert not store.has(absent)
        with pytest.raises(BlockNotFound):
            store.get(absent)


@pytest.mark.services
def test_embedded_car_imports_into_the_node(rpc: RpcStore, tmp_path: Path) -> None:
    # The move `ipfs dag import` makes: a batch stored locally, exported as a
    # CARv1, imported by a real node, then served by that node under the same CID.
    data = random_bytes(3 * CHUNK_SIZE + 1234, 3)
    local = EmbeddedStore(tmp_path / "store")
    cid = local.put(data)
    car = tmp_path / "batch.car"
    local.export_car(cid, car)
    assert not rpc.has(cid)
    assert rpc.import_car(car) == [cid]
    assert rpc.has(cid)
    assert rpc.get(cid) == data
    assert rpc.cat(cid) == data


@pytest.mark.services
def test_node_blocks_export_back_to_embedded(rpc: RpcStore, tmp_path: Path) -> None:
    # The other way: what the node holds, fetched block by block, lands in an
    # embedded store whose CAR re-imports to the same root.
    data = random_bytes(2 * CHUNK_SIZE + 5, 4)
    cid = rpc.put(data)
    local = EmbeddedStore(tmp_path / "store")
    assert local.put(rpc.get(cid)) == cid
    out = io.BytesIO()
    local.export_car(cid, out)
    assert rpc.import_car(out.getvalue()) == [cid]


@pytest.mark.services
def test_node_car_export_is_byte_identical(rpc: RpcStore, tmp_path: Path) -> None:
    # Same header encoding, same block order (root first, depth-first): the
    # node's `dag export` and ours write the same bytes for the same DAG.
    data = random_bytes(3 * CHUNK_SIZE + 5, 6)
    cid = rpc.put(data)
    theirs = tmp_path / "node.car"
    size = rpc.export_car(cid, theirs)
    local = EmbeddedStore(tmp_path / "store")
    local.put(data)
    ours = io.BytesIO()
    local.export_car(cid, ours)
    assert theirs.read_bytes() == ours.getvalue()
    assert size == theirs.stat().st_size
    fresh = EmbeddedStore(tmp_path / "fresh")
    assert fresh.import_car(theirs) == [cid]
    assert fresh.get(cid) == data


# --- fake nodes: tampering, failures, retries ----------------------------------


Handler = Callable[[str, dict[str, list[str]], bytes], tuple[int, bytes]]


class FakeNode:
    """A tiny HTTP server answering /api/v0 with whatever the test says."""

    def __init__(self, handle: Handler) -> None:
        self.handle = handle
        self.requests: list[tuple[str, dict[str, str]]] = []
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                url = urlparse(self.path)
                body = _read_body(self)
                fake.requests.append((url.path, dict(self.headers.items())))
                status, reply = fake.handle(
                    url.path.removeprefix("/api/v0/"), parse_qs(url.query), body
                )
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeNode:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _read_body(request: BaseHTTPRequestHandler) -> bytes:
    if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int(request.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                request.rfile.readline()
                return bytes(body)
            body += request.rfile.read(size)
            request.rfile.readline()
    length = int(request.headers.get("Content-Length", "0"))
    return request.rfile.read(length)


def _ipfs_error(message: str) -> tuple[int, bytes]:
    return 500, json.dumps({"Message": message, "Code": 0, "Type": "error"}).encode()


def test_tampered_block_is_refused() -> None:
    def lying(command: str, query: dict[str, list[str]], body: bytes) -> tuple[int, bytes]:
        return 200, b"hello world!\n"  # not the bytes of HELLO

    with (
        FakeNode(lying) as node,
        RpcStore(node.url, retries=0) as store,
        pytest.raises(CidMismatch),
    ):
        store.get(HELLO)


def test_tampered_cat_is_refused() -> None:
    with (
        FakeNode(lambda c, q, b: (200, b"hello  world\n")) as node,
        RpcStore(node.url) as store,
        pytest.raises(CidMismatch),
    ):
        store.cat(HELLO)


def test_node_reporting_another_cid_is_refused() -> None:
    # A node with other add defaults (CIDv0, trickle, other chunker) must not
    # hand us a CID other than kubo's: the batch CID is what operators sign.
    def add(command: str, query: dict[str, list[str]], body: bytes) -> tuple[int, bytes]:
        return 200, json.dumps({"Name": "data", "Hash": cid_of(b"other"), "Size": "5"}).encode()

    with FakeNode(add) as node, RpcStore(node.url) as store, pytest.raises(CidMismatch):
        store.put(b"hello world\n")


def test_put_streams_a_multipart_upload_with_kubo_parameters() -> None:
    seen: dict[str, object] = {}
    data = random_bytes(3 * 1024 * 1024 + 3, 5)

    def add(command: str, query: dict[str, list[str]], body: bytes) -> tuple[int, bytes]:
        seen["command"] = command
        seen["query"] = {key: values[0] for key, values in query.items()}
        seen["body"] = body
        return 200, json.dumps({"Name": "data", "Hash": cid_of(data), "Size": "1"}).encode() + b"\n"

    with FakeNode(add) as node, RpcStore(node.url) as store:
        assert store.put(data) == cid_of(data)
        headers = node.requests[0][1]
    assert seen["command"] == "add"
    query = seen["query"]
    assert isinstance(query, dict)
    assert {k: query[k] for k in ("cid-version", "raw-leaves", "chunker", "pin")} == {
        "cid-version": "1",
        "raw-leaves": "true",
        "chunker": "size-262144",
        "pin": "true",
    }
    assert headers.get("Transfer-Encoding") == "chunked"  # streamed, not buffered whole
    assert headers["Content-Type"].startswith("multipart/form-data; boundary=")
    body = seen["body"]
    assert isinstance(body, bytes)
    assert data in body


def _car_of(data: bytes) -> bytes:
    out = io.BytesIO()
    blocks = list(iter_file_blocks(data))
    write_car([blocks[-1].cid], reversed(blocks), out)
    return out.getvalue()


def test_tampered_car_export_is_refused(tmp_path: Path) -> None:
    data = random_bytes(CHUNK_SIZE + 10, 7)
    car = bytearray(_car_of(data))
    car[-3] ^= 1
    target = tmp_path / "out.car"
    with (
        FakeNode(lambda c, q, b: (200, bytes(car))) as node,
        RpcStore(node.url) as store,
        pytest.raises(CidMismatch),
    ):
        store.export_car(cid_of(data), target)
    assert not target.exists()


def test_car_export_of_another_root_is_refused() -> None:
    car = _car_of(b"something else")
    with (
        FakeNode(lambda c, q, b: (200, car)) as node,
        RpcStore(node.url) as store,
        pytest.raises(CidMismatch, match="rooted at"),
    ):
        store.export_car(HELLO, io.BytesIO())


def test_incomplete_car_export_is_refused() -> None:
    data = random_bytes(2 * CHUNK_SIZE + 1, 8)
    blocks = list(iter_file_blocks(data))
    out = io.BytesIO()
    write_car([blocks[-1].cid], [blocks[-1], blocks[0]], out)
    with (
        FakeNode(lambda c, q, b: (200, out.getvalue())) as node,
        RpcStore(node.url) as store,
        pytest.raises(BlockNotFound),
    ):
        store.export_car(cid_of(data), io.BytesIO())


def test_transient_5xx_is_retried() -> None:
    calls = {"n": 0}

    def flaky(command: str, query: dict[str, list[str]], body: bytes) -> tuple[int, bytes]:
        calls["n"] += 1
        if calls["n"] <= 2:
            return 503, b"upstream restarting"
        return 200, b"hello world\n"

    with FakeNode(flaky) as node, RpcStore(node.url, retries=3, backoff=0.01) as store:
        assert store.get(HELLO) == b"hello world\n"
    assert calls["n"] == 3


def test_retries_are_bounded() -> None:
    with (
        FakeNode(lambda c, q, b: (502, b"bad gateway")) as node,
        RpcStore(node.url, retries=2, backoff=0.01) as store,
    ):
        with pytest.raises(RpcError, match="after 3 attempts"):
            store.get(HELLO)
        assert len(node.requests) == 3


def test_ipfs_errors_are_not_retried() -> None:
    with (
        FakeNode(lambda c, q, b: _ipfs_error("invalid path")) as node,
        RpcStore(node.url, retries=3, backoff=0.01) as store,
    ):
        with pytest.raises(RpcError, match="invalid path"):
            store.pin(HELLO)
        assert len(node.requests) == 1


def test_not_found_is_block_not_found() -> None:
    with (
        FakeNode(lambda c, q, b: _ipfs_error("block was not found locally (offline)")) as node,
        RpcStore(node.url) as store,
    ):
        assert not store.has(HELLO)
        with pytest.raises(BlockNotFound):
            store.get(HELLO)


def test_unreachable_node_is_rpc_error() -> None:
    with (
        RpcStore(f"http://127.0.0.1:{free_port()}", retries=1, backoff=0.01) as store,
        pytest.raises(RpcError),
    ):
        store.version()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"url": "127.0.0.1:5001"},
        {"url": "http://x", "retries": -1},
        {"url": "http://x", "timeout": 0},
    ],
)
def test_bad_configuration_is_value_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RpcStore(**cast(Any, kwargs))

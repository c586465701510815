"""The dApp example reads IPFS without trusting the node (examples/dapp/src/ipfs.ts): files of many
blocks reassemble to kubo's bytes, and a node that lies about one block is caught. The node here is
a minimal ``/api/v0/block/get`` server over blocks VeriStream's own importer made."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from tests.conftest import REPO
from veristream.connectors.ipfs.cid import format_cid
from veristream.connectors.ipfs.unixfs import CHUNK_SIZE, iter_file_blocks

DAPP = REPO / "examples" / "dapp"
TSX = DAPP / "node_modules" / ".bin" / "tsx"


@contextmanager
def block_server(blocks: dict[str, bytes]) -> Iterator[str]:
    """An IPFS RPC endpoint answering ``block/get`` from ``blocks`` (CID text -> bytes), 500 otherwise."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            url = urlparse(self.path)
            cid = parse_qs(url.query).get("arg", [""])[0]
            body = blocks.get(cid) if url.path == "/api/v0/block/get" else None
            self.send_response(200 if body is not None else 500)
            self.end_headers()
            self.wfile.write(body if body is not None else b'{"Message":"block was not found locally (offline)"}')

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _cat(api: str, cid: str) -> subprocess.CompletedProcess[bytes]:
    if not TSX.exists():
        pytest.fail("examples/dapp is not installed: run infra/setup.sh (npm ci in examples/dapp)")
    return subprocess.run([str(TSX), "src/cat.ts", "--ipfs", api, cid], cwd=DAPP, capture_output=True, timeout=120)


def _import(data: bytes) -> tuple[str, dict[str, bytes]]:
    """(root CID, every block by CID) as ``ipfs add --cid-version=1`` makes them."""
    blocks = {format_cid(block.cid): block.data for block in iter_file_blocks(data)}
    return list(blocks)[-1], blocks


def test_a_file_of_many_blocks_reassembles_and_a_lying_node_is_caught() -> None:
    data = os.urandom(2 * CHUNK_SIZE + 12_345)  # three raw leaves under one dag-pb node
    root, blocks = _import(data)
    assert root.startswith("bafybei") and len(blocks) == 4
    with block_server(blocks) as api:
        done = _cat(api, root)
        assert done.returncode == 0, done.stderr
        assert done.stdout == data

    # the node swaps one leaf's bytes: the client refuses (exit 1) instead of returning them
    leaf = next(cid for cid in blocks if cid != root)
    lying = blocks | {leaf: os.urandom(len(blocks[leaf]))}
    with block_server(lying) as api:
        done = _cat(api, root)
    assert done.returncode == 1 and done.stdout == b""
    assert f"do not hash to {leaf}".encode() in done.stderr

    # a block the node does not have: not found (exit 3)
    missing = {cid: block for cid, block in blocks.items() if cid != leaf}
    with block_server(missing) as api:
        done = _cat(api, root)
    assert done.returncode == 3 and f"has no block {leaf}".encode() in done.stderr

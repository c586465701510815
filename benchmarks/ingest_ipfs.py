"""IPFS part of the ingest suite: MB/s of ``put`` for the embedded store and an RPC node.

Rows (each beside a baseline measured in the same run):

- ``cid_of`` (chunk, hash, build the DAG, no I/O) against plain sha256 of the
  same bytes: the price of kubo-compatible CIDs over a bare hash;
- ``EmbeddedStore.put`` (durable: fsync per block) and without fsync, against
  plain sha256;
- ``RpcStore.put`` to a local js-ipfs node over loopback against
  ``EmbeddedStore.put``.

All on random bytes (incompressible, no shared chunks), each put into a fresh
store so no block is already present.
"""

from __future__ import annotations

import hashlib
import random
import sys
import tempfile
from itertools import count
from pathlib import Path
from typing import Any

from benchmarks.measure import best_seconds, comparison

MIB = 1024 * 1024


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Measure put throughput; ``quick`` uses 8 MiB instead of 64 MiB and skips repeats."""
    from veristream.connectors.ipfs import EmbeddedStore, RpcStore, cid_of

    size = (8 if quick else 64) * MIB
    repeat = 1 if quick else 3
    data = random.Random(2026).randbytes(size)
    megabytes = size / MIB

    def rate(seconds: float) -> float:
        return megabytes / seconds

    sha256 = rate(best_seconds(lambda: hashlib.sha256(data).digest(), repeat))
    rows = [
        comparison(
            "cid_of (UnixFS DAG, no I/O)",
            rate(best_seconds(lambda: cid_of(data), repeat)),
            sha256,
            "MB/s",
            "sha256",
        ),
    ]
    with tempfile.TemporaryDirectory(prefix="veristream-bench-ipfs-") as tmp:
        fresh = count()

        def put_embedded(durable: bool) -> None:
            EmbeddedStore(Path(tmp) / f"store-{next(fresh)}", durable=durable).put(data)

        embedded = rate(best_seconds(lambda: put_embedded(True), repeat))
        rows.append(comparison("EmbeddedStore.put (fsync)", embedded, sha256, "MB/s", "sha256"))
        no_sync = rate(best_seconds(lambda: put_embedded(False), repeat))
        rows.append(comparison("EmbeddedStore.put (no fsync)", no_sync, sha256, "MB/s", "sha256"))

    # The js-ipfs launcher lives with the tests (it is test infrastructure, not
    # part of the package); run.py puts the repository root on sys.path.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.ipfs_node import jsipfs_node

    # Fresh random bytes per run: a node that already holds a chunk skips it.
    payloads = iter([random.Random(seed).randbytes(size) for seed in range(repeat)])
    with jsipfs_node() as url, RpcStore(url, timeout=300.0) as rpc:
        rpc.put(b"warm-up")

        def put_rpc() -> None:
            rpc.put(next(payloads), pin=False)

        remote = rate(best_seconds(put_rpc, repeat))
        rows.append(
            comparison(
                "RpcStore.put (js-ipfs, loopback)", remote, embedded, "MB/s", "EmbeddedStore.put"
            )
        )
    return rows


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))

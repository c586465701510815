"""The IPFS ingest benchmark runs and reports rows the report renders (speed is not asserted)."""

from __future__ import annotations

import json

import pytest

from benchmarks import ingest_ipfs
from benchmarks.report import render


@pytest.mark.slow
@pytest.mark.services
def test_quick_benchmark_rows() -> None:
    rows = ingest_ipfs.run(quick=True)
    json.dumps(rows)
    names = [row["name"] for row in rows]
    assert names == [
        "cid_of (UnixFS DAG, no I/O)",
        "EmbeddedStore.put (fsync)",
        "EmbeddedStore.put (no fsync)",
        "RpcStore.put (js-ipfs, loopback)",
    ]
    for row in rows:
        assert row["unit"] == "MB/s"
        assert row["ours"] > 0 and row["baseline"] > 0
    assert "RpcStore.put" in render("ingest", {"ipfs": rows})

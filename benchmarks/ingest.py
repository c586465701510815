"""Suite ``ingest``: readings/s of the connectors on loopback, IPFS ``put`` MB/s, bytes per reading.

Each part lives in its own module (``ingest_connectors``, ``ingest_ipfs``) with
``run(quick) -> list[dict]`` of comparison rows.
"""

from __future__ import annotations

from typing import Any

from benchmarks import ingest_connectors, ingest_ipfs


def run(quick: bool = False) -> dict[str, Any]:
    return {
        "connectors": ingest_connectors.run(quick=quick),
        "ipfs": ingest_ipfs.run(quick=quick),
    }

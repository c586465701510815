"""Suite ``ingest``: readings/s of the connectors on loopback, IPFS ``put`` MB/s, bytes per reading,
malformed input fuzzed at volume, and an HTTP soak (steady rate, then under a junk flood).

Each part lives in its own module (``ingest_connectors``, ``ingest_ipfs``,
``fuzz_ingest``, ``ingest_soak``) with comparison rows beside a baseline
measured in the same run. The soak writes its per-second series and memory
samples as JSON beside a PNG plot (``out/bench/ingest-soak.{json,png}`` unless
``out`` is given); ``duration_s`` sets its length per phase (default 180 s,
5 s with ``quick``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import fuzz_ingest, ingest_connectors, ingest_ipfs, ingest_soak


def run(
    quick: bool = False, *, duration_s: float | None = None, out: Path | None = None
) -> dict[str, Any]:
    fuzzed = fuzz_ingest.run(quick=quick)
    soak = ingest_soak.run(quick, duration_s=duration_s, out=out)
    return {
        "connectors": ingest_connectors.run(quick=quick),
        "ipfs": ingest_ipfs.run(quick=quick),
        "fuzz": fuzzed["fuzz"],
        "fuzz_verdicts": fuzzed["fuzz_verdicts"],
        "soak": soak["soak"],
        "soak_files": soak["soak_files"],
    }

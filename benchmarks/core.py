"""Suite ``core``: device signatures, Merkle trees and BLS, each beside its baseline."""

from __future__ import annotations

from typing import Any

from benchmarks import core_bls, core_merkle, core_signing


def run(quick: bool = False) -> dict[str, Any]:
    return {
        "signatures": core_signing.run(quick=quick),
        "merkle": core_merkle.run(quick=quick),
        "bls": core_bls.run(quick=quick),
    }

"""One entry point for VeriStream's benchmarks.

    python benchmarks/run.py SUITE [--json] [--quick]
    python benchmarks/run.py ingest [--duration-s SECONDS] [--out DIR]

Suites: core (signatures, Merkle trees, BLS), gas (contracts on the EVM),
ingest (connectors, IPFS, batch size), e2e (the whole pipeline). Each suite is
the module ``benchmarks/<suite>.py`` with ``run() -> dict``; every measurement
sits beside a baseline measured in the same run, with their ratio.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

SUITES = ("core", "gas", "ingest", "e2e")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=SUITES)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for smoke tests")
    parser.add_argument(
        "--duration-s", type=float, default=None, help="ingest: the soak's seconds per phase"
    )
    parser.add_argument("--out", type=Path, default=None, help="ingest: where the soak's JSON and PNG go")
    args = parser.parse_args(argv)
    options: dict[str, object] = {}
    if args.suite == "ingest":
        options = {"duration_s": args.duration_s, "out": args.out}

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.report import render

    module = importlib.import_module(f"benchmarks.{args.suite}")
    result = module.run(quick=args.quick, **options)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(render(args.suite, result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Start anvil (Prague) on loopback, deploy the VeriStream contracts, print the addresses.

    .venv/bin/python infra/anvil_deploy.py [--port 8545] [--json] [--deployment FILE] [--once]

Without ``--once`` anvil keeps running (Ctrl-C stops it) so a pipeline or dApp can use
the printed addresses; with ``--once`` it deploys, prints and stops (a smoke check).
``--operators N --scheme bn254|bls12381`` also registers N demo operators (deterministic,
guessable test keys) in a new operator set.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from veristream.contracts import ChainConfig, connect, create_operator_set, deploy_all
from veristream.contracts.anvil import anvil
from veristream.contracts.committee import LocalCommittee
from veristream.provers.encoding import keccak256


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8545)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--deployment", type=Path, help="also write the deployment JSON here")
    parser.add_argument("--once", action="store_true", help="stop anvil after deploying")
    parser.add_argument("--operators", type=int, default=0, help="register N demo operators")
    parser.add_argument("--scheme", choices=["bn254", "bls12381"], default="bn254")
    args = parser.parse_args(argv)

    with anvil(args.port) as node:
        chain = connect(ChainConfig(url=node.ipc, gas_limit=15_000_000))
        dep = deploy_all(chain, dev=True, save_to=args.deployment)  # anvil: a local development node
        out: dict[str, object] = {"rpc_url": node.url, **json.loads(dep.to_json())}
        if args.operators:
            set_id = create_operator_set(chain, dep, args.scheme)
            committee = LocalCommittee.deterministic(args.scheme, args.operators)
            operators = ["0x" + keccak256(b"demo operator %d" % i)[12:].hex() for i in range(args.operators)]
            committee.register(chain, dep, set_id, operators, [1] * args.operators)
            out["operator_set"] = set_id
        if args.json:
            print(json.dumps(out, sort_keys=True), flush=True)
        else:
            for key, value in out.items():
                print(f"{key:20} {value}", flush=True)
        if args.once:
            return 0
        print("anvil is running; Ctrl-C stops it", file=sys.stderr, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The TypeScript dApp example (examples/dapp) run against a job `veristream run` verified on anvil
with its files on a js-ipfs node: what the dApp prints is checked against `veristream` itself
(epochs, proofs of an aggregate, a reading and the rewards, what is left to claim) and against the
chain (token balances, who sent each claim)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from eth_account import Account

from tests.conftest import REPO, free_port
from tests.ipfs_node import jsipfs_node
from veristream.connectors.simulator import derive_private_key
from veristream.contracts import connect
from veristream.contracts.anvil import anvil
from veristream.contracts.deploy import checksum_address, contract
from veristream.inspect import list_epochs
from veristream.pipeline.jobspec import load_job
from veristream.pipeline.registry import device_address
from veristream.proofs import epoch_proof

pytestmark = pytest.mark.services

DAPP = REPO / "examples" / "dapp"
TSX = DAPP / "node_modules" / ".bin" / "tsx"
SEED = 7  # examples/weather.yaml's simulator seed: its device owners' keys derive from it


@dataclass(frozen=True)
class Services:
    rpc: str
    ipfs: str
    job: Path
    work: Path
    run: dict[str, Any]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "veristream", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def _cli_json(*args: str, cwd: Path) -> Any:
    done = _cli(*args, "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _dapp(services: Services, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if not TSX.exists():
        pytest.fail("examples/dapp is not installed: run infra/setup.sh (npm ci in examples/dapp)")
    return subprocess.run(
        [str(TSX), "src/main.ts", "--rpc", services.rpc, "--ipfs", services.ipfs,
         "--deployment", str(services.work / "deployment.json"), "--job", "weather-demo", *args],
        cwd=DAPP, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """The weather example (a few epochs) run on anvil and js-ipfs."""
    tmp = tmp_path_factory.mktemp("dapp")
    spec: dict[str, Any] = yaml.safe_load((REPO / "examples" / "weather.yaml").read_text())
    spec["work_dir"] = str(tmp / "work")
    spec["devices"]["file"] = str(tmp / "work" / "devices.json")
    spec["sources"][0]["count"] = 150
    with anvil(free_port()) as chain, jsipfs_node() as ipfs:
        spec["chain"] = {"mode": "rpc", "rpc_url": chain.url}
        spec["ipfs"] = {"mode": "rpc", "url": ipfs}
        job = tmp / "weather.yaml"
        job.write_text(yaml.safe_dump(spec))
        run = _cli_json("run", str(job), "--no-ray", cwd=tmp)
        yield Services(chain.url, ipfs, job, tmp / "work", run)


def _steps(out: str) -> dict[str, dict[str, Any]]:
    steps = [json.loads(line) for line in out.splitlines()]
    return {step.pop("step"): step for step in steps}


def _unpaid_owners(services: Services) -> list[str]:
    """Keys of device owners (the beneficiaries) the run's own claim did not pay, best paid first."""
    paid = {claim["account"].lower() for claim in services.run["claims"]}
    keys = ["0x" + derive_private_key(SEED, "secp256k1", f"owner-{i}").hex() for i in range(8)]
    return [key for key in keys if Account.from_key(key).address.lower() not in paid]


def test_the_dapp_reads_proves_and_claims_what_veristream_verified(services: Services) -> None:
    relayer, claimer_key, contributor_key = "0x" + os.urandom(32).hex(), *_unpaid_owners(services)[:2]
    claimer, contributor = Account.from_key(claimer_key).address, Account.from_key(contributor_key).address
    admin = connect(services.rpc)
    for key in (relayer, claimer_key):
        admin.w3.provider.make_request("anvil_setBalance", [Account.from_key(key).address, hex(10**19)])

    done = _dapp(services, "--claimer", "env:DAPP_CLAIMER", "--authorizer", "env:DAPP_CONTRIBUTOR",
                 "--relayer", "env:DAPP_RELAYER", "--json",
                 env={"DAPP_CLAIMER": claimer_key, "DAPP_CONTRIBUTOR": contributor_key, "DAPP_RELAYER": relayer})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    steps = _steps(done.stdout)
    assert list(steps) == ["epochs", "manifest", "aggregates", "reading", "claim", "claim_for"]

    # what veristream says, from the functions behind `veristream epochs` and `veristream proof`
    job = load_job(str(services.job))
    listed = [row for row in list_epochs(job) if row["verified"]]

    # 1. the epochs the dApp found in the logs are the ones veristream verified, field by field
    assert len(listed) >= 2
    keys = ("epoch", "batch_cid", "manifest_cid", "data_root", "reward_root", "signers", "signed_weight",
            "total_weight", "tx_hash")
    assert [{k: e[k] for k in keys} for e in steps["epochs"]["epochs"]] == [{k: r[k] for k in keys} for r in listed]

    # 2. the latest epoch's manifest and trees
    latest = listed[-1]["epoch"]
    manifest = steps["manifest"]
    assert manifest["epoch"] == latest and manifest["manifest_cid"] == listed[-1]["manifest_cid"]
    assert manifest["trees"]["data"]["leaves"] == manifest["accepted"] > 0
    assert manifest["trees"]["data"]["root"] == listed[-1]["data_root"]

    # 3. the device's aggregates are veristream's proofs' leaves; the chain took the honest one only
    aggregates = steps["aggregates"]
    ids = {"0x" + device_address(d).hex(): d for d in _device_ids(services)}
    device_id = ids[aggregates["device"].lower()]
    assert len(aggregates["aggregates"]) == len(job.aggregation.fields)
    for shown in aggregates["aggregates"]:
        proof = epoch_proof(job, "aggregate", latest, device=device_id, field=shown["field"])
        if shown["field"] == aggregates["proved"]["field"]:
            # viem's ABI encoding of the leaf and the JS tree's proof are veristream's, byte for byte
            assert (aggregates["proved"]["encoded_leaf"], aggregates["proved"]["proof"]) == (
                proof["encoded_leaf"], proof["proof"])
        _, field, count, low, high, total, percents, values = proof["leaf"]
        assert (field, count, low, high, total) == (shown["field"], shown["count"], shown["min"], shown["max"],
                                                    shown["sum"])
        assert shown["quantiles"] == {str(p): int(v) for p, v in zip(percents, values, strict=True)}
    assert aggregates["proved"]["on_chain"] is True and aggregates["proved"]["forged_on_chain"] is False

    # 4. the reading is the one veristream proves
    reading = steps["reading"]
    proof = epoch_proof(job, "reading", latest, device=device_id, seq=reading["seq"])
    assert [str(v).lower() for v in proof["leaf"]] == [
        reading["device"].lower(), str(reading["seq"]), str(reading["timestamp_ms"]), reading["payload_hash"]
    ]
    assert (reading["encoded_leaf"], reading["proof"]) == (proof["encoded_leaf"], proof["proof"])
    assert reading["on_chain"] is True

    # 5. the claims paid each account its cumulative reward, the relayer paid the contributor's gas
    claimed, relayed = steps["claim"], steps["claim_for"]
    assert (claimed["account"], claimed["sender"]) == (claimer, claimer)
    assert (relayed["account"], relayed["sender"]) == (contributor, Account.from_key(relayer).address)
    chain = connect(services.rpc)
    try:
        token = contract(chain, "RewardToken", claimed["token"])
        for step, account in ((claimed, claimer), (relayed, contributor)):
            reward = epoch_proof(job, "reward", None, account=account)
            assert step["cumulative"] == int(reward["leaf"][1]) == step["amount"] > 0
            assert step["epoch"] == reward["epoch"] == latest
            balance = chain.call(token.functions.balanceOf(checksum_address(account)))
            assert balance == step["balance_after"] == step["balance_before"] + step["amount"]
        assert chain.w3.eth.get_transaction_count(checksum_address(contributor)) == 0
    finally:
        chain.close()
        admin.close()
    # and `veristream claim` finds nothing left for the relayed account
    again = _cli("claim", str(services.job), "--account", contributor, "--json", cwd=services.work.parent)
    assert again.returncode == 3 and json.loads(again.stdout)["nothing_to_claim"] is True


def test_the_dapp_for_people_and_an_earlier_epoch(services: Services) -> None:
    first = next(row for row in services.run["epochs"] if row["verified"])["epoch"]
    done = _dapp(services, "--epoch", str(first))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4 and lines[1].startswith(f"epoch {first}: manifest ")
    assert lines[2].endswith("proved on chain: true (forged max accepted: false)")
    assert lines[3].endswith("proved on chain: true")


def test_the_dapp_refuses_in_one_line(services: Services) -> None:
    missing = _dapp(services, "--epoch", "999", "--json")
    assert missing.returncode == 3 and list(_steps(missing.stdout)) == ["epochs"]
    assert missing.stderr.startswith("error: epoch 999 is not verified") and missing.stderr.count("\n") == 1
    down = _dapp(Services(f"http://127.0.0.1:{free_port()}", services.ipfs, services.job, services.work, services.run))
    assert down.returncode == 4 and down.stderr.startswith("error: chain node")


def _device_ids(services: Services) -> list[str]:
    devices = json.loads((services.work / "devices.json").read_text())
    entries = devices["devices"] if isinstance(devices, dict) and "devices" in devices else devices
    return [entry["device_id"] for entry in entries] if isinstance(entries, list) else list(entries)

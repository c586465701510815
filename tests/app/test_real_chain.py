"""The weather example on a chain as a real network runs it: a freshly generated key funded
on the node (none of the node's own accounts sends anything), `chain.signer: env:...`, the
contracts deployed by `veristream chain deploy --rpc-url --signer`, rewards paid in an
existing 6-decimal ERC-20 funded by transfer. The same scenario on two independent node
implementations: anvil and Hardhat's node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from eth_account import Account

from tests.conftest import REPO, free_port
from veristream.contracts import ChainConfig, connect
from veristream.contracts.anvil import anvil
from veristream.contracts.deploy import checksum_address, contract, deploy
from veristream.contracts.hardhat import hardhat_node

pytestmark = pytest.mark.services

KEY_ENV = "VERISTREAM_E2E_KEY"


@contextmanager
def node_url(kind: str) -> Iterator[tuple[str, str]]:
    """(url, the node's balance-setting method)."""
    if kind == "anvil":
        with anvil(free_port()) as node:
            yield node.url, "anvil_setBalance"
    else:
        with hardhat_node(free_port()) as node:
            yield node.url, "hardhat_setBalance"


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "veristream", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("kind", ["anvil", "hardhat"])
def test_weather_example_with_a_fresh_key_and_a_6_decimal_token(kind: str, tmp_path: Path) -> None:
    key = "0x" + os.urandom(32).hex()
    signer = Account.from_key(key).address
    env = {**os.environ, KEY_ENV: key}
    with node_url(kind) as (url, set_balance):
        admin = connect(url)
        admin.w3.provider.make_request(set_balance, [signer, hex(10**21)])
        admin.close()

        # the project: contracts deployed with the fresh key, through the CLI
        deployed = _cli("chain", "deploy", "--rpc-url", url, "--signer", f"env:{KEY_ENV}", "--dev", "--json",
                        "--out", str(tmp_path / "deployment.json"), env=env, cwd=tmp_path)
        assert deployed.returncode == 0, deployed.stderr[-2000:]
        assert json.loads(deployed.stdout)["deployer"] == signer

        # an existing ERC-20 with 6 decimals, the signer holding enough to fund the pool
        os.environ[KEY_ENV] = key
        chain = connect(ChainConfig(url=url, signer=f"env:{KEY_ENV}"))
        token = deploy(chain, "TestToken", "USD Coin", "USDC", 6)
        chain.transact(contract(chain, "TestToken", token).functions.mint(signer, 10**30))
        chain.close()

        spec: dict[str, Any] = yaml.safe_load((REPO / "examples" / "weather.yaml").read_text())
        spec["devices"]["file"] = str(tmp_path / "devices.json")
        spec["work_dir"] = str(tmp_path / "work")
        spec["sources"][0]["count"] = 150
        spec["chain"] = {"mode": "rpc", "rpc_url": url, "chain_id": 31337, "signer": f"env:{KEY_ENV}"}
        spec["rewards"].update(token=token, funding="transfer")
        job = tmp_path / "weather.yaml"
        job.write_text(yaml.safe_dump(spec))
        run = _cli("run", str(job), "--json", "--no-ray", env=env, cwd=tmp_path)
        assert run.returncode == 0, run.stderr[-3000:]
        summary = json.loads(run.stdout)
        verified = [row for row in summary["epochs"] if row["verified"]]
        assert verified and all(row["tx_hash"] for row in verified)
        [paid] = summary["claims"]
        assert paid["amount"] > 0 and paid["amount_display"].endswith(" USDC")

        chain = connect(url)
        try:
            balance = chain.call(contract(chain, "TestToken", token).functions.balanceOf(checksum_address(paid["account"])))
            assert balance == paid["amount"]
            senders, count = set(), 0
            for number in range(1, chain.w3.eth.block_number + 1):
                for tx in chain.w3.eth.get_block(number, full_transactions=True)["transactions"]:
                    senders.add(tx["from"])
                    count += 1
        finally:
            chain.close()
        # every transaction on the node came from the fresh key, signed locally
        assert senders == {signer}, senders
        assert count > len(verified)


def test_the_node_killed_mid_run_and_restarted_loses_nothing(tmp_path: Path) -> None:
    key = "0x" + os.urandom(32).hex()
    signer = Account.from_key(key).address
    env = {**os.environ, KEY_ENV: key}
    port, state = free_port(), tmp_path / "anvil-state.json"
    spec: dict[str, Any] = yaml.safe_load((REPO / "examples" / "weather.yaml").read_text())
    spec["devices"]["file"] = str(tmp_path / "devices.json")
    spec["work_dir"] = str(tmp_path / "work")
    spec["sources"][0]["count"] = 300
    spec["chain"] = {"mode": "rpc", "rpc_url": f"http://127.0.0.1:{port}", "signer": f"env:{KEY_ENV}"}
    job = tmp_path / "weather.yaml"
    job.write_text(yaml.safe_dump(spec))
    with anvil(port, extra_args=("--state", str(state))) as node:
        admin = connect(node.url)
        admin.w3.provider.make_request("anvil_setBalance", [signer, hex(10**21)])
        run = subprocess.Popen([sys.executable, "-m", "veristream", "run", str(job), "--json", "--no-ray"],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # wait for the first verified epoch, then kill the node under the running job
        verifier = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and run.poll() is None:
            if (tmp_path / "work" / "deployment.json").exists():
                verifier = json.loads((tmp_path / "work" / "deployment.json").read_text())["epoch_verifier"]
                if admin.w3.eth.get_logs({"address": verifier, "fromBlock": 0}):
                    break
            time.sleep(0.05)
        admin.close()
        assert verifier is not None and run.poll() is None, "the run ended before an epoch was verified"
    # the node is down (its state saved); it comes back on the same port within the retries
    with anvil(port, extra_args=("--state", str(state))) as node:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-3000:]
        summary = json.loads(out)
        chain = connect(node.url)
        try:
            contract_ = contract(chain, "EpochVerifier", verifier)
            events = contract_.events.EpochVerified.get_logs(from_block=0)
            epochs = [int(e["args"]["epoch"]) for e in events]
            # every epoch with readings verified exactly once
            assert sorted(epochs) == sorted({*epochs})
            assert sorted(epochs) == sorted(r["epoch"] for r in summary["epochs"] if r["verified"])
            sent = chain.w3.eth.get_transaction_count(signer)
        finally:
            chain.close()
        # and a rerun afterwards sends nothing at all
        again = _cli("run", str(job), "--json", "--no-ray", env=env, cwd=tmp_path)
        assert again.returncode == 0, again.stderr[-3000:]
        chain = connect(node.url)
        try:
            assert chain.w3.eth.get_transaction_count(signer) == sent
        finally:
            chain.close()
    assert all(claim["amount"] == 0 for claim in json.loads(again.stdout)["claims"])

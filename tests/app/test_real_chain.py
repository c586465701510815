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


def test_a_restarted_node_and_a_rerun_send_nothing_twice(tmp_path: Path) -> None:
    key = "0x" + os.urandom(32).hex()
    signer = Account.from_key(key).address
    env = {**os.environ, KEY_ENV: key}
    port, state = free_port(), tmp_path / "anvil-state.json"
    spec: dict[str, Any] = yaml.safe_load((REPO / "examples" / "weather.yaml").read_text())
    spec["devices"]["file"] = str(tmp_path / "devices.json")
    spec["work_dir"] = str(tmp_path / "work")
    spec["sources"][0]["count"] = 120
    spec["chain"] = {"mode": "rpc", "rpc_url": f"http://127.0.0.1:{port}", "signer": f"env:{KEY_ENV}"}
    job = tmp_path / "weather.yaml"
    job.write_text(yaml.safe_dump(spec))
    with anvil(port, extra_args=("--state", str(state))) as node:
        admin = connect(node.url)
        admin.w3.provider.make_request("anvil_setBalance", [signer, hex(10**21)])
        admin.close()
        first = _cli("run", str(job), "--json", "--no-ray", env=env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr[-3000:]
    # the node stops (its state saved) and comes back: the job resumes against it
    with anvil(port, extra_args=("--state", str(state))) as node:
        chain = connect(node.url)
        sent_before = chain.w3.eth.get_transaction_count(signer)
        again = _cli("run", str(job), "--json", "--no-ray", env=env, cwd=tmp_path)
        assert again.returncode == 0, again.stderr[-3000:]
        # every epoch was verified once, the claim paid once: the rerun sent nothing
        assert chain.w3.eth.get_transaction_count(signer) == sent_before
        chain.close()
    rows = json.loads(again.stdout)["epochs"]
    assert [r["tx_hash"] for r in rows] == [r["tx_hash"] for r in json.loads(first.stdout)["epochs"]]
    assert all(claim["amount"] == 0 for claim in json.loads(again.stdout)["claims"])

"""Transactions signed by a locally held key and sent raw, as a careful wallet does, on anvil:
none of anvil's own accounts sends anything; dropped transactions are re-sent, stuck ones
replaced with a higher fee, a short reorganisation survived, an unreachable node and a wrong
keystore password are one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from eth_account import Account

from tests.conftest import REPO, free_port
from veristream.contracts import ChainConfig, connect, create_operator_set, deploy_all
from veristream.contracts.anvil import AnvilNode, anvil
from veristream.contracts.chain import Chain
from veristream.contracts.deploy import contract
from veristream.contracts.wallet import TxPolicy, check_signer_spec, load_account
from veristream.provers.errors import ChainError, InputRejected

pytestmark = pytest.mark.services

KEY = "0x" + "5e" * 32
ENV = "VERISTREAM_TEST_SIGNER_KEY"


@pytest.fixture
def node() -> Iterator[AnvilNode]:
    with anvil(free_port()) as running:
        yield running


def funded_chain(node: AnvilNode, policy: TxPolicy | None = None) -> Chain:
    os.environ[ENV] = KEY
    address = Account.from_key(KEY).address
    chain = connect(ChainConfig(url=node.url, signer=f"env:{ENV}", policy=policy or TxPolicy(poll_s=0.05)))
    chain.w3.provider.make_request("anvil_setBalance", [address, hex(10**20)])
    assert chain.sender == address
    return chain


def rpc(chain: Chain, method: str, *params: Any) -> Any:
    return chain.w3.provider.make_request(method, list(params))["result"]


def test_every_transaction_comes_from_the_configured_key_signed_locally(node: AnvilNode) -> None:
    chain = funded_chain(node)
    dep = deploy_all(chain, dev=True)
    create_operator_set(chain, dep, "bn254")
    senders, kinds, count = set(), set(), 0
    for number in range(1, chain.w3.eth.block_number + 1):
        for tx in chain.w3.eth.get_block(number, full_transactions=True)["transactions"]:
            senders.add(tx["from"])
            kinds.add(int(tx["type"]))
            count += 1
    assert senders == {Account.from_key(KEY).address}
    assert kinds == {2}  # EIP-1559
    # six contracts and one set: each sent once, none re-sent or replaced
    assert chain.stats["sent"] == count == 7 and chain.stats["resends"] == chain.stats["replacements"] == 0


def _while_pending(chain: Chain, act: Callable[[list[dict[str, Any]]], bool]) -> threading.Thread:
    """Runs ``act(pending transactions)`` in the background until it returns True."""

    def loop() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            content = rpc(chain, "txpool_content")
            pending = [tx for by_nonce in content["pending"].values() for tx in by_nonce.values()]
            if act(pending):
                return
            time.sleep(0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_a_dropped_transaction_is_sent_again(node: AnvilNode) -> None:
    chain = funded_chain(node, TxPolicy(receipt_timeout_s=1.0, poll_s=0.05))
    rpc(chain, "evm_setAutomine", False)
    dropped: list[str] = []

    def act(pending: list[dict[str, Any]]) -> bool:
        if pending and not dropped:
            dropped.append(pending[0]["hash"])
            rpc(chain, "anvil_dropTransaction", pending[0]["hash"])
        elif pending and dropped:
            rpc(chain, "evm_mine")
            return True
        return False

    thread = _while_pending(chain, act)
    registry = chain.transact(_factory(chain))
    thread.join()
    assert registry.contract_address and chain.stats["resends"] >= 1
    assert chain.w3.eth.get_code(registry.contract_address) != b""


def test_a_stuck_transaction_is_replaced_with_a_higher_fee(node: AnvilNode) -> None:
    chain = funded_chain(node, TxPolicy(receipt_timeout_s=1.0, poll_s=0.05))
    rpc(chain, "evm_setAutomine", False)
    fees: list[int] = []

    def act(pending: list[dict[str, Any]]) -> bool:
        for tx in pending:
            fee = int(tx["maxFeePerGas"], 16)
            if fee not in fees:
                fees.append(fee)
        if len(fees) >= 2:
            rpc(chain, "evm_mine")
            return True
        return False

    thread = _while_pending(chain, act)
    receipt = chain.transact(_factory(chain))
    thread.join()
    mined = chain.w3.eth.get_transaction(receipt.tx_hash)
    assert chain.stats["replacements"] >= 1
    assert int(mined["maxFeePerGas"]) == max(fees) > min(fees)
    assert int(mined["nonce"]) == 0  # the same nonce, replaced


def test_a_reorganisation_shorter_than_the_confirmations_is_survived(node: AnvilNode) -> None:
    chain = funded_chain(node, TxPolicy(confirmations=3, poll_s=0.05))
    snapshot = rpc(chain, "evm_snapshot")
    reverted: list[bool] = []

    def reorg() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if chain.w3.eth.block_number >= 1 and not reverted:
                rpc(chain, "evm_revert", snapshot)  # the block holding the transaction is gone
                reverted.append(True)
            elif reverted:
                rpc(chain, "evm_mine")
                if chain.w3.eth.block_number >= 5:
                    return
            time.sleep(0.1)

    thread = threading.Thread(target=reorg, daemon=True)
    thread.start()
    receipt = chain.transact(_factory(chain))
    thread.join()
    assert reverted and chain.stats["resends"] >= 1
    assert chain.w3.eth.get_transaction_receipt(receipt.tx_hash)["blockNumber"] == receipt.block_number
    assert chain.w3.eth.get_code(receipt.contract_address) != b""


def test_the_node_restarted_with_its_state_loses_nothing(tmp_path: Path) -> None:
    port, state = free_port(), tmp_path / "anvil-state.json"
    with anvil(port, extra_args=("--state", str(state))) as first:
        chain = funded_chain(first)
        dep = deploy_all(chain, dev=True)
        set_id = create_operator_set(chain, dep, "bn254")
    with anvil(port, extra_args=("--state", str(state))) as second:
        chain = connect(ChainConfig(url=second.url, signer=f"env:{ENV}"))
        registry = contract(chain, "OperatorRegistry", dep.operator_registry)
        assert chain.call(registry.functions.setCount()) == set_id  # the state came back
        # the nonce sequence resumes from the node: the next transaction is not a duplicate
        before = chain.w3.eth.get_transaction_count(chain.sender)
        assert create_operator_set(chain, dep, "bls12381") == set_id + 1
        assert chain.w3.eth.get_transaction_count(chain.sender) == before + 1


def test_keystore_signers_and_refused_forms(tmp_path: Path, node: AnvilNode) -> None:
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(KEY, "correct horse")))
    account = load_account(f"keystore:{keystore}", password="correct horse")
    assert account.address == Account.from_key(KEY).address
    with pytest.raises(InputRejected, match="wrong keystore password"):
        load_account(f"keystore:{keystore}", password="battery staple")
    os.environ["VERISTREAM_KEYSTORE_PASSWORD"] = "battery staple"
    try:
        with pytest.raises(InputRejected, match=r"wrong keystore password \(nothing was sent\)"):
            connect(ChainConfig(url=node.url, signer=f"keystore:{keystore}"))
    finally:
        del os.environ["VERISTREAM_KEYSTORE_PASSWORD"]
    assert connect(node.url).w3.eth.get_transaction_count(account.address) == 0
    with pytest.raises(InputRejected, match="must not be written into a job file") as refused:
        check_signer_spec(KEY)
    assert KEY[2:] not in str(refused.value)
    with pytest.raises(InputRejected, match="signer must be"):
        check_signer_spec("ledger")


def test_an_unreachable_node_is_one_line_after_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ChainError) as failed:
        connect(ChainConfig(url=url, rpc_retries=2))
    assert url in str(failed.value) and "\n" not in str(failed.value)
    assert time.monotonic() - started < 10


def _factory(chain: Chain) -> Any:
    """A constructor call of a small contract (the RewardToken) to send."""
    from veristream.contracts import load_artifact

    artifact = load_artifact("RewardToken")
    factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    return factory.constructor("T", "T", chain.sender)


def test_an_unreachable_rpc_url_is_one_line_from_the_command_line(tmp_path: Path) -> None:
    spec = yaml.safe_load((REPO / "examples" / "weather.yaml").read_text())
    spec["chain"] = {"mode": "rpc", "rpc_url": f"http://127.0.0.1:{free_port()}", "chain_id": 31337}
    spec["devices"]["file"] = str(tmp_path / "devices.json")
    spec["work_dir"] = str(tmp_path / "work")
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(spec))
    run = subprocess.run([sys.executable, "-m", "veristream", "run", str(job), "--no-ray"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 4
    assert len(lines) == 1 and spec["chain"]["rpc_url"] in lines[0]
    assert "Traceback" not in run.stderr and "│" not in run.stderr

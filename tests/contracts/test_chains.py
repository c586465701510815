"""The same integration scenario on both chains (embedded EVM and anvil), the embedded
chain's persistence across processes, both BLS schemes, and a 256-operator set."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode as abi_encode

from tests.conftest import REPO, free_port
from veristream.contracts import (
    Chain,
    ChainConfig,
    ContractRevert,
    Deployment,
    check_reading_signature,
    claim,
    claimed,
    connect,
    create_job,
    create_operator_set,
    deploy_all,
    epoch_contains_reading_data,
    epoch_digest,
    epoch_info,
    fund_rewards,
    load_deployment,
    operator_set_at,
    pool_balance,
    register_device,
    submit_epoch,
    token_balance,
    verify_aggregate,
)
from veristream.contracts.anvil import AnvilNode, anvil
from veristream.contracts.committee import LocalCommittee
from veristream.provers.encoding import keccak256
from veristream.provers.epoch_result import EpochResult, epoch_result_digest
from veristream.provers.merkle import StandardMerkleTree
from veristream.provers.readings import Domain, Reading
from veristream.provers.signing import sign_reading

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def anvil_node() -> Iterator[AnvilNode]:
    with anvil(free_port()) as node:
        yield node


def _proof(tree: StandardMerkleTree, index: int) -> list[bytes]:
    return [bytes.fromhex(p[2:]) for p in tree.get_proof(index)]


def _cid(epoch: int) -> bytes:
    return bytes.fromhex("01551220") + keccak256(b"batch %d" % epoch)


def _manifest(epoch: int) -> bytes:
    return bytes.fromhex("01551220") + keccak256(b"manifest %d" % epoch)


AGGREGATE_LEAF = ["address", "string", "uint64", "int256", "int256", "int256", "uint8[]", "int256[]"]


def setup_job(chain: Chain, scheme: str, size: int, name: str) -> tuple[Deployment, LocalCommittee, bytes]:
    dep = deploy_all(chain, dev=True)
    set_id = create_operator_set(chain, dep, scheme)
    committee = LocalCommittee.deterministic(scheme, size, seed=len(name))
    operators = ["0x" + keccak256(b"operator %d" % i)[12:].hex() for i in range(size)]
    committee.register(chain, dep, set_id, operators, [1] * size)
    chain.advance_time(dep.activation_delay + 1)
    job = create_job(chain, dep, name, set_id, quorum_bps=6667, genesis=chain.timestamp() - 120, epoch_seconds=60)
    return dep, committee, job


def submit(chain: Chain, dep: Deployment, committee: LocalCommittee, result: EpochResult, signers: list[int]) -> int:
    digest = epoch_digest(chain, dep, result)
    assert digest == epoch_result_digest(result, chain.chain_id, dep.epoch_verifier)
    signed = committee.sign(digest, signers)
    return submit_epoch(chain, dep, result, signed.signer_bitmap, signed.signature, signed.apk_g2).gas_used


def scenario(chain: Chain) -> dict[str, Any]:
    """Deploy, register four bn254 operators, verify two epochs, claim cumulatively,
    prove a reading, check a device signature; returns what must agree across chains."""
    dep, committee, job = setup_job(chain, "bn254", 4, "parity")
    alice, bob = chain.accounts[6], chain.accounts[7]
    readings = [[keccak256(b"reading %d" % i)] for i in range(5)]
    data_tree = StandardMerkleTree.of(readings, ["bytes32"])
    t0 = StandardMerkleTree.of([[alice, 100], [bob, 40]], ["address", "uint256"])
    t1 = StandardMerkleTree.of([[alice, 180], [bob, 90]], ["address", "uint256"])
    aggregates = StandardMerkleTree.of(
        [[alice, "pm25", 3, -4, 91, 120, [50, 90], [30, 80]], [bob, "pm25", 1, 7, 7, 7, [50], [7]]], AGGREGATE_LEAF
    )
    r0 = EpochResult(job, 0, data_tree.root_bytes, aggregates.root_bytes, t0.root_bytes, _cid(0), _manifest(0))
    r1 = EpochResult(job, 1, keccak256(b"data 1"), keccak256(b"aggregates 1"), t1.root_bytes, _cid(1), _manifest(1))
    fund_rewards(chain, dep, job, 1_000, mint=True)
    submit(chain, dep, committee, r0, [0, 1, 2, 3])
    claim(chain, dep, job, alice, 100, _proof(t0, 0))
    submit(chain, dep, committee, r1, [0, 2, 3])  # one operator down, quorum holds
    claim(chain, dep, job, alice, 180, _proof(t1, 0))
    claim(chain, dep, job, bob, 90, _proof(t1, 1))  # bob skips epoch 0: one claim pays both
    with pytest.raises(ContractRevert, match="NothingToClaim"):
        claim(chain, dep, job, bob, 90, _proof(t1, 1))
    info0, info1 = epoch_info(chain, dep, job, 0), epoch_info(chain, dep, job, 1)
    assert info0 is not None and info1 is not None
    assert epoch_info(chain, dep, job, 2) is None

    device_key = bytes.fromhex("44" * 32)
    reading = Reading("0x" + "00" * 20, 1, 1_700_000_000_000, b"{}", b"")
    from eth_account import Account

    device = Account.from_key(device_key).address
    register_device(chain, dep, device, alice)
    domain = Domain(chain_id=chain.chain_id, verifying_contract=dep.device_registry)
    signed_reading = sign_reading(
        Reading(device, reading.seq, reading.timestamp_ms, reading.payload, b""), domain, device_key
    )
    return {
        "roots": [info0.reward_root.hex(), info1.reward_root.hex(), info0.data_root.hex()],
        "cids": [info0.batch_cid, info1.batch_cid],
        "bitmaps": [info0.signer_bitmap, info1.signer_bitmap],
        "weights": [(info0.signed_weight, info0.total_weight), (info1.signed_weight, info1.total_weight)],
        "balances": [token_balance(chain, dep, alice), token_balance(chain, dep, bob)],
        "claimed": [claimed(chain, dep, job, alice), claimed(chain, dep, job, bob)],
        "pool": pool_balance(chain, dep, job),
        "reading_in_root": epoch_contains_reading_data(
            chain, dep, job, 0, abi_encode(["bytes32"], readings[3]), _proof(data_tree, 3)
        ),
        "reading_not_in_epoch1": epoch_contains_reading_data(
            chain, dep, job, 1, abi_encode(["bytes32"], readings[3]), _proof(data_tree, 3)
        ),
        "aggregate_in_root": verify_aggregate(
            chain, dep, job, 0, abi_encode(AGGREGATE_LEAF, aggregates.at(0)), _proof(aggregates, 0)
        ),
        "aggregate_not_in_epoch1": verify_aggregate(
            chain, dep, job, 1, abi_encode(AGGREGATE_LEAF, aggregates.at(0)), _proof(aggregates, 0)
        ),
        "aggregate_is_not_a_reading": epoch_contains_reading_data(
            chain, dep, job, 0, abi_encode(AGGREGATE_LEAF, aggregates.at(0)), _proof(aggregates, 0)
        ),
        "manifests": [info0.manifest_cid, info1.manifest_cid],
        "stored": [(info0.aggregates_root, info0.manifest_cid_hash), (info1.aggregates_root, info1.manifest_cid_hash)],
        "device_signature": check_reading_signature(
            chain, dep, device, 1, reading.timestamp_ms, keccak256(b"{}"), signed_reading.signature
        ),
    }


EXPECTED = {
    "bitmaps": [0b1111, 0b1101],
    "weights": [(4, 4), (3, 4)],
    "balances": [180, 90],
    "claimed": [180, 90],
    "pool": 1_000 - 270,
    "reading_in_root": True,
    "reading_not_in_epoch1": False,
    "aggregate_in_root": True,
    "aggregate_not_in_epoch1": False,
    "aggregate_is_not_a_reading": False,
    "manifests": [_manifest(0), _manifest(1)],
    "device_signature": True,
}


@pytest.mark.parametrize("kind", ["embedded", "anvil"])
def test_same_scenario_on_both_chains(kind: str, request: pytest.FixtureRequest) -> None:
    # over HTTP, the way a user points at a node
    target = request.getfixturevalue("anvil_node").url if kind == "anvil" else None
    chain = connect(target)
    try:
        outcome = scenario(chain)
    finally:
        chain.close()
    for key, value in EXPECTED.items():
        assert outcome[key] == value, key
    assert outcome["cids"] == [_cid(0), _cid(1)]
    assert outcome["stored"][1] == (keccak256(b"aggregates 1"), keccak256(_manifest(1)))


@pytest.mark.parametrize("kind", ["embedded", "anvil"])
def test_bls12381_epoch_on_both_chains(kind: str, request: pytest.FixtureRequest) -> None:
    target = request.getfixturevalue("anvil_node").ipc if kind == "anvil" else None
    chain = connect(target)
    try:
        dep, committee, job = setup_job(chain, "bls12381", 3, "bls-" + kind)
        result = EpochResult(job, 1, keccak256(b"d"), keccak256(b"a"), keccak256(b"r"), _cid(1), _manifest(1))
        digest = epoch_digest(chain, dep, result)
        wrong = committee.sign(digest, [0, 1])
        # a signature of two operators presented as all three
        with pytest.raises(ContractRevert, match="InvalidSignature"):
            submit_epoch(chain, dep, result, 0b111, wrong.signature)
        submit(chain, dep, committee, result, [0, 1, 2])
        info = epoch_info(chain, dep, job, 1)
        assert info is not None and info.signer_bitmap == 0b111
    finally:
        chain.close()


@pytest.mark.slow
def test_256_operators_on_anvil(anvil_node: AnvilNode) -> None:
    chain = connect(ChainConfig(url=anvil_node.ipc, gas_limit=15_000_000))
    dep, committee, job = setup_job(chain, "bn254", 256, "wide")
    _, count, total = operator_set_at(chain, dep, 1, chain.timestamp())
    assert (count, total) == (256, 256)
    assert max(committee.slots.values()) == 255
    # the job's genesis is two epochs back: epochs 0 and 1 have ended
    all_gas = submit(chain, dep, committee, EpochResult(job, 0, keccak256(b"a"), keccak256(b"g"), keccak256(b"b"), _cid(0), _manifest(0)), list(range(256)))
    absent = set(range(0, 256, 3)[:85])  # one third absent: 171 of 256 sign, the 2/3 quorum
    present = [i for i in range(256) if i not in absent]
    submit(chain, dep, committee, EpochResult(job, 1, keccak256(b"c"), keccak256(b"g"), keccak256(b"d"), _cid(1), _manifest(1)), present)
    info = epoch_info(chain, dep, job, 1)
    assert info is not None and info.signed_weight == len(present) and info.total_weight == 256
    assert all_gas < 400_000


PHASE2 = """
import json, sys
from pathlib import Path
from veristream.contracts import connect, load_deployment, epoch_info, claim, claimed, ContractRevert
workdir, job, proof, account = Path(sys.argv[1]), bytes.fromhex(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
if sys.argv[5] == "locked":
    try:
        connect(workdir)
    except ValueError as exc:
        print(json.dumps({"locked": str(exc)}))
    sys.exit(0)
chain = connect(workdir)
dep = load_deployment(chain)
info = epoch_info(chain, dep, job, 0)
receipt = claim(chain, dep, job, account, 100, [bytes.fromhex(p[2:]) for p in proof])
print(json.dumps({"reward_root": info.reward_root.hex(), "cid": info.batch_cid.hex(),
                  "claimed": claimed(chain, dep, job, account), "block": receipt.block_number}))
chain.close()
"""


def _phase2(workdir: Path, job: bytes, proof: list[str], account: str, mode: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", PHASE2, str(workdir), job.hex(), json.dumps(proof), account, mode],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_embedded_chain_state_survives_across_processes(tmp_path: Path) -> None:
    workdir = tmp_path / "chain"
    chain = connect(workdir)
    dep, committee, job = setup_job(chain, "bn254", 4, "persist")
    alice = chain.accounts[6]
    tree = StandardMerkleTree.of([[alice, 100], [chain.accounts[7], 5]], ["address", "uint256"])
    submit(chain, dep, committee, EpochResult(job, 0, keccak256(b"d"), keccak256(b"a"), tree.root_bytes, _cid(0), _manifest(0)), [0, 1, 2, 3])
    fund_rewards(chain, dep, job, 500, mint=True)
    head = chain.w3.eth.block_number
    # while this process holds the chain, another one is refused
    assert "another process" in _phase2(workdir, job, tree.get_proof(0), alice, "locked")["locked"]
    chain.close()

    later = _phase2(workdir, job, tree.get_proof(0), alice, "claim")
    assert later["reward_root"] == tree.root_bytes.hex() and bytes.fromhex(later["cid"]) == _cid(0)
    assert later["claimed"] == 100 and later["block"] == head + 1

    again = connect(workdir)
    try:
        assert load_deployment(again) == dep
        assert claimed(again, dep, job, alice) == 100
        assert token_balance(again, dep, alice) == 100
        assert again.w3.eth.block_number == head + 1
    finally:
        again.close()


def test_infra_script_starts_anvil_and_deploys() -> None:
    out = subprocess.run(
        [sys.executable, "infra/anvil_deploy.py", "--once", "--json", "--port", str(free_port()), "--operators", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("operator_registry", "epoch_verifier", "reward_distributor", "device_registry", "reward_token"):
        assert printed[key].startswith("0x") and len(printed[key]) == 42
    assert printed["chain_id"] == 31337 and printed["operator_set"] == 1


def test_rpc_with_a_local_signing_key(anvil_node: AnvilNode) -> None:
    # anvil's well-known second dev key (public test key, funded at genesis)
    key = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
    chain = connect(ChainConfig(url=anvil_node.url, private_key=key))
    try:
        assert chain.sender == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
        dep = deploy_all(chain, dev=True)
        assert dep.deployer == chain.sender
        set_id = create_operator_set(chain, dep, "bn254")
        assert set_id == 1
    finally:
        chain.close()
    with pytest.raises(ValueError, match="http"):
        connect(ChainConfig(url="ftp://example"))


def test_a_deployment_is_used_only_where_its_code_is_the_artifacts(tmp_path: Path) -> None:
    chain = connect(None)
    try:
        dep = deploy_all(chain, dev=True, save_to=tmp_path / "deployment.json")
        assert load_deployment(chain, tmp_path / "deployment.json") == dep
        # a deployment file naming another contract's code at an address is refused
        swapped = replace(dep, reward_distributor=dep.epoch_verifier)
        swapped.save(tmp_path / "swapped.json")
        with pytest.raises(ValueError, match="is not the RewardDistributor these artifacts build"):
            load_deployment(chain, tmp_path / "swapped.json")
        empty = replace(dep, device_registry="0x" + "42" * 20)
        empty.save(tmp_path / "empty.json")
        with pytest.raises(ValueError, match="no contract at"):
            load_deployment(chain, tmp_path / "empty.json")
        other_chain = replace(dep, chain_id=1)
        other_chain.save(tmp_path / "mainnet.json")
        with pytest.raises(ValueError, match="deployment is for chain 1"):
            load_deployment(chain, tmp_path / "mainnet.json")
    finally:
        chain.close()

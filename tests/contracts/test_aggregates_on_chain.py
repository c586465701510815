"""The EpochResult digest on chain equals the Python one; aggregate leaves built the pipeline's
way prove against the verified aggregates root; ParametricPayout pays on them, on anvil with a
real bn254 committee."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from eth_abi import encode as abi_encode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import free_port
from veristream.contracts import (
    Chain,
    ContractRevert,
    Deployment,
    connect,
    create_job,
    create_operator_set,
    deploy_all,
    epoch_digest,
    epoch_info,
    mint_reward_token,
    pause_job,
    submit_epoch,
    token_balance,
    unpause_job,
    verify_aggregate,
)
from veristream.contracts.anvil import anvil
from veristream.contracts.committee import LocalCommittee
from veristream.contracts.deploy import checksum_address, contract, deploy
from veristream.pipeline.aggregates import FieldStats
from veristream.pipeline.commitments import (
    AGGREGATE_LEAF_ENCODING,
    aggregate_leaves,
    aggregates_tree,
)
from veristream.provers.encoding import keccak256
from veristream.provers.epoch_result import EpochResult, epoch_result_digest

pytestmark = pytest.mark.services

HOT = "0x" + "d1" * 20
COLD = "0x" + "c0" * 20
MAX_ABOVE = 0


@dataclass(frozen=True)
class World:
    chain: Chain
    dep: Deployment
    committee: LocalCommittee
    job: bytes


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with anvil(free_port()) as node:
        chain = connect(node.url)
        dep = deploy_all(chain, dev=True)
        set_id = create_operator_set(chain, dep, "bn254")
        committee = LocalCommittee.deterministic("bn254", 4, seed=21)
        committee.register(chain, dep, set_id, chain.accounts[1:5], [1, 1, 1, 1])
        chain.advance_time(dep.activation_delay + 1)
        # genesis 0: every epoch has ended and may be submitted within a day of the job's creation
        job = create_job(chain, dep, "aggregates", set_id, quorum_bps=6667, genesis=0, epoch_seconds=60)
        try:
            yield World(chain, dep, committee, job)
        finally:
            chain.close()


def _stats(count: int, low: int, high: int) -> FieldStats:
    return FieldStats(count, low, high, (low + high) * count // 2, (low + high) // 2, ((50, (low + high) // 2), (90, high)))


def _verify(w: World, result: EpochResult) -> None:
    signed = w.committee.sign(epoch_digest(w.chain, w.dep, result), [0, 1, 2])
    submit_epoch(w.chain, w.dep, result, signed.signer_bitmap, signed.signature, signed.apk_g2)


def _proof(tree: object, index: int) -> list[bytes]:
    return [bytes.fromhex(p[2:]) for p in tree.get_proof(index)]  # type: ignore[attr-defined]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    epoch=st.integers(0, 2**64 - 1),
    roots=st.lists(st.binary(min_size=32, max_size=32), min_size=3, max_size=3),
    batch=st.binary(min_size=1, max_size=80),
    manifest=st.binary(min_size=1, max_size=80),
)
def test_python_digest_equals_epochDigest(
    world: World, epoch: int, roots: list[bytes], batch: bytes, manifest: bytes
) -> None:
    result = EpochResult(world.job, epoch, roots[0], roots[1], roots[2], batch, manifest)
    on_chain = epoch_digest(world.chain, world.dep, result)
    assert on_chain == epoch_result_digest(result, world.chain.chain_id, world.dep.epoch_verifier)
    # every field is bound: moving one root into another's place changes the digest
    swapped = replace(result, data_root=roots[1], aggregates_root=roots[0])
    assert (epoch_digest(world.chain, world.dep, swapped) == on_chain) == (roots[0] == roots[1])


def test_pipeline_aggregates_prove_on_chain_and_pay_a_parametric_policy(world: World) -> None:
    w = world
    stats = {
        HOT: {"temperature": _stats(12, -2, 43), "humidity": _stats(12, 30, 95)},
        COLD: {"temperature": _stats(10, -9, 4)},
    }
    tree = aggregates_tree(stats)
    assert tree is not None
    leaves = aggregate_leaves(stats)
    result = EpochResult(
        w.job, 6, keccak256(b"data"), tree.root_bytes, keccak256(b"rewards"),
        bytes.fromhex("01551220") + keccak256(b"batch"), bytes.fromhex("01711220") + keccak256(b"manifest"),
    )
    encoded = [abi_encode(AGGREGATE_LEAF_ENCODING, leaf) for leaf in leaves]
    assert not verify_aggregate(w.chain, w.dep, w.job, 6, encoded[0], _proof(tree, 0))  # not verified yet
    _verify(w, result)
    info = epoch_info(w.chain, w.dep, w.job, 6)
    assert info is not None and info.aggregates_root == tree.root_bytes
    assert info.manifest_cid == result.manifest_cid and info.manifest_cid_hash == keccak256(result.manifest_cid)
    for i, leaf in enumerate(encoded):
        assert verify_aggregate(w.chain, w.dep, w.job, 6, leaf, _proof(tree, i))
    hot_index = next(i for i, leaf in enumerate(leaves) if leaf[0] == HOT and leaf[1] == "temperature")
    forged_leaf = list(leaves[hot_index])
    forged_leaf[4] = 60  # a higher max than the committee verified
    forged = abi_encode(AGGREGATE_LEAF_ENCODING, forged_leaf)
    assert not verify_aggregate(w.chain, w.dep, w.job, 6, forged, _proof(tree, hot_index))

    # a heat policy: 500 tokens if HOT's temperature max exceeds 45 (no) or 40 (yes) in epochs 5..9
    payout_address = deploy(w.chain, "ParametricPayout", w.dep.epoch_verifier)
    payout = contract(w.chain, "ParametricPayout", payout_address)
    token = contract(w.chain, "RewardToken", w.dep.reward_token)
    holder = w.chain.accounts[8]
    mint_reward_token(w.chain, w.dep, w.chain.sender, 1_000)
    w.chain.transact(token.functions.approve(payout_address, 1_000))
    deadline = w.chain.timestamp() + 30 * 24 * 3600
    for threshold in (45, 40):
        terms = (
            holder, w.dep.reward_token, 500, w.job, checksum_address(HOT), "temperature", MAX_ABOVE, threshold, 5, 9,
            deadline,
        )
        w.chain.transact(payout.functions.createPolicy(terms))
    proof = _proof(tree, hot_index)
    with pytest.raises(ContractRevert, match="ConditionNotMet"):
        w.chain.transact(payout.functions.claim(1, 6, encoded[hot_index], proof))
    with pytest.raises(ContractRevert, match="AggregateNotProven"):
        w.chain.transact(payout.functions.claim(2, 6, forged, proof))
    # while the job's guardian (here its owner) holds it paused, no policy on it pays
    pause_job(w.chain, w.dep, w.job)
    try:
        with pytest.raises(ContractRevert, match="JobPaused"):
            w.chain.transact(payout.functions.claim(2, 6, encoded[hot_index], proof))
    finally:
        unpause_job(w.chain, w.dep, w.job)
    assert token_balance(w.chain, w.dep, holder) == 0
    w.chain.transact(payout.functions.claim(2, 6, encoded[hot_index], proof))
    assert token_balance(w.chain, w.dep, holder) == 500
    with pytest.raises(ContractRevert, match="PolicyNotOpen"):
        w.chain.transact(payout.functions.claim(2, 6, encoded[hot_index], proof))
    assert token_balance(w.chain, w.dep, holder) == 500

"""The operator committee: Ray actors re-execute epochs from the store and co-sign; a lying
operator is named with its reason, a down one is tolerated, and the quorum is enforced."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline_fleet import fleet, honest_epoch, make_job
from veristream.committee import InProcessCommittee, ProcessCommittee, RayCommittee
from veristream.connectors.ipfs import BlockNotFound, EmbeddedStore, cid_to_bytes
from veristream.operator import Operator
from veristream.pipeline.commitments import DATA_LEAF_ENCODING, dump_json
from veristream.pipeline.compute import job_context
from veristream.pipeline.publish import run_epoch
from veristream.pipeline.reexecute import check_proposal, proposal_for
from veristream.pipeline.registry import device_address
from veristream.pipeline.state import JobState
from veristream.provers.aggregation import QuorumNotMet, Review, aggregate_reviews, demo_members
from veristream.provers.bls import bls12381, bn254
from veristream.provers.encoding import ZERO_ADDRESS
from veristream.provers.epoch_result import epoch_result_digest
from veristream.provers.merkle import StandardMerkleTree

VERIFIER = "0x" + "11" * 20
DEVICES = fleet(4)


@pytest.fixture(scope="module")
def epochs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A job with two stored epochs in its work directory's embedded store."""
    tmp = tmp_path_factory.mktemp("committee")
    job = make_job(tmp, DEVICES)
    store = EmbeddedStore(Path(job.work_dir) / "ipfs")
    ctx = job_context(job)
    e0 = run_epoch(ctx, 0, honest_epoch(DEVICES, 0, per_device=5), JobState(), store)
    e1 = run_epoch(ctx, 1, honest_epoch(DEVICES, 1, per_device=3, seq_start=5), e0.state, store)
    return {"job": job, "e0": e0, "e1": e1}


def _proposal(outcome: Any) -> Any:
    return proposal_for(outcome.manifest, outcome.manifest_cid, 31337, VERIFIER, ZERO_ADDRESS)



def test_ray_committee_liar_refuses_and_down_operator_is_tolerated(epochs: dict[str, Any], ray_session: None) -> None:
    job = epochs["job"]
    members = demo_members("bls12381", 4)
    committee = RayCommittee(job, members, faults={1: "wrong_root"})
    try:
        # one liar: the other three sign, the liar's reason is reported
        agg = committee.sign(_proposal(epochs["e0"]))
        assert agg.quorum_met and agg.signers == (0, 2, 3) and agg.signer_bitmap == 0b1101
        assert "data root mismatch" in agg.refusals[1]
        pks = [members[s].public_key for s in agg.signers]
        assert bls12381.fast_aggregate_verify(pks, agg.digest, agg.signature)
        assert len(agg.signature_evm) == 256
        # the liar and a down operator together leave 2 of 4: below the 2/3 quorum
        committee.stop_operator(3)
        agg1 = committee.sign(_proposal(epochs["e1"]))
        assert agg1.down == (3,) and agg1.signers == (0, 2) and not agg1.quorum_met
    finally:
        committee.close()
    # a down operator alone does not stop the epoch
    honest = RayCommittee(job, members)
    try:
        honest.stop_operator(2)
        agg2 = honest.sign(_proposal(epochs["e1"]))  # catches up from the previous manifest's state
        assert agg2.quorum_met and agg2.signers == (0, 1, 3) and agg2.down == (2,)
    finally:
        honest.close()


def test_process_committee_liar_refuses_and_down_operator_is_tolerated(epochs: dict[str, Any]) -> None:
    """A small job's committee: one forked process per operator, no Ray."""
    job = epochs["job"]
    members = demo_members("bls12381", 4)
    committee = ProcessCommittee(job, members, faults={1: "wrong_root"})
    try:
        agg = committee.sign(_proposal(epochs["e0"]))
        assert agg.quorum_met and agg.signers == (0, 2, 3)
        assert "data root mismatch" in agg.refusals[1]
        assert bls12381.fast_aggregate_verify([members[s].public_key for s in agg.signers], agg.digest, agg.signature)
        committee.stop_operator(3)
        agg1 = committee.sign(_proposal(epochs["e1"]))
        assert agg1.down == (3,) and agg1.signers == (0, 2) and not agg1.quorum_met
    finally:
        committee.close()


def test_a_small_bounded_job_needs_no_ray(epochs: dict[str, Any]) -> None:
    from veristream.run import IN_PROCESS, PROCESSES, RAY, SMALL_JOB_READINGS, committee_runtime

    job = epochs["job"]
    assert committee_runtime(job, use_ray=True, readings=472) == PROCESSES
    assert committee_runtime(job, use_ray=True, readings=SMALL_JOB_READINGS + 1) == RAY
    assert committee_runtime(job, use_ray=True) == RAY  # a live job
    assert committee_runtime(job, use_ray=False, readings=472) == IN_PROCESS
    cluster = job.model_copy(update={"ray": job.ray.model_copy(update={"address": "10.0.0.1:6379"})})
    assert committee_runtime(cluster, use_ray=True, readings=472) == RAY


def test_bn254_committee_in_process_with_a_forged_partial_signature(epochs: dict[str, Any]) -> None:
    job = epochs["job"].model_copy(update={"operators": epochs["job"].operators.model_copy(update={"scheme": "bn254"})})
    members = demo_members("bn254", 4)
    committee = InProcessCommittee(job, members, faults={0: "bad_signature"})
    agg = committee.sign(_proposal(epochs["e0"]))
    assert agg.quorum_met and agg.signers == (1, 2, 3)
    assert "does not verify" in agg.refusals[0]
    assert agg.apk_g2 == bn254.aggregate_pks_g2([members[s].public_key for s in (1, 2, 3)])
    assert bn254.verify(agg.apk_g2, agg.digest, agg.signature)


def test_operators_refuse_a_dishonest_proposal(epochs: dict[str, Any]) -> None:
    job = epochs["job"]
    members = demo_members("bls12381", 4)
    proposal = _proposal(epochs["e0"])
    wrong = replace(proposal, result=replace(proposal.result, reward_root=b"\x01" * 32))
    op = Operator(0, "bls12381", members[0].secret_key, job)
    review = op.review(wrong)
    assert review.signature is None and "reward root mismatch" in str(review.reason)
    other_batch = replace(proposal, result=replace(proposal.result, batch_cid=bytes.fromhex("0155") + b"\x00" * 34))
    assert "batch CID" in str(op.review(other_batch).reason)
    committee = InProcessCommittee(job, members)
    with pytest.raises(QuorumNotMet, match="reward root mismatch"):
        agg = committee.sign(wrong)
        if not agg.quorum_met:
            raise QuorumNotMet(agg)


def test_operators_refuse_another_aggregates_root_manifest_cid_or_forged_tree_dumps(epochs: dict[str, Any]) -> None:
    """The committee signs the manifest's CID: a submitter who links a forged tree dump (or states
    other roots) in the manifest, or names another manifest than the one proposed, gets no signature."""
    job, e0 = epochs["job"], epochs["e0"]
    op = Operator(0, "bls12381", demo_members("bls12381", 4)[0].secret_key, job)
    store = EmbeddedStore(Path(job.work_dir) / "ipfs")
    proposal = _proposal(e0)
    assert op.review(proposal).signature is not None

    def reason_for(manifest: Any, **result: Any) -> str:
        cid = store.put(manifest.to_json())
        forged = proposal_for(manifest, cid, 31337, VERIFIER, ZERO_ADDRESS)
        review = op.review(replace(forged, result=replace(forged.result, **result)))
        assert review.signature is None
        return str(review.reason)

    # ATTACK: another aggregates root signed beside the honest data and reward roots
    assert "aggregates root mismatch" in reason_for(e0.manifest, aggregates_root=b"\x02" * 32)
    # ATTACK: the honest manifest proposed, another (the next epoch's) manifest's CID signed
    other = cid_to_bytes(epochs["e1"].manifest_cid)
    assert "manifest CID" in reason_for(e0.manifest, manifest_cid=other)
    # ATTACK: a manifest linking a forged data dump (readings that were never accepted)
    device = "0x" + device_address(DEVICES[0].device_id).hex()
    fake = StandardMerkleTree.of([[device, 999, 5, "0x" + "ee" * 32]], DATA_LEAF_ENCODING)
    forged_dump = replace(e0.manifest, trees=replace(e0.manifest.trees, data=store.put(dump_json(fake))))
    assert "tree dumps" in reason_for(forged_dump)
    # ATTACK: a manifest stating another aggregates root than the one proposed and recomputed
    lying = replace(e0.manifest, aggregates_root="0x" + "03" * 32)
    assert "manifest's aggregates root" in reason_for(lying, aggregates_root=e0.computation.aggregates_root)


def test_operators_refuse_a_manifest_whose_dumps_are_not_in_the_store(epochs: dict[str, Any]) -> None:
    """ATTACK: the honest manifest, its data dump never stored: the committee would sign a CID that
    links a file nobody can fetch."""
    job, e0 = epochs["job"], epochs["e0"]
    store = EmbeddedStore(Path(job.work_dir) / "ipfs")
    withheld = e0.manifest.trees.data

    class Withholding:
        """The job's store, lacking the data dump."""

        def get(self, cid: str) -> bytes:
            if cid == withheld:
                raise BlockNotFound(cid)
            return store.get(cid)

        def has(self, cid: str) -> bool:
            return cid != withheld and store.has(cid)

        def put(self, data: bytes) -> str:
            return store.put(data)

        def pin(self, cid: str) -> None:
            store.pin(cid)

    ctx = job_context(job)
    assert check_proposal(ctx, store, _proposal(e0), {}).reason is None
    reason = check_proposal(ctx, Withholding(), _proposal(e0), {}).reason
    assert reason is not None and "not in the store" in reason and str(withheld) in reason


def test_quorum_arithmetic_with_weights() -> None:
    members = [replace(m, weight=w) for m, w in zip(demo_members("bls12381", 3), (5, 1, 1), strict=True)]
    digest = b"\x42" * 32
    sig = {m.slot: bls12381.sign(m.secret_key, digest) for m in members}
    heavy_only = aggregate_reviews(members, {0: Review(0, sig[0]), 1: None, 2: None}, digest, 0, (2, 3))
    assert heavy_only.quorum_met and heavy_only.signed_weight == 5 and heavy_only.total_weight == 7
    light = aggregate_reviews(members, {0: None, 1: Review(1, sig[1]), 2: Review(2, sig[2])}, digest, 0, (2, 3))
    assert not light.quorum_met and light.down == (0,)
    nobody = aggregate_reviews(members, {}, digest, 0, (1, 2))
    assert not nobody.quorum_met and nobody.signature == b""
    with pytest.raises(ValueError):
        aggregate_reviews(members, {}, digest, 0, (3, 2))
    assert epoch_result_digest  # the digest helper the committee signs is the foundation's


def test_operator_keygen_and_registration_on_chain(epochs: dict[str, Any], tmp_path: Path) -> None:
    import json

    from veristream.chain import register_key
    from veristream.contracts import connect, create_operator_set, deploy_all
    from veristream.contracts.operator_registry import operator_slot
    from veristream.provers.aggregation import keygen

    for scheme, module in (("bls12381", bls12381), ("bn254", bn254)):
        key = keygen(scheme)
        secret = int(key["secret_key"], 16)
        assert bytes.fromhex(key["public_key"][2:]) == module.sk_to_pk(secret)
        assert module.pop_verify(module.sk_to_pk(secret), module.pop_prove(secret))
    assert keygen("bn254")["secret_key"] != keygen("bn254")["secret_key"]
    with pytest.raises(ValueError):
        keygen("ed25519")

    job = epochs["job"].model_copy(update={"work_dir": tmp_path, "operators": epochs["job"].operators.model_copy(update={"scheme": "bn254"})})
    with pytest.raises(ValueError, match="run it once"):
        register_key(job, keygen("bn254"), None, 1)
    chain = connect(tmp_path / "chain")
    dep = deploy_all(chain, dev=True, save_to=tmp_path / "deployment.json")
    set_id = create_operator_set(chain, dep, "bn254")
    account = chain.accounts[3]
    chain.close()
    (tmp_path / "chain-setup.json").write_text(json.dumps({"set_id": set_id}))
    with pytest.raises(ValueError, match="operators use"):
        register_key(job, keygen("bls12381"), account, 1)
    result = register_key(job, keygen("bn254"), account, 2)
    assert result["operator"] == account and result["gas"] > 0
    chain = connect(tmp_path / "chain")
    try:
        assert operator_slot(chain, dep, set_id, account) == 0
    finally:
        chain.close()

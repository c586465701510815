"""Attacks on the money the contracts hold, by the parties that run them: removed operators,
the registry owner, a front-running job creator, anybody padding a submission. Each test is
named after the attack it defeats; each one succeeded against the first release of the contracts.

Every test builds its own small world on the embedded EVM (bn254 sets, 60-second epochs).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_abi import encode

from veristream.contracts import (
    Chain,
    ContractRevert,
    Deployment,
    announce_sweep,
    claim,
    claimable_root,
    claimed,
    connect,
    create_job,
    create_operator_set,
    deploy_all,
    epoch_digest,
    epoch_info,
    fund_rewards,
    job_on_chain,
    pause_job,
    pin_operator_set,
    pool_balance,
    remove_operator,
    set_guardian,
    set_operator_weight,
    submit_epoch,
    sweep,
    token_balance,
    unpause_job,
    withdraw_on_set_change,
)
from veristream.contracts.committee import LocalCommittee
from veristream.contracts.deploy import contract
from veristream.provers.encoding import keccak256
from veristream.provers.epoch_result import EpochResult
from veristream.provers.errors import InputRejected
from veristream.provers.merkle import StandardMerkleTree

CID = bytes.fromhex("01551220") + keccak256(b"batch")
MANIFEST = bytes.fromhex("01551220") + keccak256(b"manifest")
AGGREGATES = keccak256(b"aggregates")
EPOCH_S = 60
POOL = 10**24
YEAR = 365 * 24 * 3600


@dataclass
class World:
    chain: Chain
    dep: Deployment
    committee: LocalCommittee
    set_id: int
    job: bytes
    genesis: int
    accounts: list[str]


@pytest.fixture
def world() -> Iterator[World]:
    chain = connect(None)
    dep = deploy_all(chain, dev=True)
    set_id = create_operator_set(chain, dep, "bn254")
    committee = LocalCommittee.deterministic("bn254", 4, seed=31)
    accounts = chain.accounts
    committee.register(chain, dep, set_id, accounts[1:5], [1, 1, 1, 1])
    chain.advance_time(dep.activation_delay + 1)
    genesis = chain.timestamp() + 1
    job = create_job(chain, dep, "trust", set_id, quorum=(2, 3), genesis=genesis, epoch_seconds=EPOCH_S)
    fund_rewards(chain, dep, job, POOL, mint=True)
    yield World(chain, dep, committee, set_id, job, genesis, accounts)
    chain.close()


def reward_tree(pairs: list[tuple[str, int]]) -> StandardMerkleTree:
    return StandardMerkleTree.of([[a, v] for a, v in pairs], ["address", "uint256"])


def proof_of(tree: StandardMerkleTree, index: int) -> list[bytes]:
    return [bytes.fromhex(h[2:]) for h in tree.get_proof(index)]


def sign_and_submit(
    w: World, committee: LocalCommittee, epoch: int, tree: StandardMerkleTree, signers: list[int]
) -> EpochResult:
    result = EpochResult(w.job, epoch, keccak256(b"data %d" % epoch), AGGREGATES, tree.root_bytes, CID, MANIFEST)
    signed = committee.sign(epoch_digest(w.chain, w.dep, result), signers)
    submit_epoch(w.chain, w.dep, result, signed.signer_bitmap, signed.signature, signed.apk_g2)
    return result


def until_epoch_end(w: World, epoch: int) -> None:
    """Moves the chain's clock just past the end of ``epoch``."""
    target = w.genesis + (epoch + 1) * EPOCH_S + 1
    now = w.chain.timestamp()
    if target > now:
        w.chain.advance_time(target - now)


def test_RevertWhen_RemovedOperatorsSignAStaleEpochAYearLater(world: World) -> None:
    w, attacker = world, world.accounts[9]
    # During epoch 1 the whole committee is replaced (its keys later leak or are sold).
    until_epoch_end(w, 0)
    successors = LocalCommittee.deterministic("bn254", 4, seed=32)
    successors.register(w.chain, w.dep, w.set_id, w.accounts[5:9], [1, 1, 1, 1])
    for account in w.accounts[1:5]:
        remove_operator(w.chain, w.dep, w.set_id, account)
    w.chain.advance_time(YEAR)
    # A year later three removed keys (quorum of the set in force when epoch 1 started) sign
    # a reward root with one leaf: the attacker, the whole pool.
    loot = reward_tree([(attacker, POOL), (w.accounts[8], 1)])
    with pytest.raises(ContractRevert, match=r"^SubmissionWindowClosed"):
        sign_and_submit(w, w.committee, 1, loot, [0, 1, 2])
    with pytest.raises(ContractRevert):
        claim(w.chain, w.dep, w.job, attacker, POOL, proof_of(loot, 0))
    assert token_balance(w.chain, w.dep, attacker) == 0


def test_RevertWhen_EpochIsSubmittedBeforeItEnds(world: World) -> None:
    w = world
    tree = reward_tree([(w.accounts[9], 5), (w.accounts[8], 1)])
    epoch = (w.chain.timestamp() - w.genesis) // EPOCH_S  # the epoch running now
    with pytest.raises(ContractRevert, match=r"^EpochNotEnded"):
        sign_and_submit(w, w.committee, epoch, tree, [0, 1, 2, 3])
    until_epoch_end(w, epoch)
    sign_and_submit(w, w.committee, epoch, tree, [0, 1, 2, 3])


def test_RevertWhen_AnOlderRootVerifiedLateIsClaimedAgainst(world: World) -> None:
    w, alice = world, world.accounts[9]
    honest = reward_tree([(alice, 100), (w.accounts[8], 1)])
    until_epoch_end(w, 2)
    sign_and_submit(w, w.committee, 2, honest, [0, 1, 2, 3])
    # epoch 1 is verified after epoch 2, with a greedier root: it must pay nothing
    greedy = reward_tree([(alice, 10**6), (w.accounts[8], 1)])
    sign_and_submit(w, w.committee, 1, greedy, [0, 1, 2, 3])
    assert claimable_root(w.chain, w.dep, w.job) == (2, honest.root_bytes)
    with pytest.raises(ContractRevert, match=r"^InvalidProof"):
        claim(w.chain, w.dep, w.job, alice, 10**6, proof_of(greedy, 0))
    assert token_balance(w.chain, w.dep, alice) == 0
    claim(w.chain, w.dep, w.job, alice, 100, proof_of(honest, 0))
    assert token_balance(w.chain, w.dep, alice) == 100


def test_submission_window_bounds_follow_the_job(world: World) -> None:
    w = world
    tree = reward_tree([(w.accounts[9], 5), (w.accounts[8], 1)])
    until_epoch_end(w, 3)
    # a day (the default window) after epoch 3 ended it is still open, a second later closed
    end = w.genesis + 4 * EPOCH_S
    w.chain.advance_time(end + 24 * 3600 - w.chain.timestamp() - 5)
    sign_and_submit(w, w.committee, 3, tree, [0, 1, 2])
    w.chain.advance_time(10)
    with pytest.raises(ContractRevert, match=r"^SubmissionWindowClosed"):
        sign_and_submit(w, w.committee, 2, tree, [0, 1, 2])


# ------------------------------------------------------------------ the registry owner


def test_RevertWhen_RegistryOwnerAddsADominantKeyAndSignsThePinnedJobsNextEpoch(world: World) -> None:
    w, owner_key = world, LocalCommittee.deterministic("bn254", 1, seed=33)
    pin_operator_set(w.chain, w.dep, w.job)
    # the registry owner registers its own key with dominant weight, waits out the delay ...
    owner_key.register(w.chain, w.dep, w.set_id, [w.accounts[9]], [100])
    w.chain.advance_time(w.dep.activation_delay + 1)
    start = w.chain.timestamp()
    epoch = (start - w.genesis) // EPOCH_S + 1
    until_epoch_end(w, epoch)
    loot = reward_tree([(w.accounts[9], POOL), (w.accounts[8], 1)])
    result = EpochResult(w.job, epoch, keccak256(b"loot"), AGGREGATES, loot.root_bytes, CID, MANIFEST)
    digest = epoch_digest(w.chain, w.dep, result)
    signed = owner_key.sign(digest, [0])
    # ... and signs the next epoch alone: the job never accepted that set
    with pytest.raises(ContractRevert, match=r"^OperatorSetChangeNotAccepted"):
        submit_epoch(w.chain, w.dep, result, signed.signer_bitmap, signed.signature, signed.apk_g2)
    # the job's owner sees the unaccepted change and takes its pool out
    before = token_balance(w.chain, w.dep, w.accounts[0])
    withdraw_on_set_change(w.chain, w.dep, w.job, w.accounts[0], POOL)
    assert token_balance(w.chain, w.dep, w.accounts[0]) - before == POOL
    assert pool_balance(w.chain, w.dep, w.job) == 0


def test_RevertWhen_OwnerWithdrawsWithoutAnUnacceptedSetChange() -> None:
    chain = connect(None)
    try:
        dep = deploy_all(chain, dev=True, activation_delay=3600)
        set_id = create_operator_set(chain, dep, "bn254")
        committee = LocalCommittee.deterministic("bn254", 3, seed=35)
        committee.register(chain, dep, set_id, chain.accounts[1:4], [1, 1, 1])
        chain.advance_time(3601)
        job = create_job(chain, dep, "leaving", set_id, quorum=(2, 3))
        fund_rewards(chain, dep, job, 10, mint=True)
        with pytest.raises(ContractRevert, match=r"^NoUnacceptedSetChange"):
            withdraw_on_set_change(chain, dep, job, chain.accounts[0], 1)
        # a scheduled change of a set the job follows opens the way out until it takes effect
        set_operator_weight(chain, dep, set_id, chain.accounts[1], 2)
        with pytest.raises(ContractRevert, match=r"^NotJobOwner"):
            chain.transact(
                contract(chain, "RewardDistributor", dep.reward_distributor).functions.withdrawOnSetChange(
                    job, chain.accounts[9], 1
                ),
                sender=chain.accounts[9],
            )
        withdraw_on_set_change(chain, dep, job, chain.accounts[0], 1)
        chain.advance_time(3601)
        with pytest.raises(ContractRevert, match=r"^NoUnacceptedSetChange"):
            withdraw_on_set_change(chain, dep, job, chain.accounts[0], 1)
        assert pool_balance(chain, dep, job) == 9
    finally:
        chain.close()


def test_RevertWhen_OneOperatorHoldsMoreWeightThanTheJobsCap() -> None:
    chain = connect(None)
    try:
        dep = deploy_all(chain, dev=True)
        set_id = create_operator_set(chain, dep, "bn254")
        committee = LocalCommittee.deterministic("bn254", 3, seed=34)
        committee.register(chain, dep, set_id, chain.accounts[1:4], [1, 1, 8])  # one holds 80%
        chain.advance_time(dep.activation_delay + 1)
        genesis = chain.timestamp() - EPOCH_S
        job = create_job(chain, dep, "capped", set_id, quorum=(2, 3), genesis=genesis, epoch_seconds=EPOCH_S,
                         max_operator_weight_bps=5000)
        result = EpochResult(job, 0, keccak256(b"d"), AGGREGATES, keccak256(b"r"), CID, MANIFEST)
        signed = committee.sign(epoch_digest(chain, dep, result), [2])
        with pytest.raises(ContractRevert, match=r"^OperatorWeightAboveCap"):
            submit_epoch(chain, dep, result, signed.signer_bitmap, signed.signature, signed.apk_g2)
    finally:
        chain.close()


# ------------------------------------------------------------------ job creation


def test_RevertWhen_AFrontRunnerSquatsTheJobName(world: World) -> None:
    w, attacker = world, world.accounts[9]
    # the attacker front-runs "weather" on the same set with a tiny quorum: refused ...
    with pytest.raises(InputRejected, match="above one half"):
        create_job(w.chain, w.dep, "weather", w.set_id, quorum=(1, 65535))
    verifier = contract(w.chain, "EpochVerifier", w.dep.epoch_verifier)
    with pytest.raises(ContractRevert, match=r"^InvalidQuorum"):
        w.chain.transact(verifier.functions.createJob("weather", (w.set_id, 1, 2, 10_000, 0, 60, 3600)), sender=attacker)
    # ... and with a valid one it gets its own job: the name is namespaced by its creator
    w.chain.transact(verifier.functions.createJob("weather", (w.set_id, 2, 3, 10_000, 0, 60, 3600)), sender=attacker)
    honest = create_job(w.chain, w.dep, "weather", w.set_id, quorum=(2, 3))
    squatted = job_on_chain(w.chain, w.dep, bytes(verifier.functions.jobIdOf(attacker, "weather").call()))
    mine = job_on_chain(w.chain, w.dep, honest)
    assert squatted is not None and mine is not None
    assert squatted.owner == attacker and mine.owner == w.chain.sender


# ------------------------------------------------------------------ proofs and aggregates


def test_RevertWhen_AnInternalNodeIsPassedAsAReading(world: World) -> None:
    w = world
    tree = reward_tree([(a, i + 1) for i, a in enumerate(w.accounts[1:5])])
    until_epoch_end(w, 0)
    sign_and_submit(w, w.committee, 0, tree, [0, 1, 2])
    proof = proof_of(tree, 0)
    leaf = bytes.fromhex(tree.leaf_hash([w.accounts[1], 1])[2:])
    internal = keccak256(min(leaf, proof[0]) + max(leaf, proof[0]))
    # the raw-leaf view is gone: its selector reverts, and no other view takes a bare hash
    selector = keccak256(b"verifyReading(bytes32,uint64,bytes32,bytes32[])")[:4]
    data = selector + encode(["bytes32", "uint64", "bytes32", "bytes32[]"], [w.job, 0, internal, proof[1:]])
    with pytest.raises(Exception):  # noqa: B017 - any revert: the function does not exist
        w.chain.w3.eth.call({"to": w.dep.epoch_verifier, "data": "0x" + data.hex()})


def test_RevertWhen_AConflictingResultIsSignedByAQuorum(world: World) -> None:
    w = world
    honest = reward_tree([(w.accounts[9], 5), (w.accounts[8], 1)])
    until_epoch_end(w, 0)
    first = sign_and_submit(w, w.committee, 0, honest, [0, 1, 2])
    other = reward_tree([(w.accounts[9], 6), (w.accounts[8], 1)])
    second = sign_and_submit(w, w.committee, 0, other, [1, 2, 3])  # recorded as evidence, not as a result
    info = epoch_info(w.chain, w.dep, w.job, 0)
    assert info is not None and info.reward_root == first.reward_root
    verifier = contract(w.chain, "EpochVerifier", w.dep.epoch_verifier)
    [event] = verifier.events.Equivocation.get_logs(from_block=0)
    args = event["args"]
    assert bytes(args["conflictingDigest"]) == epoch_digest(w.chain, w.dep, second)
    # the evidence is self-contained: the conflicting digest recomputes from the event's fields ...
    from_event = verifier.functions.epochDigest(
        w.job, 0, args["dataRoot"], args["aggregatesRoot"], args["rewardRoot"], args["batchCidHash"],
        args["manifestCidHash"],
    )
    assert bytes(w.chain.call(from_event)) == bytes(args["conflictingDigest"])
    assert bytes(args["rewardRoot"]) == second.reward_root
    assert bytes(args["manifestCidHash"]) == keccak256(second.manifest_cid)
    # ... and the recorded one from storage and its EpochVerified event
    assert info.batch_cid is not None and info.manifest_cid is not None
    recorded = EpochResult(
        w.job, 0, info.data_root, info.aggregates_root, info.reward_root, info.batch_cid, info.manifest_cid
    )
    assert epoch_digest(w.chain, w.dep, recorded) == epoch_digest(w.chain, w.dep, first)
    assert info.signer_bitmap == w.committee.sign(b"\x01" * 32, [0, 1, 2]).signer_bitmap
    assert args["conflictingSignerBitmap"] == w.committee.sign(b"\x01" * 32, [1, 2, 3]).signer_bitmap
    # operators 1 and 2 signed both: the evidence names them


# ------------------------------------------------------------------ the way out for funds


def test_RevertWhen_TheOwnerSweepsBeforeTheClaimWindowEnds(world: World) -> None:
    w, alice = world, world.accounts[9]
    tree = reward_tree([(alice, 100), (w.accounts[8], 1)])
    until_epoch_end(w, 0)
    sign_and_submit(w, w.committee, 0, tree, [0, 1, 2])
    with pytest.raises(ContractRevert, match=r"^ClaimWindowOpen"):
        announce_sweep(w.chain, w.dep, w.job)
    with pytest.raises(ContractRevert, match=r"^SweepNotAnnounced"):
        sweep(w.chain, w.dep, w.job, w.accounts[0])
    w.chain.advance_time(90 * 24 * 3600)
    distributor = contract(w.chain, "RewardDistributor", w.dep.reward_distributor)
    with pytest.raises(ContractRevert, match=r"^NotJobOwner"):
        w.chain.transact(distributor.functions.announceSweep(w.job), sender=alice)
    announce_sweep(w.chain, w.dep, w.job)
    with pytest.raises(ContractRevert, match=r"^SweepNotDue"):
        sweep(w.chain, w.dep, w.job, w.accounts[0])
    claim(w.chain, w.dep, w.job, alice, 100, proof_of(tree, 0))  # contributors still claim meanwhile
    w.chain.advance_time(7 * 24 * 3600)
    before = token_balance(w.chain, w.dep, w.accounts[0])
    sweep(w.chain, w.dep, w.job, w.accounts[0])
    assert token_balance(w.chain, w.dep, w.accounts[0]) - before == POOL - 100
    assert pool_balance(w.chain, w.dep, w.job) == 0


def test_RevertWhen_APausedJobsNewEpochIsClaimed(world: World) -> None:
    w, alice, guardian = world, world.accounts[9], world.accounts[7]
    first = reward_tree([(alice, 100), (w.accounts[8], 1)])
    until_epoch_end(w, 1)
    sign_and_submit(w, w.committee, 0, first, [0, 1, 2])
    set_guardian(w.chain, w.dep, w.job, guardian)
    pause_job(w.chain, w.dep, w.job, sender=guardian)
    disputed = reward_tree([(alice, POOL), (w.accounts[8], 1)])
    sign_and_submit(w, w.committee, 1, disputed, [0, 1, 2])  # verified and recorded, not claimable
    with pytest.raises(ContractRevert, match=r"^InvalidProof"):
        claim(w.chain, w.dep, w.job, alice, POOL, proof_of(disputed, 0))
    claim(w.chain, w.dep, w.job, alice, 100, proof_of(first, 0))  # existing claims go on
    with pytest.raises(ContractRevert, match=r"^NotGuardian"):
        unpause_job(w.chain, w.dep, w.job)  # the owner cannot lift the guardian's pause
    # the dispute ends when a newer, honest epoch is verified: only the highest epoch pays
    until_epoch_end(w, 2)
    settled = reward_tree([(alice, 150), (w.accounts[8], 1)])
    sign_and_submit(w, w.committee, 2, settled, [0, 1, 2])
    unpause_job(w.chain, w.dep, w.job, sender=guardian)
    claim(w.chain, w.dep, w.job, alice, 150, proof_of(settled, 0))
    assert claimed(w.chain, w.dep, w.job, alice) == 150


def test_pools_above_uint96_are_held_and_paid(world: World) -> None:
    w, alice = world, world.accounts[9]
    big = 2**96 + 12345
    fund_rewards(w.chain, w.dep, w.job, big, mint=True)
    assert pool_balance(w.chain, w.dep, w.job) == POOL + big
    tree = reward_tree([(alice, big), (w.accounts[8], 1)])
    until_epoch_end(w, 0)
    sign_and_submit(w, w.committee, 0, tree, [0, 1, 2])
    claim(w.chain, w.dep, w.job, alice, big, proof_of(tree, 0))
    assert token_balance(w.chain, w.dep, alice) == big

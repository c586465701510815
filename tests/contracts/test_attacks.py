"""Attacks on the contracts, each expecting its custom error, on the embedded EVM (bn254).

One deployment serves the module: a bn254 set of four operators weighted 3, 3, 3, 1
(quorum 2/3 of 10 = 7), a job over it, and reward trees built with the provers'
OpenZeppelin-compatible StandardMerkleTree. Tests use distinct epochs so they do not
interfere. The rogue-key and removal attacks get their own sets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from eth_abi import encode as abi_encode

from veristream.contracts import (
    Chain,
    ContractRevert,
    Deployment,
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
    key_registration_digest,
    register_operator,
    remove_operator,
    submit_epoch,
    token_balance,
)
from veristream.contracts.committee import LocalCommittee
from veristream.contracts.deploy import contract, deploy
from veristream.provers.bls import bn254
from veristream.provers.encoding import keccak256
from veristream.provers.epoch_result import EpochResult
from veristream.provers.merkle import StandardMerkleTree

WEIGHTS = [3, 3, 3, 1]
CID = bytes.fromhex("01551220") + keccak256(b"batch")
MANIFEST = bytes.fromhex("01551220") + keccak256(b"manifest")
AGGREGATES = keccak256(b"aggregates")


@dataclass
class World:
    chain: Chain
    dep: Deployment
    committee: LocalCommittee
    set_id: int
    job: bytes
    accounts: list[str]


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    chain = connect(None)
    dep = deploy_all(chain, dev=True)
    set_id = create_operator_set(chain, dep, "bn254")
    committee = LocalCommittee.deterministic("bn254", 4, seed=11)
    accounts = chain.accounts
    committee.register(chain, dep, set_id, accounts[1:5], WEIGHTS)
    chain.advance_time(dep.activation_delay + 1)
    job = create_job(chain, dep, "attacks", set_id, quorum_bps=6667, genesis=0, epoch_seconds=60)
    fund_rewards(chain, dep, job, 10**24, mint=True)
    yield World(chain, dep, committee, set_id, job, accounts)
    chain.close()


def _bytes(hexes: list[str]) -> list[bytes]:
    return [bytes.fromhex(h[2:]) for h in hexes]


def reward_tree(accounts: list[str], amounts: list[int]) -> StandardMerkleTree:
    return StandardMerkleTree.of([[a, v] for a, v in zip(accounts, amounts, strict=True)], ["address", "uint256"])


def verified_epoch(
    w: World, epoch: int, tree: StandardMerkleTree | None = None, signers: list[int] | None = None,
    data_root: bytes | None = None,
) -> EpochResult:
    """Submits an epoch signed by ``signers`` (default all) with ``tree`` as its reward root."""
    reward_root = tree.root_bytes if tree is not None else keccak256(b"reward" + bytes([epoch]))
    data_root = data_root or keccak256(b"data" + bytes([epoch]))
    result = EpochResult(w.job, epoch, data_root, AGGREGATES, reward_root, CID, MANIFEST)
    signed = w.committee.sign(epoch_digest(w.chain, w.dep, result), signers or [0, 1, 2, 3])
    submit_epoch(w.chain, w.dep, result, signed.signer_bitmap, signed.signature, signed.apk_g2)
    return result


def expect(error: str) -> pytest.RaisesExc[ContractRevert]:
    return pytest.raises(ContractRevert, match=rf"^{error}\b")


# ------------------------------------------------------------------ epochs


def test_replayed_epoch_submission_is_rejected(world: World) -> None:
    result = verified_epoch(world, 1)
    signed = world.committee.sign(epoch_digest(world.chain, world.dep, result), [0, 1, 2, 3])
    with expect("EpochAlreadyVerified"):
        submit_epoch(world.chain, world.dep, result, signed.signer_bitmap, signed.signature, signed.apk_g2)


def test_second_different_result_for_an_epoch_does_not_replace_it(world: World) -> None:
    first = verified_epoch(world, 2)
    other = EpochResult(world.job, 2, keccak256(b"other data"), AGGREGATES, keccak256(b"other rewards"), CID, MANIFEST)
    signed = world.committee.sign(epoch_digest(world.chain, world.dep, other), [0, 1, 2, 3])
    # signed by a quorum: recorded as equivocation evidence, the verified result stays
    submit_epoch(world.chain, world.dep, other, signed.signer_bitmap, signed.signature, signed.apk_g2)
    info = epoch_info(world.chain, world.dep, world.job, 2)
    assert info is not None and (info.data_root, info.reward_root) == (first.data_root, first.reward_root)
    # not signed by a quorum: refused
    short = world.committee.sign(epoch_digest(world.chain, world.dep, other), [0, 1])
    with expect("QuorumNotMet"):
        submit_epoch(world.chain, world.dep, other, short.signer_bitmap, short.signature, short.apk_g2)


def test_a_result_differing_only_in_aggregates_or_manifest_is_evidence(world: World) -> None:
    # a quorum re-signing the epoch with other aggregates (what a parametric payout reads) or
    # another manifest cannot replace the verified result: each is equivocation evidence
    # a job of its own: the shared job's claims pay against its highest verified epoch
    job = create_job(world.chain, world.dep, "aggregates-lie", world.set_id, quorum_bps=6667, genesis=0, epoch_seconds=60)
    world = World(world.chain, world.dep, world.committee, world.set_id, job, world.accounts)
    first = verified_epoch(world, 20)
    verifier = contract(world.chain, "EpochVerifier", world.dep.epoch_verifier)
    for lie in (
        replace(first, aggregates_root=keccak256(b"forged aggregates")),
        replace(first, manifest_cid=MANIFEST + b"\x01"),
    ):
        signed = world.committee.sign(epoch_digest(world.chain, world.dep, lie), [0, 1, 2, 3])
        submit_epoch(world.chain, world.dep, lie, signed.signer_bitmap, signed.signature, signed.apk_g2)
        [event] = verifier.events.Equivocation.get_logs(
            from_block=world.chain.w3.eth.block_number, argument_filters={"epoch": 20}
        )
        assert bytes(event["args"]["conflictingDigest"]) == epoch_digest(world.chain, world.dep, lie)
    info = epoch_info(world.chain, world.dep, world.job, 20)
    assert info is not None
    assert (info.aggregates_root, info.manifest_cid_hash) == (AGGREGATES, keccak256(MANIFEST))
    # the same roots and manifest with another batch CID: the manifest names the batch, so this
    # is the verified result again, not a second one
    again = replace(first, batch_cid=CID + b"\x02")
    signed = world.committee.sign(epoch_digest(world.chain, world.dep, again), [0, 1, 2, 3])
    with expect("EpochAlreadyVerified"):
        submit_epoch(world.chain, world.dep, again, signed.signer_bitmap, signed.signature, signed.apk_g2)


def test_quorum_one_weight_short_is_rejected_and_exact_quorum_passes(world: World) -> None:
    result = EpochResult(world.job, 3, keccak256(b"d3"), AGGREGATES, keccak256(b"r3"), CID, MANIFEST)
    digest = epoch_digest(world.chain, world.dep, result)
    short = world.committee.sign(digest, [0, 1])  # weight 6 of 10, needs 7
    with expect("QuorumNotMet"):
        submit_epoch(world.chain, world.dep, result, short.signer_bitmap, short.signature, short.apk_g2)
    exact = world.committee.sign(digest, [0, 1, 3])  # weight 7
    receipt = submit_epoch(world.chain, world.dep, result, exact.signer_bitmap, exact.signature, exact.apk_g2)
    assert receipt.gas_used > 0


def test_bitmap_overstating_the_signers_is_rejected(world: World) -> None:
    result = EpochResult(world.job, 4, keccak256(b"d4"), AGGREGATES, keccak256(b"r4"), CID, MANIFEST)
    digest = epoch_digest(world.chain, world.dep, result)
    three = world.committee.sign(digest, [0, 1, 2])
    # claims slot 3 signed too, with the three signers' own aggregate key and signature
    with expect("InvalidSignature"):
        submit_epoch(world.chain, world.dep, result, three.signer_bitmap | 0b1000, three.signature, three.apk_g2)
    # names a slot that is not in the set at all
    with expect("SignerNotInSet"):
        submit_epoch(world.chain, world.dep, result, three.signer_bitmap | (1 << 9), three.signature, three.apk_g2)


def test_aggregate_missing_one_signer_is_rejected(world: World) -> None:
    result = EpochResult(world.job, 5, keccak256(b"d5"), AGGREGATES, keccak256(b"r5"), CID, MANIFEST)
    digest = epoch_digest(world.chain, world.dep, result)
    full = world.committee.sign(digest, [0, 1, 2, 3])
    three = world.committee.sign(digest, [0, 1, 2])
    with expect("InvalidSignature"):
        submit_epoch(world.chain, world.dep, result, full.signer_bitmap, three.signature, full.apk_g2)


def test_signature_over_another_message_is_rejected(world: World) -> None:
    result = EpochResult(world.job, 6, keccak256(b"d6"), AGGREGATES, keccak256(b"r6"), CID, MANIFEST)
    lie = EpochResult(world.job, 6, keccak256(b"d6"), AGGREGATES, keccak256(b"r6 lie"), CID, MANIFEST)
    signed = world.committee.sign(epoch_digest(world.chain, world.dep, lie), [0, 1, 2, 3])
    with expect("InvalidSignature"):
        submit_epoch(world.chain, world.dep, result, signed.signer_bitmap, signed.signature, signed.apk_g2)


def test_rogue_key_cannot_register_or_forge_an_aggregate(world: World) -> None:
    # rogue = attacker - sum(honest keys): the attacker computes it from public keys alone;
    # the test takes the shortcut through the secrets, which yields the very same points.
    rogue_scalar = (0xBAD - sum(k.secret_key for k in world.committee.keys)) % bn254.R
    rogue_pk2, rogue_pk1 = bn254.sk_to_pk(rogue_scalar), bn254.sk_to_pk_g1(rogue_scalar)
    assert bn254.aggregate_pks_g2([rogue_pk2, *(k.pubkey_g2 for k in world.committee.keys)]) == bn254.sk_to_pk(0xBAD)
    # the attacker knows no secret for the rogue key: its best PoP is its own key's
    fake_pop = bn254.sign_pop(
        0xBAD, key_registration_digest(world.chain, world.dep, world.set_id, world.accounts[8], rogue_pk1)
    )
    with expect("InvalidProofOfPossession"):
        register_operator(world.chain, world.dep, world.set_id, world.accounts[8], 5, rogue_pk1, fake_pop, rogue_pk2)
    # at submission: the attacker alone signs, names every slot and offers its own G2 key
    result = EpochResult(world.job, 7, keccak256(b"d7"), AGGREGATES, keccak256(b"r7"), CID, MANIFEST)
    digest = epoch_digest(world.chain, world.dep, result)
    alone = bn254.sign(0xBAD, digest)
    with expect("InvalidSignature"):
        submit_epoch(world.chain, world.dep, result, 0b1111, alone, bn254.sk_to_pk(0xBAD))


def test_g1_key_not_matching_g2_key_is_rejected(world: World) -> None:
    good = LocalCommittee.deterministic("bn254", 1, seed=12).keys[0]
    other = LocalCommittee.deterministic("bn254", 1, seed=13).keys[0]
    with expect("InvalidProofOfPossession"):
        pop = good.registration_pop(world.chain.chain_id, world.dep.operator_registry, world.set_id, world.accounts[8])
        register_operator(world.chain, world.dep, world.set_id, world.accounts[8], 1, other.pubkey, pop, good.pubkey_g2)


def test_signature_from_an_operator_removed_before_the_epoch_is_rejected(world: World) -> None:
    chain, dep = world.chain, world.dep
    set_id = create_operator_set(chain, dep, "bn254")
    committee = LocalCommittee.deterministic("bn254", 3, seed=21)
    committee.register(chain, dep, set_id, world.accounts[5:8], [1, 1, 1])
    chain.advance_time(dep.activation_delay + 1)
    start = chain.timestamp() + 1
    job = create_job(chain, dep, "removal", set_id, quorum=(2, 3), genesis=start, epoch_seconds=100)
    remove_operator(chain, dep, set_id, world.accounts[7])
    chain.advance_time(300)
    w = World(chain, dep, committee, set_id, job, world.accounts)

    # epoch 2 started after the removal took effect: operator 2 is out of the set
    late = EpochResult(job, 2, keccak256(b"late"), AGGREGATES, keccak256(b"late r"), CID, MANIFEST)
    signed = committee.sign(epoch_digest(chain, dep, late), [0, 1, 2])
    with expect("SignerNotInSet"):
        submit_epoch(chain, dep, late, signed.signer_bitmap, signed.signature, signed.apk_g2)
    without = committee.sign(epoch_digest(chain, dep, late), [0, 1])
    submit_epoch(chain, dep, late, without.signer_bitmap, without.signature, without.apk_g2)

    # epoch 0 started before the removal: the snapshot still counts operator 2, and exactly
    # 2 of its 3 operators meet the 2/3 quorum (a fraction, not 6667 bps rounded up)
    early = EpochResult(job, 0, keccak256(b"early"), AGGREGATES, keccak256(b"early r"), CID, MANIFEST)
    signed = w.committee.sign(epoch_digest(chain, dep, early), [0, 2])
    receipt = submit_epoch(chain, dep, early, signed.signer_bitmap, signed.signature, signed.apk_g2)
    assert receipt.gas_used > 0


# ------------------------------------------------------------------ rewards


def test_cumulative_claims_pay_the_difference_and_double_claims_fail(world: World) -> None:
    chain, dep = world.chain, world.dep
    alice, bob = world.accounts[8], world.accounts[9]
    t10 = reward_tree([alice, bob], [100, 50])
    t11 = reward_tree([alice, bob], [250, 50])
    verified_epoch(world, 10, t10)
    before = token_balance(chain, dep, alice)
    claim(chain, dep, world.job, alice, 100, _bytes(t10.get_proof(0)))
    verified_epoch(world, 11, t11)
    # anyone may send the claim; the tokens go to the account
    claim(chain, dep, world.job, alice, 250, _bytes(t11.get_proof(0)), sender=bob)
    assert token_balance(chain, dep, alice) - before == 250
    assert claimed(chain, dep, world.job, alice) == 250
    with expect("NothingToClaim"):
        claim(chain, dep, world.job, alice, 250, _bytes(t11.get_proof(0)))
    with expect("InvalidProof"):  # an older root is no longer claimable at all
        claim(chain, dep, world.job, alice, 100, _bytes(t10.get_proof(0)))


def test_forged_and_truncated_proofs_are_rejected(world: World) -> None:
    accounts = world.accounts[1:9]
    tree = reward_tree(accounts, [10 * (i + 1) for i in range(8)])
    verified_epoch(world, 12, tree)
    proof = _bytes(tree.get_proof(2))
    forged = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
    with expect("InvalidProof"):
        claim(world.chain, world.dep, world.job, accounts[2], 30, forged)
    with expect("InvalidProof"):
        claim(world.chain, world.dep, world.job, accounts[2], 30, proof[:-1])
    with expect("InvalidProof"):  # right proof, inflated amount
        claim(world.chain, world.dep, world.job, accounts[2], 31, proof)


def test_internal_node_cannot_pose_as_a_leaf(world: World) -> None:
    accounts = world.accounts[1:5]
    tree = reward_tree(accounts, [5, 6, 7, 8])
    verified_epoch(world, 13, tree, data_root=tree.root_bytes)
    proof = _bytes(tree.get_proof(0))
    leaf = bytes.fromhex(tree.leaf_hash([accounts[0], 5])[2:])
    left, right = sorted([leaf, proof[0]])
    internal = keccak256(left + right)
    # claims hash the leaf values twice, so an internal node's children are no leaf
    with expect("InvalidProof"):
        claim(world.chain, world.dep, world.job, "0x" + left[12:].hex(), int.from_bytes(right, "big"), proof[1:])
    # so does verifyReadingData: the real leaf verifies, the children's pair does not
    encoded = abi_encode(["address", "uint256"], [accounts[0], 5])
    assert epoch_contains_reading_data(world.chain, world.dep, world.job, 13, encoded, proof)
    assert not epoch_contains_reading_data(world.chain, world.dep, world.job, 13, left + right, proof[1:])
    assert not epoch_contains_reading_data(world.chain, world.dep, world.job, 13, internal, proof[1:])


def test_claim_against_an_unverified_or_replaced_root_is_rejected(world: World) -> None:
    alice = world.accounts[8]
    honest = reward_tree([alice, world.accounts[9]], [10, 10])
    greedy = reward_tree([alice, world.accounts[9]], [10**6, 10])
    with expect("InvalidProof"):  # not verified: the claimable root is another epoch's
        claim(world.chain, world.dep, world.job, alice, 10**6, _bytes(greedy.get_proof(0)))
    verified_epoch(world, 14, honest)
    # the greedy tree cannot replace the verified root (a quorum signing it is evidence) ...
    result = EpochResult(world.job, 14, keccak256(b"data" + bytes([14])), AGGREGATES, greedy.root_bytes, CID, MANIFEST)
    signed = world.committee.sign(epoch_digest(world.chain, world.dep, result), [0, 1, 2, 3])
    submit_epoch(world.chain, world.dep, result, signed.signer_bitmap, signed.signature, signed.apk_g2)
    # ... and its proofs do not open the verified one
    with expect("InvalidProof"):
        claim(world.chain, world.dep, world.job, alice, 10**6, _bytes(greedy.get_proof(0)))


def test_claim_beyond_the_funded_pool_is_rejected(world: World) -> None:
    alice = world.accounts[8]
    tree = reward_tree([alice, world.accounts[9]], [10**30, 1])
    verified_epoch(world, 15, tree)
    with expect("InsufficientFunding"):
        claim(world.chain, world.dep, world.job, alice, 10**30, _bytes(tree.get_proof(0)))


def test_reentrancy_through_a_malicious_token_is_rejected(world: World) -> None:
    chain, dep = world.chain, world.dep
    token_address = deploy(chain, "ReentrantToken")
    token = contract(chain, "ReentrantToken", token_address)
    distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
    job = create_job(chain, dep, "reentrancy", world.set_id, quorum_bps=6667, token=token_address)
    chain.transact(token.functions.mint(chain.sender, 1000))
    fund_rewards(chain, dep, job, 1000, token=token_address)
    alice = world.accounts[8]
    tree = reward_tree([alice, world.accounts[9]], [100, 100])
    w = World(chain, dep, world.committee, world.set_id, job, world.accounts)
    verified_epoch(w, 1, tree)
    proof = _bytes(tree.get_proof(0))
    reenter = distributor.functions.claim(job, alice, 100, proof)._encode_transaction_data()
    chain.transact(token.functions.arm(dep.reward_distributor, bytes.fromhex(reenter[2:])))
    with expect("ReentrancyGuardReentrantCall"):
        claim(chain, dep, job, alice, 100, proof)
    assert claimed(chain, dep, job, alice) == 0


def test_bad_encodings_fail_with_clear_errors(world: World) -> None:
    result = EpochResult(world.job, 16, keccak256(b"d16"), AGGREGATES, keccak256(b"r16"), CID, MANIFEST)
    signed = world.committee.sign(epoch_digest(world.chain, world.dep, result), [0, 1, 2, 3])
    with expect("InvalidSignatureLength"):
        submit_epoch(world.chain, world.dep, result, signed.signer_bitmap, signed.signature[:63], signed.apk_g2)
    with expect("InvalidKeyLength"):
        k = world.committee.keys[0]
        pop = k.registration_pop(world.chain.chain_id, world.dep.operator_registry, world.set_id, world.accounts[8])
        register_operator(world.chain, world.dep, world.set_id, world.accounts[8], 1, k.pubkey[:63], pop, k.pubkey_g2)
    with expect("UnknownJob"):
        submit_epoch(world.chain, world.dep, EpochResult(b"\x07" * 32, 1, result.data_root, AGGREGATES, result.reward_root, CID, MANIFEST),
                     signed.signer_bitmap, signed.signature, signed.apk_g2)

"""Relayed and batched claims from Python: the EIP-712 claim authorization signed here is
the one the RewardDistributor checks (cross-checked against the contract's own digest view
and eth-account's typed-data encoder), ``claim_for`` pays the account whoever relays it, and
``claim_many`` pays a batch, skipping accounts already paid. Embedded EVM, one deployment.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from veristream.contracts import (
    Chain,
    ContractRevert,
    Deployment,
    claim,
    claim_authorization_digest,
    claim_for,
    claim_many,
    claimed,
    connect,
    create_job,
    create_operator_set,
    deploy_all,
    distributor_domain,
    epoch_digest,
    fund_rewards,
    pool_balance,
    sign_claim_authorization,
    submit_epoch,
    token_balance,
)
from veristream.contracts.committee import LocalCommittee
from veristream.contracts.deploy import contract
from veristream.contracts.reward_distributor import (
    jobs_paying_in,
    onchain_claim_authorization_digest,
    recover_unaccounted,
)
from veristream.provers.encoding import keccak256
from veristream.provers.epoch_result import EpochResult
from veristream.provers.errors import InputRejected
from veristream.provers.merkle import StandardMerkleTree
from veristream.provers.readings import Domain
from veristream.provers.schemes import secp256k1

CID = bytes.fromhex("01551220") + keccak256(b"batch")
MANIFEST = bytes.fromhex("01711220") + keccak256(b"manifest")
KEY = keccak256(b"relayed claimant")
ACCOUNT = "0x" + secp256k1.address_of(secp256k1.public_key_of(KEY)).hex()


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
    committee = LocalCommittee.deterministic("bn254", 4, seed=17)
    committee.register(chain, dep, set_id, chain.accounts[1:5], [1, 1, 1, 1])
    chain.advance_time(dep.activation_delay + 1)
    job = create_job(chain, dep, "relayed", set_id, quorum_bps=6667, genesis=0, epoch_seconds=60)
    fund_rewards(chain, dep, job, 10**24, mint=True)
    yield World(chain, dep, committee, set_id, job, chain.accounts)
    chain.close()


def verified_tree(w: World, epoch: int, pairs: list[tuple[str, int]], job: bytes | None = None) -> StandardMerkleTree:
    tree = StandardMerkleTree.of([[a, v] for a, v in pairs], ["address", "uint256"])
    result = EpochResult(job or w.job, epoch, keccak256(b"d%d" % epoch), keccak256(b"a"), tree.root_bytes, CID, MANIFEST)
    signed = w.committee.sign(epoch_digest(w.chain, w.dep, result), [0, 1, 2, 3])
    submit_epoch(w.chain, w.dep, result, signed.signer_bitmap, signed.signature, signed.apk_g2)
    return tree


def proof_of(tree: StandardMerkleTree, index: int) -> list[bytes]:
    return [bytes.fromhex(h[2:]) for h in tree.get_proof(index)]


@settings(max_examples=25, deadline=None)
@given(
    job=st.binary(min_size=32, max_size=32),
    account=st.binary(min_size=20, max_size=20),
    amount=st.integers(min_value=0, max_value=2**256 - 1),
    deadline=st.integers(min_value=0, max_value=2**256 - 1),
)
def test_authorization_digest_matches_the_contract_and_eth_account(
    world: World, job: bytes, account: bytes, amount: int, deadline: int
) -> None:
    address = "0x" + account.hex()
    domain = distributor_domain(world.chain, world.dep)
    ours = claim_authorization_digest(domain, job, address, amount, deadline)
    assert ours == onchain_claim_authorization_digest(world.chain, world.dep, job, address, amount, deadline)
    typed = encode_typed_data(full_message={
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"},
            ],
            "ClaimAuthorization": [
                {"name": "jobId", "type": "bytes32"}, {"name": "account", "type": "address"},
                {"name": "cumulativeAmount", "type": "uint256"}, {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "ClaimAuthorization",
        "domain": {"name": "VeriStream", "version": "1", "chainId": domain.chain_id,
                   "verifyingContract": domain.verifying_contract},
        "message": {"jobId": job, "account": address, "cumulativeAmount": amount, "deadline": deadline},
    })
    assert ours == keccak256(b"\x19" + typed.version + typed.header + typed.body)


def test_claim_for_pays_the_signer_whoever_relays_it(world: World) -> None:
    w, relayer = world, world.accounts[7]
    tree = verified_tree(w, 1, [(ACCOUNT, 100), (w.accounts[8], 5)])
    domain = distributor_domain(w.chain, w.dep)
    deadline = w.chain.timestamp() + 3600
    signature = sign_claim_authorization(KEY, domain, w.job, ACCOUNT, 100, deadline)
    relayer_before = token_balance(w.chain, w.dep, relayer)
    claim_for(w.chain, w.dep, w.job, ACCOUNT, 100, proof_of(tree, 0), deadline, signature, sender=relayer)
    assert token_balance(w.chain, w.dep, ACCOUNT) == 100
    assert token_balance(w.chain, w.dep, relayer) == relayer_before
    with pytest.raises(ContractRevert, match=r"^NothingToClaim"):  # replayed
        claim_for(w.chain, w.dep, w.job, ACCOUNT, 100, proof_of(tree, 0), deadline, signature, sender=relayer)
    # the next epoch raises the total: a relayer cannot bump the signed amount itself
    tree = verified_tree(w, 2, [(ACCOUNT, 180), (w.accounts[8], 5)])
    with pytest.raises(ContractRevert, match=r"^InvalidAuthorization"):
        claim_for(w.chain, w.dep, w.job, ACCOUNT, 180, proof_of(tree, 0), deadline, signature, sender=relayer)
    late = w.chain.timestamp() - 1
    expired = sign_claim_authorization(KEY, domain, w.job, ACCOUNT, 180, late)
    with pytest.raises(ContractRevert, match=r"^AuthorizationExpired"):
        claim_for(w.chain, w.dep, w.job, ACCOUNT, 180, proof_of(tree, 0), late, expired, sender=relayer)
    fresh = sign_claim_authorization(KEY, domain, w.job, ACCOUNT, 180, deadline)
    claim_for(w.chain, w.dep, w.job, ACCOUNT, 180, proof_of(tree, 0), deadline, fresh, sender=relayer)
    assert claimed(w.chain, w.dep, w.job, ACCOUNT) == 180


def test_claim_many_pays_a_batch_and_skips_accounts_already_paid(world: World) -> None:
    w = world
    pairs = [("0x" + keccak256(b"batch %d" % i)[12:].hex(), 1000 + i) for i in range(6)]
    tree = verified_tree(w, 3, pairs)
    claim(w.chain, w.dep, w.job, pairs[1][0], pairs[1][1], proof_of(tree, 1))  # sent just before the batch
    before = pool_balance(w.chain, w.dep, w.job)
    batch = [(a, v, proof_of(tree, i)) for i, (a, v) in enumerate(pairs)]
    claim_many(w.chain, w.dep, w.job, batch, sender=w.accounts[7])
    assert [claimed(w.chain, w.dep, w.job, a) for a, _ in pairs] == [v for _, v in pairs]
    assert before - pool_balance(w.chain, w.dep, w.job) == sum(v for _, v in pairs) - pairs[1][1]
    forged = [*batch[:2], (batch[2][0], batch[2][1] + 1, batch[2][2])]
    with pytest.raises(ContractRevert, match=r"^InvalidProofAt\(2,\)"):
        claim_many(w.chain, w.dep, w.job, forged)
    with pytest.raises(InputRejected):
        claim_many(w.chain, w.dep, w.job, [])


def test_recover_unaccounted_names_every_job_of_the_token(world: World) -> None:
    w = world
    other = create_job(w.chain, w.dep, "relayed-other", w.set_id, quorum_bps=6667)
    fund_rewards(w.chain, w.dep, other, 777, mint=True)
    assert jobs_paying_in(w.chain, w.dep, w.dep.reward_token) == sorted([w.job, other])
    token = contract(w.chain, "RewardToken", w.dep.reward_token)
    w.chain.transact(token.functions.mint(w.dep.reward_distributor, 5))  # a mistaken transfer
    held = token_balance(w.chain, w.dep, w.dep.reward_distributor)
    distributor = contract(w.chain, "RewardDistributor", w.dep.reward_distributor)
    with pytest.raises(ContractRevert, match=r"^JobListIncomplete"):  # leaving a pool out
        w.chain.transact(distributor.functions.recoverUnaccounted(w.dep.reward_token, w.accounts[6], [w.job]))
    recover_unaccounted(w.chain, w.dep, w.dep.reward_token, w.accounts[6])
    assert token_balance(w.chain, w.dep, w.accounts[6]) == 5
    assert token_balance(w.chain, w.dep, w.dep.reward_distributor) == held - 5


def test_bad_authorization_inputs_are_typed_errors() -> None:
    with pytest.raises(InputRejected):
        claim_authorization_digest(Domain(), b"\x01" * 31, ACCOUNT, 1, 1)
    with pytest.raises(InputRejected):
        claim_authorization_digest(Domain(), b"\x01" * 32, "0x1234", 1, 1)
    with pytest.raises(InputRejected):
        claim_authorization_digest(Domain(), b"\x01" * 32, ACCOUNT, -1, 1)

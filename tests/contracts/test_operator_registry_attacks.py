"""Attacks on the OperatorRegistry's keys and governance, on the embedded EVM.

A proof of possession signs the registry's EIP-712 ``keyRegistrationDigest`` of (chain id,
registry, set id, operator, key), so it cannot be copied into another operator's
``rotateKey``, replayed on another set or registry, or reused for another account; no two
registered keys cancel; the owner cannot renounce; a production-chain deployment keeps the
activation-delay floor. The Python digest and PoPs are cross-checked against the contract.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veristream.contracts import (
    Chain,
    ContractRevert,
    Deployment,
    connect,
    create_operator_set,
    deploy_all,
    key_registration_digest,
    register_operator,
    remove_operator,
    rotate_operator_key,
    set_operator_weight,
)
from veristream.contracts.deploy import MIN_ACTIVATION_DELAY, contract
from veristream.provers import aggregation
from veristream.provers.aggregation import OperatorKey
from veristream.provers.bls import bls12381, bn254
from veristream.provers.errors import InputRejected

SCHEMES = ["bn254", "bls12381"]
ORDER = {"bn254": bn254.R, "bls12381": bls12381.CURVE_ORDER}


@dataclass
class World:
    chain: Chain
    dep: Deployment
    other: Deployment  # a second registry on the same chain
    accounts: list[str]


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    chain = connect(None)
    dep = deploy_all(chain, dev=True)
    other = deploy_all(chain, dev=True)
    yield World(chain, dep, other, chain.accounts)
    chain.close()


def expect(error: str) -> pytest.RaisesExc[ContractRevert]:
    return pytest.raises(ContractRevert, match=rf"^{error}\b")


def register(world: World, dep: Deployment, set_id: int, operator: str, key: OperatorKey, weight: int = 1) -> None:
    pop = key.registration_pop(world.chain.chain_id, dep.operator_registry, set_id, operator)
    register_operator(world.chain, dep, set_id, operator, weight, key.pubkey, pop, key.pubkey_g2)


# ------------------------------------------------------------------ attacks


@pytest.mark.parametrize("scheme", SCHEMES)
def test_RevertWhen_PopIsCopiedIntoAnotherOperatorsRotateKey(world: World, scheme: str) -> None:
    chain, dep = world.chain, world.dep
    set_id = create_operator_set(chain, dep, scheme)
    attacker_account, victim_account = world.accounts[1], world.accounts[2]
    attacker, victim = OperatorKey.from_secret(scheme, 0xA11CE), OperatorKey.from_secret(scheme, 0xB0B)
    register(world, dep, set_id, attacker_account, attacker)
    # the owner's pending registerOperator(victim_account, victim key, pop) is public: the
    # attacker copies its key and PoP into its own rotateKey to burn the key
    victim_pop = victim.registration_pop(chain.chain_id, dep.operator_registry, set_id, victim_account)
    with expect("InvalidProofOfPossession"):
        rotate_operator_key(chain, dep, set_id, attacker_account, victim.pubkey, victim_pop, victim.pubkey_g2)
    # the victim's registration still goes through
    register_operator(chain, dep, set_id, victim_account, 1, victim.pubkey, victim_pop, victim.pubkey_g2)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_RevertWhen_PopIsReplayedOnAnotherSetOrRegistry(world: World, scheme: str) -> None:
    chain, dep, other = world.chain, world.dep, world.other
    set_id = create_operator_set(chain, dep, scheme)
    second_set = create_operator_set(chain, dep, scheme)
    other_set = create_operator_set(chain, other, scheme)
    key = OperatorKey.from_secret(scheme, 0xC0DE)
    account = world.accounts[3]
    pop = key.registration_pop(chain.chain_id, dep.operator_registry, set_id, account)
    with expect("InvalidProofOfPossession"):  # another set of the same registry
        register_operator(chain, dep, second_set, account, 1, key.pubkey, pop, key.pubkey_g2)
    with expect("InvalidProofOfPossession"):  # another registry (same set id on purpose)
        register_operator(chain, other, other_set, account, 1, key.pubkey, pop, key.pubkey_g2)
    with expect("InvalidProofOfPossession"):  # another operator account
        register_operator(chain, dep, set_id, world.accounts[4], 1, key.pubkey, pop, key.pubkey_g2)
    register_operator(chain, dep, set_id, account, 1, key.pubkey, pop, key.pubkey_g2)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_RevertWhen_NegatedKeyIsRegistered(world: World, scheme: str) -> None:
    chain, dep = world.chain, world.dep
    set_id = create_operator_set(chain, dep, scheme)
    secret = 0x5EC12E7
    key, negated = OperatorKey.from_secret(scheme, secret), OperatorKey.from_secret(scheme, ORDER[scheme] - secret)
    register(world, dep, set_id, world.accounts[1], key)
    # sk and r - sk: each has a valid PoP, together their aggregate is the point at infinity
    with expect("NegatedKeyAlreadyUsed"):
        register(world, dep, set_id, world.accounts[2], negated)
    # nor through a rotation, nor in another set of the registry
    other_set = create_operator_set(chain, dep, scheme)
    with expect("NegatedKeyAlreadyUsed"):
        register(world, dep, other_set, world.accounts[2], negated)
    holder = OperatorKey.from_secret(scheme, 0x707)
    register(world, dep, other_set, world.accounts[3], holder)
    pop = negated.registration_pop(chain.chain_id, dep.operator_registry, other_set, world.accounts[3])
    with expect("NegatedKeyAlreadyUsed"):
        rotate_operator_key(chain, dep, other_set, world.accounts[3], negated.pubkey, pop, negated.pubkey_g2)


def test_RevertWhen_OwnerRenouncesOwnership(world: World) -> None:
    registry = contract(world.chain, "OperatorRegistry", world.dep.operator_registry)
    with expect("RenounceOwnershipDisabled"):
        world.chain.transact(registry.functions.renounceOwnership())
    assert world.chain.call(registry.functions.owner()) == world.chain.sender


def test_RevertWhen_ActivationDelayIsBelowTheFloorOnAProductionChain(world: World) -> None:
    # Python refuses a short delay unless the caller says the chain is for development
    with pytest.raises(InputRejected, match="--dev"):
        deploy_all(world.chain, activation_delay=3600)
    registry = contract(world.chain, "OperatorRegistry", world.dep.operator_registry)
    assert world.chain.call(registry.functions.MIN_ACTIVATION_DELAY()) == MIN_ACTIVATION_DELAY
    assert world.chain.call(registry.functions.isLocalDevelopmentChain()) is True
    assert world.dep.activation_delay == 1


# ------------------------------------------------------------------ Python against the contract


@settings(max_examples=40, deadline=None)
@given(
    set_id=st.integers(0, 2**32 - 1),
    operator=st.binary(min_size=20, max_size=20),
    pubkey=st.one_of(st.binary(min_size=64, max_size=64), st.binary(min_size=128, max_size=128)),
    second=st.booleans(),
)
def test_python_digest_equals_the_contracts(
    world: World, set_id: int, operator: bytes, pubkey: bytes, second: bool
) -> None:
    dep = world.other if second else world.dep
    address = "0x" + operator.hex()
    expected = key_registration_digest(world.chain, dep, set_id, address, pubkey)
    digest = aggregation.key_registration_digest(world.chain.chain_id, dep.operator_registry, set_id, address, pubkey)
    assert digest == expected


@pytest.mark.parametrize("scheme", SCHEMES)
def test_python_pop_signs_the_contracts_digest(world: World, scheme: str) -> None:
    chain, dep = world.chain, world.dep
    set_id = create_operator_set(chain, dep, scheme)
    key = OperatorKey.from_secret(scheme, 0xF00D)
    digest = key_registration_digest(chain, dep, set_id, world.accounts[5], key.pubkey)
    pop = key.registration_pop(chain.chain_id, dep.operator_registry, set_id, world.accounts[5])
    if scheme == "bn254":
        assert bn254.verify_pop(key.public_key, digest, pop)
    else:
        assert pop == bls12381.signature_to_evm(bls12381.sign_pop(key.secret_key, digest))
        assert bls12381.verify_pop(key.public_key, digest, bls12381.sign_pop(key.secret_key, digest))
    register_operator(chain, dep, set_id, world.accounts[5], 1, key.pubkey, pop, key.pubkey_g2)


def test_registration_and_rotation_emit_the_g2_key(world: World) -> None:
    chain, dep = world.chain, world.dep
    set_id = create_operator_set(chain, dep, "bn254")
    key, rotated = OperatorKey.from_secret("bn254", 0xE1), OperatorKey.from_secret("bn254", 0xE2)
    account = world.accounts[6]
    start = chain.w3.eth.block_number
    register(world, dep, set_id, account, key, weight=7)
    pop = rotated.registration_pop(chain.chain_id, dep.operator_registry, set_id, account)
    rotate_operator_key(chain, dep, set_id, account, rotated.pubkey, pop, rotated.pubkey_g2)
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    [registered] = [
        e for e in registry.events.OperatorRegistered.get_logs(from_block=start) if e["args"]["setId"] == set_id
    ]
    [rotation] = [
        e for e in registry.events.OperatorKeyRotated.get_logs(from_block=start) if e["args"]["setId"] == set_id
    ]
    assert bytes(registered["args"]["pubkeyG2"]) == key.pubkey_g2
    assert bytes(registered["args"]["pubkey"]) == key.pubkey
    assert bytes(rotation["args"]["pubkeyG2"]) == rotated.pubkey_g2
    assert bn254.keys_match(bytes(rotation["args"]["pubkey"]), bytes(rotation["args"]["pubkeyG2"]))


def test_max_weight_and_checkpoint_index_follow_register_weight_change_and_removal(world: World) -> None:
    chain, dep = world.chain, world.dep
    set_id = create_operator_set(chain, dep, "bn254")
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    accounts = world.accounts[1:4]
    keys = [OperatorKey.from_secret("bn254", 0xD00 + i) for i in range(3)]
    weights: dict[str, int] = {}
    expected: list[tuple[int, int, int]] = []  # (timestamp in force, checkpoint index, max weight)

    def step(change: object) -> None:
        assert callable(change)
        change()
        at = chain.timestamp() + dep.activation_delay
        expected.append((at, len(expected), max(weights.values(), default=0)))
        chain.advance_time(dep.activation_delay + 1)

    for account, key, weight in zip(accounts, keys, [5, 9, 2], strict=True):
        weights[account] = weight
        step(lambda a=account, k=key, w=weight: register(world, dep, set_id, a, k, w))
    weights[accounts[1]] = 3  # the largest shrinks: recomputed over the members
    step(lambda: set_operator_weight(chain, dep, set_id, accounts[1], 3))
    del weights[accounts[0]]  # the largest leaves
    step(lambda: remove_operator(chain, dep, set_id, accounts[0]))
    weights[accounts[2]] = 11
    step(lambda: set_operator_weight(chain, dep, set_id, accounts[2], 11))

    assert chain.call(registry.functions.checkpointCount(set_id)) == len(expected)
    for at, index, max_weight in expected:
        assert chain.call(registry.functions.checkpointIndexAt(set_id, at)) == index
        assert chain.call(registry.functions.maxWeightAt(set_id, at)) == max_weight
    with expect("NoOperatorSetAt"):
        chain.call(registry.functions.checkpointIndexAt(set_id, expected[0][0] - 1))

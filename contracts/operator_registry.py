"""The OperatorRegistry: operator sets, BLS keys with proof of possession, weights, rotation.

Every function takes the ``Chain`` and the ``Deployment``; reverts surface as
``ContractRevert`` carrying the Solidity custom error's name.
"""

from __future__ import annotations

from dataclasses import dataclass

from veristream.contracts.artifacts import ContractRevert
from veristream.contracts.chain import Chain, Receipt
from veristream.contracts.deploy import Deployment, checksum_address, contract
from veristream.provers.errors import InputRejected

SCHEMES = {"bn254": 1, "bls12381": 2}


def _scheme_id(scheme: str) -> int:
    try:
        return SCHEMES[scheme]
    except KeyError:
        raise InputRejected(f"scheme must be one of {sorted(SCHEMES)}, got {scheme!r}") from None


def create_operator_set(chain: Chain, dep: Deployment, scheme: str) -> int:
    """Creates an empty operator set for ``scheme`` ("bn254" or "bls12381"); returns its id."""
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    chain.transact(registry.functions.createOperatorSet(_scheme_id(scheme)))
    return int(chain.call(registry.functions.setCount()))


def register_operator(
    chain: Chain,
    dep: Deployment,
    set_id: int,
    operator: str,
    weight: int,
    pubkey: bytes,
    pop: bytes,
    pubkey_g2: bytes = b"",
) -> Receipt:
    """Adds an operator with its BLS key and proof of possession (owner only).

    bn254: ``pubkey`` = ``sk_to_pk_g1`` (64 bytes), ``pubkey_g2`` = ``sk_to_pk`` (128 bytes).
    bls12381: ``pubkey`` = ``pk_to_evm`` (128 bytes), no ``pubkey_g2``. ``pop`` signs the
    registry's ``key_registration_digest`` for (``set_id``, ``operator``, ``pubkey``):
    ``OperatorKey.registration_pop`` (the operator computes it; its secret never leaves it).
    """
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    return chain.transact(
        registry.functions.registerOperator(set_id, checksum_address(operator), weight, pubkey, pubkey_g2, pop)
    )


def set_operator_weight(chain: Chain, dep: Deployment, set_id: int, operator: str, weight: int) -> Receipt:
    """Changes an operator's weight, effective after the activation delay (owner only)."""
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    return chain.transact(registry.functions.setOperatorWeight(set_id, checksum_address(operator), weight))


def remove_operator(chain: Chain, dep: Deployment, set_id: int, operator: str) -> Receipt:
    """Removes an operator, effective after the activation delay (owner only)."""
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    return chain.transact(registry.functions.removeOperator(set_id, checksum_address(operator)))


def rotate_operator_key(
    chain: Chain, dep: Deployment, set_id: int, operator: str, pubkey: bytes, pop: bytes, pubkey_g2: bytes = b""
) -> Receipt:
    """Replaces ``operator``'s key (sent by the operator itself), keeping slot and weight;
    ``pop`` signs ``key_registration_digest`` for (``set_id``, ``operator``, ``pubkey``)."""
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    return chain.transact(registry.functions.rotateKey(set_id, pubkey, pubkey_g2, pop), sender=checksum_address(operator))


def key_registration_digest(chain: Chain, dep: Deployment, set_id: int, operator: str, pubkey: bytes) -> bytes:
    """The registry's ``keyRegistrationDigest``: what a proof of possession signs to register
    ``pubkey`` for ``operator`` in ``set_id`` (``provers.aggregation.key_registration_digest``
    computes the same off chain)."""
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    return bytes(chain.call(registry.functions.keyRegistrationDigest(set_id, checksum_address(operator), pubkey)))


def operator_slot(chain: Chain, dep: Deployment, set_id: int, operator: str) -> int:
    """The slot (signer-bitmap bit) of an active operator; ``ValueError`` if it has none."""
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    active, slot = chain.call(registry.functions.operators(set_id, checksum_address(operator)))
    if not active:
        raise InputRejected(f"{operator} is not an operator of set {set_id}")
    return int(slot)


def operator_set_at(chain: Chain, dep: Deployment, set_id: int, timestamp: int) -> tuple[int, int, int]:
    """The set in force at ``timestamp``: (members bitmap, operator count, total weight)."""
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    members, count, total, _ = chain.call(registry.functions.setAt(set_id, timestamp))
    return int(members), int(count), int(total)


@dataclass(frozen=True, slots=True)
class SetOperator:
    """One operator of a set as the registry holds it at some time."""

    slot: int  # the bit of the EpochVerifier's signer bitmap
    operator: str
    weight: int
    pubkey: bytes  # the G1 key the registry stores: 64 bytes (bn254) or 128 bytes EIP-2537 (bls12381)


def operator_set_scheme(chain: Chain, dep: Deployment, set_id: int) -> str:
    """The scheme of set ``set_id`` ("bn254" or "bls12381"); ``ValueError`` if there is no such set."""
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    scheme_id = int(chain.call(registry.functions.schemeOf(set_id)))
    names = {number: name for name, number in SCHEMES.items()}
    if scheme_id not in names:
        raise InputRejected(f"the OperatorRegistry at {dep.operator_registry} has no operator set {set_id}")
    return names[scheme_id]


def operator_set_members(chain: Chain, dep: Deployment, set_id: int, timestamp: int) -> list[SetOperator]:
    """The operators of ``set_id`` in force at ``timestamp``, by slot: keys, weights and order
    exactly as ``EpochVerifier`` checks a signer bitmap against them.

    ``ValueError`` when the set has no operator in force at ``timestamp``.
    """
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    try:
        members, _, _, _ = chain.call(registry.functions.setAt(set_id, timestamp))
    except ContractRevert as revert:
        raise InputRejected(f"operator set {set_id} has no operators in force at {timestamp} ({revert})") from None
    out = []
    for slot in range(int(members).bit_length()):
        if int(members) >> slot & 1:
            operator, weight, pubkey = chain.call(registry.functions.slotAt(set_id, slot, timestamp))
            out.append(SetOperator(slot, str(operator), int(weight), bytes(pubkey)))
    if not out:
        raise InputRejected(f"operator set {set_id} has no operators in force at {timestamp}")
    return out


def operator_set_pending_until(chain: Chain, dep: Deployment, set_id: int) -> int:
    """When the set's latest scheduled change takes effect (0 for a set nobody registered in yet)."""
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    try:
        _, _, _, effective_from = chain.call(registry.functions.setAt(set_id, 2**64 - 1))
    except ContractRevert:
        return 0
    return int(effective_from)

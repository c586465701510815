"""The committee's protocol values and its one signature aggregation.

What an aggregator asks (``Proposal``), what each operator answers (``Review``),
who the operators are (``Member``, with keys as ``OperatorKey``), and how the
answers become one aggregate signature with its quorum check
(``aggregate_reviews``). Pure: no Ray, no chain, no I/O; the committee runtime
and the chain wiring build on it.

The quorum holds when ``signed_weight * denominator >= total_weight * numerator``.
Refusals carry each operator's reason, so a lying or buggy operator is named,
not just outvoted.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from veristream.provers.bls.scheme import BlsScheme, ChainSignature, scheme_for
from veristream.provers.encoding import (
    address_word,
    check_uint,
    eip712_digest,
    eip712_domain_separator,
    eip712_type_hash,
    keccak256,
    parse_address,
    uint_word,
)
from veristream.provers.epoch_result import EpochResult
from veristream.provers.errors import InputRejected, VeriStreamError

# The EIP-712 message an OperatorRegistry proof of possession signs (OperatorRegistry.sol).
REGISTRY_DOMAIN_NAME = "VeriStream"
REGISTRY_DOMAIN_VERSION = "1"
OPERATOR_KEY_TYPE = "OperatorKey(uint32 setId,address operator,bytes32 pubkeyHash)"
OPERATOR_KEY_TYPE_HASH = eip712_type_hash(OPERATOR_KEY_TYPE)


@dataclass(frozen=True, slots=True)
class Proposal:
    """What the coordinator asks the committee to sign for one epoch."""

    job_id: str
    epoch: int
    manifest_cid: str
    result: EpochResult
    chain_id: int
    verifier: str
    job_owner: str  # the account that created the job on chain: job ids are namespaced by it


@dataclass(frozen=True, slots=True)
class Review:
    """An operator's answer: a signature, or the reason it refused."""

    operator: int
    signature: bytes | None
    reason: str | None = None

    def __post_init__(self) -> None:
        if (self.signature is None) == (self.reason is None):
            raise InputRejected("a review carries either a signature or a refusal reason")


@dataclass(frozen=True, slots=True)
class Member:
    """One operator as the aggregator knows it: slot, weight, public key and (locally) secret key,
    or the name of the Ray actor that serves it (``operator serve``)."""

    slot: int
    scheme: str
    weight: int
    public_key: bytes  # bls12381: 48-byte compressed G1; bn254: 128-byte G2; b"" if nobody serves it
    secret_key: int = field(repr=False, default=0)
    actor: str | None = None  # a registry committee's served operator actor


def key_registration_digest(chain_id: int, registry: str | bytes, set_id: int, operator: str | bytes, pubkey: bytes) -> bytes:
    """The 32-byte EIP-712 digest a proof of possession signs to register ``pubkey`` for
    ``operator`` in set ``set_id`` of the OperatorRegistry at ``registry`` on chain ``chain_id``.

    Domain {name "VeriStream", version "1", chainId, verifyingContract = registry}; type
    ``OperatorKey(uint32 setId,address operator,bytes32 pubkeyHash)`` with ``pubkeyHash =
    keccak256(pubkey)``, ``pubkey`` the G1 key as the registry takes it (64 bytes bn254, 128
    bytes EIP-2537 bls12381). Equals the contract's ``keyRegistrationDigest`` view.
    """
    # VALIDATE
    check_uint(set_id, 32, "set_id")
    if len(pubkey) not in (64, 128):
        raise InputRejected(f"a registry G1 key is 64 (bn254) or 128 (bls12381) bytes, got {len(pubkey)}")
    # DIGEST
    domain = eip712_domain_separator(REGISTRY_DOMAIN_NAME, REGISTRY_DOMAIN_VERSION, chain_id, registry)
    struct_hash = keccak256(
        OPERATOR_KEY_TYPE_HASH + uint_word(set_id) + address_word(parse_address(operator)) + keccak256(bytes(pubkey))
    )
    return eip712_digest(domain, struct_hash)


@dataclass(frozen=True, slots=True)
class OperatorKey:
    """One operator's secret key and the key encodings the registry takes; its proof of
    possession depends on where it registers (``registration_pop``)."""

    scheme: str
    secret_key: int = field(repr=False)
    public_key: bytes  # native: bls12381 48-byte compressed G1; bn254 128-byte G2
    pubkey: bytes  # G1: 64 bytes (bn254) or 128 bytes EIP-2537 (bls12381)
    pubkey_g2: bytes  # bn254 only

    @classmethod
    def from_secret(cls, scheme: str, secret_key: int) -> OperatorKey:
        """Derives the public encodings of ``secret_key`` for ``scheme``."""
        key = scheme_for(scheme).registry_key(secret_key)
        return cls(scheme, secret_key, key.public_key, key.pubkey, key.pubkey_g2)

    @classmethod
    def from_key_file(cls, key: Mapping[str, str]) -> OperatorKey:
        """The key of a ``keygen`` key file (its ``scheme`` and ``secret_key``; the public parts
        are derived again from the secret)."""
        try:
            return cls.from_secret(str(key["scheme"]), int(str(key["secret_key"]), 16))
        except (KeyError, ValueError) as exc:
            raise InputRejected(f"not an operator key file (scheme, secret_key): {exc}") from None

    def sign(self, digest: bytes) -> bytes:
        """This operator's signature of ``digest`` in the scheme's native encoding."""
        return scheme_for(self.scheme).sign(self.secret_key, digest)

    def registration_pop(self, chain_id: int, registry: str | bytes, set_id: int, operator: str | bytes) -> bytes:
        """The proof of possession that registers this key for ``operator`` in set ``set_id`` of
        the OperatorRegistry at ``registry`` on chain ``chain_id`` (and nowhere else)."""
        digest = key_registration_digest(chain_id, registry, set_id, operator, self.pubkey)
        return scheme_for(self.scheme).registration_pop(self.secret_key, digest)


def demo_keys(scheme: str, size: int, seed: int = 1) -> list[OperatorKey]:
    """``size`` keys derived from ``seed``: the embedded mode's, tests' and benchmarks' committee
    (demo keys only: they are guessable)."""
    if size < 1:
        raise InputRejected("a committee needs at least one operator")
    base = 0x5EED_0000 + seed * 1_000_003
    return [OperatorKey.from_secret(scheme, base + i) for i in range(size)]


def demo_members(scheme: str, count: int, seed: int = 1, weights: Sequence[int] | None = None) -> list[Member]:
    """The embedded mode's operators, keys from ``demo_keys`` (the keys the demo registers)."""
    if weights is not None and len(weights) != count:
        raise InputRejected(f"{len(weights)} weights for {count} operators")
    return [
        Member(slot, scheme, weights[slot] if weights else 1, key.public_key, key.secret_key)
        for slot, key in enumerate(demo_keys(scheme, count, seed))
    ]


@dataclass(frozen=True, slots=True)
class Aggregate:
    """The committee's answer for one epoch."""

    epoch: int
    digest: bytes
    signers: tuple[int, ...]
    signer_bitmap: int
    signature: bytes  # native encoding (bls12381: 96-byte compressed; bn254: 64-byte G1)
    signature_evm: bytes  # what the EpochVerifier takes
    apk_g2: bytes  # bn254 only
    refusals: dict[int, str]
    down: tuple[int, ...]
    signed_weight: int
    total_weight: int
    quorum_met: bool


class QuorumNotMet(VeriStreamError, RuntimeError):
    """Too little weight signed; carries the aggregate with every refusal reason."""

    def __init__(self, aggregate: Aggregate) -> None:
        self.aggregate = aggregate
        reasons = "; ".join(f"operator {i}: {r}" for i, r in sorted(aggregate.refusals.items()))
        super().__init__(
            f"epoch {aggregate.epoch}: signed weight {aggregate.signed_weight} of "
            f"{aggregate.total_weight} misses the quorum (down: {list(aggregate.down)}; {reasons})"
        )


def aggregate_reviews(
    members: Sequence[Member],
    reviews: Mapping[int, Review | None],
    digest: bytes,
    epoch: int,
    quorum: tuple[int, int],
) -> Aggregate:
    """Combine the operators' answers into one aggregate signature and check the quorum.

    ``reviews[slot]`` is None for an operator that did not answer. Signatures
    are checked together first (one pairing check); only if that fails is each
    checked alone, and the invalid ones are refused ("signature does not verify").
    """
    # VALIDATE
    if not members:
        raise InputRejected("a committee needs at least one member")
    schemes = {m.scheme for m in members}
    if len(schemes) != 1:
        raise InputRejected(f"members mix schemes {sorted(schemes)}")
    scheme = scheme_for(schemes.pop())
    numerator, denominator = quorum
    if not 0 < numerator <= denominator:
        raise InputRejected(f"quorum {numerator}/{denominator} is not a fraction in (0, 1]")
    by_slot = {m.slot: m for m in members}

    # COLLECT
    refusals: dict[int, str] = {}
    down: list[int] = []
    signed: dict[int, bytes] = {}
    for slot in sorted(by_slot):
        review = reviews.get(slot)
        if review is None:
            down.append(slot)
        elif review.signature is None:
            refusals[slot] = str(review.reason)
        else:
            signed[slot] = review.signature

    # VERIFY (together, then one by one only if needed)
    if signed:
        try:
            together = scheme.fast_aggregate_verify(
                [by_slot[s].public_key for s in signed], digest, scheme.aggregate(list(signed.values()))
            )
        except ValueError:
            together = False
        if not together:
            for slot in list(signed):
                if not scheme.fast_aggregate_verify([by_slot[slot].public_key], digest, signed[slot]):
                    refusals[slot] = "signature does not verify for the proposed epoch result"
                    del signed[slot]

    # AGGREGATE
    signers = tuple(sorted(signed))
    total = sum(m.weight for m in members)
    weight = sum(by_slot[s].weight for s in signers)
    signature = scheme.aggregate([signed[s] for s in signers]) if signers else b""
    on_chain = (
        scheme.chain_signature(signature, [by_slot[s].public_key for s in signers])
        if signers
        else ChainSignature(b"", b"")
    )
    return Aggregate(
        epoch=epoch,
        digest=digest,
        signers=signers,
        signer_bitmap=sum(1 << s for s in signers),
        signature=signature,
        signature_evm=on_chain.signature,
        apk_g2=on_chain.apk_g2,
        refusals=refusals,
        down=tuple(down),
        signed_weight=weight,
        total_weight=total,
        quorum_met=bool(signers) and weight * denominator >= total * numerator,
    )


def registry_members(
    scheme: str, registered: Sequence[Any], served: Mapping[str, bytes], set_id: int | None = None
) -> list[Member]:
    """The committee of an on-chain operator set: one member per registered slot, with the slot
    and weight the registry holds, each matched to the served actor whose key is the slot's.

    ``registered`` holds ``veristream.contracts.SetOperator`` rows (``slot``, ``weight`` and
    the G1 ``pubkey`` as the registry stores it); ``served`` maps actor names to the key each
    reports (bls12381: 48-byte compressed G1; bn254: 128-byte G2, matched to the registered G1
    key by a pairing check). A slot nobody serves gets no actor (down: the quorum decides).
    ``InputRejected`` for a served key no slot registered, or two actors serving one slot.
    """
    # VALIDATE
    bls = scheme_for(scheme)
    if not registered:
        raise InputRejected("the operator set has no operators")
    label = f"operator set {set_id}" if set_id is not None else "the operator set"

    # MATCH
    actor_of: dict[int, str] = {}
    for name in sorted(served):
        slot = _registered_slot(bls, registered, served[name])
        if slot is None:
            raise InputRejected(
                f"operator actor {name!r} serves key 0x{served[name][:8].hex()}…, which is not registered in "
                f"{label} (slots {[op.slot for op in registered]}): register it with `veristream operator "
                "register`, or stop serving it"
            )
        if slot in actor_of:
            raise InputRejected(f"operator actors {actor_of[slot]!r} and {name!r} both serve the key of slot {slot}")
        actor_of[slot] = name

    # MEMBERS (bitmap order: by slot)
    return [
        Member(
            int(op.slot),
            scheme,
            int(op.weight),
            served[actor_of[op.slot]] if op.slot in actor_of else b"",
            actor=actor_of.get(op.slot),
        )
        for op in sorted(registered, key=lambda op: int(op.slot))
    ]


def _registered_slot(scheme: BlsScheme, registered: Sequence[Any], key: bytes) -> int | None:
    """The slot whose registered G1 key belongs to the same secret as ``key``, if any."""
    return next((int(op.slot) for op in registered if scheme.registered_as(bytes(op.pubkey), key)), None)


def keygen(scheme: str) -> dict[str, str]:
    """A fresh operator key with the key encodings the OperatorRegistry takes (hex strings).

    The secret comes from the OS's CSPRNG; the caller must keep the result private. The proof
    of possession is made per registration (``OperatorKey.from_key_file(...).registration_pop``).
    """
    secret = 1 + secrets.randbelow(scheme_for(scheme).order - 1)
    key = OperatorKey.from_secret(scheme, secret)
    return {
        "scheme": scheme,
        "secret_key": hex(secret),
        "public_key": "0x" + key.public_key.hex(),
        "registry_pubkey": "0x" + key.pubkey.hex(),
        "registry_pubkey_g2": "0x" + key.pubkey_g2.hex(),
    }

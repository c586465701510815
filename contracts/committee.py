"""A local committee of BLS operator keys: registers them and co-signs epoch digests.

For the embedded demo, tests and the gas benchmark: it holds every secret key in one
process, which a real deployment never does (each operator signs on its own node and
an aggregator combines the signatures). The encodings are exactly what the contracts
take, built with ``veristream.provers.bls``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from veristream.contracts.chain import Chain
from veristream.contracts.client import Deployment, operator_slot, register_operator
from veristream.provers.bls import bls12381, bn254


@dataclass(frozen=True, slots=True)
class Signed:
    """An aggregate signature ready for ``submit_epoch``."""

    signer_bitmap: int
    signature: bytes
    apk_g2: bytes


@dataclass(frozen=True, slots=True)
class OperatorKey:
    """One operator's secret key and the encodings the registry takes."""

    scheme: str
    secret_key: int
    pubkey: bytes  # G1: 64 bytes (bn254) or 128 bytes EIP-2537 (bls12381)
    pubkey_g2: bytes  # bn254 only
    pop: bytes  # bn254 G1 (64) / bls12381 EIP-2537 G2 (256)

    @classmethod
    def from_secret(cls, scheme: str, secret_key: int) -> OperatorKey:
        """Derives the public encodings of ``secret_key`` for ``scheme``."""
        if scheme == "bn254":
            return cls(scheme, secret_key, bn254.sk_to_pk_g1(secret_key), bn254.sk_to_pk(secret_key),
                       bn254.pop_prove(secret_key))
        if scheme == "bls12381":
            return cls(scheme, secret_key, bls12381.pk_to_evm(bls12381.sk_to_pk(secret_key)), b"",
                       bls12381.signature_to_evm(bls12381.pop_prove(secret_key)))
        raise ValueError(f"unknown scheme {scheme!r}")

    def sign(self, digest: bytes) -> bytes:
        """This operator's signature of ``digest`` in the scheme's native encoding."""
        if self.scheme == "bn254":
            return bn254.sign(self.secret_key, digest)
        return bls12381.sign(self.secret_key, digest)


@dataclass(slots=True)
class LocalCommittee:
    """Operator keys with their on-chain slots (after ``register``)."""

    scheme: str
    keys: list[OperatorKey]
    slots: dict[int, int] = field(default_factory=dict)  # key index -> slot

    @classmethod
    def deterministic(cls, scheme: str, size: int, seed: int = 1) -> LocalCommittee:
        """``size`` keys derived from ``seed`` (test and demo keys only: they are guessable)."""
        if size < 1:
            raise ValueError("a committee needs at least one operator")
        base = 0x5EED_0000 + seed * 1_000_003
        return cls(scheme, [OperatorKey.from_secret(scheme, base + i) for i in range(size)])

    def register(
        self, chain: Chain, dep: Deployment, set_id: int, operators: Sequence[str], weights: Sequence[int]
    ) -> None:
        """Registers key i for account ``operators[i]`` with ``weights[i]`` and records its slot."""
        if not len(operators) == len(weights) == len(self.keys):
            raise ValueError("need one operator address and one weight per key")
        for i, (key, operator, weight) in enumerate(zip(self.keys, operators, weights, strict=True)):
            register_operator(chain, dep, set_id, operator, weight, key.pubkey, key.pop, key.pubkey_g2)
            self.slots[i] = operator_slot(chain, dep, set_id, operator)

    def sign(self, digest: bytes, signers: Sequence[int]) -> Signed:
        """The aggregate of key indices ``signers`` over ``digest``, with their bitmap."""
        if not signers:
            raise ValueError("at least one signer is needed")
        bitmap = 0
        for i in signers:
            bitmap |= 1 << self.slots.get(i, i)
        sigs = [self.keys[i].sign(digest) for i in signers]
        if self.scheme == "bn254":
            apk_g2 = bn254.aggregate_pks_g2([self.keys[i].pubkey_g2 for i in signers])
            return Signed(bitmap, bn254.aggregate(sigs), apk_g2)
        return Signed(bitmap, bls12381.signature_to_evm(bls12381.aggregate(sigs)), b"")

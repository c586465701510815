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
from veristream.contracts.deploy import Deployment
from veristream.contracts.operator_registry import operator_slot, register_operator
from veristream.provers.aggregation import OperatorKey, demo_keys
from veristream.provers.bls.scheme import scheme_for
from veristream.provers.errors import InputRejected


@dataclass(frozen=True, slots=True)
class Signed:
    """An aggregate signature ready for ``submit_epoch``."""

    signer_bitmap: int
    signature: bytes
    apk_g2: bytes


@dataclass(slots=True)
class LocalCommittee:
    """Operator keys with their on-chain slots (after ``register``)."""

    scheme: str
    keys: list[OperatorKey]
    slots: dict[int, int] = field(default_factory=dict)  # key index -> slot

    @classmethod
    def deterministic(cls, scheme: str, size: int, seed: int = 1) -> LocalCommittee:
        """``size`` keys derived from ``seed`` (test and demo keys only: they are guessable)."""
        return cls(scheme, demo_keys(scheme, size, seed))

    def register(
        self, chain: Chain, dep: Deployment, set_id: int, operators: Sequence[str], weights: Sequence[int]
    ) -> None:
        """Registers key i for account ``operators[i]`` with ``weights[i]`` and records its slot."""
        if not len(operators) == len(weights) == len(self.keys):
            raise InputRejected("need one operator address and one weight per key")
        for i, (key, operator, weight) in enumerate(zip(self.keys, operators, weights, strict=True)):
            pop = key.registration_pop(chain.chain_id, dep.operator_registry, set_id, operator)
            register_operator(chain, dep, set_id, operator, weight, key.pubkey, pop, key.pubkey_g2)
            self.slots[i] = operator_slot(chain, dep, set_id, operator)

    def sign(self, digest: bytes, signers: Sequence[int]) -> Signed:
        """The aggregate of key indices ``signers`` over ``digest``, with their bitmap."""
        if not signers:
            raise InputRejected("at least one signer is needed")
        bitmap = 0
        for i in signers:
            bitmap |= 1 << self.slots.get(i, i)
        bls = scheme_for(self.scheme)
        signature = bls.aggregate([self.keys[i].sign(digest) for i in signers])
        on_chain = bls.chain_signature(signature, [self.keys[i].public_key for i in signers])
        return Signed(bitmap, on_chain.signature, on_chain.apk_g2)

"""One interface over both BLS curves: what the committee and the registry need of a scheme.

An operator key, a signature or an aggregate is handled the same way whichever
curve the job's operators use; the differences (which group holds the public
key, how the EVM contracts take points, bn254's extra G2 aggregate key) live in
the two classes here and nowhere else. ``scheme_for(name)`` is the only place a
scheme name is turned into behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from veristream.provers.bls import bls12381, bn254
from veristream.provers.errors import InputRejected

SCHEMES = ("bls12381", "bn254")


class UnknownScheme(InputRejected):
    """A BLS scheme name that is neither ``bls12381`` nor ``bn254``."""


@dataclass(frozen=True, slots=True)
class RegistryKey:
    """One operator key's native public key and the key encodings the OperatorRegistry takes
    (its proof of possession depends on the registration: ``BlsScheme.registration_pop``)."""

    public_key: bytes  # native: bls12381 48-byte compressed G1; bn254 128-byte G2
    pubkey: bytes  # G1: 64 bytes (bn254) or 128 bytes EIP-2537 (bls12381)
    pubkey_g2: bytes  # bn254 only, else b""


@dataclass(frozen=True, slots=True)
class ChainSignature:
    """An aggregate signature as the EpochVerifier takes it."""

    signature: bytes  # bls12381: 256-byte EIP-2537 G2; bn254: 64-byte G1
    apk_g2: bytes  # bn254: the signers' aggregated G2 key; bls12381: b""


class BlsScheme(Protocol):
    """A BLS signature scheme as the committee and the operator registry use it."""

    name: str
    order: int

    def sk_to_pk(self, sk: int) -> bytes:
        """The public key in the scheme's native encoding (bls12381: 48-byte G1; bn254: 128-byte G2)."""
        ...

    def sign(self, sk: int, message: bytes) -> bytes:
        """The signature of ``message`` in the scheme's native encoding."""
        ...

    def aggregate(self, signatures: Sequence[bytes]) -> bytes:
        """The aggregate of native signatures."""
        ...

    def fast_aggregate_verify(self, pks: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is the aggregate of ``pks``' signatures over one ``message``."""
        ...

    def registry_key(self, sk: int) -> RegistryKey:
        """``sk``'s native public key, and its key as the registry takes it."""
        ...

    def registration_pop(self, sk: int, digest: bytes) -> bytes:
        """The proof of possession over the registry's ``keyRegistrationDigest``, as the registry
        takes it: bn254 ``sk * H_G1(digest)`` (64 bytes); bls12381 the signature of ``digest``
        under the ciphersuite's POP tag, EIP-2537 G2 (256 bytes)."""
        ...

    def chain_signature(self, signature: bytes, pks: Sequence[bytes]) -> ChainSignature:
        """The native aggregate ``signature`` of ``pks`` in the EpochVerifier's encoding."""
        ...

    def registered_as(self, registered_g1: bytes, pk: bytes) -> bool:
        """Whether the G1 key the registry holds and the native ``pk`` share one secret."""
        ...


class Bls12381:
    """Ethereum's proof-of-possession ciphersuite; EIP-2537 encodings on chain."""

    name = "bls12381"
    order = bls12381.CURVE_ORDER

    def sk_to_pk(self, sk: int) -> bytes:
        return bls12381.sk_to_pk(sk)

    def sign(self, sk: int, message: bytes) -> bytes:
        return bls12381.sign(sk, message)

    def aggregate(self, signatures: Sequence[bytes]) -> bytes:
        return bls12381.aggregate(list(signatures))

    def fast_aggregate_verify(self, pks: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        return bls12381.fast_aggregate_verify(list(pks), message, signature)

    def registry_key(self, sk: int) -> RegistryKey:
        pk = bls12381.sk_to_pk(sk)
        return RegistryKey(pk, bls12381.pk_to_evm(pk), b"")

    def registration_pop(self, sk: int, digest: bytes) -> bytes:
        return bls12381.signature_to_evm(bls12381.sign_pop(sk, digest))

    def chain_signature(self, signature: bytes, pks: Sequence[bytes]) -> ChainSignature:
        return ChainSignature(bls12381.signature_to_evm(signature), b"")

    def registered_as(self, registered_g1: bytes, pk: bytes) -> bool:
        try:
            return bls12381.pk_to_evm(bytes(pk)) == bytes(registered_g1)
        except ValueError:
            return False


class Bn254:
    """BLS over alt_bn128 (keys in G2, signatures in G1) for the classic EVM precompiles."""

    name = "bn254"
    order = bn254.R

    def sk_to_pk(self, sk: int) -> bytes:
        return bytes(bn254.sk_to_pk(sk))

    def sign(self, sk: int, message: bytes) -> bytes:
        return bn254.sign(sk, message)

    def aggregate(self, signatures: Sequence[bytes]) -> bytes:
        return bn254.aggregate(list(signatures))

    def fast_aggregate_verify(self, pks: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        return bn254.fast_aggregate_verify(list(pks), message, signature)

    def registry_key(self, sk: int) -> RegistryKey:
        pk = bytes(bn254.sk_to_pk(sk))
        return RegistryKey(pk, bn254.sk_to_pk_g1(sk), pk)

    def registration_pop(self, sk: int, digest: bytes) -> bytes:
        return bn254.sign_pop(sk, digest)

    def chain_signature(self, signature: bytes, pks: Sequence[bytes]) -> ChainSignature:
        return ChainSignature(signature, bn254.aggregate_pks_g2(list(pks)))

    def registered_as(self, registered_g1: bytes, pk: bytes) -> bool:
        return bn254.keys_match(bytes(registered_g1), bytes(pk))


_SCHEMES: dict[str, BlsScheme] = {"bls12381": Bls12381(), "bn254": Bn254()}


def scheme_for(name: str) -> BlsScheme:
    """The scheme called ``name``; ``UnknownScheme`` for any other name."""
    try:
        return _SCHEMES[name]
    except KeyError:
        raise UnknownScheme(f"unknown BLS scheme {name!r}; expected one of {SCHEMES}") from None

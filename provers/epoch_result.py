"""The EpochResult: what the operator committee BLS-signs for one (job, epoch).

The signed message is the EIP-712 digest of

    EpochResult(bytes32 jobId,uint64 epoch,bytes32 dataRoot,bytes32 aggregatesRoot,bytes32 rewardRoot,bytes32 batchCidHash,bytes32 manifestCidHash)

under the domain ``{name: "VeriStream", version: "1", chainId, verifyingContract:
the EpochVerifier address}``. ``jobId`` is ``keccak256(abi.encode(creator, name))``:
job ids are namespaced by the account that created the job on chain,
``batchCidHash`` and ``manifestCidHash`` are keccak256 of the batch's and the
manifest's CIDs in binary form (CIDv1 bytes, as ``multiformats`` and kubo
encode them). Signing the manifest's CID commits the committee to everything
the manifest links (dead letters, aggregates, state, the tree dumps). The contract recomputes the same digest and
checks the aggregated signature over these 32 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from veristream.provers.encoding import (
    abi_encode,
    eip712_digest,
    eip712_domain_separator,
    eip712_type_hash,
    keccak256,
    parse_abi_type,
    parse_bytes32,
    uint_word,
)
from veristream.provers.errors import InputRejected

EPOCH_RESULT_TYPE = (
    "EpochResult(bytes32 jobId,uint64 epoch,bytes32 dataRoot,bytes32 aggregatesRoot,bytes32 rewardRoot,"
    "bytes32 batchCidHash,bytes32 manifestCidHash)"
)
EPOCH_RESULT_TYPE_HASH = eip712_type_hash(EPOCH_RESULT_TYPE)


def job_id_hash(creator: str | bytes, name: str) -> bytes:
    """The ``bytes32 jobId`` of the job ``name`` created on chain by ``creator``:
    ``keccak256(abi.encode(address creator, string name))``, as ``EpochVerifier.jobIdOf``."""
    if not name:
        raise InputRejected("job id must not be empty")
    return keccak256(abi_encode([parse_abi_type("address"), parse_abi_type("string")], [creator, name]))


@dataclass(frozen=True, slots=True)
class EpochResult:
    """One epoch's commitments: the roots and the batch every operator recomputes."""

    job_id: bytes
    epoch: int
    data_root: bytes
    aggregates_root: bytes
    reward_root: bytes
    batch_cid: bytes
    manifest_cid: bytes

    def __post_init__(self) -> None:
        parse_bytes32(self.job_id)
        parse_bytes32(self.data_root)
        parse_bytes32(self.aggregates_root)
        parse_bytes32(self.reward_root)
        uint_word(self.epoch, 64)
        if not self.batch_cid:
            raise InputRejected("batch_cid must be the binary CID, got empty bytes")
        if not self.manifest_cid:
            raise InputRejected("manifest_cid must be the binary CID, got empty bytes")


def epoch_result_struct_hash(result: EpochResult) -> bytes:
    """``hashStruct(EpochResult)``."""
    return keccak256(
        EPOCH_RESULT_TYPE_HASH
        + result.job_id
        + uint_word(result.epoch, 64)
        + result.data_root
        + result.aggregates_root
        + result.reward_root
        + keccak256(result.batch_cid)
        + keccak256(result.manifest_cid)
    )


def epoch_result_digest(result: EpochResult, chain_id: int, verifier: str | bytes) -> bytes:
    """The 32-byte message the committee signs for ``result`` on the given EpochVerifier."""
    domain = eip712_domain_separator("VeriStream", "1", chain_id, verifier)
    return eip712_digest(domain, epoch_result_struct_hash(result))

"""The EpochVerifier: jobs, verified epochs and their roots, and proofs against them.

Every function takes the ``Chain`` and the ``Deployment``; reverts surface as
``ContractRevert`` carrying the Solidity custom error's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from veristream.contracts.chain import Chain, Receipt
from veristream.contracts.deploy import Deployment, checksum_address, contract
from veristream.provers.encoding import check_uint, keccak256, parse_bytes32
from veristream.provers.epoch_result import EpochResult
from veristream.provers.errors import InputRejected


@dataclass(frozen=True, slots=True)
class EpochInfo:
    """A verified epoch as the chain holds it."""

    job_id: bytes
    epoch: int
    data_root: bytes
    reward_root: bytes
    batch_cid_hash: bytes
    batch_cid: bytes | None
    signer_bitmap: int | None
    signed_weight: int | None
    total_weight: int | None
    tx_hash: str | None


def job_operator_set(chain: Chain, dep: Deployment, job_id: bytes) -> int | None:
    """The operator set that verifies ``job_id``, or ``None`` if the job does not exist."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    owner, set_id, *_ = chain.call(verifier.functions.jobs(parse_bytes32(job_id)))
    if int(owner, 16) == 0:
        return None
    return int(set_id)


def reference_time(chain: Chain, dep: Deployment, job_id: bytes, epoch: int) -> int:
    """The timestamp whose operator set verifies ``epoch`` of ``job_id`` (the job must exist)."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    return int(chain.call(verifier.functions.referenceTime(parse_bytes32(job_id), epoch)))


def create_job(
    chain: Chain,
    dep: Deployment,
    job_id: bytes,
    set_id: int,
    *,
    quorum_bps: int = 6667,
    quorum: tuple[int, int] | None = None,
    genesis: int = 0,
    epoch_seconds: int = 60,
    token: str | None = None,
) -> Receipt:
    """Creates a job verified by ``set_id`` and sets its reward token (``token``, else the
    deployment's RewardToken).

    The quorum is the exact fraction ``quorum`` = (numerator, denominator) of the set's
    weight, e.g. ``(2, 3)``; without it, ``quorum_bps`` / 10000. Epoch ``e`` starts at
    ``genesis + e * epoch_seconds``; epochs that started before the job use the set at creation.
    """
    parse_bytes32(job_id)
    numerator, denominator = quorum if quorum is not None else (quorum_bps, 10_000)
    if not 0 < check_uint(numerator, 16, "quorum numerator") <= check_uint(denominator, 16, "quorum denominator"):
        raise InputRejected(f"quorum must be a fraction in (0, 1] with terms below 65536, got {numerator}/{denominator}")
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    receipt = chain.transact(
        verifier.functions.createJob(job_id, set_id, numerator, denominator, genesis, epoch_seconds)
    )
    reward_token = token or dep.reward_token
    if reward_token:
        distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
        chain.transact(distributor.functions.setRewardToken(job_id, checksum_address(reward_token)))
    return receipt


def submit_epoch(
    chain: Chain,
    dep: Deployment,
    result: EpochResult,
    signer_bitmap: int,
    signature: bytes,
    apk_g2: bytes = b"",
) -> Receipt:
    """Submits one epoch's result with the aggregated signature of the operators in
    ``signer_bitmap`` (bn254: 64-byte G1 signature and the signers' 128-byte G2 key;
    bls12381: 256-byte EIP-2537 G2 signature, no ``apk_g2``)."""
    check_uint(signer_bitmap, name="signer_bitmap")
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    return chain.transact(
        verifier.functions.submitEpoch(
            result.job_id,
            result.epoch,
            result.data_root,
            result.reward_root,
            result.batch_cid,
            signer_bitmap,
            signature,
            apk_g2,
        )
    )


def epoch_digest(chain: Chain, dep: Deployment, result: EpochResult) -> bytes:
    """The digest the contract expects the committee to sign (equals ``epoch_result_digest``)."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    digest = chain.call(
        verifier.functions.epochDigest(
            result.job_id, result.epoch, result.data_root, result.reward_root, keccak256(result.batch_cid)
        )
    )
    return bytes(digest)


def epoch_info(
    chain: Chain, dep: Deployment, job_id: bytes, epoch: int, *, from_block: int = 0
) -> EpochInfo | None:
    """The verified epoch (with its CID from the event log), or ``None`` if not verified.

    ``from_block`` bounds the log search (nodes limit log ranges; the deployment block is
    a good start on a long chain).
    """
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    verified, data_root, reward_root, cid_hash = chain.call(verifier.functions.epochResult(job_id, epoch))
    if not verified:
        return None
    logs = verifier.events.EpochVerified.get_logs(
        from_block=from_block, argument_filters={"jobId": job_id, "epoch": epoch}
    )
    event = logs[-1] if logs else None
    args = event["args"] if event else {}
    return EpochInfo(
        job_id=bytes(job_id),
        epoch=epoch,
        data_root=bytes(data_root),
        reward_root=bytes(reward_root),
        batch_cid_hash=bytes(cid_hash),
        batch_cid=bytes(args["batchCid"]) if event else None,
        signer_bitmap=int(args["signerBitmap"]) if event else None,
        signed_weight=int(args["signedWeight"]) if event else None,
        total_weight=int(args["totalWeight"]) if event else None,
        tx_hash="0x" + bytes(event["transactionHash"]).hex() if event else None,
    )


def epoch_contains_reading(
    chain: Chain, dep: Deployment, job_id: bytes, epoch: int, leaf: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether the StandardMerkleTree ``leaf`` hash is in the verified data root of the epoch."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    return bool(chain.call(verifier.functions.verifyReading(job_id, epoch, leaf, list(proof))))


def epoch_contains_reading_data(
    chain: Chain, dep: Deployment, job_id: bytes, epoch: int, encoded_leaf: bytes, proof: Sequence[bytes]
) -> bool:
    """Like ``epoch_contains_reading`` from the ABI-encoded leaf values (hashed on chain)."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    return bool(chain.call(verifier.functions.verifyReadingData(job_id, epoch, encoded_leaf, list(proof))))

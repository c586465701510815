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
from veristream.provers.epoch_result import EpochResult, job_id_hash
from veristream.provers.errors import InputRejected


@dataclass(frozen=True, slots=True)
class EpochInfo:
    """A verified epoch as the chain holds it: the four stored words, and from its
    ``EpochVerified`` event (``None`` when the log is out of reach) both CIDs and the signers."""

    job_id: bytes
    epoch: int
    data_root: bytes
    aggregates_root: bytes
    reward_root: bytes
    manifest_cid_hash: bytes
    batch_cid: bytes | None
    manifest_cid: bytes | None
    signer_bitmap: int | None
    signed_weight: int | None
    total_weight: int | None
    tx_hash: str | None


DEFAULT_SUBMISSION_DELAY_S = 24 * 3600
MIN_SUBMISSION_DELAY_S = 600
MAX_SUBMISSION_DELAY_S = 30 * 24 * 3600
NO_WEIGHT_CAP_BPS = 10_000


@dataclass(frozen=True, slots=True)
class JobOnChain:
    """A job as the EpochVerifier holds it."""

    owner: str
    set_id: int
    quorum: tuple[int, int]
    max_operator_weight_bps: int
    pinned: bool
    paused: bool
    genesis: int
    epoch_seconds: int
    max_submission_delay: int
    created_at: int
    latest_epoch: int | None


def job_on_chain(chain: Chain, dep: Deployment, job_id: bytes) -> JobOnChain | None:
    """The job ``job_id`` as the chain holds it, or ``None`` if it does not exist."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    (owner, set_id, numerator, denominator, cap, pinned, paused, genesis, epoch_seconds, delay, created_at,
     latest_plus_one) = chain.call(verifier.functions.jobs(parse_bytes32(job_id)))
    if int(owner, 16) == 0:
        return None
    return JobOnChain(
        owner=checksum_address(owner),
        set_id=int(set_id),
        quorum=(int(numerator), int(denominator)),
        max_operator_weight_bps=int(cap),
        pinned=bool(pinned),
        paused=bool(paused),
        genesis=int(genesis),
        epoch_seconds=int(epoch_seconds),
        max_submission_delay=int(delay),
        created_at=int(created_at),
        latest_epoch=int(latest_plus_one) - 1 if latest_plus_one else None,
    )


def reference_time(chain: Chain, dep: Deployment, job_id: bytes, epoch: int) -> int:
    """The timestamp whose operator set verifies ``epoch`` of ``job_id`` (the job must exist)."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    return int(chain.call(verifier.functions.referenceTime(parse_bytes32(job_id), epoch)))


def submission_window(chain: Chain, dep: Deployment, job_id: bytes, epoch: int) -> tuple[int, int]:
    """When ``epoch`` of ``job_id`` may be submitted: (opens at, closes at), chain seconds, inclusive."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    opens, closes = chain.call(verifier.functions.submissionWindow(parse_bytes32(job_id), epoch))
    return int(opens), int(closes)


def create_job(
    chain: Chain,
    dep: Deployment,
    name: str,
    set_id: int,
    *,
    quorum_bps: int = 6667,
    quorum: tuple[int, int] | None = None,
    genesis: int = 0,
    epoch_seconds: int = 60,
    max_submission_delay: int = DEFAULT_SUBMISSION_DELAY_S,
    max_operator_weight_bps: int = NO_WEIGHT_CAP_BPS,
    token: str | None = None,
) -> bytes:
    """Creates the sender's job ``name`` verified by ``set_id``, sets its reward token
    (``token``, else the deployment's RewardToken) and returns its id
    (``job_id_hash(sender, name)``).

    The quorum is the exact fraction ``quorum`` = (numerator, denominator) of the set's
    weight, e.g. ``(2, 3)``, above one half; without it, ``quorum_bps`` / 10000. Epoch ``e``
    starts at ``genesis + e * epoch_seconds`` and may be submitted from its end until
    ``max_submission_delay`` seconds later (epochs that ended before the job: from its creation).
    """
    numerator, denominator = quorum if quorum is not None else (quorum_bps, 10_000)
    if not 0 < check_uint(numerator, 16, "quorum numerator") <= check_uint(denominator, 16, "quorum denominator") \
            or 2 * numerator <= denominator:
        raise InputRejected(
            f"quorum must be a fraction above one half and at most one, with terms below 65536, "
            f"got {numerator}/{denominator}"
        )
    if not MIN_SUBMISSION_DELAY_S <= max_submission_delay <= MAX_SUBMISSION_DELAY_S:
        raise InputRejected(
            f"max_submission_delay must be {MIN_SUBMISSION_DELAY_S}..{MAX_SUBMISSION_DELAY_S} seconds, "
            f"got {max_submission_delay}"
        )
    if not 0 < max_operator_weight_bps <= NO_WEIGHT_CAP_BPS:
        raise InputRejected(f"max_operator_weight_bps must be 1..10000, got {max_operator_weight_bps}")
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    params = (
        set_id, numerator, denominator, max_operator_weight_bps, genesis, check_uint(epoch_seconds, 32, "epoch_seconds"),
        max_submission_delay,
    )
    chain.transact(verifier.functions.createJob(name, params))
    job_id = job_id_hash(chain.sender, name)
    reward_token = token or dep.reward_token
    if reward_token:
        distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
        chain.transact(distributor.functions.setRewardToken(job_id, checksum_address(reward_token)))
    return job_id


def pin_operator_set(chain: Chain, dep: Deployment, job_id: bytes) -> Receipt:
    """Accepts the job's operator set as it is now and no later change (job owner only)."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    return chain.transact(verifier.functions.pinOperatorSet(parse_bytes32(job_id)))


def pause_job(chain: Chain, dep: Deployment, job_id: bytes, *, sender: str | None = None) -> Receipt:
    """Stops new epochs of the job from becoming claimable (guardian or owner)."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    return chain.transact(verifier.functions.pause(parse_bytes32(job_id)), sender=sender)


def unpause_job(chain: Chain, dep: Deployment, job_id: bytes, *, sender: str | None = None) -> Receipt:
    """Makes the job's highest verified epoch claimable again (guardian, or owner without one)."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    return chain.transact(verifier.functions.unpause(parse_bytes32(job_id)), sender=sender)


def set_guardian(chain: Chain, dep: Deployment, job_id: bytes, guardian: str) -> Receipt:
    """Names the job's pause guardian (job owner only)."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    return chain.transact(verifier.functions.setGuardian(parse_bytes32(job_id), checksum_address(guardian)))


def claimable_root(chain: Chain, dep: Deployment, job_id: bytes) -> tuple[int, bytes] | None:
    """The (epoch, reward root) claims of ``job_id`` pay against, or ``None`` before any."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    found, epoch, root = chain.call(verifier.functions.claimableRoot(parse_bytes32(job_id)))
    return (int(epoch), bytes(root)) if found else None


def submit_epoch(
    chain: Chain,
    dep: Deployment,
    result: EpochResult,
    signer_bitmap: int,
    signature: bytes,
    apk_g2: bytes = b"",
) -> Receipt:
    """Submits one epoch's result (three roots, batch and manifest CIDs) with the aggregated
    signature of the operators in ``signer_bitmap`` (bn254: 64-byte G1 signature and the
    signers' 128-byte G2 key; bls12381: 256-byte EIP-2537 G2 signature, no ``apk_g2``)."""
    check_uint(signer_bitmap, name="signer_bitmap")
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    return chain.transact(
        verifier.functions.submitEpoch(
            result.job_id,
            result.epoch,
            result.data_root,
            result.aggregates_root,
            result.reward_root,
            result.batch_cid,
            result.manifest_cid,
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
            result.job_id,
            result.epoch,
            result.data_root,
            result.aggregates_root,
            result.reward_root,
            keccak256(result.batch_cid),
            keccak256(result.manifest_cid),
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
    verified, data_root, aggregates_root, reward_root, manifest_cid_hash = chain.call(
        verifier.functions.epochResult(job_id, epoch)
    )
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
        aggregates_root=bytes(aggregates_root),
        reward_root=bytes(reward_root),
        manifest_cid_hash=bytes(manifest_cid_hash),
        batch_cid=bytes(args["batchCid"]) if event else None,
        manifest_cid=bytes(args["manifestCid"]) if event else None,
        signer_bitmap=int(args["signerBitmap"]) if event else None,
        signed_weight=int(args["signedWeight"]) if event else None,
        total_weight=int(args["totalWeight"]) if event else None,
        tx_hash="0x" + bytes(event["transactionHash"]).hex() if event else None,
    )


def epoch_contains_reading_data(
    chain: Chain, dep: Deployment, job_id: bytes, epoch: int, encoded_leaf: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether the leaf with ABI-encoded values ``encoded_leaf`` is in the verified data root
    of the epoch (the contract hashes it as StandardMerkleTree does)."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    return bool(chain.call(verifier.functions.verifyReadingData(job_id, epoch, encoded_leaf, list(proof))))


def verify_aggregate(
    chain: Chain, dep: Deployment, job_id: bytes, epoch: int, encoded_leaf: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether the aggregate leaf with ABI-encoded values ``encoded_leaf`` (the aggregates tree's leaf:
    device, field, count, min, max, sum, quantile percents, quantile values) is in the verified
    aggregates root of the epoch (``EpochVerifier.verifyAggregate``: hashed on chain as
    StandardMerkleTree does; false when the epoch is not verified)."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    return bool(
        chain.call(verifier.functions.verifyAggregate(parse_bytes32(job_id), epoch, encoded_leaf, list(proof)))
    )

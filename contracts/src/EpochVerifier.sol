// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {BN254} from "./BN254.sol";
import {BLS12381} from "./BLS12381.sol";
import {OperatorRegistry} from "./OperatorRegistry.sol";

/// @title EpochVerifier
/// @notice Accepts one result per (job, epoch) when operators holding the job's quorum of
///         weight BLS-signed its EIP-712 EpochResult digest, and keeps its three roots and its
///         manifest's CID hash for dApps: readings (`verifyReadingData`), per-device aggregates
///         (`verifyAggregate`) and rewards (RewardDistributor) are proven against them.
/// @dev The signed message is the EIP-712 digest of
///      EpochResult(bytes32 jobId,uint64 epoch,bytes32 dataRoot,bytes32 aggregatesRoot,bytes32 rewardRoot,bytes32 batchCidHash,bytes32 manifestCidHash)
///      under {name "VeriStream", version "1", chainId, this contract}. The batch CID is signed
///      and emitted but not stored: the manifest, whose CID hash is stored, names the batch.
///
///      Time bounds (Chainlink OCR and EigenLayer bound staleness the same way): an epoch may be
///      submitted from its end until `maxSubmissionDelay` later (for epochs that ended before the
///      job existed, from the job's creation), and it is checked against the operator set in force
///      when it started (or when the job was created, for earlier epochs). Claims pay against the
///      reward root of the job's highest verified epoch only, so a root verified late for an older
///      epoch is never paid once a newer one exists (cumulative leaves make that lossless).
contract EpochVerifier is EIP712 {
    bytes32 public constant EPOCH_RESULT_TYPEHASH = keccak256(
        "EpochResult(bytes32 jobId,uint64 epoch,bytes32 dataRoot,bytes32 aggregatesRoot,bytes32 rewardRoot,"
        "bytes32 batchCidHash,bytes32 manifestCidHash)"
    );
    /// @notice Bounds of a job's submission window, after an epoch ends.
    uint32 public constant MIN_SUBMISSION_DELAY = 10 minutes;
    uint32 public constant MAX_SUBMISSION_DELAY = 30 days;
    /// @notice Longest epoch: a set may be this old (plus the window) when it signs.
    uint32 public constant MAX_EPOCH_SECONDS = 30 days;
    /// @notice `maxOperatorWeightBps` of a job that caps nothing.
    uint16 public constant NO_WEIGHT_CAP = 10_000;

    bytes internal constant BN254_SIG_DST = "VERISTREAM-BLS-BN254-SIG-V1";
    uint8 internal constant SCHEME_BN254 = 1;

    /// @notice What a job's creator chooses.
    struct JobParams {
        uint32 setId;
        uint16 quorumNumerator; // with quorumDenominator: more than half of the set's weight must sign
        uint16 quorumDenominator;
        uint16 maxOperatorWeightBps; // no operator may hold more of the set's weight (NO_WEIGHT_CAP: any)
        uint64 genesis; // start of epoch 0 (unix seconds)
        uint32 epochSeconds;
        uint32 maxSubmissionDelay;
    }

    /// @dev Two storage words, both read by every submission; the second is written too (latest).
    struct Job {
        address owner;
        uint32 setId;
        uint16 quorumNumerator;
        uint16 quorumDenominator;
        uint16 maxOperatorWeightBps;
        bool pinned; // only the first `acceptedCheckpoints` checkpoints of the set may sign
        bool paused; // new epochs are recorded but not claimable
        uint64 genesis;
        uint32 epochSeconds;
        uint32 maxSubmissionDelay;
        uint64 createdAt;
        uint64 latestPlusOne; // highest verified epoch + 1 (0: none)
    }

    /// @dev Read only by the owner's and guardian's functions and by claims of a paused job.
    struct JobControl {
        address guardian;
        uint32 acceptedCheckpoints;
        uint64 claimablePlusOne; // while paused: the claimable epoch + 1 (frozen at pause)
    }

    /// @dev Four words per verified epoch, each written once.
    struct EpochRecord {
        bytes32 dataRoot;
        bytes32 aggregatesRoot;
        bytes32 rewardRoot;
        bytes32 manifestCidHash; // non-zero marks a verified epoch
    }

    /// @notice The registry whose operator sets sign epochs.
    OperatorRegistry public immutable registry;

    /// @notice A job's owner, operator set, quorum, epoch clock and progress.
    mapping(bytes32 jobId => Job) public jobs;
    /// @notice A job's guardian, accepted set checkpoints and frozen claimable epoch.
    mapping(bytes32 jobId => JobControl) public controls;
    mapping(bytes32 jobId => mapping(uint64 epoch => EpochRecord)) internal _epochs;

    event JobCreated(
        bytes32 indexed jobId,
        address indexed owner,
        string name,
        uint32 setId,
        uint16 quorumNumerator,
        uint16 quorumDenominator,
        uint16 maxOperatorWeightBps,
        uint64 genesis,
        uint32 epochSeconds,
        uint32 maxSubmissionDelay
    );
    /// @notice A result was verified and recorded: its roots, both CIDs (binary) and who signed.
    event EpochVerified(
        bytes32 indexed jobId,
        uint64 indexed epoch,
        bytes32 dataRoot,
        bytes32 aggregatesRoot,
        bytes32 rewardRoot,
        bytes batchCid,
        bytes manifestCid,
        uint256 signerBitmap,
        uint96 signedWeight,
        uint96 totalWeight
    );
    /// @notice A quorum signed a second, different result for a verified epoch: evidence of
    ///         misbehaviour by the operators in both signer bitmaps. The event carries the
    ///         conflicting result in full (its digest recomputes from these fields with
    ///         `epochDigest`); the recorded one is in storage (`epochResult`) and in its
    ///         `EpochVerified` event, with its bitmap (keeping that in storage would cost every
    ///         epoch 22k gas for the rare dispute). Quorums above one half always intersect.
    event Equivocation(
        bytes32 indexed jobId,
        uint64 indexed epoch,
        bytes32 conflictingDigest,
        bytes32 dataRoot,
        bytes32 aggregatesRoot,
        bytes32 rewardRoot,
        bytes32 batchCidHash,
        bytes32 manifestCidHash,
        uint256 conflictingSignerBitmap
    );
    event OperatorSetPinned(bytes32 indexed jobId, uint32 acceptedCheckpoints);
    event OperatorSetUnpinned(bytes32 indexed jobId);
    event GuardianSet(bytes32 indexed jobId, address indexed guardian);
    event JobPaused(bytes32 indexed jobId, address indexed by, uint64 claimableEpochPlusOne);
    event JobUnpaused(bytes32 indexed jobId, address indexed by);
    event JobOwnershipTransferred(bytes32 indexed jobId, address indexed previousOwner, address indexed newOwner);

    error InvalidJob();
    error JobExists(bytes32 jobId);
    error UnknownJob(bytes32 jobId);
    error NotJobOwner(bytes32 jobId, address caller);
    error NotGuardian(bytes32 jobId, address caller);
    error InvalidQuorum(uint16 numerator, uint16 denominator);
    error InvalidWeightCap(uint16 maxOperatorWeightBps);
    error InvalidSubmissionDelay(uint32 maxSubmissionDelay);
    error EmptyBatchCid();
    error EmptyManifestCid();
    error EpochNotEnded(bytes32 jobId, uint64 epoch, uint64 endsAt);
    error SubmissionWindowClosed(bytes32 jobId, uint64 epoch, uint64 closedAt);
    error EpochAlreadyVerified(bytes32 jobId, uint64 epoch);
    error OperatorSetChangeNotAccepted(bytes32 jobId, uint256 checkpoint, uint32 acceptedCheckpoints);
    error OperatorWeightAboveCap(uint96 maxWeight, uint96 totalWeight, uint16 maxOperatorWeightBps);
    error QuorumNotMet(uint96 signedWeight, uint256 requiredWeight);
    error InvalidSignatureLength(uint256 signatureLength, uint256 apkG2Length);
    error AggregateAtInfinity();
    error InvalidSignature();
    error AlreadyPaused(bytes32 jobId);
    error NotPaused(bytes32 jobId);

    constructor(OperatorRegistry registry_) EIP712("VeriStream", "1") {
        registry = registry_;
    }

    modifier onlyJobOwner(bytes32 jobId) {
        if (jobs[jobId].owner != msg.sender) revert NotJobOwner(jobId, msg.sender);
        _;
    }

    // ------------------------------------------------------------------ jobs

    /// @notice The id of the job `creator` creates under `name`: job ids are namespaced by their
    ///         creator, so nobody can take another creator's job by creating its name first.
    function jobIdOf(address creator, string calldata name) public pure returns (bytes32) {
        return keccak256(abi.encode(creator, name));
    }

    /// @notice Creates the job `name` of the caller, verified by operator set `p.setId`; the
    ///         caller owns it.
    /// @param p the set, quorum (a fraction above one half), weight cap, epoch clock and
    ///        submission window (`MIN_SUBMISSION_DELAY`..`MAX_SUBMISSION_DELAY` seconds).
    /// @return jobId `jobIdOf(msg.sender, name)`.
    function createJob(string calldata name, JobParams calldata p) external returns (bytes32 jobId) {
        if (bytes(name).length == 0 || p.epochSeconds == 0 || p.epochSeconds > MAX_EPOCH_SECONDS) revert InvalidJob();
        // Quorum above one half: two disjoint signer sets can never both verify an epoch.
        if (p.quorumNumerator > p.quorumDenominator || uint256(p.quorumNumerator) * 2 <= p.quorumDenominator) {
            revert InvalidQuorum(p.quorumNumerator, p.quorumDenominator);
        }
        if (p.maxOperatorWeightBps == 0 || p.maxOperatorWeightBps > NO_WEIGHT_CAP) {
            revert InvalidWeightCap(p.maxOperatorWeightBps);
        }
        if (p.maxSubmissionDelay < MIN_SUBMISSION_DELAY || p.maxSubmissionDelay > MAX_SUBMISSION_DELAY) {
            revert InvalidSubmissionDelay(p.maxSubmissionDelay);
        }
        if (registry.schemeOf(p.setId) == 0) revert OperatorRegistry.UnknownOperatorSet(p.setId);
        jobId = jobIdOf(msg.sender, name);
        if (jobs[jobId].owner != address(0)) revert JobExists(jobId);
        jobs[jobId] = Job({
            owner: msg.sender,
            setId: p.setId,
            quorumNumerator: p.quorumNumerator,
            quorumDenominator: p.quorumDenominator,
            maxOperatorWeightBps: p.maxOperatorWeightBps,
            pinned: false,
            paused: false,
            genesis: p.genesis,
            epochSeconds: p.epochSeconds,
            maxSubmissionDelay: p.maxSubmissionDelay,
            createdAt: uint64(block.timestamp),
            latestPlusOne: 0
        });
        emit JobCreated(
            jobId,
            msg.sender,
            name,
            p.setId,
            p.quorumNumerator,
            p.quorumDenominator,
            p.maxOperatorWeightBps,
            p.genesis,
            p.epochSeconds,
            p.maxSubmissionDelay
        );
    }

    /// @notice Hands the job to `newOwner` (who then pins, pauses, funds' way out, ...).
    function transferJobOwnership(bytes32 jobId, address newOwner) external onlyJobOwner(jobId) {
        if (newOwner == address(0)) revert InvalidJob();
        jobs[jobId].owner = newOwner;
        emit JobOwnershipTransferred(jobId, msg.sender, newOwner);
    }

    /// @notice Accepts the operator set as it is now, including changes already scheduled, and
    ///         no later change: epochs whose signing set comes from a later checkpoint are refused
    ///         until the owner pins again. Pinning once more accepts the changes made since.
    function pinOperatorSet(bytes32 jobId) external onlyJobOwner(jobId) {
        Job storage job = jobs[jobId];
        uint32 accepted = uint32(registry.checkpointCount(job.setId));
        job.pinned = true;
        controls[jobId].acceptedCheckpoints = accepted;
        emit OperatorSetPinned(jobId, accepted);
    }

    /// @notice Follows every change of the operator set again.
    function unpinOperatorSet(bytes32 jobId) external onlyJobOwner(jobId) {
        jobs[jobId].pinned = false;
        controls[jobId].acceptedCheckpoints = 0;
        emit OperatorSetUnpinned(jobId);
    }

    /// @notice Names the job's pause guardian (zero: the owner guards it).
    function setGuardian(bytes32 jobId, address guardian) external onlyJobOwner(jobId) {
        controls[jobId].guardian = guardian;
        emit GuardianSet(jobId, guardian);
    }

    /// @notice Stops new epochs from becoming claimable while a dispute is resolved: they are
    ///         still verified and recorded, and claims against the root claimable now go on.
    ///         The guardian or the owner may pause.
    function pause(bytes32 jobId) external {
        Job storage job = jobs[jobId];
        JobControl storage control = controls[jobId];
        if (msg.sender != control.guardian && msg.sender != job.owner) revert NotGuardian(jobId, msg.sender);
        if (job.paused) revert AlreadyPaused(jobId);
        job.paused = true;
        control.claimablePlusOne = job.latestPlusOne;
        emit JobPaused(jobId, msg.sender, job.latestPlusOne);
    }

    /// @notice Makes the highest verified epoch claimable again. Only the guardian (the owner
    ///         when the job has none): a dispute is settled by whoever raised it.
    function unpause(bytes32 jobId) external {
        Job storage job = jobs[jobId];
        address guardian = controls[jobId].guardian;
        if (msg.sender != (guardian == address(0) ? job.owner : guardian)) revert NotGuardian(jobId, msg.sender);
        if (!job.paused) revert NotPaused(jobId);
        job.paused = false;
        emit JobUnpaused(jobId, msg.sender);
    }

    /// @notice Verifies and records one epoch's result. A second, different result signed by a
    ///         quorum is not recorded: it is emitted as `Equivocation` evidence.
    /// @param dataRoot root of the accepted readings' tree (`verifyReadingData`).
    /// @param aggregatesRoot root of the per-device aggregates' tree (`verifyAggregate`).
    /// @param rewardRoot root of the cumulative rewards' tree (RewardDistributor claims).
    /// @param batchCid the binary CID of the epoch's batch (its keccak256 is signed; the CID is emitted).
    /// @param manifestCid the binary CID of the epoch's manifest (its keccak256 is signed and
    ///        stored; the CID is emitted): it links the batch, dead letters, tree dumps and state.
    /// @param signerBitmap bit i set: the operator in slot i of the set signed.
    /// @param signature aggregate signature: bn254 G1 (64 bytes) or bls12381 G2 (256 bytes, EIP-2537).
    /// @param apkG2 bn254: the signers' aggregate G2 key (128 bytes, EIP-197); bls12381: empty.
    /// @return digest the EIP-712 digest the committee signed.
    function submitEpoch(
        bytes32 jobId,
        uint64 epoch,
        bytes32 dataRoot,
        bytes32 aggregatesRoot,
        bytes32 rewardRoot,
        bytes calldata batchCid,
        bytes calldata manifestCid,
        uint256 signerBitmap,
        bytes calldata signature,
        bytes calldata apkG2
    ) external returns (bytes32 digest) {
        Job memory job = jobs[jobId];
        if (job.owner == address(0)) revert UnknownJob(jobId);
        if (batchCid.length == 0) revert EmptyBatchCid();
        if (manifestCid.length == 0) revert EmptyManifestCid();
        bytes32 batchCidHash = keccak256(batchCid);
        bytes32 manifestCidHash = keccak256(manifestCid);
        EpochRecord storage rec = _epochs[jobId][epoch];
        bytes32 recorded = rec.manifestCidHash;
        if (
            recorded != bytes32(0) && recorded == manifestCidHash && rec.dataRoot == dataRoot
                && rec.aggregatesRoot == aggregatesRoot && rec.rewardRoot == rewardRoot
        ) revert EpochAlreadyVerified(jobId, epoch);
        uint64 ref = _checkWindow(jobId, job, epoch);

        digest = _digest(jobId, epoch, dataRoot, aggregatesRoot, rewardRoot, batchCidHash, manifestCidHash);
        (uint96 signedWeight, uint96 totalWeight) = _checkSigners(jobId, job, ref, digest, signerBitmap, signature, apkG2);
        if (recorded != bytes32(0)) {
            emit Equivocation(
                jobId, epoch, digest, dataRoot, aggregatesRoot, rewardRoot, batchCidHash, manifestCidHash, signerBitmap
            );
            return digest;
        }
        rec.dataRoot = dataRoot;
        rec.aggregatesRoot = aggregatesRoot;
        rec.rewardRoot = rewardRoot;
        rec.manifestCidHash = manifestCidHash;
        if (epoch >= job.latestPlusOne) jobs[jobId].latestPlusOne = epoch + 1;
        emit EpochVerified(
            jobId,
            epoch,
            dataRoot,
            aggregatesRoot,
            rewardRoot,
            batchCid,
            manifestCid,
            signerBitmap,
            signedWeight,
            totalWeight
        );
    }

    /// @dev Reverts outside the epoch's submission window; returns the time whose set signs it.
    function _checkWindow(bytes32 jobId, Job memory job, uint64 epoch) internal view returns (uint64 ref) {
        (uint64 start, uint64 end, uint64 closes) = _window(job, epoch);
        if (block.timestamp < end) revert EpochNotEnded(jobId, epoch, end);
        if (block.timestamp > closes) revert SubmissionWindowClosed(jobId, epoch, closes);
        ref = start < job.createdAt ? job.createdAt : start;
    }

    function _window(Job memory job, uint64 epoch) internal pure returns (uint64 start, uint64 end, uint64 closes) {
        // uint64 epochs times uint32 lengths fit easily in 256 bits; clamp to uint64 time.
        uint256 s = uint256(job.genesis) + uint256(epoch) * job.epochSeconds;
        uint256 e = s + job.epochSeconds;
        uint256 opens = e < job.createdAt ? job.createdAt : e;
        uint256 c = opens + job.maxSubmissionDelay;
        start = _clamp(s);
        end = _clamp(e);
        closes = _clamp(c);
    }

    function _clamp(uint256 t) internal pure returns (uint64) {
        return t > type(uint64).max ? type(uint64).max : uint64(t);
    }

    function _digest(
        bytes32 jobId,
        uint64 epoch,
        bytes32 dataRoot,
        bytes32 aggregatesRoot,
        bytes32 rewardRoot,
        bytes32 batchCidHash,
        bytes32 manifestCidHash
    ) internal view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    EPOCH_RESULT_TYPEHASH, jobId, epoch, dataRoot, aggregatesRoot, rewardRoot, batchCidHash, manifestCidHash
                )
            )
        );
    }

    function _checkSigners(
        bytes32 jobId,
        Job memory job,
        uint64 ref,
        bytes32 digest,
        uint256 signerBitmap,
        bytes calldata signature,
        bytes calldata apkG2
    ) internal view returns (uint96 signedWeight, uint96 totalWeight) {
        if (job.pinned) {
            uint256 checkpoint = registry.checkpointIndexAt(job.setId, ref);
            uint32 accepted = controls[jobId].acceptedCheckpoints;
            if (checkpoint >= accepted) revert OperatorSetChangeNotAccepted(jobId, checkpoint, accepted);
        }
        uint8 scheme;
        bytes memory apk;
        (scheme, apk, signedWeight, totalWeight) = registry.signerAggregate(job.setId, ref, signerBitmap);
        if (job.maxOperatorWeightBps < NO_WEIGHT_CAP) {
            uint96 maxWeight = registry.maxWeightAt(job.setId, ref);
            if (uint256(maxWeight) * NO_WEIGHT_CAP > uint256(totalWeight) * job.maxOperatorWeightBps) {
                revert OperatorWeightAboveCap(maxWeight, totalWeight, job.maxOperatorWeightBps);
            }
        }
        // signed / total >= numerator / denominator, exactly (no rounding of the fraction)
        uint256 required = (uint256(totalWeight) * job.quorumNumerator + job.quorumDenominator - 1)
            / job.quorumDenominator;
        if (signedWeight == 0 || signedWeight < required) revert QuorumNotMet(signedWeight, required);
        if (!_verify(scheme, digest, apk, signature, apkG2)) revert InvalidSignature();
    }

    // ------------------------------------------------------------------ views

    /// @notice A verified epoch's commitments; `verified` is false (and the rest zero) otherwise.
    ///         Both CIDs themselves are in the epoch's `EpochVerified` event.
    function epochResult(bytes32 jobId, uint64 epoch)
        external
        view
        returns (bool verified, bytes32 dataRoot, bytes32 aggregatesRoot, bytes32 rewardRoot, bytes32 manifestCidHash)
    {
        EpochRecord storage rec = _epochs[jobId][epoch];
        manifestCidHash = rec.manifestCidHash;
        return (manifestCidHash != bytes32(0), rec.dataRoot, rec.aggregatesRoot, rec.rewardRoot, manifestCidHash);
    }

    /// @notice The verified reward root of (job, epoch), or zero when the epoch is not verified.
    ///         Claims do not use it: they pay against `claimableRoot` only.
    function rewardRootOf(bytes32 jobId, uint64 epoch) external view returns (bytes32) {
        return _epochs[jobId][epoch].rewardRoot;
    }

    /// @notice The root claims pay against: the reward root of the job's highest verified epoch
    ///         (while the job is paused, of the highest one verified before the pause).
    /// @return found false when no epoch is claimable (then the rest is zero).
    function claimableRoot(bytes32 jobId) external view returns (bool found, uint64 epoch, bytes32 rewardRoot) {
        Job storage job = jobs[jobId];
        uint64 plusOne = job.paused ? controls[jobId].claimablePlusOne : job.latestPlusOne;
        if (plusOne == 0) return (false, 0, bytes32(0));
        epoch = plusOne - 1;
        return (true, epoch, _epochs[jobId][epoch].rewardRoot);
    }

    /// @notice The highest verified epoch of a job (`found` false when none) and when it ended;
    ///         before any epoch, the job's creation time. A claim window counts from it.
    function lastActivity(bytes32 jobId) external view returns (bool found, uint64 epoch, uint64 since) {
        Job memory job = jobs[jobId];
        if (job.owner == address(0)) revert UnknownJob(jobId);
        if (job.latestPlusOne == 0) return (false, 0, job.createdAt);
        epoch = job.latestPlusOne - 1;
        (, uint64 end,) = _window(job, epoch);
        return (true, epoch, end > job.createdAt ? end : job.createdAt);
    }

    /// @notice Whether the job's operator set has a change the job did not accept: for a pinned
    ///         job, any checkpoint after the accepted ones; otherwise a change still scheduled
    ///         (not yet in force). While this holds the job's owner may withdraw its pool.
    function setChangePending(bytes32 jobId) external view returns (bool) {
        Job storage job = jobs[jobId];
        if (job.owner == address(0)) revert UnknownJob(jobId);
        uint256 count = registry.checkpointCount(job.setId);
        if (job.pinned) return count > controls[jobId].acceptedCheckpoints;
        if (count == 0) return false;
        (,,, uint64 effectiveFrom) = registry.setAt(job.setId, type(uint64).max);
        return effectiveFrom > block.timestamp;
    }

    /// @notice The owner of a job (zero when it does not exist).
    function jobOwner(bytes32 jobId) external view returns (address) {
        return jobs[jobId].owner;
    }

    /// @notice Whether the leaf whose ABI-encoded values are `encodedLeaf` (`abi.encode(...)` of
    ///         the data tree's leaf encoding) is in the verified data root of (job, epoch). The
    ///         leaf is hashed here as StandardMerkleTree does, so no internal node can pose as one.
    function verifyReadingData(bytes32 jobId, uint64 epoch, bytes calldata encodedLeaf, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        EpochRecord storage rec = _epochs[jobId][epoch];
        if (rec.manifestCidHash == bytes32(0)) return false;
        return _verifyLeaf(proof, rec.dataRoot, encodedLeaf);
    }

    /// @notice Whether the aggregate whose ABI-encoded values are `encodedLeaf` is in the verified
    ///         aggregates root of (job, epoch): one leaf per device and field,
    ///         `abi.encode(address device, string field, uint64 count, int256 min, int256 max,
    ///         int256 sum, uint8[] quantilePercents, int256[] quantileValues)`. The leaf is hashed
    ///         here as StandardMerkleTree does (keccak256 twice), so no internal node can pose as
    ///         one; a caller decodes the same bytes to act on the values it proved.
    /// @return false when the epoch is not verified or the leaf is not in its aggregates root.
    function verifyAggregate(bytes32 jobId, uint64 epoch, bytes calldata encodedLeaf, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        EpochRecord storage rec = _epochs[jobId][epoch];
        if (rec.manifestCidHash == bytes32(0)) return false;
        return _verifyLeaf(proof, rec.aggregatesRoot, encodedLeaf);
    }

    /// @notice The digest the committee signs for a result (EIP-712, this contract's domain);
    ///         the CIDs enter as their keccak256.
    function epochDigest(
        bytes32 jobId,
        uint64 epoch,
        bytes32 dataRoot,
        bytes32 aggregatesRoot,
        bytes32 rewardRoot,
        bytes32 batchCidHash,
        bytes32 manifestCidHash
    ) external view returns (bytes32) {
        return _digest(jobId, epoch, dataRoot, aggregatesRoot, rewardRoot, batchCidHash, manifestCidHash);
    }

    /// @notice The EIP-712 domain separator of this contract.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice The timestamp whose operator set verifies (job, epoch).
    function referenceTime(bytes32 jobId, uint64 epoch) external view returns (uint64) {
        Job memory job = jobs[jobId];
        if (job.owner == address(0)) revert UnknownJob(jobId);
        (uint64 start,,) = _window(job, epoch);
        return start < job.createdAt ? job.createdAt : start;
    }

    /// @notice When (job, epoch) may be submitted: from `opensAt` (its end, or the job's creation
    ///         for epochs that ended earlier) until `closesAt`, inclusive.
    function submissionWindow(bytes32 jobId, uint64 epoch) external view returns (uint64 opensAt, uint64 closesAt) {
        Job memory job = jobs[jobId];
        if (job.owner == address(0)) revert UnknownJob(jobId);
        (, uint64 end, uint64 closes) = _window(job, epoch);
        return (end < job.createdAt ? job.createdAt : end, closes);
    }

    // ------------------------------------------------------------------ internals

    /// @dev StandardMerkleTree's leaf hash (double keccak256 of the ABI encoding) proven against `root`.
    function _verifyLeaf(bytes32[] calldata proof, bytes32 root, bytes calldata encodedLeaf)
        internal
        pure
        returns (bool)
    {
        return MerkleProof.verifyCalldata(proof, root, keccak256(bytes.concat(keccak256(encodedLeaf))));
    }

    function _verify(uint8 scheme, bytes32 digest, bytes memory apk, bytes calldata signature, bytes calldata apkG2)
        internal
        view
        returns (bool)
    {
        if (scheme == SCHEME_BN254) {
            if (signature.length != 64 || apkG2.length != 128) {
                revert InvalidSignatureLength(signature.length, apkG2.length);
            }
            uint256[2] memory sig = BN254.g1FromBytes(signature);
            uint256[4] memory pk2 = BN254.g2FromBytes(apkG2);
            uint256[2] memory pk1;
            assembly ("memory-safe") {
                mstore(pk1, mload(add(apk, 0x20)))
                mstore(add(pk1, 0x20), mload(add(apk, 0x40)))
            }
            // At infinity the pairing equation holds for every message (e.g. keys sk and r - sk).
            if ((sig[0] | sig[1]) == 0 || (pk1[0] | pk1[1]) == 0 || (pk2[0] | pk2[1] | pk2[2] | pk2[3]) == 0) {
                revert AggregateAtInfinity();
            }
            uint256 gamma = uint256(keccak256(abi.encodePacked(digest, pk1, pk2, sig))) % BN254.R;
            uint256[2] memory hG1 = BN254.hashToG1(BN254_SIG_DST, abi.encodePacked(digest));
            return BN254.checkG1G2(hG1, sig, pk1, pk2, gamma);
        }
        if (signature.length != 256 || apkG2.length != 0) {
            revert InvalidSignatureLength(signature.length, apkG2.length);
        }
        if (_allZero(apk) || _allZero(signature)) revert AggregateAtInfinity();
        bytes memory h = BLS12381.hashToG2(abi.encodePacked(digest), BLS12381.SIG_DST);
        return BLS12381.verifyPoint(apk, h, signature);
    }

    /// @dev Whether an EIP-2537 point encoding is the point at infinity (all zero bytes).
    function _allZero(bytes memory data) internal pure returns (bool zero) {
        zero = true;
        for (uint256 i = 0; i < data.length; i += 32) {
            bytes32 word;
            assembly ("memory-safe") {
                word := mload(add(add(data, 0x20), i))
            }
            if (word != bytes32(0)) return false;
        }
    }
}

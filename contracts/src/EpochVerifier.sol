// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {BN254} from "./BN254.sol";
import {BLS12381} from "./BLS12381.sol";
import {OperatorRegistry} from "./OperatorRegistry.sol";

/// @title EpochVerifier
/// @notice Accepts one result per (job, epoch) when operators holding the job's quorum of
///         weight BLS-signed its EIP-712 EpochResult digest, and keeps the roots for dApps.
/// @dev The signed message is the EIP-712 digest of
///      EpochResult(bytes32 jobId,uint64 epoch,bytes32 dataRoot,bytes32 rewardRoot,bytes32 batchCidHash)
///      under {name "VeriStream", version "1", chainId, this contract}. The operator set is the one
///      in force when the epoch started (or when the job was created, for earlier epochs).
contract EpochVerifier is EIP712 {
    bytes32 public constant EPOCH_RESULT_TYPEHASH = keccak256(
        "EpochResult(bytes32 jobId,uint64 epoch,bytes32 dataRoot,bytes32 rewardRoot,bytes32 batchCidHash)"
    );
    bytes internal constant BN254_SIG_DST = "VERISTREAM-BLS-BN254-SIG-V1";
    uint8 internal constant SCHEME_BN254 = 1;

    struct Job {
        address owner;
        uint32 setId;
        uint16 quorumNumerator;
        uint16 quorumDenominator;
        uint64 genesis;
        uint64 epochSeconds;
        uint64 createdAt;
    }

    struct EpochRecord {
        bytes32 dataRoot;
        bytes32 rewardRoot;
        bytes32 batchCidHash; // non-zero marks a verified epoch
    }

    /// @notice The registry whose operator sets sign epochs.
    OperatorRegistry public immutable registry;

    /// @notice A job's owner, operator set, quorum and epoch clock.
    mapping(bytes32 jobId => Job) public jobs;
    mapping(bytes32 jobId => mapping(uint64 epoch => EpochRecord)) internal _epochs;

    event JobCreated(
        bytes32 indexed jobId,
        address indexed owner,
        uint32 setId,
        uint16 quorumNumerator,
        uint16 quorumDenominator,
        uint64 genesis,
        uint64 epochSeconds
    );
    event EpochVerified(
        bytes32 indexed jobId,
        uint64 indexed epoch,
        bytes32 dataRoot,
        bytes32 rewardRoot,
        bytes batchCid,
        uint256 signerBitmap,
        uint96 signedWeight,
        uint96 totalWeight
    );

    error InvalidJob();
    error JobExists(bytes32 jobId);
    error UnknownJob(bytes32 jobId);
    error InvalidQuorum(uint16 numerator, uint16 denominator);
    error EmptyBatchCid();
    error EpochNotStarted(bytes32 jobId, uint64 epoch);
    error EpochAlreadyVerified(bytes32 jobId, uint64 epoch);
    error ConflictingResult(bytes32 jobId, uint64 epoch);
    error QuorumNotMet(uint96 signedWeight, uint256 requiredWeight);
    error InvalidSignatureLength(uint256 signatureLength, uint256 apkG2Length);
    error InvalidSignature();

    constructor(OperatorRegistry registry_) EIP712("VeriStream", "1") {
        registry = registry_;
    }

    /// @notice Creates a job verified by operator set `setId`; the caller owns it.
    /// @param quorumNumerator with `quorumDenominator`: the share of the set's weight that must
    ///        sign, as an exact fraction (2/3, or 6667/10000 in basis points).
    /// @param genesis start of epoch 0 (unix seconds); epoch e starts at genesis + e * epochSeconds.
    function createJob(
        bytes32 jobId,
        uint32 setId,
        uint16 quorumNumerator,
        uint16 quorumDenominator,
        uint64 genesis,
        uint64 epochSeconds
    ) external {
        if (jobId == bytes32(0) || epochSeconds == 0) revert InvalidJob();
        if (jobs[jobId].owner != address(0)) revert JobExists(jobId);
        if (quorumNumerator == 0 || quorumNumerator > quorumDenominator) {
            revert InvalidQuorum(quorumNumerator, quorumDenominator);
        }
        if (registry.schemeOf(setId) == 0) revert OperatorRegistry.UnknownOperatorSet(setId);
        jobs[jobId] = Job({
            owner: msg.sender,
            setId: setId,
            quorumNumerator: quorumNumerator,
            quorumDenominator: quorumDenominator,
            genesis: genesis,
            epochSeconds: epochSeconds,
            createdAt: uint64(block.timestamp)
        });
        emit JobCreated(jobId, msg.sender, setId, quorumNumerator, quorumDenominator, genesis, epochSeconds);
    }

    /// @notice Verifies and records one epoch's result.
    /// @param batchCid the binary CID of the epoch's batch (its keccak256 is signed; the CID is emitted).
    /// @param signerBitmap bit i set: the operator in slot i of the set signed.
    /// @param signature aggregate signature: bn254 G1 (64 bytes) or bls12381 G2 (256 bytes, EIP-2537).
    /// @param apkG2 bn254: the signers' aggregate G2 key (128 bytes, EIP-197); bls12381: empty.
    /// @return digest the EIP-712 digest the committee signed.
    function submitEpoch(
        bytes32 jobId,
        uint64 epoch,
        bytes32 dataRoot,
        bytes32 rewardRoot,
        bytes calldata batchCid,
        uint256 signerBitmap,
        bytes calldata signature,
        bytes calldata apkG2
    ) external returns (bytes32 digest) {
        Job memory job = jobs[jobId];
        if (job.owner == address(0)) revert UnknownJob(jobId);
        if (batchCid.length == 0) revert EmptyBatchCid();
        bytes32 cidHash = keccak256(batchCid);
        _checkUnrecorded(jobId, epoch, dataRoot, rewardRoot, cidHash);
        uint64 ref = _referenceTime(job, epoch);
        if (ref > block.timestamp) revert EpochNotStarted(jobId, epoch);

        digest = _hashTypedDataV4(
            keccak256(abi.encode(EPOCH_RESULT_TYPEHASH, jobId, epoch, dataRoot, rewardRoot, cidHash))
        );
        (uint96 signedWeight, uint96 totalWeight) = _checkSigners(job, ref, digest, signerBitmap, signature, apkG2);
        _epochs[jobId][epoch] = EpochRecord({dataRoot: dataRoot, rewardRoot: rewardRoot, batchCidHash: cidHash});
        emit EpochVerified(jobId, epoch, dataRoot, rewardRoot, batchCid, signerBitmap, signedWeight, totalWeight);
    }

    function _checkUnrecorded(bytes32 jobId, uint64 epoch, bytes32 dataRoot, bytes32 rewardRoot, bytes32 cidHash)
        internal
        view
    {
        EpochRecord storage rec = _epochs[jobId][epoch];
        if (rec.batchCidHash == bytes32(0)) return;
        if (rec.dataRoot == dataRoot && rec.rewardRoot == rewardRoot && rec.batchCidHash == cidHash) {
            revert EpochAlreadyVerified(jobId, epoch);
        }
        revert ConflictingResult(jobId, epoch);
    }

    function _checkSigners(
        Job memory job,
        uint64 ref,
        bytes32 digest,
        uint256 signerBitmap,
        bytes calldata signature,
        bytes calldata apkG2
    ) internal view returns (uint96 signedWeight, uint96 totalWeight) {
        uint8 scheme;
        bytes memory apk;
        (scheme, apk, signedWeight, totalWeight) = registry.signerAggregate(job.setId, ref, signerBitmap);
        // signed / total >= numerator / denominator, exactly (no rounding of the fraction)
        uint256 required = (uint256(totalWeight) * job.quorumNumerator + job.quorumDenominator - 1)
            / job.quorumDenominator;
        if (signedWeight == 0 || signedWeight < required) revert QuorumNotMet(signedWeight, required);
        if (!_verify(scheme, digest, apk, signature, apkG2)) revert InvalidSignature();
    }

    // ------------------------------------------------------------------ views

    /// @notice A verified epoch's commitments; `verified` is false (and the rest zero) otherwise.
    function epochResult(bytes32 jobId, uint64 epoch)
        external
        view
        returns (bool verified, bytes32 dataRoot, bytes32 rewardRoot, bytes32 batchCidHash)
    {
        EpochRecord storage rec = _epochs[jobId][epoch];
        return (rec.batchCidHash != bytes32(0), rec.dataRoot, rec.rewardRoot, rec.batchCidHash);
    }

    /// @notice The verified reward root of (job, epoch), or zero when the epoch is not verified.
    /// @dev Only a verified epoch has a non-zero reward root (a root is a keccak256 output), so
    ///      one storage read answers: claims pay this on every call.
    function rewardRootOf(bytes32 jobId, uint64 epoch) external view returns (bytes32) {
        return _epochs[jobId][epoch].rewardRoot;
    }

    /// @notice The owner of a job (zero when it does not exist).
    function jobOwner(bytes32 jobId) external view returns (address) {
        return jobs[jobId].owner;
    }

    /// @notice Whether `leaf` (an OpenZeppelin StandardMerkleTree leaf hash) is in the verified
    ///         data root of (job, epoch). The caller must compute `leaf` from the reading itself:
    ///         an internal node passed as a leaf verifies against a shortened proof. Prefer
    ///         `verifyReadingData`, which hashes the leaf on chain.
    function verifyReading(bytes32 jobId, uint64 epoch, bytes32 leaf, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        EpochRecord storage rec = _epochs[jobId][epoch];
        if (rec.batchCidHash == bytes32(0)) return false;
        return MerkleProof.verifyCalldata(proof, rec.dataRoot, leaf);
    }

    /// @notice Like `verifyReading`, from the ABI-encoded leaf values (`abi.encode(...)` of the
    ///         tree's leaf encoding): hashes them as StandardMerkleTree does, so no internal node
    ///         can pose as a leaf.
    function verifyReadingData(bytes32 jobId, uint64 epoch, bytes calldata encodedLeaf, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        EpochRecord storage rec = _epochs[jobId][epoch];
        if (rec.batchCidHash == bytes32(0)) return false;
        return MerkleProof.verifyCalldata(proof, rec.dataRoot, keccak256(bytes.concat(keccak256(encodedLeaf))));
    }

    /// @notice The digest the committee signs for a result (EIP-712, this contract's domain).
    function epochDigest(bytes32 jobId, uint64 epoch, bytes32 dataRoot, bytes32 rewardRoot, bytes32 batchCidHash)
        external
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(EPOCH_RESULT_TYPEHASH, jobId, epoch, dataRoot, rewardRoot, batchCidHash))
        );
    }

    /// @notice The EIP-712 domain separator of this contract.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice The timestamp whose operator set verifies (job, epoch).
    function referenceTime(bytes32 jobId, uint64 epoch) external view returns (uint64) {
        Job memory job = jobs[jobId];
        if (job.owner == address(0)) revert UnknownJob(jobId);
        return _referenceTime(job, epoch);
    }

    // ------------------------------------------------------------------ internals

    function _referenceTime(Job memory job, uint64 epoch) internal pure returns (uint64) {
        uint256 start = uint256(job.genesis) + uint256(epoch) * job.epochSeconds;
        if (start < job.createdAt) return job.createdAt;
        return start > type(uint64).max ? type(uint64).max : uint64(start);
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
            uint256 gamma = uint256(keccak256(abi.encodePacked(digest, pk1, pk2, sig))) % BN254.R;
            uint256[2] memory hG1 = BN254.hashToG1(BN254_SIG_DST, abi.encodePacked(digest));
            return BN254.checkG1G2(hG1, sig, pk1, pk2, gamma);
        }
        if (signature.length != 256 || apkG2.length != 0) {
            revert InvalidSignatureLength(signature.length, apkG2.length);
        }
        bytes memory h = BLS12381.hashToG2(abi.encodePacked(digest), BLS12381.SIG_DST);
        return BLS12381.verifyPoint(apk, h, signature);
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Base} from "./Base.sol";
import {EpochVerifier} from "../src/EpochVerifier.sol";
import {OperatorRegistry} from "../src/OperatorRegistry.sol";
import {AggregateLeaf, OneKey, OneKeyRegistry} from "./OneKey.sol";

/// @notice A registry whose one set aggregates to the point at infinity: what two operators with
///         keys sk and r - sk would give (the real registry refuses the second key).
contract InfinityRegistry {
    uint8 internal immutable _scheme;

    constructor(uint8 scheme_) {
        _scheme = scheme_;
    }

    function schemeOf(uint32) external view returns (uint8) {
        return _scheme;
    }

    function signerAggregate(uint32, uint64, uint256)
        external
        view
        returns (uint8 scheme, bytes memory apk, uint96 signedWeight, uint96 totalWeight)
    {
        return (_scheme, new bytes(_scheme == 1 ? 64 : 128), 2, 2);
    }
}

/// @notice The all-zero signature with an aggregate key at infinity satisfies the pairing
///         equation for any message; the verifier must refuse it on both schemes.
contract EpochVerifierTest is Base {
    function _job(EpochVerifier verifier) internal returns (bytes32 jobId) {
        vm.warp(1_000_000);
        jobId = verifier.createJob("infinity", EpochVerifier.JobParams(1, 2, 3, 10_000, 0, 60, 3600));
        vm.warp(1_000_100);
    }

    function test_RevertWhen_InfinityAggregateSignsAnyMessage_bn254() public {
        EpochVerifier verifier = new EpochVerifier(OperatorRegistry(address(new InfinityRegistry(1))));
        bytes32 jobId = _job(verifier);
        vm.expectRevert(EpochVerifier.AggregateAtInfinity.selector);
        verifier.submitEpoch(
            jobId, 1, keccak256("d"), keccak256("a"), keccak256("r"), hex"01", hex"02", 3, new bytes(64), new bytes(128)
        );
    }

    function test_RevertWhen_InfinityAggregateSignsAnyMessage_bls12381() public {
        EpochVerifier verifier = new EpochVerifier(OperatorRegistry(address(new InfinityRegistry(2))));
        bytes32 jobId = _job(verifier);
        vm.expectRevert(EpochVerifier.AggregateAtInfinity.selector);
        verifier.submitEpoch(jobId, 1, keccak256("d"), keccak256("a"), keccak256("r"), hex"01", hex"02", 3, new bytes(256), "");
    }

    function testFuzz_submissionWindowBoundsEveryEpoch(uint64 genesis, uint32 epochSeconds, uint32 delay, uint64 epoch)
        public
    {
        epochSeconds = uint32(bound(epochSeconds, 1, verifierMaxEpoch()));
        delay = uint32(bound(delay, 600, 30 days));
        genesis = uint64(bound(genesis, 0, 2_000_000_000));
        epoch = uint64(bound(epoch, 0, 1_000_000));
        EpochVerifier verifier = new EpochVerifier(OperatorRegistry(address(new InfinityRegistry(1))));
        vm.warp(1_500_000_000);
        bytes32 jobId = verifier.createJob("window", EpochVerifier.JobParams(1, 2, 3, 10_000, genesis, epochSeconds, delay));
        (uint64 opensAt, uint64 closesAt) = verifier.submissionWindow(jobId, epoch);
        uint256 end = uint256(genesis) + (uint256(epoch) + 1) * epochSeconds;
        assertEq(opensAt, end > 1_500_000_000 ? end : 1_500_000_000, "opens at the end or the job's creation");
        assertEq(closesAt, uint256(opensAt) + delay, "closes maxSubmissionDelay later");
        assertTrue(verifier.referenceTime(jobId, epoch) <= opensAt, "signing set is older than the window");
    }

    function verifierMaxEpoch() internal pure returns (uint256) {
        return 30 days;
    }

    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + x % (hi - lo + 1);
    }
}

/// @notice Real submissions (one operator, key 1, the real pairing check): what an epoch stores,
///         what it proves, and what a second result for it does.
contract EpochVerifierRecordTest is Base {
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

    EpochVerifier internal verifier;
    bytes32 internal jobId;
    bytes internal constant BATCH = hex"01551220aa";
    bytes internal constant MANIFEST = hex"01711220bb";

    function setUp() public {
        verifier = new EpochVerifier(OperatorRegistry(address(new OneKeyRegistry())));
        vm.warp(1_000_000);
        jobId = verifier.createJob("record", EpochVerifier.JobParams(1, 2, 3, 10_000, 0, 60, 3600));
        vm.warp(1_000_100);
    }

    function _submit(uint64 epoch, bytes32 aggregatesRoot, bytes memory manifest) internal returns (bytes32 digest) {
        digest = verifier.epochDigest(
            jobId, epoch, keccak256("d"), aggregatesRoot, keccak256("r"), keccak256(BATCH), keccak256(manifest)
        );
        verifier.submitEpoch(
            jobId, epoch, keccak256("d"), aggregatesRoot, keccak256("r"), BATCH, manifest, 1, OneKey.sign(digest),
            OneKey.apkG2()
        );
    }

    function test_anEpochStoresItsThreeRootsAndManifestHashAndProvesAggregates() public {
        bytes memory hot = AggregateLeaf.encode(address(0xD1), "temperature", -3, 41);
        bytes memory other = AggregateLeaf.encode(address(0xD2), "temperature", 5, 12);
        bytes32[] memory proof = new bytes32[](1);
        proof[0] = AggregateLeaf.hash(other);
        bytes32 root = AggregateLeaf.pair(AggregateLeaf.hash(hot), proof[0]);
        assertTrue(!verifier.verifyAggregate(jobId, 7, hot, proof), "nothing proves against an unverified epoch");
        _submit(7, root, MANIFEST);
        (bool verified, bytes32 d, bytes32 a, bytes32 r, bytes32 m) = verifier.epochResult(jobId, 7);
        assertTrue(verified, "verified");
        assertEq(d, keccak256("d"), "data root");
        assertEq(a, root, "aggregates root");
        assertEq(r, keccak256("r"), "reward root");
        assertEq(m, keccak256(MANIFEST), "manifest CID hash");
        assertTrue(verifier.verifyAggregate(jobId, 7, hot, proof), "the leaf is in the aggregates root");
        assertTrue(!verifier.verifyReadingData(jobId, 7, hot, proof), "an aggregate is not a reading");
        // the pair of leaf hashes one level up is an internal node, not a leaf: the double hash refuses it
        assertTrue(
            !verifier.verifyAggregate(jobId, 7, abi.encode(AggregateLeaf.hash(hot), proof[0]), new bytes32[](0)),
            "an internal node poses as a leaf"
        );
    }

    function test_RevertWhen_TheSameResultIsSubmittedAgain() public {
        bytes memory signature = OneKey.sign(_submit(3, keccak256("a"), MANIFEST));
        bytes memory apkG2 = OneKey.apkG2();
        vm.expectRevert(abi.encodeWithSelector(EpochVerifier.EpochAlreadyVerified.selector, jobId, uint64(3)));
        verifier.submitEpoch(jobId, 3, keccak256("d"), keccak256("a"), keccak256("r"), BATCH, MANIFEST, 1, signature, apkG2);
    }

    function test_RevertWhen_TheManifestCidIsEmpty() public {
        vm.expectRevert(EpochVerifier.EmptyManifestCid.selector);
        verifier.submitEpoch(
            jobId, 3, keccak256("d"), keccak256("a"), keccak256("r"), BATCH, "", 1, new bytes(64), new bytes(128)
        );
    }

    function testFuzz_aSecondResultIsEvidenceNeverAReplacement(bytes32 aggregatesRoot, bytes calldata manifest)
        public
    {
        vm.assume(manifest.length > 0);
        vm.assume(aggregatesRoot != keccak256("a") || keccak256(manifest) != keccak256(MANIFEST));
        _submit(4, keccak256("a"), MANIFEST);
        bytes32 digest = verifier.epochDigest(
            jobId, 4, keccak256("d"), aggregatesRoot, keccak256("r"), keccak256(BATCH), keccak256(manifest)
        );
        vm.expectEmit(true, true, false, true);
        emit Equivocation(
            jobId, 4, digest, keccak256("d"), aggregatesRoot, keccak256("r"), keccak256(BATCH), keccak256(manifest), 1
        );
        _submit(4, aggregatesRoot, manifest);
        (, , bytes32 a,, bytes32 m) = verifier.epochResult(jobId, 4);
        assertEq(a, keccak256("a"), "the recorded aggregates root stays");
        assertEq(m, keccak256(MANIFEST), "the recorded manifest stays");
    }
}


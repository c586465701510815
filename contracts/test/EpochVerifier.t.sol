// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Base} from "./Base.sol";
import {EpochVerifier} from "../src/EpochVerifier.sol";
import {OperatorRegistry} from "../src/OperatorRegistry.sol";

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

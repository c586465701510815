// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Base} from "./Base.sol";
import {AggregateLeaf, OneKey, OneKeyRegistry} from "./OneKey.sol";
import {EpochVerifier} from "../src/EpochVerifier.sol";
import {OperatorRegistry} from "../src/OperatorRegistry.sol";
import {ParametricPayout} from "../src/examples/ParametricPayout.sol";
import {TestToken} from "../src/mocks/TestToken.sol";

/// @notice A heat policy on device D1's temperature (pays 1,000 when max > 40 in epochs 5..9),
///         decided by real submissions to a real EpochVerifier (one operator, key 1).
contract ParametricPayoutTest is Base {
    address internal constant D1 = address(0xD1);
    address internal constant D2 = address(0xD2);
    address internal constant HOLDER = address(0xB0B);
    address internal constant INSURER = address(0x1234);
    uint256 internal constant AMOUNT = 1_000;

    EpochVerifier internal verifier;
    ParametricPayout internal payout;
    TestToken internal token;
    bytes32 internal jobId;
    uint256 internal policyId;

    bytes internal hot; // D1 temperature, max 41: crosses
    bytes internal mild; // D1 temperature, max 40: does not
    bytes internal otherDevice; // D2 temperature, max 45
    bytes internal otherField; // D1 humidity, max 95

    function setUp() public {
        verifier = new EpochVerifier(OperatorRegistry(address(new OneKeyRegistry())));
        payout = new ParametricPayout(verifier);
        token = new TestToken("Test", "TST", 18);
        vm.warp(1_000_000);
        jobId = verifier.createJob("weather", EpochVerifier.JobParams(1, 2, 3, 10_000, 0, 60, 3600));
        vm.warp(1_000_100);
        hot = AggregateLeaf.encode(D1, "temperature", -2, 41);
        mild = AggregateLeaf.encode(D1, "temperature", -2, 40);
        otherDevice = AggregateLeaf.encode(D2, "temperature", 10, 45);
        otherField = AggregateLeaf.encode(D1, "humidity", 30, 95);
        policyId = _policy(ParametricPayout.Trigger.MaxAbove, 40, 5, 9);
    }

    function _policy(ParametricPayout.Trigger trigger, int256 threshold, uint64 first, uint64 last)
        internal
        returns (uint256)
    {
        token.mint(INSURER, AMOUNT);
        vm.startPrank(INSURER);
        token.approve(address(payout), AMOUNT);
        uint256 id = payout.createPolicy(
            ParametricPayout.Terms({
                holder: HOLDER,
                token: token,
                amount: AMOUNT,
                jobId: jobId,
                device: D1,
                field: "temperature",
                trigger: trigger,
                threshold: threshold,
                firstEpoch: first,
                lastEpoch: last,
                claimDeadline: 1_090_000
            })
        );
        vm.stopPrank();
        return id;
    }

    /// @dev Verifies `epoch` with an aggregates tree of `a` and `b`; returns the proof of `a`.
    function _verify(uint64 epoch, bytes memory a, bytes memory b) internal returns (bytes32[] memory proof) {
        proof = new bytes32[](1);
        proof[0] = AggregateLeaf.hash(b);
        bytes32 root = AggregateLeaf.pair(AggregateLeaf.hash(a), proof[0]);
        bytes32 digest = verifier.epochDigest(
            jobId, epoch, keccak256("d"), root, keccak256("r"), keccak256("batch"), keccak256("manifest")
        );
        verifier.submitEpoch(
            jobId, epoch, keccak256("d"), root, keccak256("r"), "batch", "manifest", 1, OneKey.sign(digest),
            OneKey.apkG2()
        );
    }

    function test_PaysTheHolderWhenTheVerifiedMaxCrossesTheThreshold() public {
        bytes32[] memory proof = _verify(6, hot, otherDevice);
        payout.claim(policyId, 6, hot, proof); // anyone may trigger it: the holder is paid
        assertEq(token.balanceOf(HOLDER), AMOUNT, "holder paid");
        assertEq(token.balanceOf(address(payout)), 0, "policy emptied");
    }

    function test_MinBelowPaysOnFrost() public {
        uint256 frost = _policy(ParametricPayout.Trigger.MinBelow, -1, 5, 9);
        bytes32[] memory proof = _verify(5, hot, otherDevice); // min -2 < -1
        payout.claim(frost, 5, hot, proof);
        assertEq(token.balanceOf(HOLDER), AMOUNT, "holder paid");
    }

    function test_RevertWhen_TheAggregateDoesNotCrossTheThreshold() public {
        bytes32[] memory proof = _verify(6, mild, otherDevice);
        vm.expectRevert(abi.encodeWithSelector(ParametricPayout.ConditionNotMet.selector, int256(40), int256(40)));
        payout.claim(policyId, 6, mild, proof);
    }

    function test_RevertWhen_AForgedAggregateIsNotInTheVerifiedRoot() public {
        bytes32[] memory proof = _verify(6, mild, otherDevice);
        // the chain verified max 40; a leaf claiming 41 with the real sibling does not open the root
        vm.expectRevert(abi.encodeWithSelector(ParametricPayout.AggregateNotProven.selector, jobId, uint64(6)));
        payout.claim(policyId, 6, hot, proof);
    }

    function test_RevertWhen_AnotherDevicesAggregateIsPresented() public {
        bytes32[] memory proof = _verify(6, otherDevice, mild); // proven, but D2's
        vm.expectRevert(abi.encodeWithSelector(ParametricPayout.WrongDevice.selector, D1, D2));
        payout.claim(policyId, 6, otherDevice, proof);
    }

    function test_RevertWhen_AnotherFieldsAggregateIsPresented() public {
        bytes32[] memory proof = _verify(6, otherField, mild); // proven, D1's, but humidity
        vm.expectRevert(
            abi.encodeWithSelector(ParametricPayout.WrongField.selector, keccak256("temperature"), "humidity")
        );
        payout.claim(policyId, 6, otherField, proof);
    }

    function test_RevertWhen_TheEpochIsOutsideThePolicyRange() public {
        bytes32[] memory proof = _verify(4, hot, otherDevice); // verified, before the range
        vm.expectRevert(abi.encodeWithSelector(ParametricPayout.EpochOutOfRange.selector, policyId, uint64(4)));
        payout.claim(policyId, 4, hot, proof);
        proof = _verify(10, hot, otherDevice); // verified, after it
        vm.expectRevert(abi.encodeWithSelector(ParametricPayout.EpochOutOfRange.selector, policyId, uint64(10)));
        payout.claim(policyId, 10, hot, proof);
    }

    function test_RevertWhen_TheEpochIsNotVerified() public {
        bytes32[] memory proof = new bytes32[](1);
        proof[0] = AggregateLeaf.hash(otherDevice);
        vm.expectRevert(abi.encodeWithSelector(ParametricPayout.EpochNotVerified.selector, jobId, uint64(7)));
        payout.claim(policyId, 7, hot, proof);
    }

    function test_RevertWhen_ThePolicyIsPaidTwice() public {
        bytes32[] memory proof6 = _verify(6, hot, otherDevice);
        bytes32[] memory proof8 = _verify(8, hot, otherField);
        payout.claim(policyId, 6, hot, proof6);
        vm.expectRevert(
            abi.encodeWithSelector(ParametricPayout.PolicyNotOpen.selector, policyId, ParametricPayout.Status.Paid)
        );
        payout.claim(policyId, 8, hot, proof8); // another crossing epoch pays nothing more
        vm.expectRevert(
            abi.encodeWithSelector(ParametricPayout.PolicyNotOpen.selector, policyId, ParametricPayout.Status.Paid)
        );
        payout.claim(policyId, 6, hot, proof6);
        assertEq(token.balanceOf(HOLDER), AMOUNT, "paid once");
    }

    function test_RevertWhen_TheInsurerTakesTheFundsBackBeforeTheDeadline() public {
        vm.expectRevert(
            abi.encodeWithSelector(ParametricPayout.ClaimWindowOpen.selector, policyId, uint64(1_090_000))
        );
        payout.expire(policyId);
    }

    function test_AnUnpaidPolicyExpiresToTheInsurerAndPaysNothingAfter() public {
        bytes32[] memory proof = _verify(6, hot, otherDevice);
        vm.warp(1_090_001);
        vm.expectRevert(
            abi.encodeWithSelector(ParametricPayout.ClaimWindowClosed.selector, policyId, uint64(1_090_000))
        );
        payout.claim(policyId, 6, hot, proof);
        payout.expire(policyId);
        assertEq(token.balanceOf(INSURER), AMOUNT, "insurer refunded");
        vm.expectRevert(
            abi.encodeWithSelector(ParametricPayout.PolicyNotOpen.selector, policyId, ParametricPayout.Status.Expired)
        );
        payout.expire(policyId);
    }

    function test_RevertWhen_ADisputedQuorumSignsAFalseAggregateAfterThePause() public {
        // the guardian pauses the job; the disputed quorum still gets a (false) epoch verified
        verifier.pause(jobId);
        bytes32[] memory proof = _verify(6, hot, otherDevice);
        vm.expectRevert(abi.encodeWithSelector(ParametricPayout.JobPaused.selector, jobId));
        payout.claim(policyId, 6, hot, proof);
        assertEq(token.balanceOf(HOLDER), 0, "nothing paid while paused");
        // the guardian settles the dispute in the epoch's favour: the policy pays
        verifier.unpause(jobId);
        payout.claim(policyId, 6, hot, proof);
        assertEq(token.balanceOf(HOLDER), AMOUNT, "holder paid after the pause");
    }

    function test_RevertWhen_TheDeadlineLeavesTheHolderNoTimeToClaim() public {
        (, uint64 closesAt) = verifier.submissionWindow(jobId, 9);
        uint64 minPeriod = payout.MIN_CLAIM_PERIOD();
        token.mint(INSURER, 2 * AMOUNT);
        vm.startPrank(INSURER);
        token.approve(address(payout), 2 * AMOUNT);
        // the deadline equals the close of the last epoch's submission window, then one second short of a day after it
        vm.expectRevert(ParametricPayout.InvalidTerms.selector);
        payout.createPolicy(_terms(closesAt));
        vm.expectRevert(ParametricPayout.InvalidTerms.selector);
        payout.createPolicy(_terms(closesAt + minPeriod - 1));
        payout.createPolicy(_terms(closesAt + minPeriod)); // a whole day to claim: accepted
        vm.stopPrank();
    }

    function _terms(uint64 claimDeadline) internal view returns (ParametricPayout.Terms memory) {
        return ParametricPayout.Terms(
            HOLDER, token, AMOUNT, jobId, D1, "temperature", ParametricPayout.Trigger.MaxAbove, 40, 5, 9, claimDeadline
        );
    }

    function test_RevertWhen_TheDeadlineCutsTheLastEpochsSubmissionWindow() public {
        token.mint(INSURER, AMOUNT);
        vm.startPrank(INSURER);
        token.approve(address(payout), AMOUNT);
        vm.expectRevert(ParametricPayout.InvalidTerms.selector);
        // the last epoch can be submitted until 1,003,600 (creation + the job's 3600 s window)
        payout.createPolicy(
            ParametricPayout.Terms(
                HOLDER, token, AMOUNT, jobId, D1, "temperature", ParametricPayout.Trigger.MaxAbove, 40, 5, 9, 1_003_000
            )
        );
        vm.stopPrank();
    }
}

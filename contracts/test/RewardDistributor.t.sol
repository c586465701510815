// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Base} from "./Base.sol";
import {EpochVerifier} from "../src/EpochVerifier.sol";
import {RewardDistributor} from "../src/RewardDistributor.sol";
import {RewardToken} from "../src/RewardToken.sol";

/// @notice Stands in for the EpochVerifier: the claimable root set directly, one job owned by the test.
contract StubVerifier {
    mapping(bytes32 => uint64) internal _epoch;
    mapping(bytes32 => bytes32) internal _root;
    address public owner = msg.sender;

    function setRoot(bytes32 jobId, uint64 epoch, bytes32 root) external {
        _epoch[jobId] = epoch;
        _root[jobId] = root;
    }

    function claimableRoot(bytes32 jobId) external view returns (bool, uint64, bytes32) {
        return (_root[jobId] != bytes32(0), _epoch[jobId], _root[jobId]);
    }

    function jobOwner(bytes32) external view returns (address) {
        return owner;
    }
}

contract RewardDistributorTest is Base {
    bytes32 internal constant JOB = keccak256("job");
    StubVerifier internal verifier;
    RewardDistributor internal distributor;
    RewardToken internal token;

    function setUp() public {
        verifier = new StubVerifier();
        distributor = new RewardDistributor(EpochVerifier(address(verifier)), address(this));
        token = new RewardToken("R", "R", address(this));
        distributor.setRewardToken(JOB, token);
        // above uint96: pools hold any amount a token can have
        token.mint(address(this), uint256(type(uint96).max) * 4);
        token.approve(address(distributor), uint256(type(uint96).max) * 4);
        distributor.fund(JOB, uint256(type(uint96).max) * 4);
    }

    function _leaf(address account, uint256 amount) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(account, amount))));
    }

    function _pair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    /// Two-leaf tree: (account, amount) and a sibling; publishes its root for `epoch`.
    function _publish(uint64 epoch, address account, uint256 amount, bytes32 sibling)
        internal
        returns (bytes32[] memory proof)
    {
        verifier.setRoot(JOB, epoch, _pair(_leaf(account, amount), sibling));
        proof = new bytes32[](1);
        proof[0] = sibling;
    }

    function testFuzz_cumulativeClaimsPayTheDifference(address account, uint64 first, uint64 extra, bytes32 sibling)
        public
    {
        vm.assume(account != address(0) && account != address(distributor) && account != address(this));
        vm.assume(first > 0 && extra > 0);
        uint256 total = uint256(first) + extra;
        bytes32[] memory p1 = _publish(1, account, first, sibling);
        assertEq(distributor.claim(JOB, account, first, p1), first, "first claim");
        bytes32[] memory p2 = _publish(2, account, total, sibling);
        // only the latest root pays: epoch 1's proof no longer opens anything
        vm.expectRevert(RewardDistributor.InvalidProof.selector);
        distributor.claim(JOB, account, first, p1);
        assertEq(distributor.claim(JOB, account, total, p2), extra, "second claim pays the difference");
        assertEq(token.balanceOf(account), total, "balance");
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.NothingToClaim.selector, total, total));
        distributor.claim(JOB, account, total, p2);
    }

    function testFuzz_wrongAmountOrProofIsRejected(address account, uint64 amount, uint64 other, bytes32 sibling)
        public
    {
        vm.assume(account != address(0) && amount > 0 && other != amount);
        bytes32[] memory proof = _publish(3, account, amount, sibling);
        vm.expectRevert(RewardDistributor.InvalidProof.selector);
        distributor.claim(JOB, account, other, proof);
        proof[0] = bytes32(uint256(sibling) ^ 1);
        vm.expectRevert(RewardDistributor.InvalidProof.selector);
        distributor.claim(JOB, account, amount, proof);
    }

    function testFuzz_internalNodeIsNoLeaf(address account, uint64 amount, bytes32 sibling, bytes32 uncle) public {
        vm.assume(account != address(0) && amount > 0);
        bytes32 node = _pair(_leaf(account, amount), sibling);
        verifier.setRoot(JOB, 4, _pair(node, uncle));
        bytes32[] memory shortened = new bytes32[](1);
        shortened[0] = uncle;
        // the node's children read as (address, uint256) values are not a leaf of the tree
        (bytes32 a, bytes32 b) = _leaf(account, amount) < sibling ? (_leaf(account, amount), sibling) : (sibling, _leaf(account, amount));
        vm.expectRevert(RewardDistributor.InvalidProof.selector);
        distributor.claim(JOB, address(uint160(uint256(a))), uint256(b), shortened);
    }

    function test_RevertWhen_ClaimingBeforeAnyRootIsVerified() public {
        bytes32[] memory proof = new bytes32[](0);
        bytes32 other = keccak256("other job");
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.NoClaimableRoot.selector, other));
        distributor.claim(other, address(1), 1, proof);
    }

    function test_RevertWhen_RecoveringMoreThanWasSentOutsideFund() public {
        uint256 pooled = token.balanceOf(address(distributor));
        token.mint(address(distributor), 5); // a mistaken transfer
        vm.prank(address(0xBEEF));
        vm.expectRevert(abi.encodeWithSignature("OwnableUnauthorizedAccount(address)", address(0xBEEF)));
        bytes32[] memory jobs = new bytes32[](1);
        jobs[0] = JOB;
        distributor.recoverUnaccounted(token, address(0xBEEF), jobs);
        distributor.recoverUnaccounted(token, address(0xBEEF), jobs);
        assertEq(token.balanceOf(address(0xBEEF)), 5, "only the stray tokens");
        assertEq(token.balanceOf(address(distributor)), pooled, "pools untouched");
    }

    function test_RevertWhen_OwnerRenouncesOwnership() public {
        vm.expectRevert(RewardDistributor.OwnershipCannotBeRenounced.selector);
        distributor.renounceOwnership();
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Base} from "./Base.sol";
import {EpochVerifier} from "../src/EpochVerifier.sol";
import {RewardDistributor} from "../src/RewardDistributor.sol";
import {RewardToken} from "../src/RewardToken.sol";

/// @notice Stands in for the EpochVerifier: reward roots set directly, one job owned by the test.
contract StubVerifier {
    mapping(bytes32 => mapping(uint64 => bytes32)) public rewardRootOf;
    address public owner = msg.sender;

    function setRoot(bytes32 jobId, uint64 epoch, bytes32 root) external {
        rewardRootOf[jobId][epoch] = root;
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
        distributor = new RewardDistributor(EpochVerifier(address(verifier)));
        token = new RewardToken("R", "R", address(this));
        distributor.setRewardToken(JOB, token);
        token.mint(address(this), type(uint96).max);
        token.approve(address(distributor), type(uint96).max);
        distributor.fund(JOB, type(uint96).max);
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
        bytes32[] memory p2 = _publish(2, account, total, sibling);
        assertEq(distributor.claim(JOB, 1, account, first, p1), first, "first claim");
        assertEq(distributor.claim(JOB, 2, account, total, p2), extra, "second claim pays the difference");
        assertEq(token.balanceOf(account), total, "balance");
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.NothingToClaim.selector, total, total));
        distributor.claim(JOB, 2, account, total, p2);
    }

    function testFuzz_wrongAmountOrProofIsRejected(address account, uint64 amount, uint64 other, bytes32 sibling)
        public
    {
        vm.assume(account != address(0) && amount > 0 && other != amount);
        bytes32[] memory proof = _publish(3, account, amount, sibling);
        vm.expectRevert(RewardDistributor.InvalidProof.selector);
        distributor.claim(JOB, 3, account, other, proof);
        proof[0] = bytes32(uint256(sibling) ^ 1);
        vm.expectRevert(RewardDistributor.InvalidProof.selector);
        distributor.claim(JOB, 3, account, amount, proof);
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
        distributor.claim(JOB, 4, address(uint160(uint256(a))), uint256(b), shortened);
    }

    function test_unverifiedRootIsRejected() public {
        bytes32[] memory proof = new bytes32[](0);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.UnverifiedRoot.selector, JOB, uint64(99)));
        distributor.claim(JOB, 99, address(1), 1, proof);
    }
}

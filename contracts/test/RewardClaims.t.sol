// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Base} from "./Base.sol";
import {StubVerifier} from "./RewardDistributor.t.sol";
import {EpochVerifier} from "../src/EpochVerifier.sol";
import {RewardDistributor} from "../src/RewardDistributor.sol";
import {RewardToken} from "../src/RewardToken.sol";
import {ReentrantToken} from "../src/mocks/ReentrantToken.sol";
import {SmartAccount} from "../src/mocks/SmartAccount.sol";

/// @notice Relayed (`claimFor`) and batched (`claimMany`) claims, the pool's split balance and
///         the recovery of stray tokens, each attack named after what it tries.
contract RewardClaimsTest is Base {
    bytes32 internal constant JOB = keccak256("job");
    uint256 internal constant ALICE_KEY = 0xA11CE;
    uint256 internal constant MALLORY_KEY = 0xBAD;
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    address internal constant RELAYER = address(0x7E1A7);

    StubVerifier internal verifier;
    RewardDistributor internal distributor;
    RewardToken internal token;
    address internal alice;

    function setUp() public {
        verifier = new StubVerifier();
        distributor = new RewardDistributor(EpochVerifier(address(verifier)), address(this));
        token = new RewardToken("R", "R", address(this));
        distributor.setRewardToken(JOB, token);
        _fund(distributor, JOB, 10 ** 30);
        alice = vm.addr(ALICE_KEY);
    }

    function _fund(RewardDistributor d, bytes32 jobId, uint256 amount) internal {
        token.mint(address(this), amount);
        token.approve(address(d), amount);
        d.fund(jobId, amount);
    }

    function _leaf(address account, uint256 amount) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(account, amount))));
    }

    function _pair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    /// Publishes a two-leaf root for `account` (and a filler sibling) on `jobId`; returns the proof.
    function _publish(bytes32 jobId, uint64 epoch, address account, uint256 amount)
        internal
        returns (bytes32[] memory proof)
    {
        bytes32 sibling = keccak256(abi.encode("sibling", epoch));
        verifier.setRoot(jobId, epoch, _pair(_leaf(account, amount), sibling));
        proof = new bytes32[](1);
        proof[0] = sibling;
    }

    /// Publishes a four-leaf root over `accounts` and `amounts`; returns each leaf's proof.
    function _publish4(uint64 epoch, address[] memory accounts, uint256[] memory amounts)
        internal
        returns (bytes32[][] memory proofs)
    {
        bytes32[4] memory l;
        for (uint256 i = 0; i < 4; ++i) l[i] = _leaf(accounts[i], amounts[i]);
        bytes32 left = _pair(l[0], l[1]);
        bytes32 right = _pair(l[2], l[3]);
        verifier.setRoot(JOB, epoch, _pair(left, right));
        proofs = new bytes32[][](4);
        for (uint256 i = 0; i < 4; ++i) {
            proofs[i] = new bytes32[](2);
            proofs[i][0] = l[i ^ 1];
            proofs[i][1] = i < 2 ? right : left;
        }
    }

    function _sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function _authorize(RewardDistributor d, uint256 key, bytes32 jobId, address account, uint256 amount, uint256 deadline)
        internal
        view
        returns (bytes memory)
    {
        return _sign(key, d.claimAuthorizationDigest(jobId, account, amount, deadline));
    }

    // ------------------------------------------------------------------ claimFor

    function test_claimAuthorizationDigestIsEip712() public view {
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("VeriStream"),
                keccak256("1"),
                block.chainid,
                address(distributor)
            )
        );
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("ClaimAuthorization(bytes32 jobId,address account,uint256 cumulativeAmount,uint256 deadline)"),
                JOB,
                alice,
                uint256(123),
                uint256(456)
            )
        );
        assertEq(distributor.domainSeparator(), domain, "domain separator");
        assertEq(
            distributor.claimAuthorizationDigest(JOB, alice, 123, 456),
            keccak256(abi.encodePacked(hex"1901", domain, structHash)),
            "digest"
        );
    }

    function test_claimForPaysTheAccountWhoeverRelaysIt() public {
        bytes32[] memory proof = _publish(JOB, 1, alice, 100);
        bytes memory sig = _authorize(distributor, ALICE_KEY, JOB, alice, 100, block.timestamp);
        vm.prank(RELAYER);
        assertEq(distributor.claimFor(JOB, alice, 100, proof, block.timestamp, sig), 100, "paid");
        assertEq(token.balanceOf(alice), 100, "to the account");
        assertEq(token.balanceOf(RELAYER), 0, "nothing to the relayer");
    }

    function test_RevertWhen_ClaimAuthorizationIsReplayed() public {
        bytes32[] memory proof = _publish(JOB, 1, alice, 100);
        uint256 deadline = block.timestamp + 1 days;
        bytes memory sig = _authorize(distributor, ALICE_KEY, JOB, alice, 100, deadline);
        distributor.claimFor(JOB, alice, 100, proof, deadline, sig);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.NothingToClaim.selector, 100, 100));
        distributor.claimFor(JOB, alice, 100, proof, deadline, sig);
        // a newer epoch raises alice's total: the old authorization opens nothing there
        bytes32[] memory newer = _publish(JOB, 2, alice, 250);
        vm.expectRevert(RewardDistributor.InvalidProof.selector);
        distributor.claimFor(JOB, alice, 100, proof, deadline, sig);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.InvalidAuthorization.selector, alice));
        distributor.claimFor(JOB, alice, 250, newer, deadline, sig);
        assertEq(token.balanceOf(alice), 100, "paid once");
    }

    function test_RevertWhen_AuthorizationForAnotherJobIsRelayed() public {
        bytes32 other = keccak256("other job");
        distributor.setRewardToken(other, token);
        _fund(distributor, other, 1000);
        _publish(other, 1, alice, 100);
        bytes32[] memory proof = _publish(JOB, 1, alice, 100);
        bytes memory sig = _authorize(distributor, ALICE_KEY, other, alice, 100, block.timestamp);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.InvalidAuthorization.selector, alice));
        distributor.claimFor(JOB, alice, 100, proof, block.timestamp, sig);
    }

    function test_RevertWhen_AuthorizationForAnotherChainIsRelayed() public {
        bytes32[] memory proof = _publish(JOB, 1, alice, 100);
        bytes memory sig = _authorize(distributor, ALICE_KEY, JOB, alice, 100, block.timestamp);
        vm.chainId(block.chainid + 1);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.InvalidAuthorization.selector, alice));
        distributor.claimFor(JOB, alice, 100, proof, block.timestamp, sig);
    }

    function test_RevertWhen_AuthorizationForAnotherDistributorIsRelayed() public {
        RewardDistributor twin = new RewardDistributor(EpochVerifier(address(verifier)), address(this));
        twin.setRewardToken(JOB, token);
        _fund(twin, JOB, 1000);
        bytes32[] memory proof = _publish(JOB, 1, alice, 100);
        bytes memory sig = _authorize(distributor, ALICE_KEY, JOB, alice, 100, block.timestamp);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.InvalidAuthorization.selector, alice));
        twin.claimFor(JOB, alice, 100, proof, block.timestamp, sig);
    }

    function test_RevertWhen_AuthorizationHasExpired() public {
        vm.warp(1_000_000);
        bytes32[] memory proof = _publish(JOB, 1, alice, 100);
        uint256 deadline = block.timestamp - 1;
        bytes memory sig = _authorize(distributor, ALICE_KEY, JOB, alice, 100, deadline);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.AuthorizationExpired.selector, deadline));
        distributor.claimFor(JOB, alice, 100, proof, deadline, sig);
    }

    function test_RevertWhen_RelayerChangesAmountAccountOrProof() public {
        address bob = address(0xB0B);
        bytes32 sibling = _leaf(bob, 500);
        verifier.setRoot(JOB, 1, _pair(_leaf(alice, 100), sibling));
        bytes32[] memory proof = new bytes32[](1);
        proof[0] = sibling;
        bytes memory sig = _authorize(distributor, ALICE_KEY, JOB, alice, 100, block.timestamp);
        vm.startPrank(RELAYER);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.InvalidAuthorization.selector, alice));
        distributor.claimFor(JOB, alice, 101, proof, block.timestamp, sig);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.InvalidAuthorization.selector, bob));
        bytes32[] memory bobProof = new bytes32[](1);
        bobProof[0] = _leaf(alice, 100);
        distributor.claimFor(JOB, bob, 500, bobProof, block.timestamp, sig);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.InvalidAuthorization.selector, alice));
        distributor.claimFor(JOB, alice, 100, proof, block.timestamp + 1, sig);
        proof[0] = bytes32(uint256(sibling) ^ 1);
        vm.expectRevert(RewardDistributor.InvalidProof.selector);
        distributor.claimFor(JOB, alice, 100, proof, block.timestamp, sig);
        vm.stopPrank();
        assertEq(token.balanceOf(alice) + token.balanceOf(bob), 0, "nothing paid");
    }

    function test_RevertWhen_SignatureIsMalleated() public {
        bytes32[] memory proof = _publish(JOB, 1, alice, 100);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(ALICE_KEY, distributor.claimAuthorizationDigest(JOB, alice, 100, block.timestamp));
        // (r, n - s, flipped v) recovers the same signer; only low-s signatures are accepted
        bytes memory twin = abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.InvalidAuthorization.selector, alice));
        distributor.claimFor(JOB, alice, 100, proof, block.timestamp, twin);
        bytes memory truncated = abi.encodePacked(r, s);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.InvalidAuthorization.selector, alice));
        distributor.claimFor(JOB, alice, 100, proof, block.timestamp, truncated);
    }

    function test_claimForAcceptsAnErc1271ContractAccount() public {
        SmartAccount wallet = new SmartAccount(alice);
        address account = address(wallet);
        bytes32[] memory proof = _publish(JOB, 1, account, 100);
        bytes memory sig = _authorize(distributor, ALICE_KEY, JOB, account, 100, block.timestamp);
        vm.prank(RELAYER);
        distributor.claimFor(JOB, account, 100, proof, block.timestamp, sig);
        assertEq(token.balanceOf(account), 100, "paid to the contract account");
    }

    function test_RevertWhen_Erc1271AccountDoesNotApprove() public {
        SmartAccount wallet = new SmartAccount(alice);
        address account = address(wallet);
        bytes32[] memory proof = _publish(JOB, 1, account, 100);
        bytes memory forged = _authorize(distributor, MALLORY_KEY, JOB, account, 100, block.timestamp);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.InvalidAuthorization.selector, account));
        distributor.claimFor(JOB, account, 100, proof, block.timestamp, forged);
        // a contract without ERC-1271 approves nothing, whoever's key signed
        address codeOnly = address(token);
        proof = _publish(JOB, 2, codeOnly, 100);
        bytes memory sig = _authorize(distributor, ALICE_KEY, JOB, codeOnly, 100, block.timestamp);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.InvalidAuthorization.selector, codeOnly));
        distributor.claimFor(JOB, codeOnly, 100, proof, block.timestamp, sig);
    }

    // ------------------------------------------------------------------ claimMany

    function _batch() internal pure returns (address[] memory accounts, uint256[] memory amounts) {
        accounts = new address[](4);
        amounts = new uint256[](4);
        for (uint256 i = 0; i < 4; ++i) {
            accounts[i] = address(uint160(0x1000 + i));
            amounts[i] = 10 * (i + 1);
        }
    }

    function test_claimManyPaysEveryAccountOnce() public {
        (address[] memory accounts, uint256[] memory amounts) = _batch();
        bytes32[][] memory proofs = _publish4(1, accounts, amounts);
        (,, uint256 before) = distributor.pools(JOB);
        vm.prank(RELAYER);
        assertEq(distributor.claimMany(JOB, accounts, amounts, proofs), 100, "total");
        for (uint256 i = 0; i < 4; ++i) assertEq(token.balanceOf(accounts[i]), amounts[i], "each account");
        (,, uint256 afterwards) = distributor.pools(JOB);
        assertEq(before - afterwards, 100, "pool");
        // the same batch again pays nothing and does not revert
        assertEq(distributor.claimMany(JOB, accounts, amounts, proofs), 0, "again");
    }

    function test_RevertWhen_AFrontRunClaimWouldBlockTheBatch() public {
        (address[] memory accounts, uint256[] memory amounts) = _batch();
        bytes32[][] memory proofs = _publish4(1, accounts, amounts);
        distributor.claim(JOB, accounts[2], amounts[2], proofs[2]); // sent by anyone just before
        assertEq(distributor.claimMany(JOB, accounts, amounts, proofs), 70, "the others are paid");
        assertEq(token.balanceOf(accounts[2]), amounts[2], "paid once");
    }

    function test_RevertWhen_OneEntryOfTheBatchIsForged() public {
        (address[] memory accounts, uint256[] memory amounts) = _batch();
        bytes32[][] memory proofs = _publish4(1, accounts, amounts);
        amounts[2] += 1;
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.InvalidProofAt.selector, 2));
        distributor.claimMany(JOB, accounts, amounts, proofs);
        assertEq(token.balanceOf(accounts[0]), 0, "nothing paid");
    }

    function test_RevertWhen_TheBatchExceedsThePool() public {
        bytes32 small = keccak256("small job");
        distributor.setRewardToken(small, token);
        _fund(distributor, small, 99);
        (address[] memory accounts, uint256[] memory amounts) = _batch();
        bytes32[][] memory proofs = _publish4(1, accounts, amounts);
        (, uint64 epoch, bytes32 root) = verifier.claimableRoot(JOB);
        verifier.setRoot(small, epoch, root);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.InsufficientFunding.selector, 100, 99));
        distributor.claimMany(small, accounts, amounts, proofs);
        address[] memory short = new address[](3);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.LengthMismatch.selector, 3, 4, 4));
        distributor.claimMany(small, short, amounts, proofs);
    }

    function testFuzz_claimManyPaysWhatSeparateClaimsPay(uint64[4] memory first, uint64[4] memory extra, uint8 paidAlone)
        public
    {
        (address[] memory accounts, uint256[] memory amounts) = _batch();
        for (uint256 i = 0; i < 4; ++i) amounts[i] = uint256(first[i]) + 1;
        bytes32[][] memory proofs = _publish4(1, accounts, amounts);
        // one account claims on its own first; the batch pays the others exactly their leaves
        uint256 alone = paidAlone % 4;
        distributor.claim(JOB, accounts[alone], amounts[alone], proofs[alone]);
        (,, uint256 before) = distributor.pools(JOB);
        uint256 total = distributor.claimMany(JOB, accounts, amounts, proofs);
        (,, uint256 afterwards) = distributor.pools(JOB);
        uint256 expected;
        for (uint256 i = 0; i < 4; ++i) {
            assertEq(token.balanceOf(accounts[i]), amounts[i], "balance after the first batch");
            if (i != alone) expected += amounts[i];
        }
        assertEq(total, expected, "total");
        assertEq(before - afterwards, expected, "pool");
        // the next epoch raises every total: the batch pays exactly each difference
        uint256[] memory raised = new uint256[](4);
        for (uint256 i = 0; i < 4; ++i) raised[i] = amounts[i] + extra[i];
        proofs = _publish4(2, accounts, raised);
        uint256 due;
        for (uint256 i = 0; i < 4; ++i) due += extra[i];
        assertEq(distributor.claimMany(JOB, accounts, raised, proofs), due, "second total");
        for (uint256 i = 0; i < 4; ++i) assertEq(distributor.claimed(JOB, accounts[i]), raised[i], "claimed");
    }

    function test_RevertWhen_ABatchTransferReentersAClaim() public {
        bytes32 job = keccak256("reentrant job");
        ReentrantToken evil = new ReentrantToken();
        distributor.setRewardToken(job, evil);
        evil.mint(address(this), 1000);
        evil.approve(address(distributor), 1000);
        distributor.fund(job, 1000);
        (address[] memory accounts, uint256[] memory amounts) = _batch();
        bytes32[][] memory proofs = _publish4(1, accounts, amounts);
        (, uint64 epoch, bytes32 root) = verifier.claimableRoot(JOB);
        verifier.setRoot(job, epoch, root);
        // the first transfer calls back into claim for the next account before paying
        evil.arm(address(distributor), abi.encodeCall(distributor.claim, (job, accounts[1], amounts[1], proofs[1])));
        vm.expectRevert(abi.encodeWithSignature("ReentrancyGuardReentrantCall()"));
        distributor.claimMany(job, accounts, amounts, proofs);
        assertEq(distributor.claimed(job, accounts[0]), 0, "nothing recorded");
    }

    // ------------------------------------------------------------------ pools

    function testFuzz_poolsOfAnySizePayExactly(uint192 funded, uint192 topUp, uint192 first, uint192 second) public {
        bytes32 job = keccak256("big job");
        distributor.setRewardToken(job, token);
        uint256 total = uint256(funded) + topUp;
        vm.assume(total > 0 && uint256(first) + second <= total && first > 0 && second > 0);
        _fund(distributor, job, funded);
        _fund(distributor, job, topUp);
        (,, uint256 balance) = distributor.pools(job);
        assertEq(balance, total, "funded");
        address account = address(0xCAFE);
        uint256 cumulative = uint256(first);
        bytes32[] memory proof = _publish(job, 1, account, cumulative);
        distributor.claim(job, account, cumulative, proof);
        cumulative += second;
        proof = _publish(job, 2, account, cumulative);
        distributor.claim(job, account, cumulative, proof);
        (,, balance) = distributor.pools(job);
        assertEq(balance, total - cumulative, "after claims");
        assertEq(token.balanceOf(account), cumulative, "paid");
        uint256 beyond = cumulative + balance + 1;
        proof = _publish(job, 3, account, beyond);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.InsufficientFunding.selector, balance + 1, balance));
        distributor.claim(job, account, beyond, proof);
    }

    // ------------------------------------------------------------------ stray tokens

    function test_RevertWhen_RecoveryLeavesAJobsPoolOut() public {
        bytes32 other = keccak256("other job");
        distributor.setRewardToken(other, token);
        _fund(distributor, other, 777);
        token.mint(address(distributor), 5); // a mistaken transfer
        (bytes32 a, bytes32 b) = JOB < other ? (JOB, other) : (other, JOB);
        bytes32[] memory jobs = new bytes32[](1);
        jobs[0] = a;
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.JobListIncomplete.selector, 1, 2));
        distributor.recoverUnaccounted(token, address(0xBEEF), jobs);
        jobs = new bytes32[](2);
        (jobs[0], jobs[1]) = (a, a);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.JobListInvalid.selector, 1));
        distributor.recoverUnaccounted(token, address(0xBEEF), jobs);
        (jobs[0], jobs[1]) = (b, a);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.JobListInvalid.selector, 1));
        distributor.recoverUnaccounted(token, address(0xBEEF), jobs);
        bytes32 foreign = keccak256("foreign job"); // pays in another token
        distributor.setRewardToken(foreign, new RewardToken("F", "F", address(this)));
        (jobs[0], jobs[1]) = foreign < a ? (foreign, a) : (a, foreign);
        vm.expectRevert(abi.encodeWithSelector(RewardDistributor.JobListInvalid.selector, foreign < a ? 0 : 1));
        distributor.recoverUnaccounted(token, address(0xBEEF), jobs);
        (jobs[0], jobs[1]) = (a, b);
        uint256 pooled = token.balanceOf(address(distributor)) - 5;
        distributor.recoverUnaccounted(token, address(0xBEEF), jobs);
        assertEq(token.balanceOf(address(0xBEEF)), 5, "only the stray tokens");
        assertEq(token.balanceOf(address(distributor)), pooled, "pools untouched");
    }
}

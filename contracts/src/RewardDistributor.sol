// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {EpochVerifier} from "./EpochVerifier.sol";

/// @title RewardDistributor
/// @notice Cumulative Merkle claims of ERC-20 rewards against the reward roots that the
///         EpochVerifier accepted. A leaf holds an account's total earned up to an epoch
///         (StandardMerkleTree leaf ["address", "uint256"]); a claim pays the difference from
///         what the account was already paid, so one claim with the latest root pays all epochs.
contract RewardDistributor is ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    struct Pool {
        IERC20 token;
        uint96 balance; // funded and not yet paid out
    }

    /// @notice Where verified reward roots come from.
    EpochVerifier public immutable verifier;

    /// @notice A job's reward token and its funded, unclaimed balance.
    mapping(bytes32 jobId => Pool) public pools;
    /// @notice Cumulative amount paid to an account for a job.
    mapping(bytes32 jobId => mapping(address account => uint256)) public claimed;

    event RewardTokenSet(bytes32 indexed jobId, address indexed token);
    event RewardsFunded(bytes32 indexed jobId, address indexed funder, uint256 amount);
    event Claimed(bytes32 indexed jobId, uint64 indexed epoch, address indexed account, uint256 amount, uint256 cumulative);

    error NotJobOwner(bytes32 jobId, address caller);
    error RewardTokenAlreadySet(bytes32 jobId);
    error NoRewardToken(bytes32 jobId);
    error ZeroAddress();
    error UnverifiedRoot(bytes32 jobId, uint64 epoch);
    error InvalidProof();
    error NothingToClaim(uint256 cumulativeAmount, uint256 alreadyClaimed);
    error InsufficientFunding(uint256 requested, uint256 available);

    constructor(EpochVerifier verifier_) {
        verifier = verifier_;
    }

    /// @notice Sets the ERC-20 a job pays in; only the job's owner, only once.
    function setRewardToken(bytes32 jobId, IERC20 token) external {
        if (verifier.jobOwner(jobId) != msg.sender) revert NotJobOwner(jobId, msg.sender);
        if (address(token) == address(0)) revert ZeroAddress();
        if (address(pools[jobId].token) != address(0)) revert RewardTokenAlreadySet(jobId);
        pools[jobId].token = token;
        emit RewardTokenSet(jobId, address(token));
    }

    /// @notice Adds `amount` of the job's token (pulled from the caller) to the job's pool;
    ///         credits what actually arrived, so fee-on-transfer tokens cannot over-credit.
    function fund(bytes32 jobId, uint256 amount) external nonReentrant {
        Pool storage pool = pools[jobId];
        IERC20 token = pool.token;
        if (address(token) == address(0)) revert NoRewardToken(jobId);
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        pool.balance = SafeCast.toUint96(pool.balance + received);
        emit RewardsFunded(jobId, msg.sender, received);
    }

    /// @notice Pays `account` its cumulative reward up to `epoch` minus what it was already paid.
    ///         Anyone may submit the claim; the tokens always go to `account`.
    /// @param cumulativeAmount the account's total earned up to `epoch` (the leaf's amount).
    /// @param proof the StandardMerkleTree proof of (account, cumulativeAmount) under the
    ///        verified reward root of (jobId, epoch).
    /// @return amount the amount paid now.
    function claim(bytes32 jobId, uint64 epoch, address account, uint256 cumulativeAmount, bytes32[] calldata proof)
        external
        nonReentrant
        returns (uint256 amount)
    {
        bytes32 root = verifier.rewardRootOf(jobId, epoch);
        if (root == bytes32(0)) revert UnverifiedRoot(jobId, epoch);
        // Double hashing keeps the 64-byte leaf preimage apart from internal nodes' pairs.
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(account, cumulativeAmount))));
        if (!MerkleProof.verifyCalldata(proof, root, leaf)) revert InvalidProof();
        uint256 paid = claimed[jobId][account];
        if (cumulativeAmount <= paid) revert NothingToClaim(cumulativeAmount, paid);
        amount = cumulativeAmount - paid;
        Pool storage pool = pools[jobId];
        uint96 balance = pool.balance;
        if (amount > balance) revert InsufficientFunding(amount, balance);

        claimed[jobId][account] = cumulativeAmount;
        pool.balance = balance - uint96(amount);
        emit Claimed(jobId, epoch, account, amount, cumulativeAmount);
        pool.token.safeTransfer(account, amount);
    }
}

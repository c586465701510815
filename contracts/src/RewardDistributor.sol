// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EpochVerifier} from "./EpochVerifier.sol";

/// @title RewardDistributor
/// @notice Cumulative Merkle claims of ERC-20 rewards against the reward root of a job's highest
///         verified epoch. A leaf holds an account's total earned up to an epoch
///         (StandardMerkleTree leaf ["address", "uint256"]); a claim pays the difference from
///         what the account was already paid, so one claim with the latest root pays all epochs.
/// @dev Funds leave only by a claim, or to the job's owner: the pool's remainder once the claim
///      window has passed since the job's last verified epoch and a sweep was announced
///      `SWEEP_DELAY` ahead, or any amount while the job's operator set has a change the job did
///      not accept (see `EpochVerifier.setChangePending`). Tokens sent here outside `fund`
///      belong to no pool; the contract's owner may return them.
contract RewardDistributor is Ownable2Step, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice How long after a job's last verified epoch its contributors have to claim before
    ///         the owner may announce a sweep of what is left.
    uint64 public constant CLAIM_WINDOW = 90 days;
    /// @notice How long a sweep is announced before it may be executed.
    uint64 public constant SWEEP_DELAY = 7 days;

    struct Pool {
        IERC20 token;
        uint64 sweepAt; // 0: no sweep announced
        uint256 balance; // funded and not yet paid out
    }

    /// @notice Where verified reward roots come from.
    EpochVerifier public immutable verifier;

    /// @notice A job's reward token, its announced sweep and its funded, unclaimed balance.
    mapping(bytes32 jobId => Pool) public pools;
    /// @notice Cumulative amount paid to an account for a job.
    mapping(bytes32 jobId => mapping(address account => uint256)) public claimed;
    /// @notice Sum of the pools held in each token: anything above it arrived outside `fund`.
    mapping(IERC20 token => uint256) public accounted;

    event RewardTokenSet(bytes32 indexed jobId, address indexed token);
    event RewardsFunded(bytes32 indexed jobId, address indexed funder, uint256 amount);
    event Claimed(bytes32 indexed jobId, uint64 indexed epoch, address indexed account, uint256 amount, uint256 cumulative);
    event SweepAnnounced(bytes32 indexed jobId, uint64 executableAt, uint256 balance);
    event SweepCancelled(bytes32 indexed jobId);
    event Swept(bytes32 indexed jobId, address indexed to, uint256 amount);
    event WithdrawnOnSetChange(bytes32 indexed jobId, address indexed to, uint256 amount);
    event UnaccountedRecovered(address indexed token, address indexed to, uint256 amount);

    error NotJobOwner(bytes32 jobId, address caller);
    error RewardTokenAlreadySet(bytes32 jobId);
    error NoRewardToken(bytes32 jobId);
    error ZeroAddress();
    error NoClaimableRoot(bytes32 jobId);
    error InvalidProof();
    error NothingToClaim(uint256 cumulativeAmount, uint256 alreadyClaimed);
    error InsufficientFunding(uint256 requested, uint256 available);
    error ClaimWindowOpen(bytes32 jobId, uint64 closesAt);
    error SweepNotAnnounced(bytes32 jobId);
    error SweepNotDue(bytes32 jobId, uint64 executableAt);
    error NoUnacceptedSetChange(bytes32 jobId);
    error OwnershipCannotBeRenounced();

    constructor(EpochVerifier verifier_, address initialOwner) Ownable(initialOwner) {
        verifier = verifier_;
    }

    modifier onlyJobOwner(bytes32 jobId) {
        if (verifier.jobOwner(jobId) != msg.sender) revert NotJobOwner(jobId, msg.sender);
        _;
    }

    /// @notice Ownership cannot be given up: unaccounted tokens would have nobody to return them.
    function renounceOwnership() public view override onlyOwner {
        revert OwnershipCannotBeRenounced();
    }

    /// @notice Sets the ERC-20 a job pays in; only the job's owner, only once.
    function setRewardToken(bytes32 jobId, IERC20 token) external onlyJobOwner(jobId) {
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
        pool.balance += received;
        accounted[token] += received;
        emit RewardsFunded(jobId, msg.sender, received);
    }

    /// @notice Pays `account` its cumulative reward up to the job's claimable epoch minus what
    ///         it was already paid. Anyone may submit the claim; the tokens always go to `account`.
    /// @param cumulativeAmount the account's total earned (the leaf's amount).
    /// @param proof the StandardMerkleTree proof of (account, cumulativeAmount) under the
    ///        job's claimable reward root (`EpochVerifier.claimableRoot`).
    /// @return amount the amount paid now.
    function claim(bytes32 jobId, address account, uint256 cumulativeAmount, bytes32[] calldata proof)
        external
        nonReentrant
        returns (uint256 amount)
    {
        (bool found, uint64 epoch, bytes32 root) = verifier.claimableRoot(jobId);
        if (!found) revert NoClaimableRoot(jobId);
        // Double hashing keeps the 64-byte leaf preimage apart from internal nodes' pairs.
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(account, cumulativeAmount))));
        if (!MerkleProof.verifyCalldata(proof, root, leaf)) revert InvalidProof();
        uint256 paid = claimed[jobId][account];
        if (cumulativeAmount <= paid) revert NothingToClaim(cumulativeAmount, paid);
        amount = cumulativeAmount - paid;
        Pool storage pool = pools[jobId];
        uint256 balance = pool.balance;
        if (amount > balance) revert InsufficientFunding(amount, balance);

        claimed[jobId][account] = cumulativeAmount;
        pool.balance = balance - amount;
        IERC20 token = pool.token;
        accounted[token] -= amount;
        emit Claimed(jobId, epoch, account, amount, cumulativeAmount);
        token.safeTransfer(account, amount);
    }

    /// @notice Announces that the job's owner will sweep the pool's remainder `SWEEP_DELAY` from
    ///         now; allowed once `CLAIM_WINDOW` has passed since the job's last verified epoch.
    function announceSweep(bytes32 jobId) external onlyJobOwner(jobId) {
        (,, uint64 since) = verifier.lastActivity(jobId);
        uint64 closes = since + CLAIM_WINDOW;
        if (block.timestamp < closes) revert ClaimWindowOpen(jobId, closes);
        Pool storage pool = pools[jobId];
        uint64 executableAt = uint64(block.timestamp) + SWEEP_DELAY;
        pool.sweepAt = executableAt;
        emit SweepAnnounced(jobId, executableAt, pool.balance);
    }

    /// @notice Sends the pool's remainder to `to` once the announced sweep is due. A newly
    ///         verified epoch since the announcement cancels it (its contributors must be able
    ///         to claim for a whole window again).
    function sweep(bytes32 jobId, address to) external onlyJobOwner(jobId) nonReentrant {
        if (to == address(0)) revert ZeroAddress();
        Pool storage pool = pools[jobId];
        uint64 executableAt = pool.sweepAt;
        if (executableAt == 0) revert SweepNotAnnounced(jobId);
        if (block.timestamp < executableAt) revert SweepNotDue(jobId, executableAt);
        (,, uint64 since) = verifier.lastActivity(jobId);
        pool.sweepAt = 0;
        if (block.timestamp < since + CLAIM_WINDOW) {
            emit SweepCancelled(jobId);
            return;
        }
        uint256 amount = pool.balance;
        pool.balance = 0;
        IERC20 token = pool.token;
        accounted[token] -= amount;
        emit Swept(jobId, to, amount);
        token.safeTransfer(to, amount);
    }

    /// @notice Lets the job's owner leave: withdraws `amount` of the pool to `to` while the job's
    ///         operator set has a change the job did not accept (for a job that follows its set,
    ///         while a change is scheduled and not yet in force: within the registry's delay).
    function withdrawOnSetChange(bytes32 jobId, address to, uint256 amount) external onlyJobOwner(jobId) nonReentrant {
        if (to == address(0)) revert ZeroAddress();
        if (!verifier.setChangePending(jobId)) revert NoUnacceptedSetChange(jobId);
        Pool storage pool = pools[jobId];
        uint256 balance = pool.balance;
        if (amount > balance) revert InsufficientFunding(amount, balance);
        pool.balance = balance - amount;
        IERC20 token = pool.token;
        accounted[token] -= amount;
        emit WithdrawnOnSetChange(jobId, to, amount);
        token.safeTransfer(to, amount);
    }

    /// @notice Returns tokens that reached this contract outside `fund` (they belong to no pool).
    function recoverUnaccounted(IERC20 token, address to) external onlyOwner nonReentrant {
        if (to == address(0)) revert ZeroAddress();
        uint256 amount = token.balanceOf(address(this)) - accounted[token];
        emit UnaccountedRecovered(address(token), to, amount);
        token.safeTransfer(to, amount);
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EpochVerifier} from "./EpochVerifier.sol";

/// @title RewardDistributor
/// @notice Cumulative Merkle claims of ERC-20 rewards against the reward root of a job's highest
///         verified epoch. A leaf holds an account's total earned up to an epoch
///         (StandardMerkleTree leaf ["address", "uint256"]); a claim pays the difference from
///         what the account was already paid, so one claim with the latest root pays all epochs.
///         Claims come three ways: `claim` (anyone sends it), `claimFor` (a relayer sends the
///         account's EIP-712 authorization) and `claimMany` (one transaction pays many accounts).
/// @dev Funds leave only by a claim, or to the job's owner: the pool's remainder once the claim
///      window has passed since the job's last verified epoch and a sweep was announced
///      `SWEEP_DELAY` ahead, or any amount while the job's operator set has a change the job did
///      not accept (see `EpochVerifier.setChangePending`). Tokens sent here outside `fund`
///      belong to no pool; the contract's owner may return them.
contract RewardDistributor is Ownable2Step, ReentrancyGuardTransient, EIP712 {
    using SafeERC20 for IERC20;

    /// @notice How long after a job's last verified epoch its contributors have to claim before
    ///         the owner may announce a sweep of what is left.
    uint64 public constant CLAIM_WINDOW = 90 days;
    /// @notice How long a sweep is announced before it may be executed.
    uint64 public constant SWEEP_DELAY = 7 days;
    /// @notice EIP-712 type an account signs to let anyone relay its claim (`claimFor`).
    bytes32 public constant CLAIM_AUTHORIZATION_TYPEHASH =
        keccak256("ClaimAuthorization(bytes32 jobId,address account,uint256 cumulativeAmount,uint256 deadline)");

    /// @dev A pool's balance is `high * 2**96 + low`. A claim reads and writes the first word
    ///      only (the token beside the low part) unless it pays more than the low part holds,
    ///      so pools of any uint256 size cost claims one storage word.
    struct Pool {
        IERC20 token;
        uint96 low;
        uint192 high;
        uint64 sweepAt; // 0: no sweep announced
    }

    /// @notice Where verified reward roots come from.
    EpochVerifier public immutable verifier;

    mapping(bytes32 jobId => Pool) internal _pools;
    /// @notice Cumulative amount paid to an account for a job.
    mapping(bytes32 jobId => mapping(address account => uint256)) public claimed;
    /// @notice How many jobs pay in each token: `recoverUnaccounted` must be shown all of them.
    mapping(IERC20 token => uint256) public jobCount;

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
    error InvalidProofAt(uint256 index);
    error NothingToClaim(uint256 cumulativeAmount, uint256 alreadyClaimed);
    error InsufficientFunding(uint256 requested, uint256 available);
    error LengthMismatch(uint256 accounts, uint256 cumulativeAmounts, uint256 proofs);
    error AuthorizationExpired(uint256 deadline);
    error InvalidAuthorization(address account);
    error ClaimWindowOpen(bytes32 jobId, uint64 closesAt);
    error SweepNotAnnounced(bytes32 jobId);
    error SweepNotDue(bytes32 jobId, uint64 executableAt);
    error NoUnacceptedSetChange(bytes32 jobId);
    error JobListIncomplete(uint256 given, uint256 expected);
    error JobListInvalid(uint256 index);
    error PoolsExceedBalance(uint256 pooled, uint256 held);
    error OwnershipCannotBeRenounced();

    constructor(EpochVerifier verifier_, address initialOwner) Ownable(initialOwner) EIP712("VeriStream", "1") {
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

    // ------------------------------------------------------------------ pools

    /// @notice Sets the ERC-20 a job pays in; only the job's owner, only once.
    function setRewardToken(bytes32 jobId, IERC20 token) external onlyJobOwner(jobId) {
        if (address(token) == address(0)) revert ZeroAddress();
        if (address(_pools[jobId].token) != address(0)) revert RewardTokenAlreadySet(jobId);
        _pools[jobId].token = token;
        jobCount[token] += 1;
        emit RewardTokenSet(jobId, address(token));
    }

    /// @notice Adds `amount` of the job's token (pulled from the caller) to the job's pool;
    ///         credits what actually arrived, so fee-on-transfer tokens cannot over-credit.
    function fund(bytes32 jobId, uint256 amount) external nonReentrant {
        Pool storage pool = _pools[jobId];
        IERC20 token = pool.token;
        if (address(token) == address(0)) revert NoRewardToken(jobId);
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        _setBalance(pool, _balance(pool) + received);
        emit RewardsFunded(jobId, msg.sender, received);
    }

    /// @notice A job's reward token (zero before its owner set one), its funded and unclaimed
    ///         balance, and when its announced sweep may run (0: none announced).
    function pools(bytes32 jobId) external view returns (IERC20 token, uint64 sweepAt, uint256 balance) {
        Pool storage pool = _pools[jobId];
        return (pool.token, pool.sweepAt, _balance(pool));
    }

    // ------------------------------------------------------------------ claims

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
        return _claimOne(jobId, account, cumulativeAmount, proof);
    }

    /// @notice `claim` relayed with the account's consent: `signature` is `account`'s EIP-712
    ///         `ClaimAuthorization(jobId, account, cumulativeAmount, deadline)` under this
    ///         contract's domain (an ECDSA signature of an EOA, or whatever the account's
    ///         ERC-1271 `isValidSignature` accepts). Anyone may relay it until `deadline`; the
    ///         tokens always go to `account`. The cumulative amount is the replay guard: once an
    ///         account was paid up to it, the same authorization pays nothing again.
    /// @return amount the amount paid now.
    function claimFor(
        bytes32 jobId,
        address account,
        uint256 cumulativeAmount,
        bytes32[] calldata proof,
        uint256 deadline,
        bytes calldata signature
    ) external nonReentrant returns (uint256 amount) {
        if (block.timestamp > deadline) revert AuthorizationExpired(deadline);
        bytes32 digest = claimAuthorizationDigest(jobId, account, cumulativeAmount, deadline);
        if (!SignatureChecker.isValidSignatureNowCalldata(account, digest, signature)) {
            revert InvalidAuthorization(account);
        }
        return _claimOne(jobId, account, cumulativeAmount, proof);
    }

    /// @notice Pays many accounts of one job in one transaction (what a relayer or the job's
    ///         owner sends after an epoch), each exactly as `claim` would. An entry whose account
    ///         was already paid its cumulative amount is skipped, so a claim sent meanwhile
    ///         cannot make the batch fail; any other bad entry (a proof that does not open the
    ///         claimable root, a pool short of the batch's total) reverts the whole batch.
    /// @return total the amount paid to all accounts together.
    function claimMany(
        bytes32 jobId,
        address[] calldata accounts,
        uint256[] calldata cumulativeAmounts,
        bytes32[][] calldata proofs
    ) external nonReentrant returns (uint256 total) {
        uint256 n = accounts.length;
        if (cumulativeAmounts.length != n || proofs.length != n) {
            revert LengthMismatch(n, cumulativeAmounts.length, proofs.length);
        }
        (uint64 epoch, bytes32 root) = _claimableRoot(jobId);
        mapping(address => uint256) storage paidTo = claimed[jobId];
        uint256[] memory amounts = new uint256[](n);
        for (uint256 i = 0; i < n; ++i) {
            address account = accounts[i];
            uint256 cumulativeAmount = cumulativeAmounts[i];
            uint256 paid = paidTo[account];
            if (cumulativeAmount <= paid) continue;
            if (!MerkleProof.verifyCalldata(proofs[i], root, _leaf(account, cumulativeAmount))) {
                revert InvalidProofAt(i);
            }
            uint256 amount = cumulativeAmount - paid;
            paidTo[account] = cumulativeAmount;
            amounts[i] = amount;
            total += amount;
            emit Claimed(jobId, epoch, account, amount, cumulativeAmount);
        }
        Pool storage pool = _pools[jobId];
        IERC20 token = _debit(pool, total);
        for (uint256 i = 0; i < n; ++i) {
            if (amounts[i] != 0) token.safeTransfer(accounts[i], amounts[i]);
        }
    }

    /// @notice The EIP-712 digest an account signs to authorize `claimFor`.
    function claimAuthorizationDigest(bytes32 jobId, address account, uint256 cumulativeAmount, uint256 deadline)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(CLAIM_AUTHORIZATION_TYPEHASH, jobId, account, cumulativeAmount, deadline))
        );
    }

    /// @notice This contract's EIP-712 domain separator (name "VeriStream", version "1").
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    function _claimOne(bytes32 jobId, address account, uint256 cumulativeAmount, bytes32[] calldata proof)
        internal
        returns (uint256 amount)
    {
        (uint64 epoch, bytes32 root) = _claimableRoot(jobId);
        if (!MerkleProof.verifyCalldata(proof, root, _leaf(account, cumulativeAmount))) revert InvalidProof();
        uint256 paid = claimed[jobId][account];
        if (cumulativeAmount <= paid) revert NothingToClaim(cumulativeAmount, paid);
        amount = cumulativeAmount - paid;
        claimed[jobId][account] = cumulativeAmount;
        IERC20 token = _debit(_pools[jobId], amount);
        emit Claimed(jobId, epoch, account, amount, cumulativeAmount);
        token.safeTransfer(account, amount);
    }

    function _claimableRoot(bytes32 jobId) internal view returns (uint64 epoch, bytes32 root) {
        bool found;
        (found, epoch, root) = verifier.claimableRoot(jobId);
        if (!found) revert NoClaimableRoot(jobId);
    }

    /// @dev Double hashing keeps the 64-byte leaf preimage apart from internal nodes' pairs.
    function _leaf(address account, uint256 cumulativeAmount) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(account, cumulativeAmount))));
    }

    /// @dev Takes `amount` out of `pool` (reverting when it holds less) and returns its token.
    function _debit(Pool storage pool, uint256 amount) internal returns (IERC20 token) {
        token = pool.token;
        uint96 low = pool.low;
        if (amount <= low) {
            pool.low = low - uint96(amount);
        } else {
            uint256 balance = _balance(pool);
            if (amount > balance) revert InsufficientFunding(amount, balance);
            _setBalance(pool, balance - amount);
        }
    }

    function _balance(Pool storage pool) internal view returns (uint256) {
        return (uint256(pool.high) << 96) | pool.low;
    }

    function _setBalance(Pool storage pool, uint256 balance) internal {
        pool.low = uint96(balance);
        pool.high = uint192(balance >> 96);
    }

    // ------------------------------------------------------------------ ways out

    /// @notice Announces that the job's owner will sweep the pool's remainder `SWEEP_DELAY` from
    ///         now; allowed once `CLAIM_WINDOW` has passed since the job's last verified epoch.
    function announceSweep(bytes32 jobId) external onlyJobOwner(jobId) {
        (,, uint64 since) = verifier.lastActivity(jobId);
        uint64 closes = since + CLAIM_WINDOW;
        if (block.timestamp < closes) revert ClaimWindowOpen(jobId, closes);
        Pool storage pool = _pools[jobId];
        uint64 executableAt = uint64(block.timestamp) + SWEEP_DELAY;
        pool.sweepAt = executableAt;
        emit SweepAnnounced(jobId, executableAt, _balance(pool));
    }

    /// @notice Sends the pool's remainder to `to` once the announced sweep is due. A newly
    ///         verified epoch since the announcement cancels it (its contributors must be able
    ///         to claim for a whole window again).
    function sweep(bytes32 jobId, address to) external onlyJobOwner(jobId) nonReentrant {
        if (to == address(0)) revert ZeroAddress();
        Pool storage pool = _pools[jobId];
        uint64 executableAt = pool.sweepAt;
        if (executableAt == 0) revert SweepNotAnnounced(jobId);
        if (block.timestamp < executableAt) revert SweepNotDue(jobId, executableAt);
        (,, uint64 since) = verifier.lastActivity(jobId);
        pool.sweepAt = 0;
        if (block.timestamp < since + CLAIM_WINDOW) {
            emit SweepCancelled(jobId);
            return;
        }
        uint256 amount = _balance(pool);
        _setBalance(pool, 0);
        emit Swept(jobId, to, amount);
        pool.token.safeTransfer(to, amount);
    }

    /// @notice Lets the job's owner leave: withdraws `amount` of the pool to `to` while the job's
    ///         operator set has a change the job did not accept (for a job that follows its set,
    ///         while a change is scheduled and not yet in force: within the registry's delay).
    function withdrawOnSetChange(bytes32 jobId, address to, uint256 amount) external onlyJobOwner(jobId) nonReentrant {
        if (to == address(0)) revert ZeroAddress();
        if (!verifier.setChangePending(jobId)) revert NoUnacceptedSetChange(jobId);
        IERC20 token = _debit(_pools[jobId], amount);
        emit WithdrawnOnSetChange(jobId, to, amount);
        token.safeTransfer(to, amount);
    }

    /// @notice Returns tokens that reached this contract outside `fund` (they belong to no pool).
    ///         Claims keep no per-token total, so the caller names every job paying in `token`
    ///         (`jobIds` ascending, as many as `jobCount(token)`; the `RewardTokenSet` events list
    ///         them) and what the contract holds above their pools is returned.
    function recoverUnaccounted(IERC20 token, address to, bytes32[] calldata jobIds) external onlyOwner nonReentrant {
        if (to == address(0)) revert ZeroAddress();
        uint256 expected = jobCount[token];
        if (jobIds.length != expected) revert JobListIncomplete(jobIds.length, expected);
        uint256 pooled;
        bytes32 previous;
        for (uint256 i = 0; i < jobIds.length; ++i) {
            bytes32 jobId = jobIds[i];
            // ascending ids are distinct: with the count, every job paying in the token is named once
            if ((i != 0 && jobId <= previous) || _pools[jobId].token != token) revert JobListInvalid(i);
            pooled += _balance(_pools[jobId]);
            previous = jobId;
        }
        uint256 held = token.balanceOf(address(this));
        if (held < pooled) revert PoolsExceedBalance(pooled, held);
        uint256 amount = held - pooled;
        emit UnaccountedRecovered(address(token), to, amount);
        token.safeTransfer(to, amount);
    }
}

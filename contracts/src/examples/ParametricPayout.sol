// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EpochVerifier} from "../EpochVerifier.sol";

/// @title ParametricPayout
/// @notice Parametric insurance on verified DePIN data: IF a named device's aggregate of a named
///         field, in an epoch the committee verified within the policy's range, crosses the
///         policy's threshold AND its Merkle proof opens the epoch's aggregates root, THEN the
///         policy pays its holder, once.
/// @dev An insurer creates and funds a policy in an ERC-20. Anyone may trigger the payout (it
///      always goes to the holder) with the aggregate leaf as the pipeline encoded it,
///      `abi.encode(address device, string field, uint64 count, int256 min, int256 max, int256 sum,
///      uint8[] quantilePercents, int256[] quantileValues)`, and its proof; the leaf is proven
///      through `EpochVerifier.verifyAggregate` before it is decoded. After `claimDeadline` an
///      unpaid policy's funds go back to the insurer.
///      Trust: a policy trusts the job's operator set as the EpochVerifier does. It pays on an
///      epoch as soon as that epoch is verified, with no dispute delay (unlike a reward root,
///      which a RewardDistributor claim reads only once it is claimable): a quorum that signs
///      false aggregates can trigger it. What stops that is the job's guardian: while the
///      EpochVerifier says the job is paused, no policy on it pays, whatever epoch is presented,
///      so a disputed quorum cannot sign a false aggregate after the pause and be paid in the
///      same transaction. The claim deadline leaves the holder at least `MIN_CLAIM_PERIOD`
///      after the last epoch's submission window closes; a pause that outlasts it lets the
///      insurer expire the policy.
contract ParametricPayout {
    using SafeERC20 for IERC20;

    /// @notice Which statistic of the aggregate is compared with the threshold.
    enum Trigger {
        MaxAbove, // pays when max > threshold (heat, flood level, PM2.5 peak)
        MinBelow // pays when min < threshold (frost, outage)
    }

    /// @notice Open until paid once or expired.
    enum Status {
        None,
        Open,
        Paid,
        Expired
    }

    /// @notice What an insurer chooses when creating a policy.
    struct Terms {
        address holder; // who is paid
        IERC20 token;
        uint256 amount; // paid once, pulled from the insurer at creation
        bytes32 jobId; // the EpochVerifier job whose verified aggregates decide
        address device;
        string field;
        Trigger trigger;
        int256 threshold;
        uint64 firstEpoch; // inclusive range of epochs that count
        uint64 lastEpoch;
        uint64 claimDeadline; // after it, an unpaid policy can be expired; at least MIN_CLAIM_PERIOD after the last epoch's submission window closes
    }

    /// @notice A policy as stored: the terms, the insurer and where it stands.
    struct Policy {
        address insurer;
        Status status;
        uint64 firstEpoch;
        uint64 lastEpoch;
        address holder;
        uint64 claimDeadline;
        Trigger trigger;
        IERC20 token;
        address device;
        uint256 amount;
        bytes32 jobId;
        bytes32 fieldHash; // keccak256(bytes(field))
        int256 threshold;
    }

    /// @notice The least time a holder has to claim after the last epoch's submission window
    ///         closes: the result of the last epoch may arrive at the window's last second.
    uint64 public constant MIN_CLAIM_PERIOD = 1 days;

    /// @notice The EpochVerifier whose verified aggregates roots decide every policy.
    EpochVerifier public immutable verifier;

    /// @notice Policies by id (ids start at 1).
    mapping(uint256 policyId => Policy) public policies;
    /// @notice The number of policies created (the last id).
    uint256 public policyCount;

    /// @notice An insurer created and funded a policy.
    event PolicyCreated(
        uint256 indexed policyId,
        address indexed insurer,
        address indexed holder,
        bytes32 jobId,
        address device,
        string field,
        Trigger trigger,
        int256 threshold,
        uint64 firstEpoch,
        uint64 lastEpoch,
        uint64 claimDeadline,
        IERC20 token,
        uint256 amount
    );
    /// @notice The condition held in `epoch`: `value` (the compared statistic) crossed the threshold.
    event PolicyPaid(uint256 indexed policyId, address indexed holder, uint64 epoch, int256 value, uint256 amount);
    /// @notice An unpaid policy's funds went back to its insurer after its claim deadline.
    event PolicyExpired(uint256 indexed policyId, address indexed insurer, uint256 amount);

    error InvalidTerms();
    error TokenAmountNotReceived(uint256 expected, uint256 received);
    error PolicyNotOpen(uint256 policyId, Status status);
    error EpochOutOfRange(uint256 policyId, uint64 epoch);
    error EpochNotVerified(bytes32 jobId, uint64 epoch);
    error AggregateNotProven(bytes32 jobId, uint64 epoch);
    error WrongDevice(address expected, address device);
    error WrongField(bytes32 expectedHash, string field);
    error ConditionNotMet(int256 value, int256 threshold);
    error ClaimWindowClosed(uint256 policyId, uint64 claimDeadline);
    error ClaimWindowOpen(uint256 policyId, uint64 claimDeadline);
    error JobPaused(bytes32 jobId);

    constructor(EpochVerifier verifier_) {
        verifier = verifier_;
    }

    /// @notice Creates a policy on `t` and pulls its `amount` of `token` from the caller (who
    ///         approved it), the insurer.
    /// @dev The deadline must leave the holder the whole submission window of the last epoch
    ///      and `MIN_CLAIM_PERIOD` after it.
    /// @return policyId the new policy's id.
    function createPolicy(Terms calldata t) external returns (uint256 policyId) {
        if (
            t.holder == address(0) || address(t.token) == address(0) || t.amount == 0 || t.device == address(0)
                || bytes(t.field).length == 0 || t.firstEpoch > t.lastEpoch
        ) revert InvalidTerms();
        (, uint64 closesAt) = verifier.submissionWindow(t.jobId, t.lastEpoch); // reverts UnknownJob
        if (uint256(t.claimDeadline) < uint256(closesAt) + MIN_CLAIM_PERIOD) revert InvalidTerms();

        policyId = ++policyCount;
        policies[policyId] = Policy({
            insurer: msg.sender,
            status: Status.Open,
            firstEpoch: t.firstEpoch,
            lastEpoch: t.lastEpoch,
            holder: t.holder,
            claimDeadline: t.claimDeadline,
            trigger: t.trigger,
            token: t.token,
            device: t.device,
            amount: t.amount,
            jobId: t.jobId,
            fieldHash: keccak256(bytes(t.field)),
            threshold: t.threshold
        });
        emit PolicyCreated(
            policyId,
            msg.sender,
            t.holder,
            t.jobId,
            t.device,
            t.field,
            t.trigger,
            t.threshold,
            t.firstEpoch,
            t.lastEpoch,
            t.claimDeadline,
            t.token,
            t.amount
        );
        // A token that takes a fee or rebases would leave the policy short: refuse it.
        uint256 before = t.token.balanceOf(address(this));
        t.token.safeTransferFrom(msg.sender, address(this), t.amount);
        uint256 received = t.token.balanceOf(address(this)) - before;
        if (received != t.amount) revert TokenAmountNotReceived(t.amount, received);
    }

    /// @notice Pays policy `policyId` to its holder when the aggregate `encodedLeaf` of
    ///         verified `epoch` proves the condition. Anyone may call. Reverts `JobPaused` while
    ///         the job's guardian (or owner) holds it paused in the EpochVerifier.
    /// @param encodedLeaf the aggregate leaf's ABI encoding (see the contract's description).
    /// @param proof the leaf's StandardMerkleTree proof in the epoch's aggregates tree.
    function claim(uint256 policyId, uint64 epoch, bytes calldata encodedLeaf, bytes32[] calldata proof) external {
        Policy storage p = policies[policyId];
        // CHECKS
        if (p.status != Status.Open) revert PolicyNotOpen(policyId, p.status);
        if (block.timestamp > p.claimDeadline) revert ClaimWindowClosed(policyId, p.claimDeadline);
        if (epoch < p.firstEpoch || epoch > p.lastEpoch) revert EpochOutOfRange(policyId, epoch);
        bytes32 jobId = p.jobId;
        (,,,,,, bool paused,,,,,) = verifier.jobs(jobId);
        if (paused) revert JobPaused(jobId);
        (bool verified,,,,) = verifier.epochResult(jobId, epoch);
        if (!verified) revert EpochNotVerified(jobId, epoch);
        if (!verifier.verifyAggregate(jobId, epoch, encodedLeaf, proof)) revert AggregateNotProven(jobId, epoch);
        (address device, string memory field,, int256 min, int256 max,,,) =
            abi.decode(encodedLeaf, (address, string, uint64, int256, int256, int256, uint8[], int256[]));
        if (device != p.device) revert WrongDevice(p.device, device);
        if (keccak256(bytes(field)) != p.fieldHash) revert WrongField(p.fieldHash, field);
        int256 value = p.trigger == Trigger.MaxAbove ? max : min;
        bool met = p.trigger == Trigger.MaxAbove ? value > p.threshold : value < p.threshold;
        if (!met) revert ConditionNotMet(value, p.threshold);
        // EFFECTS
        p.status = Status.Paid;
        address holder = p.holder;
        uint256 amount = p.amount;
        emit PolicyPaid(policyId, holder, epoch, value, amount);
        // INTERACTIONS
        p.token.safeTransfer(holder, amount);
    }

    /// @notice Returns an unpaid policy's funds to its insurer once its claim deadline passed.
    ///         Anyone may call (the funds only go back to the insurer).
    function expire(uint256 policyId) external {
        Policy storage p = policies[policyId];
        if (p.status != Status.Open) revert PolicyNotOpen(policyId, p.status);
        if (block.timestamp <= p.claimDeadline) revert ClaimWindowOpen(policyId, p.claimDeadline);
        p.status = Status.Expired;
        address insurer = p.insurer;
        uint256 amount = p.amount;
        emit PolicyExpired(policyId, insurer, amount);
        p.token.safeTransfer(insurer, amount);
    }
}

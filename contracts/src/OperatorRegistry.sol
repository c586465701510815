// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {BN254} from "./BN254.sol";
import {BLS12381} from "./BLS12381.sol";

/// @title OperatorRegistry
/// @notice Operator sets of BLS keys (bn254 or bls12381) with weights and a history, so each
///         epoch is verified against the set in force when it started.
/// @dev Every change is scheduled `activationDelay` seconds ahead and recorded as a checkpoint
///      (the delay is the timelock: each change is announced by its event and takes effect
///      `activationDelay` later); a set keeps its running aggregate G1 key, so a signature check
///      subtracts the few non-signers instead of reading every signer's key (EigenLayer's
///      BLSSignatureChecker idea). Up to 256 operators per set, addressed by slot (the bit of
///      the signer bitmap). A proof of possession signs `keyRegistrationDigest`, an EIP-712
///      digest of (chain id, registry, set id, operator, key), so it registers that key for that
///      operator in that set of this registry only (EigenLayer's BLSApkRegistry binds its PoP so).
contract OperatorRegistry is Ownable2Step, EIP712 {
    // Internal, like the EIP-712 type hash: each public getter is one more selector compared
    // before signerAggregate's in the dispatcher (its gas is EpochVerifier's hot path).
    uint8 internal constant SCHEME_BN254 = 1;
    uint8 internal constant SCHEME_BLS12381 = 2;
    uint256 internal constant MAX_OPERATORS = 256;
    /// @notice The shortest `activationDelay` outside development chains: time for operators and
    ///         job submitters to see a scheduled change (its event) and react before it applies.
    uint64 public constant MIN_ACTIVATION_DELAY = 2 days;
    /// @dev EIP-712 type of the message a proof of possession signs; `pubkeyHash` is the
    ///      keccak256 of the G1 key exactly as passed (64 bytes bn254, 128 bytes bls12381).
    bytes32 internal constant OPERATOR_KEY_TYPEHASH =
        keccak256("OperatorKey(uint32 setId,address operator,bytes32 pubkeyHash)");

    bytes internal constant BN254_POP_DST = "VERISTREAM-BLS-BN254-POP-V2";

    /// @notice The state of a set from `effectiveFrom` on.
    struct SetCheckpoint {
        uint64 effectiveFrom;
        uint96 totalWeight;
        uint16 operatorCount;
        uint256 members; // bit i set: slot i is an operator of the set
        bytes32[4] apk; // aggregate G1 key of the members (bn254 uses words 0..1)
        uint96 maxWeight; // the largest member weight (appended: signerAggregate never reads it)
    }

    /// @notice The occupant of a slot from `effectiveFrom` on.
    struct SlotCheckpoint {
        uint64 effectiveFrom;
        uint96 weight;
        address operator;
        bytes32[4] key; // G1 key (bn254 uses words 0..1)
    }

    struct Operator {
        bool active;
        uint8 slot;
    }

    /// @notice Seconds between a change and the moment it takes effect: at least
    ///         `MIN_ACTIVATION_DELAY`, or one second on a development chain (`isLocalDevelopmentChain`).
    uint64 public immutable activationDelay;
    /// @notice Number of sets created; set ids are 1..setCount.
    uint32 public setCount;

    /// @notice The scheme of a set (1 = bn254, 2 = bls12381; 0 = no such set).
    mapping(uint32 setId => uint8) public schemeOf;
    mapping(uint32 setId => SetCheckpoint[]) internal _history;
    mapping(uint32 setId => mapping(uint256 slot => SlotCheckpoint[])) internal _slots;
    /// @notice Whether an account is (or is scheduled to become) an operator of a set, and its slot.
    mapping(uint32 setId => mapping(address operator => Operator)) public operators;
    mapping(uint32 setId => uint16) internal _nextSlot;
    mapping(uint32 setId => uint8[]) internal _freeSlots;
    /// @notice keccak256 of every G1 key ever registered (its four words): a key serves one
    ///         operator once, and a key whose negation was registered is refused, so no two keys
    ///         of this registry sum to the point at infinity.
    mapping(bytes32 keyHash => bool) public keyUsed;

    event OperatorSetCreated(uint32 indexed setId, uint8 scheme);
    /// @notice `pubkeyG2` is bn254's G2 key of the same secret (empty for bls12381), so the
    ///         signers' G2 aggregate can be rebuilt from chain data alone.
    event OperatorRegistered(
        uint32 indexed setId,
        address indexed operator,
        uint8 slot,
        uint96 weight,
        bytes pubkey,
        bytes pubkeyG2,
        uint64 effectiveFrom
    );
    event OperatorKeyRotated(
        uint32 indexed setId, address indexed operator, uint8 slot, bytes pubkey, bytes pubkeyG2, uint64 effectiveFrom
    );
    event OperatorWeightChanged(
        uint32 indexed setId, address indexed operator, uint8 slot, uint96 weight, uint64 effectiveFrom
    );
    event OperatorRemoved(uint32 indexed setId, address indexed operator, uint8 slot, uint64 effectiveFrom);

    error UnknownScheme(uint8 scheme);
    error UnknownOperatorSet(uint32 setId);
    error OperatorSetFull(uint32 setId);
    error OperatorAlreadyRegistered(uint32 setId, address operator);
    error UnknownOperator(uint32 setId, address operator);
    error ZeroWeight();
    error ZeroAddress();
    error ActivationDelayTooShort(uint64 delay, uint64 minimum);
    error InvalidKeyLength(uint256 length);
    error KeyAlreadyUsed(bytes32 keyHash);
    error NegatedKeyAlreadyUsed(bytes32 negatedKeyHash);
    error RenounceOwnershipDisabled();
    error InvalidProofOfPossession();
    error NoOperatorSetAt(uint32 setId, uint64 timestamp);
    error SignerNotInSet(uint256 bitmap);

    /// @param activationDelay_ seconds from a change to its effect: at least `MIN_ACTIVATION_DELAY`,
    ///        or at least one second on a development chain.
    constructor(address initialOwner, uint64 activationDelay_) Ownable(initialOwner) EIP712("VeriStream", "1") {
        uint64 minimum = isLocalDevelopmentChain() ? 1 : MIN_ACTIVATION_DELAY;
        if (activationDelay_ < minimum) revert ActivationDelayTooShort(activationDelay_, minimum);
        activationDelay = activationDelay_;
    }

    /// @notice Whether this chain is a local development chain (anvil/Hardhat 31337, 1337, the
    ///         embedded eth-tester EVM 131277322940537), where `activationDelay` may be one second.
    function isLocalDevelopmentChain() public view returns (bool) {
        return block.chainid == 31337 || block.chainid == 1337 || block.chainid == 131277322940537;
    }

    /// @notice Always reverts: a registry without an owner could never change its operator sets.
    function renounceOwnership() public pure override {
        revert RenounceOwnershipDisabled();
    }

    // ------------------------------------------------------------------ governance

    /// @notice Creates an empty operator set for `scheme` (1 = bn254, 2 = bls12381).
    /// @return setId the new set's id.
    function createOperatorSet(uint8 scheme) external onlyOwner returns (uint32 setId) {
        if (scheme != SCHEME_BN254 && scheme != SCHEME_BLS12381) revert UnknownScheme(scheme);
        setId = ++setCount;
        schemeOf[setId] = scheme;
        emit OperatorSetCreated(setId, scheme);
    }

    /// @notice Adds `operator` with its BLS key and `weight`, effective `activationDelay` from now.
    /// @param pubkey G1 key: 64 bytes (bn254) or 128 bytes (bls12381, EIP-2537).
    /// @param pubkeyG2 bn254 only: the same secret's G2 key (128 bytes, EIP-197 order); empty for bls12381.
    /// @param pop proof of possession over `keyRegistrationDigest(setId, operator, pubkey)`: bn254
    ///        sk*H_G1(digest) under "VERISTREAM-BLS-BN254-POP-V2" (64 bytes); bls12381 the BLS
    ///        signature of the digest under the ciphersuite's POP tag, EIP-2537 G2 (256 bytes).
    function registerOperator(
        uint32 setId,
        address operator,
        uint96 weight,
        bytes calldata pubkey,
        bytes calldata pubkeyG2,
        bytes calldata pop
    ) external onlyOwner {
        uint8 scheme = _scheme(setId);
        if (operator == address(0)) revert ZeroAddress();
        if (weight == 0) revert ZeroWeight();
        if (operators[setId][operator].active) revert OperatorAlreadyRegistered(setId, operator);
        bytes32[4] memory key = _checkKey(scheme, _keyRegistrationDigest(setId, operator, pubkey), pubkey, pubkeyG2, pop);
        (uint8 slot, uint64 effectiveFrom) = _admit(setId, scheme, operator, weight, key);
        emit OperatorRegistered(setId, operator, slot, weight, pubkey, pubkeyG2, effectiveFrom);
    }

    function _admit(uint32 setId, uint8 scheme, address operator, uint96 weight, bytes32[4] memory key)
        internal
        returns (uint8 slot, uint64 effectiveFrom)
    {
        slot = _takeSlot(setId);
        operators[setId][operator] = Operator({active: true, slot: slot});
        effectiveFrom = _effectiveFrom();
        _writeSlot(setId, slot, effectiveFrom, weight, operator, key);
        SetCheckpoint storage cp = _pendingCheckpoint(setId, effectiveFrom);
        cp.apk = _g1Add(scheme, cp.apk, key);
        cp.members |= uint256(1) << slot;
        cp.totalWeight += weight;
        cp.operatorCount += 1;
        if (weight > cp.maxWeight) cp.maxWeight = weight;
    }

    /// @notice Changes an operator's weight, effective `activationDelay` from now.
    function setOperatorWeight(uint32 setId, address operator, uint96 weight) external onlyOwner {
        _scheme(setId);
        if (weight == 0) revert ZeroWeight();
        Operator memory op = _operator(setId, operator);
        uint64 effectiveFrom = _effectiveFrom();
        SlotCheckpoint storage last = _lastSlot(setId, op.slot);
        uint96 old = last.weight;
        _writeSlot(setId, op.slot, effectiveFrom, weight, operator, last.key);
        SetCheckpoint storage cp = _pendingCheckpoint(setId, effectiveFrom);
        cp.totalWeight = cp.totalWeight - old + weight;
        if (weight >= cp.maxWeight) cp.maxWeight = weight;
        else if (old == cp.maxWeight) cp.maxWeight = _maxMemberWeight(setId, cp.members);
        emit OperatorWeightChanged(setId, operator, op.slot, weight, effectiveFrom);
    }

    /// @notice Removes an operator, effective `activationDelay` from now; epochs that started
    ///         earlier still count its signature, later ones reject it.
    function removeOperator(uint32 setId, address operator) external onlyOwner {
        uint8 scheme = _scheme(setId);
        Operator memory op = _operator(setId, operator);
        uint64 effectiveFrom = _effectiveFrom();
        SlotCheckpoint storage last = _lastSlot(setId, op.slot);
        SetCheckpoint storage cp = _pendingCheckpoint(setId, effectiveFrom);
        cp.apk = _g1Sub(scheme, cp.apk, last.key);
        cp.members &= ~(uint256(1) << op.slot);
        cp.totalWeight -= last.weight;
        cp.operatorCount -= 1;
        if (last.weight == cp.maxWeight) cp.maxWeight = _maxMemberWeight(setId, cp.members);
        delete operators[setId][operator];
        _freeSlots[setId].push(op.slot);
        emit OperatorRemoved(setId, operator, op.slot, effectiveFrom);
    }

    /// @notice Replaces the caller's key, keeping its slot and weight, effective `activationDelay`
    ///         from now; `pop` signs `keyRegistrationDigest(setId, msg.sender, pubkey)`.
    function rotateKey(uint32 setId, bytes calldata pubkey, bytes calldata pubkeyG2, bytes calldata pop) external {
        uint8 scheme = _scheme(setId);
        Operator memory op = _operator(setId, msg.sender);
        bytes32[4] memory key =
            _checkKey(scheme, _keyRegistrationDigest(setId, msg.sender, pubkey), pubkey, pubkeyG2, pop);
        uint64 effectiveFrom = _replaceKey(setId, scheme, op.slot, key);
        emit OperatorKeyRotated(setId, msg.sender, op.slot, pubkey, pubkeyG2, effectiveFrom);
    }

    function _replaceKey(uint32 setId, uint8 scheme, uint8 slot, bytes32[4] memory key)
        internal
        returns (uint64 effectiveFrom)
    {
        effectiveFrom = _effectiveFrom();
        SlotCheckpoint storage last = _lastSlot(setId, slot);
        bytes32[4] memory oldKey = last.key;
        _writeSlot(setId, slot, effectiveFrom, last.weight, msg.sender, key);
        SetCheckpoint storage cp = _pendingCheckpoint(setId, effectiveFrom);
        cp.apk = _g1Add(scheme, _g1Sub(scheme, cp.apk, oldKey), key);
    }

    // ------------------------------------------------------------------ views

    /// @notice The aggregate G1 key and weight of the signers named by `signerBitmap` in the set
    ///         as it was at `timestamp`: the set's aggregate minus each non-signer's key.
    /// @return scheme the set's scheme.
    /// @return apk the signers' aggregate G1 key (64 or 128 bytes).
    /// @return signedWeight the signers' total weight.
    /// @return totalWeight the set's total weight.
    function signerAggregate(uint32 setId, uint64 timestamp, uint256 signerBitmap)
        external
        view
        returns (uint8 scheme, bytes memory apk, uint96 signedWeight, uint96 totalWeight)
    {
        scheme = _scheme(setId);
        SetCheckpoint storage cp = _checkpointAt(setId, timestamp);
        uint256 members = cp.members;
        if (signerBitmap & ~members != 0) revert SignerNotInSet(signerBitmap & ~members);
        totalWeight = cp.totalWeight;
        signedWeight = totalWeight;
        bytes32[4] memory agg;
        agg[0] = cp.apk[0];
        agg[1] = cp.apk[1];
        if (scheme != SCHEME_BN254) {
            agg[2] = cp.apk[2];
            agg[3] = cp.apk[3];
        }
        uint256 absent = members & ~signerBitmap;
        while (absent != 0) {
            uint256 slot = Math.log2(absent);
            absent &= ~(uint256(1) << slot);
            SlotCheckpoint storage s = _slotAt(setId, slot, timestamp);
            signedWeight -= s.weight;
            agg = _g1Sub(scheme, agg, _storedKey(scheme, s));
        }
        apk = scheme == SCHEME_BN254 ? abi.encodePacked(agg[0], agg[1]) : BLS12381.g1Bytes(agg);
    }

    /// @notice The set as it was at `timestamp`: members bitmap, operator count, total weight.
    function setAt(uint32 setId, uint64 timestamp)
        external
        view
        returns (uint256 members, uint16 operatorCount, uint96 totalWeight, uint64 effectiveFrom)
    {
        _scheme(setId);
        SetCheckpoint storage cp = _checkpointAt(setId, timestamp);
        return (cp.members, cp.operatorCount, cp.totalWeight, cp.effectiveFrom);
    }

    /// @notice The occupant of `slot` at `timestamp`: operator, weight and G1 key.
    function slotAt(uint32 setId, uint256 slot, uint64 timestamp)
        external
        view
        returns (address operator, uint96 weight, bytes memory pubkey)
    {
        uint8 scheme = _scheme(setId);
        SlotCheckpoint storage s = _slotAt(setId, slot, timestamp);
        pubkey = scheme == SCHEME_BN254 ? abi.encodePacked(s.key[0], s.key[1]) : BLS12381.g1Bytes(s.key);
        return (s.operator, s.weight, pubkey);
    }

    /// @notice Number of checkpoints (changes) of a set.
    function checkpointCount(uint32 setId) external view returns (uint256) {
        return _history[setId].length;
    }

    /// @notice The index in the set's history of the checkpoint in force at `timestamp`
    ///         (0 = the first); with `checkpointCount` a caller can pin a prefix of the history.
    function checkpointIndexAt(uint32 setId, uint64 timestamp) external view returns (uint256) {
        _scheme(setId);
        return _checkpointIndexAt(setId, timestamp);
    }

    /// @notice The largest single operator weight in the set at `timestamp`.
    function maxWeightAt(uint32 setId, uint64 timestamp) external view returns (uint96) {
        _scheme(setId);
        return _checkpointAt(setId, timestamp).maxWeight;
    }

    /// @notice The EIP-712 digest a proof of possession signs to register `pubkey` (the G1 key as
    ///         passed: 64 bytes bn254, 128 bytes bls12381) for `operator` in set `setId`: domain
    ///         {name "VeriStream", version "1", chainId, verifyingContract = this registry}, type
    ///         `OperatorKey(uint32 setId,address operator,bytes32 pubkeyHash)`, pubkeyHash = keccak256(pubkey).
    function keyRegistrationDigest(uint32 setId, address operator, bytes calldata pubkey)
        external
        view
        returns (bytes32)
    {
        return _keyRegistrationDigest(setId, operator, pubkey);
    }

    // ------------------------------------------------------------------ internals

    function _scheme(uint32 setId) internal view returns (uint8 scheme) {
        scheme = schemeOf[setId];
        if (scheme == 0) revert UnknownOperatorSet(setId);
    }

    function _keyRegistrationDigest(uint32 setId, address operator, bytes calldata pubkey)
        internal
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(OPERATOR_KEY_TYPEHASH, setId, operator, keccak256(pubkey))));
    }

    function _operator(uint32 setId, address operator) internal view returns (Operator memory op) {
        op = operators[setId][operator];
        if (!op.active) revert UnknownOperator(setId, operator);
    }

    function _effectiveFrom() internal view returns (uint64) {
        return uint64(block.timestamp) + activationDelay;
    }

    function _takeSlot(uint32 setId) internal returns (uint8) {
        uint8[] storage free = _freeSlots[setId];
        if (free.length > 0) {
            uint8 slot = free[free.length - 1];
            free.pop();
            return slot;
        }
        uint16 next = _nextSlot[setId];
        if (next >= MAX_OPERATORS) revert OperatorSetFull(setId);
        _nextSlot[setId] = next + 1;
        return uint8(next);
    }

    /// @dev The checkpoint that starts at `effectiveFrom`, created as a copy of the latest one.
    ///      A checkpoint starting in the future has served no epoch yet, so it may be edited.
    function _pendingCheckpoint(uint32 setId, uint64 effectiveFrom) internal returns (SetCheckpoint storage cp) {
        SetCheckpoint[] storage history = _history[setId];
        uint256 n = history.length;
        if (n > 0 && history[n - 1].effectiveFrom == effectiveFrom) return history[n - 1];
        cp = history.push();
        cp.effectiveFrom = effectiveFrom;
        if (n > 0) {
            SetCheckpoint storage prev = history[n - 1];
            cp.totalWeight = prev.totalWeight;
            cp.operatorCount = prev.operatorCount;
            cp.members = prev.members;
            cp.apk = prev.apk;
            cp.maxWeight = prev.maxWeight;
        }
    }

    /// @dev The largest latest weight among `members` (at most 256 slot reads; only after the
    ///      largest weight decreased or left).
    function _maxMemberWeight(uint32 setId, uint256 members) internal view returns (uint96 maxWeight) {
        // A plain shift, not signerAggregate's Math.log2: a second call site would make the
        // optimizer stop inlining log2 in signerAggregate's loop.
        for (uint256 slot = 0; members != 0; ++slot) {
            if (members & 1 != 0) {
                uint96 weight = _lastSlot(setId, slot).weight;
                if (weight > maxWeight) maxWeight = weight;
            }
            members >>= 1;
        }
    }

    function _writeSlot(
        uint32 setId,
        uint256 slot,
        uint64 effectiveFrom,
        uint96 weight,
        address operator,
        bytes32[4] memory key
    ) internal {
        SlotCheckpoint[] storage hist = _slots[setId][slot];
        uint256 n = hist.length;
        SlotCheckpoint storage s =
            (n > 0 && hist[n - 1].effectiveFrom == effectiveFrom) ? hist[n - 1] : hist.push();
        s.effectiveFrom = effectiveFrom;
        s.weight = weight;
        s.operator = operator;
        s.key = key;
    }

    /// @dev A slot's key; bn254 keys use two of the four words, so only those are read.
    function _storedKey(uint8 scheme, SlotCheckpoint storage s) internal view returns (bytes32[4] memory key) {
        key[0] = s.key[0];
        key[1] = s.key[1];
        if (scheme != SCHEME_BN254) {
            key[2] = s.key[2];
            key[3] = s.key[3];
        }
    }

    function _lastSlot(uint32 setId, uint256 slot) internal view returns (SlotCheckpoint storage) {
        SlotCheckpoint[] storage hist = _slots[setId][slot];
        return hist[hist.length - 1];
    }

    function _checkpointAt(uint32 setId, uint64 timestamp) internal view returns (SetCheckpoint storage) {
        SetCheckpoint[] storage history = _history[setId];
        uint256 n = history.length;
        // The newest checkpoint without an index round trip: signerAggregate's common case.
        if (n > 0 && history[n - 1].effectiveFrom <= timestamp) return history[n - 1];
        return history[_checkpointIndexAt(setId, timestamp)];
    }

    function _checkpointIndexAt(uint32 setId, uint64 timestamp) internal view returns (uint256) {
        SetCheckpoint[] storage history = _history[setId];
        uint256 n = history.length;
        // Newest first (epochs are almost always verified against the latest checkpoints),
        // then a binary search, so an old epoch costs O(log n) reads, not O(n).
        if (n > 0 && history[n - 1].effectiveFrom <= timestamp) return n - 1;
        uint256 lo = 0;
        uint256 hi = n == 0 ? 0 : n - 1; // answer in [lo, hi): the last index with effectiveFrom <= t
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            if (history[mid].effectiveFrom <= timestamp) lo = mid + 1;
            else hi = mid;
        }
        if (lo == 0) revert NoOperatorSetAt(setId, timestamp);
        return lo - 1;
    }

    function _slotAt(uint32 setId, uint256 slot, uint64 timestamp) internal view returns (SlotCheckpoint storage) {
        SlotCheckpoint[] storage hist = _slots[setId][slot];
        uint256 n = hist.length;
        if (n > 0 && hist[n - 1].effectiveFrom <= timestamp) return hist[n - 1];
        uint256 lo = 0;
        uint256 hi = n == 0 ? 0 : n - 1;
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            if (hist[mid].effectiveFrom <= timestamp) lo = mid + 1;
            else hi = mid;
        }
        if (lo == 0) revert NoOperatorSetAt(setId, timestamp);
        return hist[lo - 1];
    }

    function _g1Add(uint8 scheme, bytes32[4] memory a, bytes32[4] memory b) internal view returns (bytes32[4] memory out) {
        if (scheme == SCHEME_BN254) {
            uint256[2] memory s = BN254.add([uint256(a[0]), uint256(a[1])], [uint256(b[0]), uint256(b[1])]);
            out[0] = bytes32(s[0]);
            out[1] = bytes32(s[1]);
        } else {
            bytes memory s = BLS12381.g1Add(BLS12381.g1Bytes(a), BLS12381.g1Bytes(b));
            assembly ("memory-safe") {
                mstore(out, mload(add(s, 0x20)))
                mstore(add(out, 0x20), mload(add(s, 0x40)))
                mstore(add(out, 0x40), mload(add(s, 0x60)))
                mstore(add(out, 0x60), mload(add(s, 0x80)))
            }
        }
    }

    function _g1Sub(uint8 scheme, bytes32[4] memory a, bytes32[4] memory b) internal view returns (bytes32[4] memory) {
        if (scheme == SCHEME_BN254) {
            uint256[2] memory nb = BN254.neg([uint256(b[0]), uint256(b[1])]);
            return _g1Add(scheme, a, [bytes32(nb[0]), bytes32(nb[1]), bytes32(0), bytes32(0)]);
        }
        return _g1Add(scheme, a, BLS12381.g1Neg(b));
    }

    /// @dev Validates a key and its proof of possession over `digest` (`keyRegistrationDigest`);
    ///      refuses a key, or the negation of a key, registered before; returns the G1 key as four words.
    function _checkKey(
        uint8 scheme,
        bytes32 digest,
        bytes calldata pubkey,
        bytes calldata pubkeyG2,
        bytes calldata pop
    ) internal returns (bytes32[4] memory key) {
        bytes32[4] memory negated;
        if (scheme == SCHEME_BN254) {
            if (pubkey.length != 64) revert InvalidKeyLength(pubkey.length);
            if (pubkeyG2.length != 128) revert InvalidKeyLength(pubkeyG2.length);
            if (pop.length != 64) revert InvalidProofOfPossession();
            uint256[2] memory pk = BN254.g1FromBytes(pubkey);
            uint256[4] memory pk2 = BN254.g2FromBytes(pubkeyG2);
            uint256[2] memory sig = BN254.g1FromBytes(pop);
            if ((pk[0] == 0 && pk[1] == 0) || pk[0] >= BN254.P || pk[1] >= BN254.P) revert InvalidProofOfPossession();
            uint256[2] memory h = BN254.hashToG1(BN254_POP_DST, abi.encodePacked(digest));
            uint256 gamma = uint256(keccak256(abi.encodePacked(pubkey, pubkeyG2, pop, digest))) % BN254.R;
            // One pairing proves both that pop = sk*H(digest) and that pk, pkG2 share sk.
            if (!BN254.checkG1G2(h, sig, pk, pk2, gamma)) revert InvalidProofOfPossession();
            key[0] = bytes32(pk[0]);
            key[1] = bytes32(pk[1]);
            // -pk = (x, P - y); pk is not the point at infinity, so 0 < y < P
            negated[0] = bytes32(pk[0]);
            negated[1] = bytes32(BN254.P - pk[1]);
        } else {
            if (pubkey.length != 128) revert InvalidKeyLength(pubkey.length);
            if (pubkeyG2.length != 0) revert InvalidKeyLength(pubkeyG2.length);
            if (pop.length != 256) revert InvalidProofOfPossession();
            key = BLS12381.g1Words(pubkey);
            if (key[0] == 0 && key[1] == 0 && key[2] == 0 && key[3] == 0) revert InvalidProofOfPossession();
            bytes memory h = BLS12381.hashToG2(abi.encodePacked(digest), BLS12381.POP_DST);
            // The pairing precompile also checks that pk lies in the prime-order subgroup.
            if (!BLS12381.verifyPoint(pubkey, h, pop)) revert InvalidProofOfPossession();
            negated = BLS12381.g1Neg(key);
        }
        bytes32 keyHash = keccak256(abi.encodePacked(key[0], key[1], key[2], key[3]));
        if (keyUsed[keyHash]) revert KeyAlreadyUsed(keyHash);
        bytes32 negatedHash = keccak256(abi.encodePacked(negated[0], negated[1], negated[2], negated[3]));
        if (keyUsed[negatedHash]) revert NegatedKeyAlreadyUsed(negatedHash);
        keyUsed[keyHash] = true;
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

/// @title DeviceRegistry
/// @notice Device id -> beneficiary, status and every key the device has had, each with the
///         window of reading timestamps it signs for. Its address is the EIP-712 verifying
///         contract of device readings and of key-rotation authorizations:
///         Reading(address device,uint64 seq,uint64 timestamp,bytes32 payloadHash)
///         KeyRotation(address device,uint8 scheme,bytes32 publicKeyHash,uint32 keyVersion)
///         under {name "VeriStream", version "1", chainId, this contract}.
/// @dev Time values (key windows, revocation) are in the readings' timestamp unit
///      (milliseconds). A device's keys are numbered from 1 (its key version); their windows
///      `[effectiveFrom, effectiveUntil)` are contiguous: the first key is in force from 0, a
///      rotation ends the current key and starts the next at `block.timestamp * 1000`, and the
///      latest key's `effectiveUntil` is 0 (open). A reading is checked against the key in
///      force at its own timestamp, so rotation never changes the verdict of a reading stamped
///      before it.
///
///      Each device is also an ERC-1056 identity, `did:ethr:<chainId>:<device>`: the registry
///      answers the reads a did:ethr resolver makes (`changed`, `identityOwner`) and emits the
///      ERC-1056 events for every change of a device, so a standard resolver configured with this
///      contract as the chain's registry builds the device's DID document from the same state
///      the pipeline reads. The identity owner of every device is this registry: a resolver lists
///      the owner's account as a signer of the DID (`#controller`), and a contract never produces
///      an ecrecover signature, so only the device's own keys sign as the device. The beneficiary
///      is never the identity owner: it profits from the device and must not speak for it. Hence
///      this registry must never be a chain's general-purpose ERC-1056 registry. Signing keys
///      are attributes only this registry writes, on registration, rotation and revocation:
///      `did/pub/Secp256k1/veriKey/hex` (33-byte compressed point), `did/pub/Ed25519/veriKey/base58`
///      (32 bytes), `did/pub/P256/veriKey/hex` (33-byte compressed point), or a `veriKey` delegate
///      (the signer's address) for a secp256k1 device registered without its public key. Each is
///      valid until the second before its key's window ends (`validTo`, seconds): forever while
///      the key is current. The owner (or a manager) may publish only key-agreement keys
///      (`did/pub/X25519/enc/...`) and services (`did/svc/...`).
contract DeviceRegistry is Ownable2Step, EIP712 {
    bytes32 public constant READING_TYPEHASH =
        keccak256("Reading(address device,uint64 seq,uint64 timestamp,bytes32 payloadHash)");
    bytes32 public constant KEY_ROTATION_TYPEHASH =
        keccak256("KeyRotation(address device,uint8 scheme,bytes32 publicKeyHash,uint32 keyVersion)");

    uint8 public constant SCHEME_SECP256K1 = 1;
    uint8 public constant SCHEME_ED25519 = 2;
    uint8 public constant SCHEME_P256 = 3;

    /// @notice ERC-1056 attribute names of device signing keys, by scheme.
    bytes32 public constant ATTRIBUTE_SECP256K1 = "did/pub/Secp256k1/veriKey/hex";
    bytes32 public constant ATTRIBUTE_ED25519 = "did/pub/Ed25519/veriKey/base58";
    bytes32 public constant ATTRIBUTE_P256 = "did/pub/P256/veriKey/hex";
    /// @notice ERC-1056 delegate type of a secp256k1 device known only by its signer's address.
    bytes32 public constant DELEGATE_VERIKEY = "veriKey";
    /// @notice `validTo` of an attribute that never expires (a current key).
    uint256 public constant NO_EXPIRY = type(uint256).max;

    struct Device {
        address owner; // reward beneficiary
        uint64 revokedFrom; // 0: not revoked; else readings with timestamp >= revokedFrom are invalid
    }

    /// @notice One key of a device and the reading timestamps it signs for.
    struct DeviceKey {
        address signer; // secp256k1: the address recovered from valid signatures; else 0
        uint8 scheme;
        uint64 effectiveFrom; // first reading timestamp (ms) this key signs for
        uint64 effectiveUntil; // first reading timestamp (ms) it no longer signs for; 0: open
        bytes publicKey;
    }

    mapping(address device => Device) internal _devices;
    /// @dev Key version v of a device is `_keys[device][v - 1]`; the last one is current.
    mapping(address device => DeviceKey[]) internal _keys;
    mapping(address account => bool) internal _managers;
    /// @notice Number of registered devices.
    uint256 public deviceCount;
    /// @notice ERC-1056: the block of a device's latest DID change (0: none); each DID event
    ///         links to the previous one through `previousChange`, which resolvers follow.
    mapping(address identity => uint256) public changed;

    event DeviceRegistered(address indexed device, address indexed owner, uint8 scheme, bytes publicKey);
    /// @notice Key `keyVersion` signs from `effectiveFrom`; the previous key's window ends there.
    event DeviceKeyRotated(
        address indexed device, uint8 scheme, bytes publicKey, uint32 keyVersion, uint64 effectiveFrom
    );
    event DeviceOwnerChanged(address indexed device, address indexed previousOwner, address indexed newOwner);
    event DeviceRevoked(address indexed device, uint64 revokedFrom);
    event ManagerSet(address indexed account, bool enabled);
    /// @notice ERC-1056: the identity owner of a device's DID is `owner` (this registry).
    event DIDOwnerChanged(address indexed identity, address owner, uint256 previousChange);
    /// @notice ERC-1056: `delegate` signs for the DID until `validTo` (seconds).
    event DIDDelegateChanged(
        address indexed identity, bytes32 delegateType, address delegate, uint256 validTo, uint256 previousChange
    );
    /// @notice ERC-1056: attribute `name` = `value` of the DID is valid until `validTo` (seconds; 0: revoked).
    event DIDAttributeChanged(
        address indexed identity, bytes32 name, bytes value, uint256 validTo, uint256 previousChange
    );

    error ZeroAddress();
    error DeviceExists(address device);
    error UnknownDevice(address device);
    error DeviceIsRevoked(address device);
    error NotDeviceOwner(address device, address caller);
    error NotKeyManager(address caller);
    error UnknownKeyScheme(uint8 scheme);
    error InvalidPublicKey(uint8 scheme, uint256 length);
    error AlreadyRevoked(address device, uint64 revokedFrom);
    error InvalidRotationAuthorization(address device);
    error RotationNotAuthorizable(address device, uint8 scheme);
    error RotationTooSoon(address device, uint64 effectiveFrom);
    error UnknownKeyVersion(address device, uint32 keyVersion);
    error NoKeyAt(address device, uint64 timestamp);
    error OwnershipCannotBeRenounced();
    error AttributeNotAllowed(bytes32 name);
    error InvalidAttributeValue(bytes32 name, uint256 length);

    constructor(address initialOwner) Ownable(initialOwner) EIP712("VeriStream", "1") {}

    /// @dev The registry owner or a manager it appointed: may rotate any device's key.
    modifier onlyKeyManager() {
        if (msg.sender != owner() && !_managers[msg.sender]) revert NotKeyManager(msg.sender);
        _;
    }

    /// @dev The device's beneficiary, a manager or the registry owner.
    modifier onlyDeviceOwnerOrManager(address device) {
        address owner_ = _devices[device].owner;
        if (owner_ == address(0)) revert UnknownDevice(device);
        if (msg.sender != owner_ && msg.sender != owner() && !_managers[msg.sender]) {
            revert NotDeviceOwner(device, msg.sender);
        }
        _;
    }

    // ------------------------------------------------------------------ administration

    /// @notice Grants or withdraws the manager role: managers rotate any device's key (like the
    ///         owner) and may revoke devices and change their beneficiaries.
    function setManager(address account, bool enabled) external onlyOwner {
        if (account == address(0)) revert ZeroAddress();
        _managers[account] = enabled;
        emit ManagerSet(account, enabled);
    }

    /// @notice Disabled: a registry without an owner could never register a device again.
    function renounceOwnership() public view override onlyOwner {
        revert OwnershipCannotBeRenounced();
    }

    /// @notice Registers `device` (the id readings carry) with its beneficiary and first key,
    ///         which is in force from timestamp 0 (readings buffered before registration count).
    /// @param publicKey secp256k1: 64-byte uncompressed key (x||y) or empty when the device id is
    ///        the key's address; ed25519: 32 bytes; P-256: 64 bytes (x||y).
    function registerDevice(address device, address owner_, uint8 scheme, bytes calldata publicKey)
        external
        onlyOwner
    {
        if (device == address(0) || owner_ == address(0)) revert ZeroAddress();
        if (_devices[device].owner != address(0)) revert DeviceExists(device);
        address signer = _signerOf(device, scheme, publicKey);
        _devices[device] = Device({owner: owner_, revokedFrom: 0});
        _keys[device].push(
            DeviceKey({signer: signer, scheme: scheme, effectiveFrom: 0, effectiveUntil: 0, publicKey: publicKey})
        );
        deviceCount += 1;
        emit DeviceRegistered(device, owner_, scheme, publicKey);
        uint256 previousChange = _didChanged(device);
        emit DIDOwnerChanged(device, address(this), previousChange);
        _publishKey(device, scheme, publicKey, signer, NO_EXPIRY, previousChange);
    }

    /// @notice Replaces a device's key from now on (registry owner or manager); the device id, and
    ///         every earlier key with its window, stay.
    /// @param publicKey as in `registerDevice`, but a secp256k1 key must be given in full.
    function rotateKey(address device, uint8 scheme, bytes calldata publicKey) external onlyKeyManager {
        if (_devices[device].owner == address(0)) revert UnknownDevice(device);
        _rotate(device, scheme, publicKey);
    }

    /// @notice Replaces a secp256k1 device's key with the consent of that key: `authorization` is
    ///         the current key's 65-byte signature (r||s||v, low s) of the EIP-712 struct
    ///         KeyRotation(device, scheme, keccak256(publicKey), keyVersion) where keyVersion is
    ///         the version the new key gets (the current one + 1). The version makes it single
    ///         use: once any rotation happened it no longer matches. Sent by the beneficiary, a
    ///         manager or the registry owner.
    function rotateKeyWithAuthorization(
        address device,
        uint8 scheme,
        bytes calldata publicKey,
        bytes calldata authorization
    ) external onlyDeviceOwnerOrManager(device) {
        DeviceKey[] storage keys = _keys[device];
        DeviceKey storage current = keys[keys.length - 1];
        // only a secp256k1 signature can be checked here; other devices go through a manager
        if (current.scheme != SCHEME_SECP256K1) revert RotationNotAuthorizable(device, current.scheme);
        bytes32 digest = keyRotationDigest(device, scheme, keccak256(publicKey), uint32(keys.length + 1));
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, authorization);
        if (err != ECDSA.RecoverError.NoError || recovered != current.signer) {
            revert InvalidRotationAuthorization(device);
        }
        _rotate(device, scheme, publicKey);
    }

    /// @notice Changes the beneficiary of a device (the beneficiary itself, a manager or the
    ///         registry owner): it decides where rewards go, never which key signs. The device's
    ///         DID does not change: its identity owner stays this registry.
    function setDeviceOwner(address device, address newOwner) external onlyDeviceOwnerOrManager(device) {
        if (newOwner == address(0)) revert ZeroAddress();
        Device storage d = _devices[device];
        emit DeviceOwnerChanged(device, d.owner, newOwner);
        d.owner = newOwner;
    }

    /// @notice Revokes a device: readings stamped at or after `revokedFrom` (milliseconds) are
    ///         invalid. A past time is allowed (a key known to leak at that time). The
    ///         beneficiary may revoke its own device: revocation only removes readings, and so
    ///         only the beneficiary's own rewards, and whoever learns that a device is
    ///         compromised must be able to stop it at once. Managers and the owner may too.
    function revokeDevice(address device, uint64 revokedFrom) external onlyDeviceOwnerOrManager(device) {
        Device storage d = _devices[device];
        if (d.revokedFrom != 0) revert AlreadyRevoked(device, d.revokedFrom);
        d.revokedFrom = revokedFrom == 0 ? 1 : revokedFrom;
        emit DeviceRevoked(device, d.revokedFrom);
        // the current key's attribute now ends with the last whole second before revokedFrom
        DeviceKey[] storage keys = _keys[device];
        DeviceKey storage current = keys[keys.length - 1];
        uint256 validTo = (uint256(d.revokedFrom) + 999) / 1000 - 1;
        _publishKey(device, current.scheme, current.publicKey, current.signer, validTo, _didChanged(device));
    }

    /// @notice ERC-1056: publishes attribute `name` = `value` of a device's DID for `validity`
    ///         seconds (the device's owner, a manager or the registry owner). Only key-agreement
    ///         keys (`did/pub/X25519/enc/<encoding>`, 32 bytes) and services (`did/svc/<type>`)
    ///         may be published: signing keys are the registry's, changed only by rotation.
    function setAttribute(address identity, bytes32 name, bytes calldata value, uint256 validity)
        external
        onlyDeviceOwnerOrManager(identity)
    {
        if (_devices[identity].revokedFrom != 0) revert DeviceIsRevoked(identity);
        _checkPublishable(name, value);
        emit DIDAttributeChanged(identity, name, value, block.timestamp + validity, _didChanged(identity));
    }

    /// @notice ERC-1056: revokes attribute `name` = `value` of a device's DID (as `setAttribute`).
    function revokeAttribute(address identity, bytes32 name, bytes calldata value)
        external
        onlyDeviceOwnerOrManager(identity)
    {
        _checkPublishable(name, value);
        emit DIDAttributeChanged(identity, name, value, 0, _didChanged(identity));
    }

    // ------------------------------------------------------------------ views

    /// @notice ERC-1056: the owner of a device's DID, this registry (never the beneficiary); an
    ///         address that is not a registered device owns itself, as in ERC-1056.
    function identityOwner(address identity) external view returns (address) {
        return _devices[identity].owner == address(0) ? identity : address(this);
    }

    /// @notice Whether `account` holds the manager role.
    function isManager(address account) external view returns (bool) {
        return _managers[account];
    }

    /// @notice A device's record with its current (latest) key; `keyVersion` is also its number of keys.
    function deviceOf(address device)
        external
        view
        returns (address owner_, uint8 scheme, uint32 keyVersion, uint64 revokedFrom, address signer, bytes memory publicKey)
    {
        Device storage d = _devices[device];
        if (d.owner == address(0)) revert UnknownDevice(device);
        DeviceKey[] storage keys = _keys[device];
        DeviceKey storage current = keys[keys.length - 1];
        return (d.owner, current.scheme, uint32(keys.length), d.revokedFrom, current.signer, current.publicKey);
    }

    /// @notice How many keys `device` has had (0 when it is not registered).
    function keyCount(address device) external view returns (uint32) {
        return uint32(_keys[device].length);
    }

    /// @notice Key `keyVersion` (from 1) of `device`, with its window.
    function deviceKey(address device, uint32 keyVersion) external view returns (DeviceKey memory) {
        DeviceKey[] storage keys = _keys[device];
        if (keyVersion == 0 || keyVersion > keys.length) revert UnknownKeyVersion(device, keyVersion);
        return keys[keyVersion - 1];
    }

    /// @notice Every key of `device`, oldest first (index i is key version i + 1).
    function keyHistory(address device) external view returns (DeviceKey[] memory) {
        if (_devices[device].owner == address(0)) revert UnknownDevice(device);
        return _keys[device];
    }

    /// @notice The key in force for a reading stamped `timestamp` (ms), and its version.
    function keyAt(address device, uint64 timestamp) external view returns (uint32 keyVersion, DeviceKey memory key) {
        if (_devices[device].owner == address(0)) revert UnknownDevice(device);
        keyVersion = _versionAt(device, timestamp);
        if (keyVersion == 0) revert NoKeyAt(device, timestamp);
        key = _keys[device][keyVersion - 1];
    }

    /// @notice Whether a reading stamped `timestamp` from `device` is allowed (registered, not revoked then).
    function isActive(address device, uint64 timestamp) public view returns (bool) {
        Device storage d = _devices[device];
        return d.owner != address(0) && (d.revokedFrom == 0 || timestamp < d.revokedFrom);
    }

    /// @notice The EIP-712 digest a device signs for one reading.
    function readingDigest(address device, uint64 seq, uint64 timestamp, bytes32 payloadHash)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(READING_TYPEHASH, device, seq, timestamp, payloadHash)));
    }

    /// @notice The EIP-712 digest a device's current secp256k1 key signs to authorize a rotation
    ///         to `scheme` / the key hashing to `publicKeyHash`, as version `keyVersion`.
    function keyRotationDigest(address device, uint8 scheme, bytes32 publicKeyHash, uint32 keyVersion)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(KEY_ROTATION_TYPEHASH, device, scheme, publicKeyHash, keyVersion)));
    }

    /// @notice Checks a secp256k1 reading signature (65 bytes r||s||v, low s) against the key in
    ///         force at the reading's timestamp and the device's status; false for any other
    ///         scheme or a bad signature.
    function verifyReadingSignature(
        address device,
        uint64 seq,
        uint64 timestamp,
        bytes32 payloadHash,
        bytes calldata signature
    ) external view returns (bool) {
        if (!isActive(device, timestamp)) return false;
        uint32 version = _versionAt(device, timestamp);
        if (version == 0) return false;
        DeviceKey storage key = _keys[device][version - 1];
        if (key.scheme != SCHEME_SECP256K1) return false;
        (address recovered, ECDSA.RecoverError err,) =
            ECDSA.tryRecover(readingDigest(device, seq, timestamp, payloadHash), signature);
        return err == ECDSA.RecoverError.NoError && recovered == key.signer;
    }

    /// @notice The EIP-712 domain separator of this contract.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ------------------------------------------------------------------ internals

    /// @dev Ends the current key and starts the new one at the block's time. The time is never
    ///      the caller's: back-dated, a new key could sign readings of the past and genuine
    ///      readings already accepted under the old key would stop verifying; post-dated, the old
    ///      key would stay in force after its holder asked to replace it.
    function _rotate(address device, uint8 scheme, bytes calldata publicKey) internal {
        if (_devices[device].revokedFrom != 0) revert DeviceIsRevoked(device);
        if (scheme == SCHEME_SECP256K1 && publicKey.length == 0) revert InvalidPublicKey(scheme, 0);
        address signer = _signerOf(device, scheme, publicKey);
        uint64 effectiveFrom = uint64(block.timestamp) * 1000;
        DeviceKey[] storage keys = _keys[device];
        DeviceKey storage current = keys[keys.length - 1];
        // two rotations in one block would leave a key with an empty window
        if (effectiveFrom <= current.effectiveFrom) revert RotationTooSoon(device, effectiveFrom);
        current.effectiveUntil = effectiveFrom;
        uint256 previousChange = _didChanged(device);
        // the old key's attribute is valid through the last second before the new key's window
        _publishKey(device, current.scheme, current.publicKey, current.signer, block.timestamp - 1, previousChange);
        _publishKey(device, scheme, publicKey, signer, NO_EXPIRY, previousChange);
        keys.push(
            DeviceKey({
                signer: signer,
                scheme: scheme,
                effectiveFrom: effectiveFrom,
                effectiveUntil: 0,
                publicKey: publicKey
            })
        );
        emit DeviceKeyRotated(device, scheme, publicKey, uint32(keys.length), effectiveFrom);
    }

    /// @dev The version of the key in force at `timestamp`, 0 when none is (not registered).
    ///      Windows are contiguous and start at 0, so the latest key starting at or before
    ///      `timestamp` is the one; histories are short, hence the scan from the newest.
    function _versionAt(address device, uint64 timestamp) internal view returns (uint32) {
        DeviceKey[] storage keys = _keys[device];
        for (uint256 i = keys.length; i > 0; --i) {
            if (keys[i - 1].effectiveFrom <= timestamp) return uint32(i);
        }
        return 0;
    }

    /// @dev Only key-agreement keys and services may be published beside the registry's own keys:
    ///      any other verification method would be a signing key the pipeline never checks.
    function _checkPublishable(bytes32 name, bytes calldata value) internal pure {
        if (bytes19(name) == bytes19("did/pub/X25519/enc/")) {
            if (value.length != 32) revert InvalidAttributeValue(name, value.length);
        } else if (bytes8(name) != bytes8("did/svc/")) {
            revert AttributeNotAllowed(name);
        }
    }

    /// @dev Records a DID change of `identity` in this block; returns the block of the one before,
    ///      which every DID event of this transaction links to.
    function _didChanged(address identity) internal returns (uint256 previousChange) {
        previousChange = changed[identity];
        changed[identity] = block.number;
    }

    /// @dev Emits a device key as its ERC-1056 verification method, valid until `validTo`.
    function _publishKey(
        address device,
        uint8 scheme,
        bytes memory publicKey,
        address signer,
        uint256 validTo,
        uint256 previousChange
    ) internal {
        if (scheme == SCHEME_SECP256K1 && publicKey.length == 0) {
            emit DIDDelegateChanged(device, DELEGATE_VERIKEY, signer, validTo, previousChange);
        } else if (scheme == SCHEME_SECP256K1) {
            emit DIDAttributeChanged(device, ATTRIBUTE_SECP256K1, _compressed(publicKey), validTo, previousChange);
        } else if (scheme == SCHEME_ED25519) {
            emit DIDAttributeChanged(device, ATTRIBUTE_ED25519, publicKey, validTo, previousChange);
        } else {
            emit DIDAttributeChanged(device, ATTRIBUTE_P256, _compressed(publicKey), validTo, previousChange);
        }
    }

    /// @dev SEC1 compressed form (0x02 or 0x03 by the parity of y, then x) of a 64-byte x||y point.
    function _compressed(bytes memory xy) internal pure returns (bytes memory) {
        bytes1 prefix = uint8(xy[63]) & 1 == 0 ? bytes1(0x02) : bytes1(0x03);
        return abi.encodePacked(prefix, bytes32(xy));
    }

    function _signerOf(address device, uint8 scheme, bytes calldata publicKey) internal pure returns (address) {
        if (scheme == SCHEME_SECP256K1) {
            if (publicKey.length == 0) return device;
            if (publicKey.length != 64) revert InvalidPublicKey(scheme, publicKey.length);
            return address(uint160(uint256(keccak256(publicKey))));
        }
        if (scheme == SCHEME_ED25519) {
            if (publicKey.length != 32) revert InvalidPublicKey(scheme, publicKey.length);
            return address(0);
        }
        if (scheme == SCHEME_P256) {
            if (publicKey.length != 64) revert InvalidPublicKey(scheme, publicKey.length);
            return address(0);
        }
        revert UnknownKeyScheme(scheme);
    }
}

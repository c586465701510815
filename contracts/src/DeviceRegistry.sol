// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

/// @title DeviceRegistry
/// @notice Device id -> beneficiary, key scheme, public key and status. Its address is the
///         EIP-712 verifying contract of device readings:
///         Reading(address device,uint64 seq,uint64 timestamp,bytes32 payloadHash)
///         under {name "VeriStream", version "1", chainId, this contract}.
/// @dev Time values (revocation) are in the readings' timestamp unit (milliseconds).
contract DeviceRegistry is Ownable2Step, EIP712 {
    bytes32 public constant READING_TYPEHASH =
        keccak256("Reading(address device,uint64 seq,uint64 timestamp,bytes32 payloadHash)");

    uint8 public constant SCHEME_SECP256K1 = 1;
    uint8 public constant SCHEME_ED25519 = 2;
    uint8 public constant SCHEME_P256 = 3;

    struct Device {
        address owner; // reward beneficiary
        uint8 scheme;
        uint32 keyVersion;
        uint64 revokedFrom; // 0: not revoked; else readings with timestamp >= revokedFrom are invalid
        address signer; // secp256k1: the address recovered from valid signatures
        bytes publicKey;
    }

    mapping(address device => Device) internal _devices;
    /// @notice Number of registered devices.
    uint256 public deviceCount;

    event DeviceRegistered(address indexed device, address indexed owner, uint8 scheme, bytes publicKey);
    event DeviceKeyRotated(address indexed device, uint8 scheme, bytes publicKey, uint32 keyVersion);
    event DeviceOwnerChanged(address indexed device, address indexed previousOwner, address indexed newOwner);
    event DeviceRevoked(address indexed device, uint64 revokedFrom);

    error ZeroAddress();
    error DeviceExists(address device);
    error UnknownDevice(address device);
    error DeviceIsRevoked(address device);
    error NotDeviceOwner(address device, address caller);
    error UnknownKeyScheme(uint8 scheme);
    error InvalidPublicKey(uint8 scheme, uint256 length);
    error AlreadyRevoked(address device, uint64 revokedFrom);

    constructor(address initialOwner) Ownable(initialOwner) EIP712("VeriStream", "1") {}

    modifier onlyDeviceManager(address device) {
        address owner_ = _devices[device].owner;
        if (owner_ == address(0)) revert UnknownDevice(device);
        if (msg.sender != owner_ && msg.sender != owner()) revert NotDeviceOwner(device, msg.sender);
        _;
    }

    /// @notice Registers `device` (the id readings carry) with its beneficiary and key.
    /// @param publicKey secp256k1: 64-byte uncompressed key (x||y) or empty when the device id is
    ///        the key's address; ed25519: 32 bytes; P-256: 64 bytes (x||y).
    function registerDevice(address device, address owner_, uint8 scheme, bytes calldata publicKey)
        external
        onlyOwner
    {
        if (device == address(0) || owner_ == address(0)) revert ZeroAddress();
        if (_devices[device].owner != address(0)) revert DeviceExists(device);
        address signer = _signerOf(device, scheme, publicKey);
        _devices[device] = Device({
            owner: owner_,
            scheme: scheme,
            keyVersion: 1,
            revokedFrom: 0,
            signer: signer,
            publicKey: publicKey
        });
        deviceCount += 1;
        emit DeviceRegistered(device, owner_, scheme, publicKey);
    }

    /// @notice Replaces a device's key; the device id (and its history) stays.
    /// @param publicKey as in `registerDevice`; for secp256k1 a new key must be given in full.
    function rotateKey(address device, uint8 scheme, bytes calldata publicKey) external onlyDeviceManager(device) {
        Device storage d = _devices[device];
        if (d.revokedFrom != 0) revert DeviceIsRevoked(device);
        if (scheme == SCHEME_SECP256K1 && publicKey.length == 0) revert InvalidPublicKey(scheme, 0);
        d.signer = _signerOf(device, scheme, publicKey);
        d.scheme = scheme;
        d.publicKey = publicKey;
        d.keyVersion += 1;
        emit DeviceKeyRotated(device, scheme, publicKey, d.keyVersion);
    }

    /// @notice Changes the beneficiary of a device.
    function setDeviceOwner(address device, address newOwner) external onlyDeviceManager(device) {
        if (newOwner == address(0)) revert ZeroAddress();
        Device storage d = _devices[device];
        emit DeviceOwnerChanged(device, d.owner, newOwner);
        d.owner = newOwner;
    }

    /// @notice Revokes a device: readings stamped at or after `revokedFrom` (milliseconds) are
    ///         invalid. A past time is allowed (a key known to leak at that time).
    function revokeDevice(address device, uint64 revokedFrom) external onlyDeviceManager(device) {
        Device storage d = _devices[device];
        if (d.revokedFrom != 0) revert AlreadyRevoked(device, d.revokedFrom);
        d.revokedFrom = revokedFrom == 0 ? 1 : revokedFrom;
        emit DeviceRevoked(device, d.revokedFrom);
    }

    // ------------------------------------------------------------------ views

    /// @notice A device's record.
    function deviceOf(address device)
        external
        view
        returns (address owner_, uint8 scheme, uint32 keyVersion, uint64 revokedFrom, address signer, bytes memory publicKey)
    {
        Device storage d = _devices[device];
        if (d.owner == address(0)) revert UnknownDevice(device);
        return (d.owner, d.scheme, d.keyVersion, d.revokedFrom, d.signer, d.publicKey);
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

    /// @notice Checks a secp256k1 reading signature (65 bytes r||s||v, low s) against the
    ///         device's current key and status; false for any other scheme or a bad signature.
    function verifyReadingSignature(
        address device,
        uint64 seq,
        uint64 timestamp,
        bytes32 payloadHash,
        bytes calldata signature
    ) external view returns (bool) {
        Device storage d = _devices[device];
        if (!isActive(device, timestamp) || d.scheme != SCHEME_SECP256K1) return false;
        (address recovered, ECDSA.RecoverError err,) =
            ECDSA.tryRecover(readingDigest(device, seq, timestamp, payloadHash), signature);
        return err == ECDSA.RecoverError.NoError && recovered == d.signer;
    }

    /// @notice The EIP-712 domain separator of this contract.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
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

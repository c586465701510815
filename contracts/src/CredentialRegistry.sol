// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";

/// @notice The DeviceRegistry views this registry reads (who manages devices, which exist).
interface IDeviceRegistryViews {
    function owner() external view returns (address);
    function isManager(address account) external view returns (bool);
    function keyCount(address device) external view returns (uint32);
}

/// @title CredentialRegistry
/// @notice Anchors for W3C credentials: (a) each issuer's Bitstring Status Lists, by the IPFS
///         CID of the current BitstringStatusListCredential, published only by the account the
///         owner authorised for that issuer DID; (b) each device's credential, by its hash and
///         CID, recorded by the DeviceRegistry's owner or managers.
/// @dev A list is named by (issuer DID, list URL): `listKey`. Its history is the sequence of
///      `StatusListPublished` events; the block time of each is when that version took effect.
///      `validFrom` (the list credential's, in seconds) must increase from one version to the
///      next, so an older list cannot be published again over a newer one (a rollback); readers
///      check that the credential found at the CID carries the anchored `validFrom`. A `validFrom`
///      more than `MAX_VALID_FROM_SKEW` ahead of the block is refused: one far in the future
///      (milliseconds for seconds, or a stolen publisher key) would make every later honest
///      version stale and freeze the list for good.
contract CredentialRegistry is Ownable2Step {
    /// @notice The current version of one status list.
    struct StatusListAnchor {
        string cid; // IPFS CID of the BitstringStatusListCredential
        uint64 validFrom; // the list credential's validFrom (unix seconds)
        uint64 anchoredAt; // block time of this version (unix seconds)
        uint32 version; // 1 for the first version; 0: never published
    }

    /// @notice A device's credential as recorded with the device.
    struct CredentialAnchor {
        bytes32 credentialHash; // keccak256 of the credential's canonical JSON
        string cid; // IPFS CID of the credential
        uint64 anchoredAt; // block time (unix seconds)
    }

    /// @notice How far ahead of the block time a published list's `validFrom` may be (clock
    ///         skew between the issuer and the chain).
    uint64 public constant MAX_VALID_FROM_SKEW = 1 days;

    IDeviceRegistryViews public immutable deviceRegistry;

    mapping(bytes32 issuerKey => address) internal _publishers;
    mapping(bytes32 listKey => StatusListAnchor) internal _lists;
    mapping(address device => CredentialAnchor) internal _credentials;

    event PublisherSet(bytes32 indexed issuerKey, string issuer, address indexed publisher);
    event StatusListPublished(
        bytes32 indexed listKey, string issuer, string listUrl, string cid, uint64 validFrom, uint32 version
    );
    event DeviceCredentialAnchored(address indexed device, bytes32 credentialHash, string cid);

    error ZeroAddress();
    error EmptyValue(string field);
    error NotIssuerPublisher(bytes32 issuerKey, address caller);
    error StaleStatusList(bytes32 listKey, uint64 currentValidFrom, uint64 validFrom);
    error ValidFromTooFarAhead(uint64 validFrom, uint64 latestAllowed);
    error NotDeviceManager(address caller);
    error UnknownDevice(address device);
    error OwnershipCannotBeRenounced();

    constructor(address initialOwner, IDeviceRegistryViews deviceRegistry_) Ownable(initialOwner) {
        if (address(deviceRegistry_) == address(0)) revert ZeroAddress();
        deviceRegistry = deviceRegistry_;
    }

    /// @notice Authorises `publisher` to publish the status lists of `issuer` (a DID); the zero
    ///         address withdraws the authorisation.
    function setPublisher(string calldata issuer, address publisher) external onlyOwner {
        if (bytes(issuer).length == 0) revert EmptyValue("issuer");
        bytes32 key = issuerKey(issuer);
        _publishers[key] = publisher;
        emit PublisherSet(key, issuer, publisher);
    }

    /// @notice The owner cannot step away: issuers' publishers would be frozen for good.
    function renounceOwnership() public view override onlyOwner {
        revert OwnershipCannotBeRenounced();
    }

    /// @notice Publishes version `cid` of `issuer`'s status list `listUrl`, whose credential has
    ///         `validFrom` (unix seconds): later than the current version's and at most
    ///         `MAX_VALID_FROM_SKEW` after the block time.
    function publishStatusList(string calldata issuer, string calldata listUrl, string calldata cid, uint64 validFrom)
        external
    {
        // CHECKS
        if (bytes(listUrl).length == 0) revert EmptyValue("listUrl");
        if (bytes(cid).length == 0) revert EmptyValue("cid");
        bytes32 issuer_ = issuerKey(issuer);
        if (msg.sender != _publishers[issuer_] || msg.sender == address(0)) {
            revert NotIssuerPublisher(issuer_, msg.sender);
        }
        bytes32 key = listKey(issuer, listUrl);
        StatusListAnchor storage anchor = _lists[key];
        if (validFrom <= anchor.validFrom) revert StaleStatusList(key, anchor.validFrom, validFrom);
        uint64 latestAllowed = uint64(block.timestamp) + MAX_VALID_FROM_SKEW;
        if (validFrom > latestAllowed) revert ValidFromTooFarAhead(validFrom, latestAllowed);
        // EFFECTS
        anchor.cid = cid;
        anchor.validFrom = validFrom;
        anchor.anchoredAt = uint64(block.timestamp);
        anchor.version += 1;
        emit StatusListPublished(key, issuer, listUrl, cid, validFrom, anchor.version);
    }

    /// @notice Records the credential of `device` (registered in the DeviceRegistry): its hash
    ///         and CID; a later call replaces it (a re-issued credential).
    function anchorDeviceCredential(address device, bytes32 credentialHash, string calldata cid) external {
        if (msg.sender != deviceRegistry.owner() && !deviceRegistry.isManager(msg.sender)) {
            revert NotDeviceManager(msg.sender);
        }
        if (deviceRegistry.keyCount(device) == 0) revert UnknownDevice(device);
        if (credentialHash == bytes32(0)) revert EmptyValue("credentialHash");
        if (bytes(cid).length == 0) revert EmptyValue("cid");
        _credentials[device] = CredentialAnchor(credentialHash, cid, uint64(block.timestamp));
        emit DeviceCredentialAnchored(device, credentialHash, cid);
    }

    /// @notice The account authorised to publish `issuer`'s status lists (0: none).
    function publisherOf(string calldata issuer) external view returns (address) {
        return _publishers[issuerKey(issuer)];
    }

    /// @notice The current version of `issuer`'s status list `listUrl` (version 0: none).
    function statusList(string calldata issuer, string calldata listUrl)
        external
        view
        returns (StatusListAnchor memory)
    {
        return _lists[listKey(issuer, listUrl)];
    }

    /// @notice The credential recorded with `device` (hash 0: none).
    function deviceCredential(address device) external view returns (CredentialAnchor memory) {
        return _credentials[device];
    }

    /// @notice The key of an issuer DID.
    function issuerKey(string calldata issuer) public pure returns (bytes32) {
        return keccak256(bytes(issuer));
    }

    /// @notice The key of `issuer`'s list `listUrl`.
    function listKey(string calldata issuer, string calldata listUrl) public pure returns (bytes32) {
        return keccak256(abi.encode(issuer, listUrl));
    }
}

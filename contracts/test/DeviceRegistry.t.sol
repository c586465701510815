// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Base} from "./Base.sol";
import {DeviceRegistry} from "../src/DeviceRegistry.sol";

/// @notice The secp256k1 cheatcodes these tests add to Base's (forge's own, at the same address).
interface VmKeys {
    struct Wallet {
        address addr;
        uint256 publicKeyX;
        uint256 publicKeyY;
        uint256 privateKey;
    }

    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function createWallet(uint256 privateKey) external returns (Wallet memory);
}

/// @notice Rotation authority (who may replace a device's key), key windows (a reading is checked
///         against the key in force at its timestamp) and the disabled renounceOwnership.
contract DeviceRegistryTest is Base {
    VmKeys internal constant keys = VmKeys(address(uint160(uint256(keccak256("hevm cheat code")))));
    address internal constant BENEFICIARY = address(0xBEEF);
    address internal constant MANAGER = address(0xA11CE);
    uint256 internal constant KEY1 = 0x4141;
    uint256 internal constant KEY2 = 0x4242;
    uint8 internal constant SECP = 1;

    DeviceRegistry internal registry;
    address internal device;
    bytes internal key2;

    function setUp() public {
        vm.warp(1_000);
        registry = new DeviceRegistry(address(this));
        device = keys.createWallet(KEY1).addr;
        VmKeys.Wallet memory w2 = keys.createWallet(KEY2);
        key2 = abi.encodePacked(w2.publicKeyX, w2.publicKeyY);
        registry.registerDevice(device, BENEFICIARY, SECP, "");
    }

    function _sig(uint256 privateKey, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = keys.sign(privateKey, digest);
        return abi.encodePacked(r, s, v);
    }

    function _consent(uint256 privateKey, bytes memory publicKey, uint32 version) internal view returns (bytes memory) {
        return _sig(privateKey, registry.keyRotationDigest(device, SECP, keccak256(publicKey), version));
    }

    function _reading(uint256 privateKey, uint64 ts) internal view returns (bool) {
        bytes32 payloadHash = keccak256("t=1");
        bytes memory sig = _sig(privateKey, registry.readingDigest(device, 1, ts, payloadHash));
        return registry.verifyReadingSignature(device, 1, ts, payloadHash, sig);
    }

    function test_RevertWhen_BeneficiarySwapsDeviceKey() public {
        vm.prank(BENEFICIARY);
        vm.expectRevert(abi.encodeWithSelector(DeviceRegistry.NotKeyManager.selector, BENEFICIARY));
        registry.rotateKey(device, SECP, key2);
        // nor with a consent signed by a key other than the device's
        bytes memory forged = _consent(KEY2, key2, 2);
        vm.prank(BENEFICIARY);
        vm.expectRevert(abi.encodeWithSelector(DeviceRegistry.InvalidRotationAuthorization.selector, device));
        registry.rotateKeyWithAuthorization(device, SECP, key2, forged);
    }

    function test_RevertWhen_RotationAuthorizationIsReplayed() public {
        bytes memory consent = _consent(KEY1, key2, 2);
        vm.prank(BENEFICIARY);
        registry.rotateKeyWithAuthorization(device, SECP, key2, consent);
        vm.warp(2_000);
        vm.prank(BENEFICIARY);
        vm.expectRevert(abi.encodeWithSelector(DeviceRegistry.InvalidRotationAuthorization.selector, device));
        registry.rotateKeyWithAuthorization(device, SECP, key2, consent);
    }

    function test_RevertWhen_OwnerRenouncesOwnership() public {
        vm.expectRevert(DeviceRegistry.OwnershipCannotBeRenounced.selector);
        registry.renounceOwnership();
        assertTrue(registry.owner() == address(this), "still owned");
    }

    function test_RevertWhen_RotatedTwiceInOneBlock() public {
        registry.setManager(MANAGER, true);
        vm.startPrank(MANAGER);
        registry.rotateKey(device, SECP, key2);
        vm.expectRevert(abi.encodeWithSelector(DeviceRegistry.RotationTooSoon.selector, device, uint64(1_000_000)));
        registry.rotateKey(device, SECP, key2);
        vm.stopPrank();
    }

    /// @notice Across a rotation at t = 2000 s, readings verify exactly under the key in force then.
    function testFuzz_ReadingsVerifyUnderTheKeyInForce(uint64 ts) public {
        vm.warp(2_000);
        registry.rotateKey(device, SECP, key2);
        uint64 rotatedAt = 2_000_000;
        assertTrue(_reading(KEY1, ts) == (ts < rotatedAt), "old key");
        assertTrue(_reading(KEY2, ts) == (ts >= rotatedAt), "new key");
        (uint32 version, DeviceRegistry.DeviceKey memory key) = registry.keyAt(device, ts);
        assertEq(version, ts < rotatedAt ? 1 : 2, "version in force");
        assertEq(key.effectiveFrom, ts < rotatedAt ? 0 : rotatedAt, "window start");
        assertEq(key.effectiveUntil, ts < rotatedAt ? rotatedAt : 0, "window end");
    }
}

/// @notice The cheatcodes the DID tests add to Base's.
interface VmBlocks {
    function roll(uint256 blockNumber) external;
}

/// @notice Devices as ERC-1056 identities (did:ethr): who may change what in a device's DID
///         document, and the `changed` links resolvers follow.
contract DeviceRegistryDidTest is Base {
    VmBlocks internal constant blocks = VmBlocks(address(uint160(uint256(keccak256("hevm cheat code")))));
    address internal constant DEVICE = address(0xD0);
    address internal constant BENEFICIARY = address(0xBEEF);
    address internal constant STRANGER = address(0xBAD);
    uint8 internal constant ED25519 = 2;
    bytes32 internal constant X25519_ENC = "did/pub/X25519/enc/base58";
    bytes32 internal constant SERVICE = "did/svc/MessagingService";

    DeviceRegistry internal registry;
    bytes internal edKey = abi.encodePacked(bytes32(uint256(0xED)));
    bytes internal xKey = abi.encodePacked(bytes32(uint256(0xEC)));

    function setUp() public {
        vm.warp(1_000);
        blocks.roll(10);
        registry = new DeviceRegistry(address(this));
        registry.registerDevice(DEVICE, BENEFICIARY, ED25519, edKey);
    }

    function test_RevertWhen_StrangerAddsVerificationMethodToDeviceDid() public {
        vm.prank(STRANGER);
        vm.expectRevert(abi.encodeWithSelector(DeviceRegistry.NotDeviceOwner.selector, DEVICE, STRANGER));
        registry.setAttribute(DEVICE, X25519_ENC, xKey, 3600);
        bytes32 edVeriKey = registry.ATTRIBUTE_ED25519();
        vm.prank(STRANGER);
        vm.expectRevert(abi.encodeWithSelector(DeviceRegistry.NotDeviceOwner.selector, DEVICE, STRANGER));
        registry.setAttribute(DEVICE, edVeriKey, xKey, 3600);
    }

    function test_RevertWhen_BeneficiaryPublishesSigningKeyBesideTheRegistry() public {
        // a signing key in the DID document that the pipeline does not check readings against
        bytes32 sigAuth = "did/pub/Ed25519/sigAuth/base58";
        bytes32 edVeriKey = registry.ATTRIBUTE_ED25519();
        vm.startPrank(BENEFICIARY);
        vm.expectRevert(abi.encodeWithSelector(DeviceRegistry.AttributeNotAllowed.selector, edVeriKey));
        registry.setAttribute(DEVICE, edVeriKey, xKey, 3600);
        vm.expectRevert(abi.encodeWithSelector(DeviceRegistry.AttributeNotAllowed.selector, sigAuth));
        registry.setAttribute(DEVICE, sigAuth, xKey, 3600);
        vm.stopPrank();
    }

    function test_RevertWhen_BeneficiaryRevokesTheRegisteredKeyFromTheDid() public {
        bytes32 edVeriKey = registry.ATTRIBUTE_ED25519();
        vm.prank(BENEFICIARY);
        vm.expectRevert(abi.encodeWithSelector(DeviceRegistry.AttributeNotAllowed.selector, edVeriKey));
        registry.revokeAttribute(DEVICE, edVeriKey, edKey);
        vm.prank(STRANGER);
        vm.expectRevert(abi.encodeWithSelector(DeviceRegistry.NotDeviceOwner.selector, DEVICE, STRANGER));
        registry.revokeAttribute(DEVICE, X25519_ENC, xKey);
    }

    function test_RevertWhen_StrangerPreloadsTheDidOfADeviceNotYetRegistered() public {
        // events published before registration would stay in the device's DID history
        address future = address(0xF0);
        vm.prank(future);
        vm.expectRevert(abi.encodeWithSelector(DeviceRegistry.UnknownDevice.selector, future));
        registry.setAttribute(future, X25519_ENC, xKey, 3600);
        assertEq(registry.changed(future), 0, "no DID change");
    }

    function test_RevertWhen_BeneficiaryBecomesTheDidController() public {
        // a standard did:ethr resolver lists the identity owner's account as `#controller` in
        // authentication and assertionMethod: an EOA owner would sign as the device
        assertTrue(registry.identityOwner(DEVICE) != BENEFICIARY, "beneficiary owns the DID");
        assertTrue(registry.identityOwner(DEVICE) == address(registry), "the registry owns the DID");
        vm.prank(BENEFICIARY);
        registry.setDeviceOwner(DEVICE, STRANGER);
        assertTrue(registry.identityOwner(DEVICE) != STRANGER, "new beneficiary owns the DID");
        assertTrue(registry.identityOwner(DEVICE) == address(registry), "still the registry");
        registry.revokeDevice(DEVICE, 0);
        assertTrue(registry.identityOwner(DEVICE) == address(registry), "after revocation");
    }

    function test_RevertWhen_KeyAgreementKeyIsNot32Bytes() public {
        vm.prank(BENEFICIARY);
        vm.expectRevert(abi.encodeWithSelector(DeviceRegistry.InvalidAttributeValue.selector, X25519_ENC, 33));
        registry.setAttribute(DEVICE, X25519_ENC, abi.encodePacked(xKey, bytes1(0)), 3600);
    }

    function test_OwnerPublishesKeyAgreementAndServices() public {
        blocks.roll(12);
        vm.startPrank(BENEFICIARY);
        registry.setAttribute(DEVICE, X25519_ENC, xKey, 3600);
        registry.setAttribute(DEVICE, SERVICE, bytes("https://device.example/inbox"), 3600);
        registry.revokeAttribute(DEVICE, SERVICE, bytes("https://device.example/inbox"));
        vm.stopPrank();
        assertEq(registry.changed(DEVICE), 12, "latest change");
        assertTrue(registry.identityOwner(DEVICE) == address(registry), "identity owner");
        assertTrue(registry.identityOwner(STRANGER) == STRANGER, "an address owns itself");
    }

    function test_EveryDeviceChangeMovesTheChangeLink() public {
        assertEq(registry.changed(DEVICE), 10, "registration");
        blocks.roll(11);
        vm.warp(2_000);
        registry.rotateKey(DEVICE, ED25519, xKey);
        assertEq(registry.changed(DEVICE), 11, "rotation");
        blocks.roll(13);
        vm.prank(BENEFICIARY);
        registry.setDeviceOwner(DEVICE, STRANGER);
        // rewards are not the DID's business: a new beneficiary leaves the document as it was
        assertEq(registry.changed(DEVICE), 11, "no DID change on a new beneficiary");
        blocks.roll(14);
        registry.revokeDevice(DEVICE, 0);
        assertEq(registry.changed(DEVICE), 14, "revocation");
        vm.expectRevert(abi.encodeWithSelector(DeviceRegistry.DeviceIsRevoked.selector, DEVICE));
        vm.prank(STRANGER);
        registry.setAttribute(DEVICE, X25519_ENC, xKey, 3600);
    }
}

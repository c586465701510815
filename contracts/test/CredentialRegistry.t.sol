// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Base} from "./Base.sol";
import {CredentialRegistry, IDeviceRegistryViews} from "../src/CredentialRegistry.sol";
import {DeviceRegistry} from "../src/DeviceRegistry.sol";

/// @notice Who may publish an issuer's status lists, rollbacks, and who may record a device's
///         credential.
contract CredentialRegistryTest is Base {
    string internal constant ISSUER = "did:key:z6MkIssuer";
    string internal constant LIST = "https://issuer.example/status/1";
    address internal constant PUBLISHER = address(0xB0B);
    address internal constant STRANGER = address(0xBAD);
    address internal constant MANAGER = address(0xA11CE);
    address internal constant DEVICE = address(0xD1);

    DeviceRegistry internal devices;
    CredentialRegistry internal registry;

    function setUp() public {
        vm.warp(1_000);
        devices = new DeviceRegistry(address(this));
        registry = new CredentialRegistry(address(this), IDeviceRegistryViews(address(devices)));
        registry.setPublisher(ISSUER, PUBLISHER);
        devices.registerDevice(DEVICE, address(0xBEEF), 1, "");
        devices.setManager(MANAGER, true);
    }

    function test_publisherPublishesVersions() public {
        vm.prank(PUBLISHER);
        registry.publishStatusList(ISSUER, LIST, "bafy1", 100);
        vm.warp(2_000);
        vm.prank(PUBLISHER);
        registry.publishStatusList(ISSUER, LIST, "bafy2", 200);
        CredentialRegistry.StatusListAnchor memory anchor = registry.statusList(ISSUER, LIST);
        assertEq(anchor.version, 2, "version");
        assertEq(anchor.validFrom, 200, "validFrom");
        assertEq(anchor.anchoredAt, 2_000, "anchoredAt");
        assertEq(keccak256(bytes(anchor.cid)), keccak256("bafy2"), "cid");
    }

    function test_attack_strangerPublishesAListForAnIssuer() public {
        bytes32 key = registry.issuerKey(ISSUER);
        vm.prank(STRANGER);
        vm.expectRevert(abi.encodeWithSelector(CredentialRegistry.NotIssuerPublisher.selector, key, STRANGER));
        registry.publishStatusList(ISSUER, LIST, "bafyForged", 100);
    }

    function test_attack_anotherIssuersPublisherPublishesForThisIssuer() public {
        registry.setPublisher("did:key:z6MkOther", STRANGER);
        bytes32 key = registry.issuerKey(ISSUER);
        vm.prank(STRANGER);
        vm.expectRevert(abi.encodeWithSelector(CredentialRegistry.NotIssuerPublisher.selector, key, STRANGER));
        registry.publishStatusList(ISSUER, LIST, "bafyForged", 100);
    }

    function test_attack_withdrawnPublisherPublishes() public {
        registry.setPublisher(ISSUER, address(0));
        bytes32 key = registry.issuerKey(ISSUER);
        vm.prank(PUBLISHER);
        vm.expectRevert(abi.encodeWithSelector(CredentialRegistry.NotIssuerPublisher.selector, key, PUBLISHER));
        registry.publishStatusList(ISSUER, LIST, "bafy1", 100);
    }

    function test_attack_rollbackToAnOlderList() public {
        bytes32 key = registry.listKey(ISSUER, LIST);
        vm.startPrank(PUBLISHER);
        registry.publishStatusList(ISSUER, LIST, "bafyOld", 100);
        registry.publishStatusList(ISSUER, LIST, "bafyRevoked", 200);
        vm.expectRevert(abi.encodeWithSelector(CredentialRegistry.StaleStatusList.selector, key, uint64(200), uint64(100)));
        registry.publishStatusList(ISSUER, LIST, "bafyOld", 100);
        vm.expectRevert(abi.encodeWithSelector(CredentialRegistry.StaleStatusList.selector, key, uint64(200), uint64(200)));
        registry.publishStatusList(ISSUER, LIST, "bafySameTime", 200);
        vm.stopPrank();
    }

    function test_attack_farFutureValidFromFreezesTheList() public {
        // validFrom in milliseconds (a unit slip) or from a stolen publisher key: every honest
        // later version would be stale forever
        uint64 latest = uint64(block.timestamp) + registry.MAX_VALID_FROM_SKEW();
        vm.startPrank(PUBLISHER);
        vm.expectRevert(
            abi.encodeWithSelector(CredentialRegistry.ValidFromTooFarAhead.selector, uint64(block.timestamp) * 1000, latest)
        );
        registry.publishStatusList(ISSUER, LIST, "bafyMillis", uint64(block.timestamp) * 1000);
        vm.expectRevert(abi.encodeWithSelector(CredentialRegistry.ValidFromTooFarAhead.selector, latest + 1, latest));
        registry.publishStatusList(ISSUER, LIST, "bafyFuture", latest + 1);
        registry.publishStatusList(ISSUER, LIST, "bafyEdge", latest); // the allowed skew is inclusive
        vm.stopPrank();
        assertEq(registry.statusList(ISSUER, LIST).validFrom, latest, "validFrom");
    }

    function test_attack_strangerSetsAPublisher() public {
        vm.prank(STRANGER);
        vm.expectRevert(abi.encodeWithSignature("OwnableUnauthorizedAccount(address)", STRANGER));
        registry.setPublisher(ISSUER, STRANGER);
    }

    function test_attack_strangerAnchorsADeviceCredential() public {
        vm.prank(STRANGER);
        vm.expectRevert(abi.encodeWithSelector(CredentialRegistry.NotDeviceManager.selector, STRANGER));
        registry.anchorDeviceCredential(DEVICE, keccak256("vc"), "bafyVc");
    }

    function test_managerAnchorsACredentialOfARegisteredDevice() public {
        vm.prank(MANAGER);
        registry.anchorDeviceCredential(DEVICE, keccak256("vc"), "bafyVc");
        assertEq(registry.deviceCredential(DEVICE).credentialHash, keccak256("vc"), "hash");
        vm.expectRevert(abi.encodeWithSelector(CredentialRegistry.UnknownDevice.selector, address(0xD2)));
        registry.anchorDeviceCredential(address(0xD2), keccak256("vc"), "bafyVc");
    }

    function test_ownershipCannotBeRenounced() public {
        vm.expectRevert(CredentialRegistry.OwnershipCannotBeRenounced.selector);
        registry.renounceOwnership();
    }
}

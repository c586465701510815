// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Base} from "./Base.sol";
import {BN254} from "../src/BN254.sol";
import {OperatorRegistry} from "../src/OperatorRegistry.sol";

/// @notice signerAggregate against an independent sum (the aggregate minus non-signers must equal
///         the sum of the signers' keys, for any bitmap), maxWeightAt / checkpointIndexAt against
///         an independent model, and the deployment rules. Keys: `LocalCommittee.deterministic(
///         "bn254", 8, seed=5)` (veristream.contracts.committee); each PoP is
///         `key.registration_pop(31337, REGISTRY, 1, address(0x1000 + i))` (reusePop: keys[0] for
///         0xBEEF), REGISTRY being where this contract's first `new` lands under forge.
contract OperatorRegistryTest is Base {
    struct Key {
        bytes g1;
        bytes g2;
        bytes pop;
    }

    /// @dev The registry address the proofs of possession below were made for.
    address internal constant REGISTRY = 0x5615dEB798BB3E4dFa0139dFa1b3D433Cc23b72f;
    uint64 internal constant DELAY = 10;

    OperatorRegistry internal registry;
    Key[8] internal keys;
    bytes internal reusePop;
    uint32 internal setId;

    function setUp() public {
        keys[0] = Key(hex"12ac4e05c1047bc2b3f52c7b3ee121f2225d86d173724c024bbbd6283f54809d27a6a1ab568c4676e2977b5ff13d2c242f5f27b16b993c30dcdd23684732f8d4", hex"174fa7b5d0fece1d47c86b842293156dbcd0b62bf403dd07e2dfdc41992272ee2fcf2626d0127b9551b9d2d5664b2840eee458f85f1271d7c92977d201aeb9db0e2532f1a3b848d7ad195ccc30ec3e7aa1c67dd1b9a046ff9852ac3bff97666528da886ec8c9245fd6d1d6925056f01163d3b86d05f3e85a5dc75f5e20961936", hex"0321a33c1cef899942ae4742555f4cfe2021e2aed2ee3e3db183f2dcad69128628d03792f3cc84f4b63620696a3ab70dd73cb974f45226934d2dde3f7f819bd6");
        keys[1] = Key(hex"10267f6307c380fe0eb1a3ba7a7911f2ec9d74dd9a25c9f14438f0f99fe912ec10ffdf261f404448233ece8e805fd24e81f0848a6ea7eb8975b18aa1019368fd", hex"1dc6153ecd5e5cda742953998feb2d0a8e29e241541fd79533fefb011f550845148b56029fbe5331b6635e77791b8b27850dae54109aa11c048c1a65b122253222bfe46b07493488cc13e879416758c49c3fc9ed6002a1d4c6bdb55a2797790204e50d2c1309f681726c7bc88c8cd9a004a0e208aa924e4191da687b080a6be5", hex"25c98e7f6dc8d6a6205b94a26fbfb81994103e357b7ef9b650626082922a813b2cc95c82c304828c12298e55b766d8618573be5ccdd9d5f0e51bfbfed483641c");
        keys[2] = Key(hex"046660c7e04a9989e23c54797c688f80c7fb85dd4f7bee36b1d604ff1632688b28eefe2d7ff3840fe8ff1f46ac73f5c2b9dcb84f39ee2063793d6f866e5be55b", hex"12ac481016e9bec74f0f55aaa28708521e4a6e3df7d2e7f6d7ad4a45ecb302911a4c275306f2aac059bdb0c5d5773283dcb3464db49d61a1c1aa4760bcf34f9d295e4379ceaf348b8d00277f57ca796855a8b0e0fa68232e56c1e6d4e61fd3692f0a14daed9b97990cc1cc2c1bf4bb2f9bb4f170b657d6bcee92b256fa5fa5a7", hex"0731a775680b5b35d7df954299782d8788a9dc78bd2a1fa9a792f0a6626d88ee07b27d7c182f92de1463b1c342ea813a31230eccdee37f502c3579ecb50e1547");
        keys[3] = Key(hex"02aacb3de1e4336dc064a5c9a9d51ad94b248c42683d74a9d5424f8d74b5ba702002c629dddde6b4a7d817fdd6962a5612137d6c6d4b23b76dadedaf6bdbe2db", hex"25d596d46380ba8a452e581df1a1c5e600ef9c3d4938bbe7219bc18d67f19cb215c8465a4fbb414d80629413c12a166baac6f5dbf2a27374194dd756e7db7a732eb01fed7aa2918c2ede31e3cd30cca7c20132404bf6d341209626cc9c7c958725113b65a7e39ba91b98efd1b2be4627640867ebff15703c20b72bfa91389323", hex"20f8f6bf5365dc7efa19e7e0ea576bd98f45a1a4d258393eedbadc4ba056d226114baae1b7cd16786fa54aea8bbbbe20379dd8e16f2e78082846da652280094f");
        keys[4] = Key(hex"232b2f971de1084cab51932ea30bc730ba955f4a18aed3e4fa6b2b07dd9a43372c3a3310fbf48936eb9728bbe5349e0fa9354b3b4eb868cf7f536bc53a40262a", hex"26ebbc22911a69779778c291c8dcec3a07501d7fd663330b1713916e630d4026059977baf35ac540f3fea95cd766337d60a5fb618a635c5843ebcbb78832d6de0fa1669325271818f40d1b0dab391ffea3c9eb51b5e8ab94e94daa94da794c852af08476e63a048165f2cc9dc547e76eeb3135d16a7af2c95b47c1e65620bba0", hex"0ac3f377b91f2bded2cfd0f3364ef04290fb38a7909b64967f11af3b7f2cdc461510832ea45b735757bcb79bf3c69ee8b21175f339b420cecbba81746ec0836f");
        keys[5] = Key(hex"05cd25711521b614798ba01951f862b7335a1495edce58ebdf460de9400e2cd7280a4ac2c2df56d5c94f0f32eb03a664e8cf75d0301eb349fce88ed836994e5b", hex"1c98e769659313fbd15ab76a31c28dec3f7e1f9219706952bf0a848c5fe97a2e2d907d2dba6265cf310cd0c07cc0c22518e6b757dfe00a68844b3c81c60235fc189f56930277812dc4c6c5034f94948a85856c835b37ebfaf2ae6827b88b27310185431d2defe2e1111275c4a2e305196b4d1fc0ca882883a0675e3883b6c4a4", hex"14661749a43698064abb942563d0ae7a24fdfce11bf7c2cdd29f1b3eac2340b627893b3782f8f84ee4a4e278f35a8b44a890e3581dd452c84a8c09f827fca727");
        keys[6] = Key(hex"1943f09ed9bbd40a4745c95d9181a77f70c8f31f5dc92ceaba9296e4a0d303df0b87805df49a3139ec7fe5c8c37b5df4ab25a9c1d18bd3415feb0578b3ce9095", hex"18ed9b33b63634056f8648cb4652281f71c17942223caa7ee47adf5e589b923c0208762deeaff58938349c86e5edcd55f0cddd2fee162c91074031a835dc008918bef5f3e5026ec7e9e59fab5a434c1cfcfdd4cc362bf3a4c85d04ef6ecc624e2ebd7658f07c8a638b9088996f1f58756a3f9a55e92bd700b2e5567259032265", hex"1f93367c860eb503e1b1711d63c75b0aff1892675ead489ed5e2327e08b35ef025ac4b7cb41170c7b23deacd51bc2693c3253ae3cef03a42bfffa420c4f845c5");
        keys[7] = Key(hex"2751d9abe5e1e258173494219a5e5aecdadb54f86c54db240a57cc5a7762cc7621faaf03e5cf7e47638b1689502a670f69b408ec4ecd38b101f0f622e295bbe1", hex"2cf2f24ed00650a806e972fb9f8dddba08bb1f6036f1f01e73049155417405812619be74867d408d99b6dba037a0a28cc45f8a936ab866848ea910455b4f666302de80413772168059851f786af1cd530bb9611c7f6a1dd63a9305100cd241b312fd850b19b655af46eebebede7058660bb2fe5397ee779fb856cc966d810212", hex"06ed4cdf406625b135aaf4912fbf254e70770e7d43e4d00ce31d0083554d54960be2dc52d4e44c80d485e3526b20c07a8f7f894e291b053fd5daa66719c9f1d2");
        reusePop = hex"0a67a41515148a004b9292404cb044f872688bc2119699a9e1654b2cb20b0d1811b3b37669b6637b20d6e5a3305d8821888c0f7515e9c6536dc02f7628d634a9";
        vm.warp(1_000);
        registry = new OperatorRegistry(address(this), DELAY);
        assertEq(uint256(uint160(address(registry))), uint256(uint160(REGISTRY)), "registry address of the PoPs");
        setId = registry.createOperatorSet(1);
        for (uint256 i = 0; i < 8; ++i) {
            registry.registerOperator(setId, _operator(i), uint96(i + 1), keys[i].g1, keys[i].g2, keys[i].pop);
        }
        vm.warp(2_000);
    }

    function _operator(uint256 i) internal pure returns (address) {
        return address(uint160(0x1000 + i));
    }

    function _sum(uint256 bitmap) internal view returns (uint256[2] memory acc, uint96 weight) {
        for (uint256 i = 0; i < 8; ++i) {
            if (bitmap & (1 << i) == 0) continue;
            acc = BN254.add(acc, [uint256(bytes32(keys[i].g1)), uint256(_word(keys[i].g1, 32))]);
            weight += uint96(i + 1);
        }
    }

    function _word(bytes memory data, uint256 offset) internal pure returns (bytes32 w) {
        assembly ("memory-safe") {
            w := mload(add(add(data, 0x20), offset))
        }
    }

    function testFuzz_aggregateMinusNonSignersIsTheSignersSum(uint8 bitmap) public view {
        (, bytes memory apk, uint96 signed, uint96 total) = registry.signerAggregate(setId, 2_000, bitmap);
        (uint256[2] memory expected, uint96 weight) = _sum(bitmap);
        assertEq(uint256(_word(apk, 0)), expected[0], "apk x");
        assertEq(uint256(_word(apk, 32)), expected[1], "apk y");
        assertEq(signed, weight, "signed weight");
        assertEq(total, 36, "total weight");
    }

    function testFuzz_bitmapNamingOutsidersReverts(uint256 bitmap) public {
        vm.assume(bitmap >> 8 != 0);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.SignerNotInSet.selector, bitmap & ~uint256(0xff)));
        registry.signerAggregate(setId, 2_000, bitmap);
    }

    function test_removalAppliesOnlyFromItsEffectiveTime() public {
        registry.removeOperator(setId, _operator(3));
        // before the removal takes effect (2_000 + 10) the snapshot still has slot 3
        (,, uint96 signed,) = registry.signerAggregate(setId, 2_009, 0xff);
        assertEq(signed, 36, "old snapshot");
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.SignerNotInSet.selector, uint256(1 << 3)));
        registry.signerAggregate(setId, 2_010, 0xff);
        (,, uint96 after_, uint96 total) = registry.signerAggregate(setId, 2_010, 0xf7);
        assertEq(after_, 32, "without slot 3");
        assertEq(total, 32, "total without slot 3");
    }

    function test_reusedKeyIsRejected() public {
        bytes32 keyHash = keccak256(abi.encodePacked(_word(keys[0].g1, 0), _word(keys[0].g1, 32), bytes32(0), bytes32(0)));
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.KeyAlreadyUsed.selector, keyHash));
        registry.registerOperator(setId, address(0xBEEF), 1, keys[0].g1, keys[0].g2, reusePop);
    }

    function test_RevertWhen_PopIsCopiedIntoAnotherOperatorsRotateKey() public {
        // keys[1]'s PoP names operator 0x1001; operator 0x1000 presenting it in its own rotateKey fails
        vm.prank(_operator(0));
        vm.expectRevert(OperatorRegistry.InvalidProofOfPossession.selector);
        registry.rotateKey(setId, keys[1].g1, keys[1].g2, keys[1].pop);
    }

    function test_RevertWhen_PopIsReplayedOnAnotherSetOrRegistry() public {
        uint32 other = registry.createOperatorSet(1);
        vm.expectRevert(OperatorRegistry.InvalidProofOfPossession.selector);
        registry.registerOperator(other, _operator(0), 1, keys[0].g1, keys[0].g2, keys[0].pop);
    }

    function test_RevertWhen_ActivationDelayIsBelowTheFloorOnAProductionChain() public {
        vm.chainId(1);
        uint64 floor = registry.MIN_ACTIVATION_DELAY();
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.ActivationDelayTooShort.selector, DELAY, floor));
        new OperatorRegistry(address(this), DELAY);
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.ActivationDelayTooShort.selector, floor - 1, floor));
        new OperatorRegistry(address(this), floor - 1);
        OperatorRegistry production = new OperatorRegistry(address(this), floor);
        assertTrue(!production.isLocalDevelopmentChain(), "chain 1 is not a development chain");
        assertEq(production.activationDelay(), floor, "delay");
    }

    function test_developmentChainsAcceptAOneSecondDelay() public {
        uint256[3] memory ids = [uint256(31337), 1337, 131277322940537];
        for (uint256 i = 0; i < ids.length; ++i) {
            vm.chainId(ids[i]);
            assertEq(new OperatorRegistry(address(this), 1).activationDelay(), 1, "dev delay");
        }
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.ActivationDelayTooShort.selector, uint64(0), uint64(1)));
        new OperatorRegistry(address(this), 0);
    }

    function test_RevertWhen_OwnerRenouncesOwnership() public {
        vm.expectRevert(OperatorRegistry.RenounceOwnershipDisabled.selector);
        registry.renounceOwnership();
        assertEq(uint256(uint160(registry.owner())), uint256(uint160(address(this))), "owner kept");
    }

    /// @notice A random run of weight changes and removals, each in the same activation window as
    ///         the previous change or a later one, against a model of the weights: after every
    ///         change the checkpoint in force from its effective time has the model's largest
    ///         weight and the model's index.
    function testFuzz_maxWeightAndCheckpointIndexFollowEveryChange(uint256 seed) public {
        uint96[8] memory weights = [uint96(1), 2, 3, 4, 5, 6, 7, 8];
        uint64[16] memory at;
        uint96[16] memory maxAt;
        uint256[16] memory indexAt;
        uint256 index = 0; // setUp's registrations share checkpoint 0
        uint64 lastEffective = 1_000 + DELAY;
        uint64 now_ = 2_000;
        for (uint256 step = 0; step < 16; ++step) {
            uint256 r = uint256(keccak256(abi.encode(seed, step)));
            if (r & 1 == 1) now_ += uint64(1 + (r >> 1) % (2 * DELAY)); // else: same block, same window
            vm.warp(now_);
            uint256 i = (r >> 8) % 8;
            if (weights[i] == 0) {
                i = 8;
                for (uint256 j = 0; j < 8; ++j) {
                    if (weights[j] != 0) i = j;
                }
                if (i == 8) break; // everybody left
            }
            if ((r >> 16) % 4 == 0) {
                registry.removeOperator(setId, _operator(i));
                weights[i] = 0;
            } else {
                uint96 w = uint96(1 + (r >> 24) % 20);
                registry.setOperatorWeight(setId, _operator(i), w);
                weights[i] = w;
            }
            uint64 effective = now_ + DELAY;
            if (effective != lastEffective) ++index;
            lastEffective = effective;
            uint96 largest = 0;
            for (uint256 j = 0; j < 8; ++j) {
                if (weights[j] > largest) largest = weights[j];
            }
            at[step] = effective;
            maxAt[step] = largest;
            indexAt[step] = index;
        }
        assertEq(registry.checkpointCount(setId), index + 1, "checkpoint count");
        for (uint256 step = 0; step < 16; ++step) {
            if (at[step] == 0) break;
            // a later change in the same window overrides: compare with the window's last step
            uint256 last = step;
            while (last + 1 < 16 && at[last + 1] == at[step]) ++last;
            assertEq(registry.maxWeightAt(setId, at[step]), maxAt[last], "max weight");
            assertEq(registry.checkpointIndexAt(setId, at[step]), indexAt[last], "checkpoint index");
        }
        assertEq(registry.maxWeightAt(setId, 1_000 + DELAY), 8, "first checkpoint");
        assertEq(registry.checkpointIndexAt(setId, 1_999), 0, "first index");
        vm.expectRevert(abi.encodeWithSelector(OperatorRegistry.NoOperatorSetAt.selector, setId, uint64(1_000)));
        registry.checkpointIndexAt(setId, 1_000);
    }
}

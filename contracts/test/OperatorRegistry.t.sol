// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Base} from "./Base.sol";
import {BN254} from "../src/BN254.sol";
import {OperatorRegistry} from "../src/OperatorRegistry.sol";

/// @notice signerAggregate against an independent sum: the aggregate minus non-signers must
///         equal the sum of the signers' keys, for any bitmap. Keys and proofs of possession:
///         `LocalCommittee.deterministic("bn254", 8, seed=5)` (veristream.contracts.committee).
contract OperatorRegistryTest is Base {
    struct Key {
        bytes g1;
        bytes g2;
        bytes pop;
    }

    OperatorRegistry internal registry;
    Key[8] internal keys;
    uint32 internal setId;

    function setUp() public {
        keys[0] = Key(hex"12ac4e05c1047bc2b3f52c7b3ee121f2225d86d173724c024bbbd6283f54809d27a6a1ab568c4676e2977b5ff13d2c242f5f27b16b993c30dcdd23684732f8d4", hex"174fa7b5d0fece1d47c86b842293156dbcd0b62bf403dd07e2dfdc41992272ee2fcf2626d0127b9551b9d2d5664b2840eee458f85f1271d7c92977d201aeb9db0e2532f1a3b848d7ad195ccc30ec3e7aa1c67dd1b9a046ff9852ac3bff97666528da886ec8c9245fd6d1d6925056f01163d3b86d05f3e85a5dc75f5e20961936", hex"1475ce9ad9ca92de965a4d711a0423a2158100d2a096772a54b35fc6d837f475136c28df323224305e307b3a6446156648847200afe94c57b589d2b1d021d0db");
        keys[1] = Key(hex"10267f6307c380fe0eb1a3ba7a7911f2ec9d74dd9a25c9f14438f0f99fe912ec10ffdf261f404448233ece8e805fd24e81f0848a6ea7eb8975b18aa1019368fd", hex"1dc6153ecd5e5cda742953998feb2d0a8e29e241541fd79533fefb011f550845148b56029fbe5331b6635e77791b8b27850dae54109aa11c048c1a65b122253222bfe46b07493488cc13e879416758c49c3fc9ed6002a1d4c6bdb55a2797790204e50d2c1309f681726c7bc88c8cd9a004a0e208aa924e4191da687b080a6be5", hex"14dca0dbc4a4fd3aa8f2d71535317d4aa9985c26b8500625e9d95f3ccc7b57442d8d371b32611bb39ddffdf2d78450b1b465c62b663c74b3924c8cd64142a5ea");
        keys[2] = Key(hex"046660c7e04a9989e23c54797c688f80c7fb85dd4f7bee36b1d604ff1632688b28eefe2d7ff3840fe8ff1f46ac73f5c2b9dcb84f39ee2063793d6f866e5be55b", hex"12ac481016e9bec74f0f55aaa28708521e4a6e3df7d2e7f6d7ad4a45ecb302911a4c275306f2aac059bdb0c5d5773283dcb3464db49d61a1c1aa4760bcf34f9d295e4379ceaf348b8d00277f57ca796855a8b0e0fa68232e56c1e6d4e61fd3692f0a14daed9b97990cc1cc2c1bf4bb2f9bb4f170b657d6bcee92b256fa5fa5a7", hex"1b62bb4918281a7c6b454e846e6a70ecd3afb99039867bed26dde7c3288004db19f2a04876666d4a0690b42d60d22820c271455ff73d4e22c1e2cd5cb4ce463e");
        keys[3] = Key(hex"02aacb3de1e4336dc064a5c9a9d51ad94b248c42683d74a9d5424f8d74b5ba702002c629dddde6b4a7d817fdd6962a5612137d6c6d4b23b76dadedaf6bdbe2db", hex"25d596d46380ba8a452e581df1a1c5e600ef9c3d4938bbe7219bc18d67f19cb215c8465a4fbb414d80629413c12a166baac6f5dbf2a27374194dd756e7db7a732eb01fed7aa2918c2ede31e3cd30cca7c20132404bf6d341209626cc9c7c958725113b65a7e39ba91b98efd1b2be4627640867ebff15703c20b72bfa91389323", hex"2cadc044d30ba4fbf9339e1709f5dcffe158fe0bd72f3959dd3fa9d4bfc5e83200037960699419408322572a52377b64a55ce96e669e3e9e34cfaee204a30a08");
        keys[4] = Key(hex"232b2f971de1084cab51932ea30bc730ba955f4a18aed3e4fa6b2b07dd9a43372c3a3310fbf48936eb9728bbe5349e0fa9354b3b4eb868cf7f536bc53a40262a", hex"26ebbc22911a69779778c291c8dcec3a07501d7fd663330b1713916e630d4026059977baf35ac540f3fea95cd766337d60a5fb618a635c5843ebcbb78832d6de0fa1669325271818f40d1b0dab391ffea3c9eb51b5e8ab94e94daa94da794c852af08476e63a048165f2cc9dc547e76eeb3135d16a7af2c95b47c1e65620bba0", hex"0dc31020bdd108c1c0d2b17aca8dce25a0d211dbc6e2751178f72910785558b106ad21ea79f6ad2bb08e92dd92a0774487504f985b98085f78c6a30355f0d5b2");
        keys[5] = Key(hex"05cd25711521b614798ba01951f862b7335a1495edce58ebdf460de9400e2cd7280a4ac2c2df56d5c94f0f32eb03a664e8cf75d0301eb349fce88ed836994e5b", hex"1c98e769659313fbd15ab76a31c28dec3f7e1f9219706952bf0a848c5fe97a2e2d907d2dba6265cf310cd0c07cc0c22518e6b757dfe00a68844b3c81c60235fc189f56930277812dc4c6c5034f94948a85856c835b37ebfaf2ae6827b88b27310185431d2defe2e1111275c4a2e305196b4d1fc0ca882883a0675e3883b6c4a4", hex"2b8917aed7b98f1ef6b852874e625920e727cb1f694b75eb4e6b511542d88b0c076c6c7d99ab0b7e10325792b7225c0ad6cff1b3064c81443e9fb1e8e1134d76");
        keys[6] = Key(hex"1943f09ed9bbd40a4745c95d9181a77f70c8f31f5dc92ceaba9296e4a0d303df0b87805df49a3139ec7fe5c8c37b5df4ab25a9c1d18bd3415feb0578b3ce9095", hex"18ed9b33b63634056f8648cb4652281f71c17942223caa7ee47adf5e589b923c0208762deeaff58938349c86e5edcd55f0cddd2fee162c91074031a835dc008918bef5f3e5026ec7e9e59fab5a434c1cfcfdd4cc362bf3a4c85d04ef6ecc624e2ebd7658f07c8a638b9088996f1f58756a3f9a55e92bd700b2e5567259032265", hex"19858c7f0b556bf3f26f4f4ac841378814efd5d2b1db0ca1d62925e767124fe6112b0dbaad8150dabb8ab84ec19a937f962177bbc83134b6a1eab7d9b07f58d3");
        keys[7] = Key(hex"2751d9abe5e1e258173494219a5e5aecdadb54f86c54db240a57cc5a7762cc7621faaf03e5cf7e47638b1689502a670f69b408ec4ecd38b101f0f622e295bbe1", hex"2cf2f24ed00650a806e972fb9f8dddba08bb1f6036f1f01e73049155417405812619be74867d408d99b6dba037a0a28cc45f8a936ab866848ea910455b4f666302de80413772168059851f786af1cd530bb9611c7f6a1dd63a9305100cd241b312fd850b19b655af46eebebede7058660bb2fe5397ee779fb856cc966d810212", hex"0b14ecd1eaf953684d4b672bb057ae127926de7c87c8945c87aa0843194d5855060f688122f2a1d7211354c42e3436a2801e950da9333177f46457195d528da6");
        vm.warp(1_000);
        registry = new OperatorRegistry(address(this), 10);
        setId = registry.createOperatorSet(1);
        for (uint256 i = 0; i < 8; ++i) {
            registry.registerOperator(setId, address(uint160(0x1000 + i)), uint96(i + 1), keys[i].g1, keys[i].g2, keys[i].pop);
        }
        vm.warp(2_000);
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
        registry.removeOperator(setId, address(uint160(0x1000 + 3)));
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
        registry.registerOperator(setId, address(0xBEEF), 1, keys[0].g1, keys[0].g2, keys[0].pop);
    }
}

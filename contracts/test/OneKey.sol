// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {BN254} from "../src/BN254.sol";

/// @notice A bn254 registry of one operator whose secret key is 1: its keys are the generators,
///         so a test signs with hash-to-G1 alone and the EpochVerifier's real pairing check runs.
contract OneKeyRegistry {
    function schemeOf(uint32) external pure returns (uint8) {
        return 1;
    }

    function checkpointCount(uint32) external pure returns (uint256) {
        return 1;
    }

    function signerAggregate(uint32, uint64, uint256 signerBitmap)
        external
        pure
        returns (uint8 scheme, bytes memory apk, uint96 signedWeight, uint96 totalWeight)
    {
        return (1, abi.encodePacked(uint256(1), uint256(2)), signerBitmap == 1 ? 1 : 0, 1);
    }
}

/// @notice Signatures of the key 1 (the `OneKeyRegistry` operator).
library OneKey {
    /// @notice sk * H(digest) with sk = 1: the hash point itself, as EpochVerifier hashes it.
    function sign(bytes32 digest) internal view returns (bytes memory) {
        uint256[2] memory h = BN254.hashToG1("VERISTREAM-BLS-BN254-SIG-V1", abi.encodePacked(digest));
        return abi.encodePacked(h[0], h[1]);
    }

    /// @notice The G2 generator (EIP-197 order): the aggregate G2 key of the one signer.
    function apkG2() internal pure returns (bytes memory) {
        return abi.encodePacked(
            BN254.NEG_G2_X_IMAG, BN254.NEG_G2_X_REAL, BN254.P - BN254.NEG_G2_Y_IMAG, BN254.P - BN254.NEG_G2_Y_REAL
        );
    }
}

/// @notice Aggregate leaves as the pipeline encodes them, hashed as StandardMerkleTree does.
library AggregateLeaf {
    function encode(address device, string memory field, int256 min, int256 max) internal pure returns (bytes memory) {
        uint8[] memory percents = new uint8[](2);
        percents[0] = 50;
        percents[1] = 90;
        int256[] memory values = new int256[](2);
        values[0] = (min + max) / 2;
        values[1] = max;
        return abi.encode(device, field, uint64(12), min, max, (min + max) * 6, percents, values);
    }

    function hash(bytes memory encoded) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(encoded)));
    }

    /// @notice The root of a two-leaf tree (OpenZeppelin's commutative pair hash).
    function pair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }
}

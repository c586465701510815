// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title BLS12381
/// @notice Ethereum's BLS ciphersuite (public keys in G1, signatures in G2,
///         BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_) over the EIP-2537 precompiles (Prague).
/// @dev Encodings are EIP-2537's: an Fp element is 64 bytes (16 zero bytes, then 48 big-endian),
///      G1 = x||y (128 bytes), G2 = x.c0||x.c1||y.c0||y.c1 (256 bytes).
library BLS12381 {
    // The field modulus q as two words: the upper 16 bytes and the lower 32 bytes.
    uint256 internal constant Q_HI = 0x1a0111ea397fe69a4b1ba7b6434bacd7;
    uint256 internal constant Q_LO = 0x64774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab;
    // (q - 1) / 2: y above it sets the sign bit of a compressed point (ZCash encoding).
    uint256 internal constant HALF_HI = 0x0d0088f51cbff34d258dd3db21a5d66b;
    uint256 internal constant HALF_LO = 0xb23ba5c279c2895fb39869507b587b120f55ffff58a9ffffdcff7fffffffd555;

    // -G1 (the generator with y negated), for e(apk, H(m)) * e(-G1, sig) == 1.
    uint256 internal constant NEG_G1_X_HI = 0x17f1d3a73197d7942695638c4fa9ac0f;
    uint256 internal constant NEG_G1_X_LO = 0xc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb;
    uint256 internal constant NEG_G1_Y_HI = 0x114d1d6855d545a8aa7d76c8cf2e21f2;
    uint256 internal constant NEG_G1_Y_LO = 0x67816aef1db507c96655b9d5caac42364e6f38ba0ecb751bad54dcd6b939c2ca;

    bytes internal constant SIG_DST = "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
    bytes internal constant POP_DST = "BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

    /// @notice A point is malformed or off the curve (an EIP-2537 precompile failed).
    error BLS12381InvalidPoint();

    function _call(address precompile, bytes memory input, uint256 outLength)
        private
        view
        returns (bytes memory out)
    {
        out = new bytes(outLength);
        bool ok;
        assembly ("memory-safe") {
            ok := staticcall(gas(), precompile, add(input, 0x20), mload(input), add(out, 0x20), outLength)
        }
        if (!ok) revert BLS12381InvalidPoint();
    }

    /// @notice G1 point addition (G1ADD, 0x0b); checks both points are on the curve.
    function g1Add(bytes memory a, bytes memory b) internal view returns (bytes memory) {
        return _call(address(0x0b), bytes.concat(a, b), 128);
    }

    /// @notice G2 point addition (G2ADD, 0x0d).
    function g2Add(bytes memory a, bytes memory b) internal view returns (bytes memory) {
        return _call(address(0x0d), bytes.concat(a, b), 256);
    }

    /// @notice Maps an Fp2 element (c0||c1, 128 bytes) to G2 with cofactor clearing (0x11).
    function mapToG2(bytes memory fp2) internal view returns (bytes memory) {
        return _call(address(0x11), fp2, 256);
    }

    /// @notice The negation of a G1 point given as four words (x_hi, x_lo, y_hi, y_lo).
    function g1Neg(bytes32[4] memory p) internal pure returns (bytes32[4] memory) {
        uint256 yHi = uint256(p[2]);
        uint256 yLo = uint256(p[3]);
        if (yHi == 0 && yLo == 0) return p; // the point at infinity
        unchecked {
            uint256 borrow = yLo > Q_LO ? 1 : 0;
            return [p[0], p[1], bytes32(Q_HI - yHi - borrow), bytes32(Q_LO - yLo)];
        }
    }

    /// @notice A G1 point from 128 bytes of calldata as four words.
    function g1Words(bytes calldata data) internal pure returns (bytes32[4] memory w) {
        w[0] = bytes32(data[0:32]);
        w[1] = bytes32(data[32:64]);
        w[2] = bytes32(data[64:96]);
        w[3] = bytes32(data[96:128]);
    }

    /// @notice The 128-byte encoding of a G1 point held as four words.
    function g1Bytes(bytes32[4] memory w) internal pure returns (bytes memory) {
        return abi.encodePacked(w[0], w[1], w[2], w[3]);
    }

    /// @notice The 48-byte compressed (ZCash) form of a G1 point: what the POP ciphersuite signs.
    function compressG1(bytes32[4] memory w) internal pure returns (bytes memory out) {
        uint256 xHi = uint256(w[0]);
        uint256 yHi = uint256(w[2]);
        uint256 yLo = uint256(w[3]);
        bool largest = yHi > HALF_HI || (yHi == HALF_HI && yLo > HALF_LO);
        out = abi.encodePacked(uint128(xHi), w[1]);
        out[0] = bytes1(uint8(out[0]) | 0x80 | (largest ? 0x20 : 0x00));
    }

    /// @notice expand_message_xmd (RFC 9380, SHA-256) to 256 bytes, as eight words.
    function expandMessageXmd(bytes memory message, bytes memory dst) internal pure returns (bytes32[8] memory b) {
        bytes memory dstPrime = abi.encodePacked(dst, uint8(dst.length));
        bytes32 b0 = sha256(abi.encodePacked(bytes32(0), bytes32(0), message, uint16(256), uint8(0), dstPrime));
        b[0] = sha256(abi.encodePacked(b0, uint8(1), dstPrime));
        for (uint256 i = 1; i < 8; ++i) {
            b[i] = sha256(abi.encodePacked(b0 ^ b[i - 1], uint8(i + 1), dstPrime));
        }
    }

    /// @notice A 64-byte big-endian integer reduced mod q (modexp 0x05 with exponent 1), as 64 bytes.
    function reduce(bytes32 hi, bytes32 lo) internal view returns (bytes memory) {
        bytes memory input =
            abi.encodePacked(uint256(64), uint256(1), uint256(64), hi, lo, uint8(1), Q_HI, Q_LO);
        return _call(address(0x05), input, 64);
    }

    /// @notice hash_to_curve for G2 (RFC 9380 BLS12381G2_XMD:SHA-256_SSWU_RO_) under `dst`.
    function hashToG2(bytes memory message, bytes memory dst) internal view returns (bytes memory) {
        bytes32[8] memory u = expandMessageXmd(message, dst);
        bytes memory q0 = mapToG2(bytes.concat(reduce(u[0], u[1]), reduce(u[2], u[3])));
        bytes memory q1 = mapToG2(bytes.concat(reduce(u[4], u[5]), reduce(u[6], u[7])));
        // Cofactor clearing is linear, so clear(map(u0)) + clear(map(u1)) == clear(map(u0) + map(u1)).
        return g2Add(q0, q1);
    }

    /// @notice e(pk, h) * e(-G1, sig) == 1 through one PAIRING_CHECK (0x0f) call; the precompile
    ///         checks that every point is on its curve and in the prime-order subgroup.
    /// @return ok false when the check fails or an input is invalid.
    function verifyPoint(bytes memory pk, bytes memory h, bytes memory sig) internal view returns (bool ok) {
        bytes memory input = abi.encodePacked(pk, h, NEG_G1_X_HI, NEG_G1_X_LO, NEG_G1_Y_HI, NEG_G1_Y_LO, sig);
        uint256[1] memory out;
        bool success;
        assembly ("memory-safe") {
            success := staticcall(gas(), 0x0f, add(input, 0x20), mload(input), out, 0x20)
        }
        return success && out[0] == 1;
    }
}

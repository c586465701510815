// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title BN254
/// @notice BLS over alt_bn128 with the EVM precompiles (EIP-196/197/198): signatures and
///         H(m) in G1 (x||y), public keys in G2 (EIP-197 order x.imag, x.real, y.imag, y.real).
/// @dev hash-to-G1 is try-and-increment over keccak256(dst || m), the same as
///      `veristream.provers.bls.bn254.hash_to_g1`.
library BN254 {
    uint256 internal constant P = 21888242871839275222246405745257275088696311157297823662689037894645226208583;
    uint256 internal constant R = 21888242871839275222246405745257275088548364400416034343698204186575808495617;

    // -G2 (EIP-197 order): the generator with y negated, so e(a, -G2) * e(b, Q) == 1 <=> e(a, G2) == e(b, Q).
    uint256 internal constant NEG_G2_X_IMAG = 11559732032986387107991004021392285783925812861821192530917403151452391805634;
    uint256 internal constant NEG_G2_X_REAL = 10857046999023057135944570762232829481370756359578518086990519993285655852781;
    uint256 internal constant NEG_G2_Y_IMAG = 17805874995975841540914202342111839520379459829704422454583296818431106115052;
    uint256 internal constant NEG_G2_Y_REAL = 13392588948715843804641432497768002650278120570034223513918757245338268106653;

    /// @notice A G1 input is not a point of the curve (or a precompile failed).
    error BN254InvalidPoint();

    /// @notice Sum of two G1 points (ecAdd, 0x06); reverts on points off the curve.
    function add(uint256[2] memory a, uint256[2] memory b) internal view returns (uint256[2] memory out) {
        uint256[4] memory input = [a[0], a[1], b[0], b[1]];
        bool ok;
        assembly ("memory-safe") {
            ok := staticcall(gas(), 0x06, input, 0x80, out, 0x40)
        }
        if (!ok) revert BN254InvalidPoint();
    }

    /// @notice Scalar multiple of a G1 point (ecMul, 0x07); reverts on points off the curve.
    function mul(uint256[2] memory a, uint256 s) internal view returns (uint256[2] memory out) {
        uint256[3] memory input = [a[0], a[1], s];
        bool ok;
        assembly ("memory-safe") {
            ok := staticcall(gas(), 0x07, input, 0x60, out, 0x40)
        }
        if (!ok) revert BN254InvalidPoint();
    }

    /// @notice The negation of a G1 point (the point at infinity (0,0) is its own negation).
    function neg(uint256[2] memory a) internal pure returns (uint256[2] memory) {
        if (a[0] == 0 && a[1] == 0) return a;
        return [a[0], P - (a[1] % P)];
    }

    /// @notice base^exponent mod P through the modexp precompile (0x05).
    function expMod(uint256 base, uint256 exponent) internal view returns (uint256 out) {
        uint256[6] memory input = [uint256(32), 32, 32, base, exponent, P];
        bool ok;
        assembly ("memory-safe") {
            ok := staticcall(gas(), 0x05, input, 0xc0, input, 0x20)
            out := mload(input)
        }
        if (!ok) revert BN254InvalidPoint();
    }

    /// @notice Try-and-increment hash to G1: x = keccak256(dst || message) mod P, then the first
    ///         x' = x, x+1, ... with x'^3 + 3 a square; y = (x'^3 + 3)^((P+1)/4), unnormalised.
    function hashToG1(bytes memory dst, bytes memory message) internal view returns (uint256[2] memory) {
        uint256 x = uint256(keccak256(abi.encodePacked(dst, message))) % P;
        while (true) {
            uint256 rhs = addmod(mulmod(mulmod(x, x, P), x, P), 3, P);
            uint256 y = expMod(rhs, (P + 1) / 4);
            if (mulmod(y, y, P) == rhs) return [x, y];
            x = addmod(x, 1, P);
        }
        // unreachable: about half of all x are valid
        return [uint256(0), uint256(0)];
    }

    /// @notice One ecPairing call (0x08) with two pairs: e(a1, b1) * e(a2, b2) == 1.
    /// @return ok false when the product is not one or an input is invalid (the precompile fails).
    function pairing2(uint256[2] memory a1, uint256[4] memory b1, uint256[2] memory a2, uint256[4] memory b2)
        internal
        view
        returns (bool ok)
    {
        uint256[12] memory input =
            [a1[0], a1[1], b1[0], b1[1], b1[2], b1[3], a2[0], a2[1], b2[0], b2[1], b2[2], b2[3]];
        uint256[1] memory out;
        bool success;
        assembly ("memory-safe") {
            success := staticcall(gas(), 0x08, input, 0x180, out, 0x20)
        }
        return success && out[0] == 1;
    }

    /// @notice EigenLayer-style check that `sig` is the BLS signature of the key pair
    ///         (apkG1, apkG2) on the point `h`, and that apkG1 and apkG2 share a secret:
    ///         e(sig + g*apkG1, -G2) * e(h + g*G1, apkG2) == 1 with g = `gamma`.
    function checkG1G2(
        uint256[2] memory h,
        uint256[2] memory sig,
        uint256[2] memory apkG1,
        uint256[4] memory apkG2,
        uint256 gamma
    ) internal view returns (bool) {
        uint256[2] memory left = add(sig, mul(apkG1, gamma));
        uint256[2] memory right = add(h, mul([uint256(1), uint256(2)], gamma));
        return pairing2(left, [NEG_G2_X_IMAG, NEG_G2_X_REAL, NEG_G2_Y_IMAG, NEG_G2_Y_REAL], right, apkG2);
    }

    /// @notice Decodes 64 bytes x||y into a G1 point (no curve check: the precompiles do it).
    function g1FromBytes(bytes calldata data) internal pure returns (uint256[2] memory p) {
        p[0] = uint256(bytes32(data[0:32]));
        p[1] = uint256(bytes32(data[32:64]));
    }

    /// @notice Decodes 128 bytes (EIP-197 order) into a G2 point.
    function g2FromBytes(bytes calldata data) internal pure returns (uint256[4] memory p) {
        p[0] = uint256(bytes32(data[0:32]));
        p[1] = uint256(bytes32(data[32:64]));
        p[2] = uint256(bytes32(data[64:96]));
        p[3] = uint256(bytes32(data[96:128]));
    }
}

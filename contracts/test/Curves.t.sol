// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Base} from "./Base.sol";
import {BN254} from "../src/BN254.sol";
import {BLS12381} from "../src/BLS12381.sol";

contract CurvesTest is Base {
    function testFuzz_bn254HashToG1IsOnTheCurve(bytes memory message) public view {
        uint256[2] memory h = BN254.hashToG1("VERISTREAM-BLS-BN254-SIG-V1", message);
        uint256 p = BN254.P;
        assertEq(mulmod(h[1], h[1], p), addmod(mulmod(mulmod(h[0], h[0], p), h[0], p), 3, p), "y^2 = x^3 + 3");
        // ecAdd accepts it (reverts for points off the curve)
        BN254.add(h, h);
    }

    function testFuzz_bn254NegationCancels(uint256 scalar) public view {
        scalar = scalar % (BN254.R - 1) + 1;
        uint256[2] memory q = BN254.mul([uint256(1), uint256(2)], scalar);
        uint256[2] memory zero = BN254.add(q, BN254.neg(q));
        assertEq(zero[0] + zero[1], 0, "q + (-q) = infinity");
    }

    function test_bls12381CompressedGenerator() public pure {
        // G1 generator, EIP-2537 words, and its ZCash compressed form (sign bit clear)
        bytes32[4] memory g = [
            bytes32(uint256(0x17f1d3a73197d7942695638c4fa9ac0f)),
            bytes32(0xc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb),
            bytes32(uint256(0x08b3f481e3aaa0f1a09e30ed741d8ae4)),
            bytes32(0xfcf5e095d5d00af600db18cb2c04b3edd03cc744a2888ae40caa232946c5e7e1)
        ];
        bytes memory c = BLS12381.compressG1(g);
        assertEq(c.length, 48, "length");
        assertEq(uint8(c[0]), 0x97, "flags: compressed, sign clear");
        // its negation sets the sign bit
        bytes memory cn = BLS12381.compressG1(BLS12381.g1Neg(g));
        assertEq(uint8(cn[0]), 0xb7, "flags: compressed, sign set");
    }

    function testFuzz_bls12381NegationIsAnInvolution(uint128 hi, uint256 lo) public pure {
        vm.assume(uint256(hi) < BLS12381.Q_HI && (hi != 0 || lo != 0));
        bytes32[4] memory p = [bytes32(0), bytes32(uint256(7)), bytes32(uint256(hi)), bytes32(lo)];
        bytes32[4] memory back = BLS12381.g1Neg(BLS12381.g1Neg(p));
        assertEq(back[2], p[2], "y hi");
        assertEq(back[3], p[3], "y lo");
    }

    function test_bls12381HashToG2IsAPoint() public view {
        bytes memory h = BLS12381.hashToG2("abc", BLS12381.SIG_DST);
        // G2ADD checks the point is on the curve
        assertEq(BLS12381.g2Add(h, new bytes(256)).length, 256, "on curve");
    }
}

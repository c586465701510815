"""The in-process EVM's native BLS12-381 precompiles answer exactly as py-evm's own."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from eth.exceptions import VMError
from eth.precompiles.bls12_381 import bls12_381_g2, bls12_381_pairing
from py_ecc.optimized_bls12_381 import G1, G2, curve_order, multiply, neg, normalize

from veristream.contracts import native_precompiles as native


class _Call:
    """The part of a computation a precompile uses: its input, its gas and its output."""

    def __init__(self, data: bytes) -> None:
        self.msg = SimpleNamespace(data=data)
        self.gas: list[int] = []
        self.output = b""

    def consume_gas(self, amount: int, reason: str) -> None:
        self.gas.append(amount)


def _run(function: Any, data: bytes) -> tuple[str, bytes, list[int]]:
    call = _Call(data)
    try:
        function(call)
    except VMError:
        return "error", b"", call.gas
    return "ok", call.output, call.gas


def _g1(point: Any) -> bytes:
    x, y = normalize(point)
    return int(x).to_bytes(64, "big") + int(y).to_bytes(64, "big")


def _g2(point: Any) -> bytes:
    x, y = normalize(point)
    return b"".join(int(c).to_bytes(64, "big") for c in (*x.coeffs, *y.coeffs))


INF_G1, INF_G2 = bytes(128), bytes(256)
PAIRING_INPUTS = {
    "e(P,Q) e(-P,Q) = 1": _g1(multiply(G1, 5)) + _g2(G2) + _g1(neg(multiply(G1, 5))) + _g2(G2),
    "e(aP,Q) e(P,-aQ) = 1": _g1(multiply(G1, 7)) + _g2(G2) + _g1(G1) + _g2(neg(multiply(G2, 7))),
    "one pair, not one": _g1(G1) + _g2(G2),
    "two pairs, not one": _g1(G1) + _g2(G2) + _g1(G1) + _g2(G2),
    "infinity only": INF_G1 + _g2(G2),
    "infinity beside a pair": INF_G1 + INF_G2 + _g1(G1) + _g2(G2),
    "G1 off the curve": _g1(G1)[:127] + b"\x05" + _g2(G2),
    "G2 off the curve": _g1(G1) + _g2(G2)[:255] + b"\x05",
    "field element too large": b"\xff" * 128 + _g2(G2),
    "bad length": _g1(G1) + _g2(G2)[:-1],
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(PAIRING_INPUTS))
def test_pairing_check_answers_as_py_evm(name: str) -> None:
    data = PAIRING_INPUTS[name]
    assert _run(native.bls12_pairing_check, data) == _run(bls12_381_pairing.bls12_pairing_check, data)


def test_pairing_point_outside_the_subgroup_fails_the_call() -> None:
    # a G2 point on the curve but outside the prime-order subgroup must fail the call
    from py_ecc.bls.hash_to_curve import map_to_curve_G2
    from py_ecc.optimized_bls12_381 import FQ2

    outside = map_to_curve_G2(FQ2([5, 7]))
    assert normalize(multiply(outside, curve_order)) != normalize(multiply(G2, curve_order))
    data = _g1(G1) + _g2(outside)
    assert _run(native.bls12_pairing_check, data)[0] == "error"
    assert _run(bls12_381_pairing.bls12_pairing_check, data)[0] == "error"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_map_fp2_to_g2_answers_as_py_evm(seed: int) -> None:
    import hashlib

    words = [int.from_bytes(hashlib.sha512(bytes([seed, i])).digest(), "big") % native.FIELD_MODULUS for i in (0, 1)]
    data = b"".join(w.to_bytes(64, "big") for w in words)
    assert _run(native.bls12_map_fp2_to_g2, data) == _run(bls12_381_g2.bls12_map_fp2_to_g2, data)
    assert _run(native.bls12_map_fp2_to_g2, data[:-1])[0] == "error"
    too_large = b"\xff" * 64 + data[64:]
    assert _run(native.bls12_map_fp2_to_g2, too_large) == _run(bls12_381_g2.bls12_map_fp2_to_g2, too_large)


def test_install_swaps_the_table_of_prague_and_later() -> None:
    from eth.vm.forks.prague.computation import PragueComputation

    assert native.install_native_precompiles()
    table = PragueComputation.get_precompiles()
    assert table[native.PAIRING_CHECK_ADDRESS] is native.bls12_pairing_check
    assert table[native.MAP_FP2_TO_G2_ADDRESS] is native.bls12_map_fp2_to_g2

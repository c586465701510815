"""The Solidity DeviceRegistry agrees with ``veristream.provers.signing``.

Deploys the compiled artifact on the in-process EVM (eth-tester) directly, so
this checks the digest and the secp256k1 acceptance rules (v, low s) against
OpenZeppelin's ECDSA and the ``ecrecover`` precompile, not against our code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3

from tests.conftest import REPO
from veristream.provers.encoding import keccak256
from veristream.provers.readings import Domain, Reading
from veristream.provers.reasons import SignatureFault
from veristream.provers.schemes import secp256k1
from veristream.provers.signing import public_key_of, reading_digest, sign_reading, verify_reading

ARTIFACT = REPO / "contracts" / "artifacts" / "DeviceRegistry.json"
SECRET = keccak256(b"test_signing_contract/device")


@pytest.fixture(scope="module")
def registry() -> Iterator[tuple[Any, Domain]]:
    """A deployed DeviceRegistry with one secp256k1 device registered, and its domain."""
    artifact = json.loads(ARTIFACT.read_text())
    w3 = Web3(Web3.EthereumTesterProvider())
    owner = w3.eth.accounts[0]
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(factory.constructor(owner).transact({"from": owner}))
    contract = w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])
    device = Account.from_key(SECRET).address
    tx = contract.functions.registerDevice(device, owner, 1, b"").transact({"from": owner})
    w3.eth.wait_for_transaction_receipt(tx)
    domain = Domain(chain_id=w3.eth.chain_id, verifying_contract=receipt["contractAddress"])
    yield contract, domain


def _registry_keys(contract: Any, device: str) -> dict[str, bytes]:
    """``verify_many``'s ``keys`` for one device, read from the contract as the pipeline would."""
    record = contract.functions.deviceOf(Web3.to_checksum_address(device)).call()
    return {device.lower(): bytes(record[5])}


def _on_chain(contract: Any, reading: Reading) -> bool:
    return bool(
        contract.functions.verifyReadingSignature(
            Web3.to_checksum_address(reading.device_id),
            reading.seq,
            reading.timestamp_ms,
            keccak256(reading.payload),
            reading.signature,
        ).call()
    )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    address=st.binary(min_size=20, max_size=20),
    seq=st.integers(min_value=0, max_value=2**64 - 1),
    timestamp=st.integers(min_value=0, max_value=2**64 - 1),
    payload=st.binary(max_size=200),
)
def test_contract_digest_equals_ours(
    registry: tuple[Any, Domain], address: bytes, seq: int, timestamp: int, payload: bytes
) -> None:
    contract, domain = registry
    reading = Reading("0x" + address.hex(), seq, timestamp, payload, b"")
    on_chain = contract.functions.readingDigest(
        Web3.to_checksum_address(reading.device_id), seq, timestamp, keccak256(payload)
    ).call()
    assert bytes(on_chain) == reading_digest(reading, domain)


def test_contract_and_verify_many_accept_and_reject_the_same_signatures(registry: tuple[Any, Domain]) -> None:
    contract, domain = registry
    device = Account.from_key(SECRET).address.lower()
    reading = sign_reading(Reading(device, 3, 1_767_225_600_000, b"pm2.5=7", b""), domain, SECRET)
    sig = reading.signature
    s = int.from_bytes(sig[32:64], "big")
    cases = {
        "valid": (sig, None),
        "high_s": (sig[:32] + (secp256k1.N - s).to_bytes(32, "big") + bytes((55 - sig[64],)), SignatureFault.HIGH_S),
        "v_0_1": (sig[:64] + bytes((sig[64] - 27,)), SignatureFault.BAD_V),
        "other_v": (sig[:64] + bytes((55 - sig[64],)), SignatureFault.BAD_SIGNATURE),
        "short": (sig[:64], SignatureFault.MALFORMED_SIGNATURE),
    }
    for name, (signature, reason) in cases.items():
        candidate = reading._replace(signature=signature)
        verdict = verify_reading(candidate, domain)
        assert verdict.reason == reason, name
        assert _on_chain(contract, candidate) == verdict.ok, name
    tampered = reading._replace(seq=4)
    assert not verify_reading(tampered, domain).ok
    assert not _on_chain(contract, tampered)


def test_contract_and_verify_many_agree_after_a_key_rotation(registry: tuple[Any, Domain]) -> None:
    # rotateKey keeps the device id: for a reading stamped after the rotation the contract
    # then recovers to the new key's address, and verify_many given the registry's key must
    # do the same (readings stamped before it keep verifying under the old key)
    contract, domain = registry
    w3 = contract.w3
    owner = w3.eth.accounts[0]
    old_secret = keccak256(b"test_signing_contract/rotating-old")
    new_secret = keccak256(b"test_signing_contract/rotating-new")
    device = Account.from_key(old_secret).address.lower()
    checksummed = Web3.to_checksum_address(device)
    w3.eth.wait_for_transaction_receipt(
        contract.functions.registerDevice(checksummed, owner, 1, b"").transact({"from": owner})
    )
    unsigned = Reading(device, 9, 4_102_444_800_000, b"co2=412", b"")  # 2100-01-01
    by_old = sign_reading(unsigned, domain, old_secret)
    by_new = sign_reading(unsigned, domain, new_secret)
    for rotated in (False, True):
        if rotated:
            new_key = public_key_of("secp256k1", new_secret)
            tx = contract.functions.rotateKey(checksummed, 1, new_key).transact({"from": owner})
            w3.eth.wait_for_transaction_receipt(tx)
        keys = _registry_keys(contract, device)
        for reading, current in ((by_old, not rotated), (by_new, rotated)):
            assert _on_chain(contract, reading) == current, (rotated, current)
            expected = None if current else SignatureFault.BAD_SIGNATURE
            assert verify_reading(reading, domain, keys).reason == expected, (rotated, current)

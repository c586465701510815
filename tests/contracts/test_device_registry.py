"""DeviceRegistry on the embedded EVM: the reading and key-rotation digests agree with Python
and eth-account, secp256k1 signatures verify on chain against the key in force at the reading's
timestamp (high-s and wrong keys refused), rotation needs a manager or the current key's consent
and keeps the id and the old key's window, revocation takes effect from its stated time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from veristream.contracts import (
    Chain,
    ContractRevert,
    Deployment,
    check_reading_signature,
    connect,
    deploy_all,
    device_changes,
    device_info,
    device_key_at,
    is_manager,
    key_rotation_digest,
    reading_digest,
    register_device,
    revoke_device,
    rotate_device_key,
    set_device_owner,
    set_manager,
    sign_key_rotation,
)
from veristream.provers.encoding import keccak256
from veristream.provers.readings import Domain, Reading
from veristream.provers.signing import public_key_of, reading_typed_data
from veristream.provers.signing import reading_digest as py_reading_digest

SECP_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass
class Setup:
    chain: Chain
    dep: Deployment
    domain: Domain


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    chain = connect(None)
    dep = deploy_all(chain, dev=True)
    domain = Domain(chain_id=chain.chain_id, verifying_contract=dep.device_registry)
    yield Setup(chain, dep, domain)
    chain.close()


def _sign(private_key: bytes, device: str, seq: int, ts: int, payload: bytes, domain: Domain) -> bytes:
    reading = Reading(device, seq, ts, payload, b"")
    signed = Account.sign_typed_data(private_key, full_message=reading_typed_data(reading, domain))
    return bytes(signed.signature)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    device=st.binary(min_size=20, max_size=20),
    seq=st.integers(0, 2**64 - 1),
    ts=st.integers(0, 2**64 - 1),
    payload=st.binary(max_size=200),
)
def test_reading_digest_matches_python_and_eth_account(
    setup: Setup, device: bytes, seq: int, ts: int, payload: bytes
) -> None:
    address = "0x" + device.hex()
    reading = Reading(address, seq, ts, payload, b"")
    on_chain = reading_digest(setup.chain, setup.dep, address, seq, ts, keccak256(payload))
    oracle = encode_typed_data(full_message=reading_typed_data(reading, setup.domain))
    eth_account_digest = keccak(b"\x19" + oracle.version + oracle.header + oracle.body)
    assert on_chain == py_reading_digest(reading, setup.domain) == eth_account_digest


def test_secp256k1_signature_rotation_and_revocation(setup: Setup) -> None:
    chain, dep, domain = setup.chain, setup.dep, setup.domain
    key1, key2 = bytes.fromhex("11" * 32), bytes.fromhex("22" * 32)
    device = Account.from_key(key1).address
    owner = chain.accounts[3]
    register_device(chain, dep, device, owner)  # the device id is the first key's address
    payload = b'{"t": 21.5}'
    sig = _sign(key1, device, 1, 1_000, payload, domain)
    assert check_reading_signature(chain, dep, device, 1, 1_000, keccak256(payload), sig)
    assert not check_reading_signature(chain, dep, device, 2, 1_000, keccak256(payload), sig)  # other seq

    # the same signature with s -> n - s (and v flipped) is valid maths but non-canonical: refused
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    high_s = r + (SECP_N - s).to_bytes(32, "big") + bytes([55 - v])
    assert not check_reading_signature(chain, dep, device, 1, 1_000, keccak256(payload), high_s)

    # the device's owner rotates with the current key's consent; the id stays, and the old key
    # keeps its window: its reading at t=1000 still verifies, a new one by it does not
    new_key = public_key_of("secp256k1", key2)
    consent = sign_key_rotation(key1, domain, device, "secp256k1", new_key, 2)
    receipt = rotate_device_key(chain, dep, device, "secp256k1", new_key, sender=owner, authorization=consent)
    rotated_at = int(chain.w3.eth.get_block(receipt.block_number)["timestamp"]) * 1000
    info = device_info(chain, dep, device)
    assert info.key_version == 2 and info.signer == Account.from_key(key2).address and info.owner == owner
    assert [(k.version, k.effective_from, k.effective_until) for k in info.keys] == [
        (1, 0, rotated_at),
        (2, rotated_at, None),
    ]
    assert device_key_at(chain, dep, device, rotated_at - 1) == info.keys[0]
    assert device_key_at(chain, dep, device, rotated_at) == info.keys[1]
    sig2 = _sign(key2, device, 2, rotated_at, payload, domain)
    assert check_reading_signature(chain, dep, device, 2, rotated_at, keccak256(payload), sig2)
    assert check_reading_signature(chain, dep, device, 1, 1_000, keccak256(payload), sig)
    stale = _sign(key1, device, 2, rotated_at, payload, domain)
    assert not check_reading_signature(chain, dep, device, 2, rotated_at, keccak256(payload), stale)

    # revocation from t=5000 (ms): earlier readings stay valid, later ones are refused
    revoke_device(chain, dep, device, rotated_at + 5_000, sender=owner)
    assert check_reading_signature(chain, dep, device, 2, rotated_at, keccak256(payload), sig2)
    late = _sign(key2, device, 3, rotated_at + 5_000, payload, domain)
    assert not check_reading_signature(chain, dep, device, 3, rotated_at + 5_000, keccak256(payload), late)
    with pytest.raises(ContractRevert, match="AlreadyRevoked"):
        revoke_device(chain, dep, device, 9_000, sender=owner)
    with pytest.raises(ContractRevert, match="DeviceIsRevoked"):
        rotate_device_key(chain, dep, device, "secp256k1", public_key_of("secp256k1", key1))

    # the pipeline follows the registry through its events, in chain order
    history = [(c.kind, c.device) for c in device_changes(chain, dep) if c.device == device]
    assert history == [("DeviceRegistered", device), ("DeviceKeyRotated", device), ("DeviceRevoked", device)]
    revoked = [c for c in device_changes(chain, dep) if c.kind == "DeviceRevoked" and c.device == device]
    assert revoked[0].args["revokedFrom"] == rotated_at + 5_000
    rotation = [c for c in device_changes(chain, dep) if c.kind == "DeviceKeyRotated" and c.device == device]
    assert rotation[0].args["keyVersion"] == 2 and rotation[0].args["effectiveFrom"] == rotated_at


def test_device_permissions_and_bad_input(setup: Setup) -> None:
    chain, dep = setup.chain, setup.dep
    key = bytes.fromhex("33" * 32)
    device = Account.from_key(key).address
    owner, stranger = chain.accounts[4], chain.accounts[5]
    with pytest.raises(ContractRevert, match="OwnableUnauthorizedAccount"):
        chain.transact(
            chain.w3.eth.contract(address=dep.device_registry, abi=_abi()).functions.registerDevice(
                device, owner, 1, b""
            ),
            sender=stranger,
        )
    register_device(chain, dep, device, owner)
    with pytest.raises(ContractRevert, match="DeviceExists"):
        register_device(chain, dep, device, owner)
    with pytest.raises(ContractRevert, match="NotDeviceOwner"):
        set_device_owner(chain, dep, device, stranger, sender=stranger)
    set_device_owner(chain, dep, device, stranger, sender=owner)
    assert device_info(chain, dep, device).owner == stranger
    with pytest.raises(ContractRevert, match="InvalidPublicKey"):
        register_device(chain, dep, chain.accounts[6], owner, "ed25519", b"\x01" * 31)
    with pytest.raises(ContractRevert, match="UnknownDevice"):
        device_info(chain, dep, chain.accounts[7])
    with pytest.raises(ValueError, match="device scheme"):
        register_device(chain, dep, chain.accounts[6], owner, "rsa", b"")
    # an Ed25519 device registers (its signatures are checked off chain by the pipeline)
    ed_key = public_key_of("ed25519", bytes(32))
    register_device(chain, dep, "0x" + keccak256(ed_key)[12:].hex(), owner, "ed25519", ed_key)


def _abi() -> list[dict[str, object]]:
    from veristream.contracts import load_artifact

    abi: list[dict[str, object]] = load_artifact("DeviceRegistry")["abi"]
    return abi


# ATTACKS AND KEY WINDOWS
# The authorization is signed with eth-account's typed-data encoder: an oracle independent of
# the project's own EIP-712 code.


def _rotation_authorization(
    private_key: bytes, domain: Domain, device: str, scheme: int, public_key: bytes, key_version: int
) -> bytes:
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "KeyRotation": [
                {"name": "device", "type": "address"},
                {"name": "scheme", "type": "uint8"},
                {"name": "publicKeyHash", "type": "bytes32"},
                {"name": "keyVersion", "type": "uint32"},
            ],
        },
        "primaryType": "KeyRotation",
        "domain": {
            "name": domain.name,
            "version": domain.version,
            "chainId": domain.chain_id,
            "verifyingContract": domain.verifying_contract,
        },
        "message": {
            "device": device,
            "scheme": scheme,
            "publicKeyHash": keccak(public_key),
            "keyVersion": key_version,
        },
    }
    return bytes(Account.sign_typed_data(private_key, full_message=typed).signature)


def _registry(setup: Setup) -> object:
    return setup.chain.w3.eth.contract(address=setup.dep.device_registry, abi=_abi())


def test_RevertWhen_BeneficiarySwapsDeviceKey(setup: Setup) -> None:
    chain, dep = setup.chain, setup.dep
    device_key, thief_key = bytes.fromhex("41" * 32), bytes.fromhex("42" * 32)
    device = Account.from_key(device_key).address
    beneficiary = chain.accounts[3]
    register_device(chain, dep, device, beneficiary)
    # without a signature of the device's current key the beneficiary cannot install its own key
    with pytest.raises(ContractRevert):
        rotate_device_key(chain, dep, device, "secp256k1", public_key_of("secp256k1", thief_key), sender=beneficiary)
    assert device_info(chain, dep, device).signer == device


def test_RevertWhen_RotationAuthorizationIsReplayed(setup: Setup) -> None:
    chain, dep, domain = setup.chain, setup.dep, setup.domain
    key1, key2 = bytes.fromhex("43" * 32), bytes.fromhex("44" * 32)
    device = Account.from_key(key1).address
    beneficiary = chain.accounts[3]
    register_device(chain, dep, device, beneficiary)
    registry: Any = _registry(setup)
    new_key = public_key_of("secp256k1", key2)
    authorization = _rotation_authorization(key1, domain, device, 1, new_key, 2)
    chain.transact(registry.functions.rotateKeyWithAuthorization(device, 1, new_key, authorization), sender=beneficiary)
    assert device_info(chain, dep, device).signer == Account.from_key(key2).address
    # the same authorization again (the key version it names is no longer the next one)
    with pytest.raises(ContractRevert, match="InvalidRotationAuthorization"):
        chain.transact(
            registry.functions.rotateKeyWithAuthorization(device, 1, new_key, authorization), sender=beneficiary
        )
    # a stale authorization by the old key for the next version does not work either
    stale = _rotation_authorization(key1, domain, device, 1, new_key, 3)
    with pytest.raises(ContractRevert, match="InvalidRotationAuthorization"):
        chain.transact(registry.functions.rotateKeyWithAuthorization(device, 1, new_key, stale), sender=beneficiary)


def test_RevertWhen_OwnerRenouncesOwnership(setup: Setup) -> None:
    chain = setup.chain
    registry: Any = _registry(setup)
    owner = chain.call(registry.functions.owner())
    with pytest.raises(ContractRevert):
        chain.transact(registry.functions.renounceOwnership(), sender=owner)
    assert chain.call(registry.functions.owner()) == owner


def test_reading_signed_before_a_rotation_still_verifies_after_it(setup: Setup) -> None:
    chain, dep, domain = setup.chain, setup.dep, setup.domain
    key1, key2 = bytes.fromhex("45" * 32), bytes.fromhex("46" * 32)
    device = Account.from_key(key1).address
    register_device(chain, dep, device, chain.accounts[3])
    chain.advance_time(10)
    rotated = rotate_device_key(chain, dep, device, "secp256k1", public_key_of("secp256k1", key2))
    rotated_at = int(chain.w3.eth.get_block(rotated.block_number)["timestamp"]) * 1000
    payload = b'{"t": 1}'
    before, after = rotated_at - 1, rotated_at
    cases = [
        (key1, before, True),  # genuine reading from before the rotation
        (key1, after, False),  # the old key after the rotation
        (key2, before, False),  # the new key cannot sign the past
        (key2, after, True),
    ]
    for key, ts, expected in cases:
        sig = _sign(key, device, 7, ts, payload, domain)
        assert check_reading_signature(chain, dep, device, 7, ts, keccak256(payload), sig) == expected, (key, ts)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    device=st.binary(min_size=20, max_size=20),
    scheme=st.sampled_from(["secp256k1", "ed25519", "p256"]),
    public_key=st.binary(max_size=80),
    version=st.integers(0, 2**32 - 1),
)
def test_key_rotation_digest_matches_contract_and_eth_account(
    setup: Setup, device: bytes, scheme: str, public_key: bytes, version: int
) -> None:
    address = "0x" + device.hex()
    registry: Any = _registry(setup)
    scheme_id = {"secp256k1": 1, "ed25519": 2, "p256": 3}[scheme]
    on_chain = bytes(
        setup.chain.call(
            registry.functions.keyRotationDigest(
                setup.chain.w3.to_checksum_address(address), scheme_id, keccak(public_key), version
            )
        )
    )
    assert on_chain == key_rotation_digest(setup.domain, address, scheme, public_key, version)
    secret = bytes.fromhex("47" * 32)
    ours = sign_key_rotation(secret, setup.domain, address, scheme, public_key, version)
    assert ours == _rotation_authorization(secret, setup.domain, address, scheme_id, public_key, version)


def test_rotation_authority(setup: Setup) -> None:
    chain, dep, domain = setup.chain, setup.dep, setup.domain
    key1, key2, key3 = (bytes.fromhex(f"{b:02x}" * 32) for b in (0x51, 0x52, 0x53))
    device = Account.from_key(key1).address
    beneficiary, manager, stranger = chain.accounts[3], chain.accounts[8], chain.accounts[9]
    register_device(chain, dep, device, beneficiary)
    new_key = public_key_of("secp256k1", key2)
    # a stranger cannot rotate, not even with the device's consent (only its beneficiary may send it)
    with pytest.raises(ContractRevert, match="NotKeyManager"):
        rotate_device_key(chain, dep, device, "secp256k1", new_key, sender=stranger)
    consent = sign_key_rotation(key1, domain, device, "secp256k1", new_key, 2)
    with pytest.raises(ContractRevert, match="NotDeviceOwner"):
        rotate_device_key(chain, dep, device, "secp256k1", new_key, sender=stranger, authorization=consent)
    # consent for another key, or signed by another key, is refused
    other = public_key_of("secp256k1", key3)
    with pytest.raises(ContractRevert, match="InvalidRotationAuthorization"):
        rotate_device_key(chain, dep, device, "secp256k1", other, sender=beneficiary, authorization=consent)
    forged = sign_key_rotation(key3, domain, device, "secp256k1", other, 2)
    with pytest.raises(ContractRevert, match="InvalidRotationAuthorization"):
        rotate_device_key(chain, dep, device, "secp256k1", other, sender=beneficiary, authorization=forged)
    # a manager appointed by the owner rotates without consent; withdrawn, it no longer can
    with pytest.raises(ContractRevert, match="OwnableUnauthorizedAccount"):
        set_manager(chain, dep, stranger, sender=stranger)
    set_manager(chain, dep, manager)
    assert is_manager(chain, dep, manager)
    chain.advance_time(1)
    rotate_device_key(chain, dep, device, "secp256k1", new_key, sender=manager)
    # the consent for version 2 was overtaken by the manager's rotation: stale
    chain.advance_time(1)
    with pytest.raises(ContractRevert, match="InvalidRotationAuthorization"):
        rotate_device_key(chain, dep, device, "secp256k1", new_key, sender=beneficiary, authorization=consent)
    set_manager(chain, dep, manager, False)
    with pytest.raises(ContractRevert, match="NotKeyManager"):
        rotate_device_key(chain, dep, device, "secp256k1", other, sender=manager)
    # an Ed25519 device's consent cannot be checked on chain: only the owner or a manager rotates it
    ed_key = public_key_of("ed25519", bytes(range(32)))
    ed_device = "0x" + keccak256(ed_key)[12:].hex()
    register_device(chain, dep, ed_device, beneficiary, "ed25519", ed_key)
    with pytest.raises(ContractRevert, match="RotationNotAuthorizable"):
        rotate_device_key(chain, dep, ed_device, "ed25519", ed_key, sender=beneficiary, authorization=b"\x00" * 65)
    rotate_device_key(chain, dep, ed_device, "ed25519", public_key_of("ed25519", bytes(32)))
    assert device_info(chain, dep, ed_device).key_version == 2
    registry: Any = _registry(setup)
    assert chain.call(registry.functions.keyCount(chain.w3.to_checksum_address(ed_device))) == 2
    assert [c.kind for c in device_changes(chain, dep) if c.device.lower() == ed_device] == [
        "DeviceRegistered",
        "DeviceKeyRotated",
    ]
    managers = registry.events.ManagerSet.get_logs(from_block=0)
    assert [(log["args"]["account"], log["args"]["enabled"]) for log in managers][-2:] == [
        (manager, True),
        (manager, False),
    ]

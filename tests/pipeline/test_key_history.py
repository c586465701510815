"""Key histories in the pipeline's device view.

- a registry file without ``key_history`` reads as before (one key for all time), and a
  history is validated (ordered, non-overlapping windows, only the last open);
- ``verify_in_force`` is ``verify_many`` when no device has a history, and checks each
  reading of a rotated device against the key in force at its timestamp; a reading stamped
  when no key was in force is a ``bad_signature`` dead letter;
- across rotations on the embedded chain, the pipeline's signature stage and the
  DeviceRegistry's ``verifyReadingSignature`` give the same answer for the same readings
  (the history is read from the chain into the registry file's form);
- the histories travel to the worker processes with the keys.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from veristream.contracts import (
    Chain,
    Deployment,
    check_reading_signature,
    connect,
    deploy_all,
    device_info,
    register_device,
    rotate_device_key,
    sign_key_rotation,
)
from veristream.contracts import DeviceInfo as ChainDeviceInfo
from veristream.pipeline import checks
from veristream.pipeline.jobspec import ValidationSpec
from veristream.pipeline.records import Candidate
from veristream.pipeline.registry import (
    DeviceKeys,
    DeviceRegistryView,
    KeyWindow,
    device_keys,
    parse_registry,
    verify_in_force,
)
from veristream.provers.encoding import keccak256
from veristream.provers.errors import InputRejected
from veristream.provers.readings import Domain, Reading
from veristream.provers.reasons import Reason, SignatureFault
from veristream.provers.signing import VerdictMemo, public_key_of, sign_reading, verify_many

DOMAIN = Domain(chain_id=31337, verifying_contract="0x" + "ab" * 20)
SECRETS = [keccak256(f"test_key_history/{i}".encode()) for i in range(3)]
DEVICE = Account.from_key(SECRETS[0]).address.lower()
KEYS = [public_key_of("secp256k1", s) for s in SECRETS]
ED_SECRETS = [keccak256(f"test_key_history/ed{i}".encode()) for i in range(2)]
ED_KEYS = [public_key_of("ed25519", s) for s in ED_SECRETS]
ED_DEVICE = "0x" + keccak256(ED_KEYS[0])[12:].hex()
# key 0 until 1000, key 1 in [1000, 2000), key 2 from 2000
HISTORY = [
    {"public_key": "0x", "effective_from_ms": 0, "effective_until_ms": 1_000},
    {"public_key": "0x" + KEYS[1].hex(), "effective_from_ms": 1_000, "effective_until_ms": 2_000},
    {"public_key": "0x" + KEYS[2].hex(), "effective_from_ms": 2_000, "effective_until_ms": None},
]
# an Ed25519 device whose first key only starts at 500 and whose second ends at 3000
ED_HISTORY = [
    {"public_key": "0x" + ED_KEYS[0].hex(), "effective_from_ms": 500, "effective_until_ms": 1_500},
    {"public_key": "0x" + ED_KEYS[1].hex(), "effective_from_ms": 1_500, "effective_until_ms": 3_000},
]


def _registry() -> DeviceRegistryView:
    plain = Account.from_key(keccak256(b"test_key_history/plain")).address.lower()
    return parse_registry(
        [
            {"device_id": plain, "public_key": "0x"},
            {"device_id": DEVICE, "key_history": HISTORY},
            {"device_id": ED_DEVICE, "scheme": "ed25519", "key_history": ED_HISTORY},
        ]
    )


def _signed(secret: bytes, device: str, ts: int, scheme: str = "secp256k1") -> Reading:
    return sign_reading(Reading(device, ts, ts, b'{"t": 1}', b"", scheme), DOMAIN, secret)


# THE FILE FORM


def test_old_files_read_as_one_key_for_all_time() -> None:
    registry = parse_registry({"devices": [{"device_id": DEVICE.upper().replace("0X", "0x"), "public_key": "0x"}]})
    info = registry.devices[DEVICE]
    assert info.key_history == () and info.key_at(0) == info.key_at(2**63) == b""
    keys = registry.keys()
    assert keys == {DEVICE: b""} and keys.windows == {}
    # a one-key history open from 0 is the same thing, in the plain form
    same = parse_registry([{"device_id": DEVICE, "key_history": [{"public_key": "0x"}]}])
    assert same.devices[DEVICE] == info


def test_a_history_gives_the_key_in_force() -> None:
    info = _registry().devices[DEVICE]
    assert info.public_key == KEYS[2]  # the current key, as verify_many takes it
    assert [info.key_at(t) for t in (0, 999, 1_000, 1_999, 2_000, 2**64 - 1)] == [
        b"",
        b"",
        KEYS[1],
        KEYS[1],
        KEYS[2],
        KEYS[2],
    ]
    ed = _registry().devices[ED_DEVICE]
    assert ed.key_at(499) is None and ed.key_at(500) == ED_KEYS[0] and ed.key_at(3_000) is None


@pytest.mark.parametrize(
    ("history", "problem"),
    [
        ([], "non-empty"),
        ([{"public_key": "0x", "effective_from_ms": 5, "effective_until_ms": 5}], "after effective_from_ms"),
        (
            [{"public_key": "0x", "effective_until_ms": 10}, {"public_key": "0x", "effective_from_ms": 9}],
            "starts before",
        ),
        ([{"public_key": "0x"}, {"public_key": "0x", "effective_from_ms": 9}], "starts before"),
        ([{"public_key": "0x", "effective_from_ms": -1}], "effective_from_ms"),
        ([{"public_key": "0x", "effective_from_ms": True}], "effective_from_ms"),
        ([{"public_key": 5}], "public_key"),
    ],
)
def test_bad_histories_are_refused(history: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(InputRejected, match=problem):
        parse_registry([{"device_id": DEVICE, "key_history": history}])


def test_public_key_beside_a_history_must_be_its_last() -> None:
    with pytest.raises(InputRejected, match="last key"):
        parse_registry([{"device_id": DEVICE, "public_key": "0x" + KEYS[1].hex(), "key_history": HISTORY}])
    ok = parse_registry([{"device_id": DEVICE, "public_key": "0x" + KEYS[2].hex(), "key_history": HISTORY}])
    assert ok.devices[DEVICE] == _registry().devices[DEVICE]


# VERIFICATION


@settings(max_examples=25, deadline=None)
@given(
    readings=st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 3_500), st.booleans(), st.sampled_from([0, 1, 2])), max_size=12
    )
)
def test_each_reading_is_checked_against_the_key_in_force(readings: list[tuple[int, int, bool, int]]) -> None:
    registry = _registry()
    keys = registry.keys()
    batch: list[Reading] = []
    expected: list[bool] = []
    for signer, ts, ed, device in readings:
        if ed:
            secret = ED_SECRETS[signer % 2]
            batch.append(_signed(secret, ED_DEVICE, ts, "ed25519"))
            in_force = registry.devices[ED_DEVICE].key_at(ts)
            expected.append(in_force == public_key_of("ed25519", secret))
        elif device == 2:
            # a device without a history: only the current key, at any time
            plain = next(d for d, i in registry.devices.items() if not i.key_history)
            batch.append(_signed(SECRETS[signer], plain, ts))
            expected.append(Account.from_key(SECRETS[signer]).address.lower() == plain)
        else:
            batch.append(_signed(SECRETS[signer], DEVICE, ts))
            in_force = registry.devices[DEVICE].key_at(ts)
            expected.append(in_force == (b"" if signer == 0 else KEYS[signer]))
    verdicts = verify_in_force(batch, DOMAIN, keys)
    assert [v.ok for v in verdicts] == expected
    assert all(v.reason in (None, SignatureFault.BAD_SIGNATURE) for v in verdicts)
    # a memo changes nothing
    memo = VerdictMemo()
    assert verify_in_force(batch, DOMAIN, keys, memo=memo) == verdicts
    assert verify_in_force(batch, DOMAIN, keys, memo=memo) == verdicts


def test_without_histories_it_is_verify_many() -> None:
    plain_keys = {DEVICE: KEYS[1]}
    batch = [_signed(SECRETS[s], DEVICE, ts) for s in range(3) for ts in (0, 1_500, 2_500)]
    batch.append(Reading(DEVICE, 1, 2**70, b"", b"\x00" * 65))  # malformed: its own reason
    assert verify_in_force(batch, DOMAIN, plain_keys) == verify_many(batch, DOMAIN, plain_keys)
    assert verify_in_force(batch, DOMAIN, device_keys(plain_keys)) == verify_many(batch, DOMAIN, plain_keys)
    # a rotated device's malformed reading keeps its reason too
    assert verify_in_force(batch[-1:], DOMAIN, _registry().keys())[0].reason == SignatureFault.MALFORMED_READING


def test_the_signature_stage_files_readings_outside_every_window_as_bad_signature() -> None:
    registry = _registry()
    readings = [
        _signed(ED_SECRETS[0], ED_DEVICE, 499, "ed25519"),  # before its first key
        _signed(ED_SECRETS[0], ED_DEVICE, 500, "ed25519"),
        _signed(ED_SECRETS[1], ED_DEVICE, 3_000, "ed25519"),  # after its last key ended
        _signed(SECRETS[0], DEVICE, 1_000, "secp256k1"),  # the old key after the rotation
        _signed(SECRETS[1], DEVICE, 1_999, "secp256k1"),
    ]
    batch = [Candidate.of(10_000, i, r) for i, r in enumerate(readings)]
    problems = checks.signature_problems(
        batch, DOMAIN, registry.keys(), registry.devices, ValidationSpec().max_clock_skew_ms
    )
    assert [(i, reason) for i, reason, _ in problems] == [
        (0, Reason.BAD_SIGNATURE),
        (2, Reason.BAD_SIGNATURE),
        (3, Reason.BAD_SIGNATURE),
    ]


def test_histories_travel_with_the_keys_to_worker_processes() -> None:
    keys = _registry().keys()
    copy = pickle.loads(pickle.dumps(device_keys(keys)))
    assert isinstance(copy, DeviceKeys) and copy == keys and copy.windows == keys.windows
    assert copy.windows[DEVICE][1] == KeyWindow(KEYS[1], 1_000, 2_000)


# THE PIPELINE AND THE CONTRACT AGREE


@dataclass
class Rotated:
    chain: Chain
    dep: Deployment
    domain: Domain
    device: str
    rotations: list[int]  # when each key after the first took over (ms)
    registry: DeviceRegistryView


def _entry(info: ChainDeviceInfo) -> dict[str, Any]:
    """A device's registry-file entry, as read from the DeviceRegistry."""
    return {
        "device_id": info.device,
        "scheme": info.scheme,
        "owner": info.owner,
        "key_history": [
            {
                "public_key": "0x" + k.public_key.hex(),
                "effective_from_ms": k.effective_from,
                "effective_until_ms": k.effective_until,
            }
            for k in info.keys
        ],
    }


@pytest.fixture(scope="module")
def rotated() -> Iterator[Rotated]:
    chain = connect(None)
    dep = deploy_all(chain)
    domain = Domain(chain_id=chain.chain_id, verifying_contract=dep.device_registry)
    device = Account.from_key(SECRETS[0]).address
    beneficiary = chain.accounts[3]
    register_device(chain, dep, device, beneficiary)
    rotations = []
    # first the beneficiary, with the device's consent; then the registry owner
    chain.advance_time(5)
    consent = sign_key_rotation(SECRETS[0], domain, device, "secp256k1", KEYS[1], 2)
    receipt = rotate_device_key(chain, dep, device, "secp256k1", KEYS[1], sender=beneficiary, authorization=consent)
    rotations.append(int(chain.w3.eth.get_block(receipt.block_number)["timestamp"]) * 1000)
    chain.advance_time(5)
    receipt = rotate_device_key(chain, dep, device, "secp256k1", KEYS[2])
    rotations.append(int(chain.w3.eth.get_block(receipt.block_number)["timestamp"]) * 1000)
    registry = parse_registry([_entry(device_info(chain, dep, device))])
    yield Rotated(chain, dep, domain, device, rotations, registry)
    chain.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_pipeline_and_contract_agree_across_rotations(rotated: Rotated, data: st.DataObject) -> None:
    first, second = rotated.rotations
    boundary = st.sampled_from([0, first - 1, first, first + 1, second - 1, second, second + 1])
    ts = data.draw(st.one_of(boundary, st.integers(0, second + 10_000)))
    signer = data.draw(st.integers(0, 2))
    reading = sign_reading(
        Reading(rotated.device.lower(), 3, ts, b'{"t": 2}', b""), rotated.domain, SECRETS[signer]
    )
    candidate = Candidate.of(ts, 0, reading)
    problems = checks.signature_problems([candidate], rotated.domain, rotated.registry.keys())
    pipeline_accepts = not problems
    on_chain = check_reading_signature(
        rotated.chain, rotated.dep, rotated.device, 3, ts, keccak256(reading.payload), reading.signature
    )
    assert pipeline_accepts == on_chain
    in_force = 0 if ts < first else 1 if ts < second else 2
    assert on_chain == (signer == in_force)
    if problems:
        assert problems[0][1] == Reason.BAD_SIGNATURE

"""Credential pins: the versions in force in an epoch, the spans a revoked credential does not
count in, and pins that lie (a rolled-back list, a swapped CID, an untrusted issuer) refused."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from veristream.connectors.ipfs import EmbeddedStore
from veristream.connectors.simulator import Simulation, manufacturer_key, simulate
from veristream.connectors.sources.config import SimulatorSourceConfig
from veristream.pipeline.credential_status import (
    ALWAYS,
    CredentialPins,
    FileSource,
    PinnedList,
    credential_revocations,
    in_force,
    with_revocations,
)
from veristream.pipeline.jobspec import CredentialsSpec, JobSpecError, parse_job
from veristream.pipeline.manifest import Manifest, RewardSummary, TreeDumps, manifest_from_json
from veristream.pipeline.registry import DeviceRegistryView, load_registry
from veristream.provers.did_key import did_key
from veristream.provers.errors import InputRejected, Mismatch

CONFIG = SimulatorSourceConfig(seed=7, count=120, rate=100, faults=["credential_revoked"], devices_per_scheme=1)
ISSUER = did_key(manufacturer_key(7).public_key)
SPEC = CredentialsSpec(trusted_issuers=[ISSUER])


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Simulation, Path, Path]:
    simulation = simulate(CONFIG)
    folder = tmp_path_factory.mktemp("creds")
    simulation.write(folder / "devices.json", None, folder / "credentials.json")
    return simulation, folder / "credentials.json", folder / "devices.json"


def _withdrawn(simulation: Simulation) -> tuple[str, int]:
    device = next(d for d in simulation.devices if d.credential_revoked_at_ms is not None)
    assert device.credential_revoked_at_ms is not None
    return device.device_id, device.credential_revoked_at_ms


def test_the_revoked_credential_counts_until_the_new_list_takes_effect(
    sim: tuple[Simulation, Path, Path], tmp_path: Path
) -> None:
    simulation, path, _ = sim
    store = EmbeddedStore(tmp_path / "ipfs")
    device, revoked_ms = _withdrawn(simulation)
    # an epoch before the revocation pins only the first version
    early = FileSource(path)(simulation.start_ms, simulation.start_ms + 200, store)
    assert len(early.lists) == 1
    assert credential_revocations(early, store.get, SPEC, simulation.start_ms)[device] == ()
    # the epoch of the revocation pins both; the device's credential stops counting from then
    pins = FileSource(path)(revoked_ms - 100, revoked_ms + 100, store)
    assert [p.from_ms for p in sorted(pins.lists, key=lambda p: p.from_ms)][-1] == revoked_ms
    spans = credential_revocations(pins, store.get, SPEC, revoked_ms - 100)
    assert spans[device] == ((revoked_ms, None),)
    assert all(found == () for other, found in spans.items() if other != device)
    # pins round-trip through the manifest's JSON
    assert CredentialPins.from_json(json.loads(json.dumps(pins.to_json()))) == replace(
        pins, lists=tuple(sorted(pins.lists, key=lambda p: p.from_ms))
    )


def test_in_force_keeps_the_version_at_the_start_and_those_inside() -> None:
    versions = [PinnedList("did:x:a", "u", f"c{t}", t, t) for t in (0, 100, 200, 300)]
    assert [v.from_ms for v in in_force(versions, 150, 300)] == [100, 200]
    assert [v.from_ms for v in in_force(versions, 300, 400)] == [300]


def test_attack_a_rolled_back_list_is_refused(sim: tuple[Simulation, Path, Path], tmp_path: Path) -> None:
    simulation, path, _ = sim
    store = EmbeddedStore(tmp_path / "ipfs")
    _, revoked_ms = _withdrawn(simulation)
    pins = FileSource(path)(revoked_ms - 100, revoked_ms + 100, store)
    old, new = sorted(pins.lists, key=lambda p: p.from_ms)
    # the older list's CID pinned where the newer one took effect: its validFrom betrays it
    swapped = replace(pins, lists=(old, replace(new, cid=old.cid)))
    with pytest.raises(Mismatch, match="validFrom"):
        credential_revocations(swapped, store.get, SPEC, revoked_ms - 100)
    # the older list pinned again, with its own validFrom, after the newer one
    rolled_back = replace(pins, lists=(old, new, replace(old, from_ms=revoked_ms + 50)))
    with pytest.raises(Mismatch, match="rolls back"):
        credential_revocations(rolled_back, store.get, SPEC, revoked_ms - 100)


def test_attack_a_list_from_an_untrusted_issuer_is_refused(sim: tuple[Simulation, Path, Path], tmp_path: Path) -> None:
    simulation, path, _ = sim
    store = EmbeddedStore(tmp_path / "ipfs")
    pins = FileSource(path)(simulation.start_ms, simulation.start_ms + 200, store)
    other = CredentialsSpec(trusted_issuers=["did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"])
    with pytest.raises(Mismatch, match="not a trusted issuer"):
        credential_revocations(pins, store.get, other, simulation.start_ms)


def test_required_credentials_leave_a_device_without_one_no_time_that_counts(
    sim: tuple[Simulation, Path, Path], tmp_path: Path
) -> None:
    simulation, path, registry_file = sim
    store = EmbeddedStore(tmp_path / "ipfs")
    registry = load_registry(registry_file)
    pins = FileSource(path)(simulation.start_ms, simulation.start_ms + 200, store)
    lacking = sorted(registry.devices)[0]
    partial = replace(pins, credentials={d: c for d, c in pins.credentials.items() if d != lacking})
    spans = credential_revocations(partial, store.get, SPEC, simulation.start_ms)
    required = with_revocations(registry, spans, SPEC)
    assert required.devices[lacking].credential_revoked == ALWAYS
    assert required.devices[lacking].credential_revoked_at(simulation.start_ms) == 0
    optional = with_revocations(registry, spans, SPEC.model_copy(update={"required": False}))
    assert optional.devices[lacking].credential_revoked == ()
    assert isinstance(optional, DeviceRegistryView)


def _job(credentials: object) -> dict[str, object]:
    return {
        "job_id": "spec",
        "sources": [{"type": "file", "path": "readings.jsonl"}],
        "devices": {"file": "devices.json", "credentials": credentials},
        "validation": {"fields": {"temp": {"min": 0, "max": 100}}},
        "aggregation": {"fields": ["temp"]},
        "rewards": {"tokens_per_epoch": 1000},
        "epochs": {"length_ms": 1000},
    }


@pytest.mark.parametrize(
    ("credentials", "field"),
    [
        ({"trusted_issuers": ["not a did"]}, "devices.credentials.trusted_issuers"),
        ({"trusted_issuers": []}, "devices.credentials.trusted_issuers"),
        ({"trusted_issuers": [ISSUER], "types": ["PassportCredential"]}, "devices.credentials.types"),
        ({"trusted_issuers": [ISSUER], "required": "perhaps"}, "devices.credentials.required"),
        ({"trusted_issuers": [ISSUER], "registry": "0x1234"}, "devices.credentials.registry"),
        ({"trusted_issuers": [ISSUER], "unknown": 1}, "devices.credentials.unknown"),
    ],
)
def test_a_bad_credentials_spec_fails_naming_the_field(credentials: object, field: str) -> None:
    with pytest.raises(JobSpecError) as refused:
        parse_job(_job(credentials))
    assert [path for path, _ in refused.value.problems] == [field]


def test_a_manifest_without_credentials_has_no_credential_status_field() -> None:
    manifest = Manifest(
        job_id="j", epoch=0, start_ms=0, end_ms=1, batch_cid="b", dead_letter_cid="d", aggregates_cid="a",
        state_cid="s", prev_manifest_cid=None, data_root="0x", aggregates_root="0x", reward_root="0x",
        readings_in=0, accepted=0, rejected={}, rewards=RewardSummary(0, 0, 0, 0, 0, 0),
        trees=TreeDumps(None, None, None),
    )
    assert b"credential_status" not in manifest.to_json()
    pinned = replace(manifest, credential_status={"credentials": {}, "lists": []})
    assert manifest_from_json(pinned.to_json()) == pinned
    with pytest.raises(InputRejected, match="credential_status must be an object"):
        manifest_from_json(pinned.to_json().replace(b'{"credentials":{},"lists":[]}', b"[]"))


def test_versions_taking_effect_at_the_same_time_leave_the_later_in_force(
    sim: tuple[Simulation, Path, Path], tmp_path: Path
) -> None:
    simulation, path, _ = sim
    store = EmbeddedStore(tmp_path / "ipfs")
    device, revoked_ms = _withdrawn(simulation)
    pins = FileSource(path)(revoked_ms - 100, revoked_ms + 100, store)
    old, new = sorted(pins.lists, key=lambda p: p.from_ms)
    # revoked and published in the same second as the list before it: one moment, the later wins
    same_moment = replace(pins, lists=(old, replace(new, from_ms=old.from_ms)))
    assert in_force(same_moment.lists, old.from_ms, old.from_ms + 1) == (replace(new, from_ms=old.from_ms),)
    spans = credential_revocations(same_moment, store.get, SPEC, old.from_ms)
    assert spans[device] == ((old.from_ms, None),)

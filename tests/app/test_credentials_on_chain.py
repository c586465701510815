"""Credentials anchored on the embedded chain, end to end: two devices registered with their
manufacturer's credentials, one revoked mid-stream through the CredentialRegistry; the run
(committee and chain included) files that device's later readings as credential_revoked, each
manifest pins what the CredentialRegistry held, operators refuse a manifest that leaves the
revocation out, and re-execution from the pins gives the same roots."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from eth_account import Account

from veristream import credential_anchors
from veristream.audit import audit_epoch
from veristream.connectors.envelope import encode_reading
from veristream.connectors.ipfs import open_store
from veristream.contracts import connect, deploy_all
from veristream.contracts.credential_registry import status_list_history
from veristream.contracts.deploy import Deployment
from veristream.devices import chain_devices
from veristream.pipeline.compute import job_context
from veristream.pipeline.credential_status import CredentialPins
from veristream.pipeline.jobspec import JobSpec, load_job
from veristream.pipeline.manifest import Manifest
from veristream.pipeline.reexecute import check_proposal, proposal_for, reexecute
from veristream.pipeline.state import JobState, state_from_json
from veristream.provers import credentials
from veristream.provers.did_ethr import device_did
from veristream.provers.did_key import did_key
from veristream.provers.encoding import keccak256, parse_address
from veristream.provers.errors import InputRejected
from veristream.provers.multikey import SecretKey
from veristream.provers.readings import Domain, Reading
from veristream.provers.signing import public_key_of, sign_reading
from veristream.provers.status_list import status_entry
from veristream.run import committed_epochs, run_job

MAKER = SecretKey.from_raw("ed25519", keccak256(b"test_credentials_on_chain/maker"))
LIST_URL = "https://maker.example/status/7"
KEYS = {name: keccak256(f"test_credentials_on_chain/{name}".encode()) for name in ("kept", "withdrawn")}
DEVICES = {name: Account.from_key(key).address.lower() for name, key in KEYS.items()}
OWNER = "0x842392a1c6863b2a645eaf74a259faceb8c38f85"
DOMAIN = Domain(chain_id=31337)  # the job spec's default domain


@dataclass(frozen=True, slots=True)
class Run:
    job: JobSpec
    dep: Deployment
    revoked_at_ms: int
    summary: dict[str, Any]
    folder: Path
    chain_id: int


def _credential(folder: Path, chain_id: int, name: str, index: int) -> Path:
    unsecured = credentials.device_credential(
        issuer=did_key(MAKER.public_key),
        subject=device_did(chain_id, parse_address(DEVICES[name])),
        model="WX-1",
        serial=f"SN-{index}",
        firmware_hash="0x" + "9c" * 32,
    )
    secured = credentials.issue({**unsecured, "credentialStatus": status_entry(LIST_URL, index)}, MAKER)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(secured))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    folder = tmp_path_factory.mktemp("credentials-on-chain")
    chain = connect(folder / "work" / "chain")
    try:
        dep = deploy_all(chain, dev=True)
        chain_id, publisher = int(chain.chain_id), chain.sender
    finally:
        chain.close()
    spec = {
        "job_id": "credentials-on-chain",
        "sources": [{"type": "file", "path": "readings.jsonl"}],
        "devices": {
            "address": dep.device_registry,
            "credentials": {"trusted_issuers": [did_key(MAKER.public_key)], "registry": dep.credential_registry},
        },
        "epochs": {"length_ms": 60_000},
        "validation": {"fields": {"temp": {"min": 0, "max": 100}}, "max_clock_skew_ms": 10**12},
        "aggregation": {"fields": ["temp"]},
        "rewards": {"tokens_per_epoch": 1_000},
        "operators": {"count": 2, "scheme": "bn254"},
        "work_dir": "work",
    }
    (folder / "job.yaml").write_text(yaml.safe_dump(spec))
    job = load_job(folder / "job.yaml")
    # REGISTER WITH CREDENTIALS, THEN REVOKE ONE
    credential_anchors.authorize(job, did_key(MAKER.public_key), publisher)
    files = {name: _credential(folder, chain_id, name, index) for index, name in enumerate(DEVICES)}
    for name, device in DEVICES.items():
        key = public_key_of("secp256k1", KEYS[name]).hex()
        credential_anchors.register(job, device, OWNER, "secp256k1", key, str(files[name]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("H7_MAKER_KEY", MAKER.multibase)
        revoked = credential_anchors.revoke(job, "env:H7_MAKER_KEY", None, None, str(files["withdrawn"]))
    assert revoked["revoked"] and revoked["index"] == 1
    chain = connect(folder / "work" / "chain")
    try:
        history = status_list_history(chain, dep, did_key(MAKER.public_key), LIST_URL)
    finally:
        chain.close()
    revoked_at_ms = history[-1].anchored_at * 1000
    # READINGS: two before the revocation took effect and two after, from each device
    readings = []
    for name, key in KEYS.items():
        for seq, offset in enumerate((-20_000, -10_000, 10_000, 20_000), start=1):
            payload = json.dumps({"temp": 20 + seq}, separators=(",", ":")).encode()
            unsigned = Reading(DEVICES[name], seq, revoked_at_ms + offset, payload, b"", "secp256k1")
            readings.append(sign_reading(unsigned, DOMAIN, key))
    (folder / "readings.jsonl").write_bytes(b"".join(encode_reading(r) + b"\n" for r in readings))
    yield Run(job, dep, revoked_at_ms, run_job(job, use_ray=False, use_chain=True).to_json(), folder, chain_id)


def test_readings_after_the_revocation_are_credential_revoked(run: Run) -> None:
    assert run.summary["accepted"] == 6, run.summary
    assert run.summary["rejected"] == {"credential_revoked": 2}
    assert all(row["verified"] for row in run.summary["epochs"] if row["accepted"])


def _manifests(job: JobSpec) -> list[tuple[str, Manifest]]:
    return [(c.manifest_cid, c.manifest) for c in committed_epochs(job.work_dir) if c.manifest is not None and c.manifest_cid]


def test_each_manifest_pins_the_anchored_credentials_and_reexecutes_from_them(run: Run) -> None:
    store = open_store(run.job.ipfs, run.job.work_dir)
    ctx = job_context(run.job, devices=chain_devices(run.job))
    state = JobState()
    for _, manifest in _manifests(run.job):
        assert manifest.credential_status is not None
        pins = CredentialPins.from_json(manifest.credential_status)
        assert sorted(pins.credentials) == sorted(DEVICES.values())
        again = reexecute(
            ctx, manifest.epoch, store.get(manifest.batch_cid), state, None, manifest.device_registry_block,
            manifest.credential_status, store.get,
        )
        assert again.clean and "0x" + again.reward_root.hex() == manifest.reward_root
        state = again.state


def test_attack_a_manifest_leaving_the_revocation_out_is_refused(run: Run) -> None:
    store = open_store(run.job.ipfs, run.job.work_dir)
    ctx = job_context(
        run.job,
        devices=chain_devices(run.job),
        credentials=credential_anchors.credential_source(run.job),
    )
    cid, manifest = next(
        (cid, m) for cid, m in _manifests(run.job)
        if m.credential_status is not None and m.credential_status["lists"]
    )
    forged_pins = dict(manifest.credential_status or {})
    forged_pins["lists"] = []  # the revoking list left out: nothing revoked
    forged = replace(manifest, credential_status=forged_pins)
    forged_cid = store.put(forged.to_json())
    prev = JobState() if manifest.prev_manifest_cid is None else state_from_json(
        store.get(next(m for c, m in _manifests(run.job) if c == manifest.prev_manifest_cid).state_cid)
    )
    known = {} if manifest.prev_manifest_cid is None else {manifest.prev_manifest_cid: prev}
    honest = check_proposal(ctx, store, proposal_for(manifest, cid, 1, "0x" + "00" * 20, OWNER), known)
    assert honest.reason is None, honest.reason
    refused = check_proposal(ctx, store, proposal_for(forged, forged_cid, 1, "0x" + "00" * 20, OWNER), {})
    assert refused.reason is not None and "pinned status lists are not the ones in force" in refused.reason


def test_verify_rebuilds_an_epoch_from_its_pins(run: Run) -> None:
    verified = [m for _, m in _manifests(run.job) if m.accepted and m.credential_status and m.credential_status["lists"]]
    report = audit_epoch(run.job, verified[-1].epoch)
    assert report.reason is None, report.reason


def test_attack_registering_with_a_credential_that_is_not_the_devices(run: Run, tmp_path: Path) -> None:
    stranger = Account.from_key(keccak256(b"test_credentials_on_chain/stranger")).address.lower()
    with pytest.raises(InputRejected, match=r"is about did:ethr:.*, not the device did:ethr:"):
        credential_anchors.register(run.job, stranger, OWNER, "secp256k1", None, str(run.folder / "kept.json"))
    # issued by someone the job does not trust, for the right device
    rogue = SecretKey.from_raw("ed25519", keccak256(b"test_credentials_on_chain/rogue"))
    unsecured = credentials.device_credential(
        issuer=did_key(rogue.public_key),
        subject=device_did(run.chain_id, parse_address(stranger)),
        model="WX-1",
        serial="SN-X",
        firmware_hash="0x" + "9c" * 32,
    )
    forged = tmp_path / "rogue.json"
    forged.write_text(json.dumps(credentials.issue(unsecured, rogue)))
    with pytest.raises(InputRejected, match=r"not in devices\.credentials\.trusted_issuers"):
        credential_anchors.register(run.job, stranger, OWNER, "secp256k1", None, str(forged))

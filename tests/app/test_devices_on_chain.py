"""Device keys read from the chain (``devices.address``) and the ``veristream device`` commands.

- devices registered, rotated and revoked through the CLI on the job's chain (embedded, and
  anvil) are what the pipeline checks readings against: readings signed with the key in force
  are accepted, the old key's readings after the rotation are ``bad_signature``, and the counts
  and roots are those of the same job with the equivalent registry file (whose view is the
  chain's, device for device);
- each epoch's manifest names the block the registry was read at (and a registry file's
  manifest has no such field), operators re-execute at that block, and ``verify`` agrees;
- the event cache in the work directory is extended incrementally: a later read asks the chain
  only for the blocks after the cached ones;
- the spec takes exactly one of ``file`` and ``address``; the commands fail in one line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from eth_account import Account
from typer.testing import CliRunner

from tests.conftest import free_port
from veristream.audit import audit_epoch
from veristream.chain import CHAIN_DIR
from veristream.cli import app
from veristream.connectors.envelope import encode_reading
from veristream.connectors.ipfs import open_store
from veristream.contracts import connect, deploy_all
from veristream.contracts.anvil import anvil
from veristream.devices import ChainRegistryReader, chain_devices
from veristream.pipeline.compute import job_context
from veristream.pipeline.jobspec import JobSpecError, load_job, parse_job
from veristream.pipeline.manifest import manifest_from_json
from veristream.pipeline.reexecute import reexecute
from veristream.pipeline.registry import parse_registry
from veristream.pipeline.state import JobState
from veristream.provers.did_ethr import multikey_bytes
from veristream.provers.encoding import keccak256
from veristream.provers.errors import InputRejected
from veristream.provers.readings import Domain, Reading
from veristream.provers.signing import device_id_from_public_key, public_key_of, sign_reading
from veristream.run import committed_epochs, run_job

DOMAIN = Domain(chain_id=31337, verifying_contract="0x" + "ab" * 20)
OWNER = "0x" + "0b" * 20


def _secret(label: str) -> bytes:
    return keccak256(f"test_devices_on_chain/{label}".encode())


SECP_OLD, SECP_NEW, ED, P256 = _secret("secp-old"), _secret("secp-new"), _secret("ed"), _secret("p256")
SECP_DEVICE = Account.from_key(SECP_OLD).address.lower()
SECP_NEW_KEY = public_key_of("secp256k1", SECP_NEW)
ED_KEY = public_key_of("ed25519", ED)
P256_KEY = public_key_of("p256", P256)
ED_DEVICE = device_id_from_public_key("ed25519", ED_KEY)
P256_DEVICE = device_id_from_public_key("p256", P256_KEY)

runner = CliRunner()


def _cli(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def _job_file(folder: Path, devices: dict[str, Any], chain: dict[str, Any] | None = None) -> Path:
    spec = {
        "job_id": "devices-on-chain",
        "sources": [{"type": "file", "path": "readings.jsonl"}],
        "devices": {**devices, "domain": {"chain_id": DOMAIN.chain_id, "verifying_contract": DOMAIN.verifying_contract}},
        "epochs": {"length_ms": 60_000},
        "validation": {"fields": {"temp": {"min": 0, "max": 100}}, "max_clock_skew_ms": 10**12},
        "aggregation": {"fields": ["temp"]},
        "rewards": {"tokens_per_epoch": 1_000},
        "operators": {"count": 2, "scheme": "bn254"},
        "chain": chain or {},
        "work_dir": "work",
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _reading(device: str, scheme: str, seq: int, timestamp_ms: int, secret: bytes) -> Reading:
    payload = json.dumps({"temp": 20 + seq % 7}, separators=(",", ":")).encode()
    return sign_reading(Reading(device, seq, timestamp_ms, payload, b"", scheme), DOMAIN, secret)


def _readings(rotated_at: int, revoked_at: int) -> list[Reading]:
    """Readings around the rotation of the secp256k1 device (at ``rotated_at``) and the revocation
    of the p256 device (from ``revoked_at``)."""
    secp = [
        _reading(SECP_DEVICE, "secp256k1", 1, rotated_at - 20_000, SECP_OLD),  # old key, in force
        _reading(SECP_DEVICE, "secp256k1", 2, rotated_at - 1, SECP_OLD),  # old key, its last ms
        _reading(SECP_DEVICE, "secp256k1", 3, rotated_at, SECP_NEW),  # new key, its first ms
        _reading(SECP_DEVICE, "secp256k1", 4, rotated_at + 1_000, SECP_OLD),  # old key after: bad
        _reading(SECP_DEVICE, "secp256k1", 5, rotated_at + 2_000, SECP_NEW),
        _reading(SECP_DEVICE, "secp256k1", 6, rotated_at - 10_000, SECP_NEW),  # new key before: bad
    ]
    ed = [_reading(ED_DEVICE, "ed25519", n, rotated_at - 15_000 + n * 1_000, ED) for n in range(1, 5)]
    p256 = [_reading(P256_DEVICE, "p256", n, revoked_at - 2_500 + n * 1_000, P256) for n in range(1, 5)]
    return secp + ed + p256


def _write_readings(folder: Path, readings: list[Reading]) -> None:
    (folder / "readings.jsonl").write_bytes(b"".join(encode_reading(r) + b"\n" for r in readings))


def _register_fleet(job: Path) -> tuple[int, int]:
    """Registers the three devices through the CLI, rotates the secp256k1 one and revokes the
    p256 one; returns (rotation time, revocation time) in ms."""
    new_key = "0x" + public_key_of("secp256k1", SECP_NEW).hex()
    old_key = "0x" + public_key_of("secp256k1", SECP_OLD).hex()
    _cli("device", "register", str(job), "--device", SECP_DEVICE, "--owner", OWNER, "--scheme", "secp256k1", "--public-key", old_key)
    _cli("device", "register", str(job), "--device", ED_DEVICE, "--owner", OWNER, "--scheme", "ed25519", "--public-key", ED_KEY.hex())
    _cli("device", "register", str(job), "--device", P256_DEVICE, "--owner", OWNER, "--scheme", "p256", "--public-key", P256_KEY.hex())
    rotated = _cli("device", "rotate", str(job), "--device", SECP_DEVICE, "--scheme", "secp256k1", "--public-key", new_key)
    assert rotated["key_version"] == 2
    revoked_at = rotated["effective_from_ms"] + 5_000
    revoked = _cli("device", "revoke", str(job), "--device", P256_DEVICE, "--from-ms", str(revoked_at))
    assert revoked["revoked_from_ms"] == revoked_at
    return int(rotated["effective_from_ms"]), revoked_at


def _registry_file(rotated_at: int, revoked_at: int) -> dict[str, Any]:
    """The registry file equivalent to what ``_register_fleet`` put on chain."""
    old_key = "0x" + public_key_of("secp256k1", SECP_OLD).hex()
    new_key = "0x" + public_key_of("secp256k1", SECP_NEW).hex()
    return {
        "devices": [
            {
                "device_id": SECP_DEVICE,
                "scheme": "secp256k1",
                "owner": OWNER,
                "key_history": [
                    {"public_key": old_key, "effective_from_ms": 0, "effective_until_ms": rotated_at},
                    {"public_key": new_key, "effective_from_ms": rotated_at, "effective_until_ms": None},
                ],
            },
            {"device_id": ED_DEVICE, "scheme": "ed25519", "public_key": "0x" + ED_KEY.hex(), "owner": OWNER},
            {
                "device_id": P256_DEVICE,
                "scheme": "p256",
                "public_key": "0x" + P256_KEY.hex(),
                "owner": OWNER,
                "revoked_at_ms": revoked_at,
            },
        ]
    }


HEAD_BEFORE_RUN: list[int] = []  # the embedded chain's head when the run read the registry
EXPECTED_REJECTED = {"bad_signature": 2, "revoked": 2}
EXPECTED_ACCEPTED = 4 + 4 + 2


def _deploy(target: Path | str) -> str:
    chain = connect(target)
    try:
        return deploy_all(chain, dev=True).device_registry
    finally:
        chain.close()


def _manifests(work_dir: Path) -> list[Any]:
    return [c.manifest for c in committed_epochs(work_dir) if c.manifest is not None]


def _same_as_the_file_job(tmp_path: Path, on_chain_job: Path, rotated_at: int, revoked_at: int) -> None:
    """The same readings with the equivalent registry file: the same view, counts and roots."""
    file_folder = tmp_path / "file-job"
    file_folder.mkdir()
    (file_folder / "devices.json").write_text(json.dumps(_registry_file(rotated_at, revoked_at)))
    _write_readings(file_folder, _readings(rotated_at, revoked_at))
    file_job = load_job(_job_file(file_folder, {"file": "devices.json"}))
    chain_job = load_job(on_chain_job)

    # the two views, device for device
    view, _ = chain_devices(chain_job).latest()  # type: ignore[union-attr]
    assert dict(view.devices) == dict(parse_registry(_registry_file(rotated_at, revoked_at)).devices)

    summary = run_job(file_job, use_ray=False, use_chain=False)
    assert summary.accepted == EXPECTED_ACCEPTED and summary.rejected == EXPECTED_REJECTED
    from_file, from_chain = _manifests(file_job.work_dir), _manifests(chain_job.work_dir)
    assert [(m.data_root, m.reward_root, m.accepted, m.rejected) for m in from_file] == [
        (m.data_root, m.reward_root, m.accepted, m.rejected) for m in from_chain
    ]
    # a registry file's manifest is what it always was: no registry block, not even null
    assert all(m.device_registry_block is None and b"device_registry_block" not in m.to_json() for m in from_file)


# EMBEDDED CHAIN


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, int, int]]:
    """A job on the embedded chain whose devices were registered through the CLI, run once."""
    folder = tmp_path_factory.mktemp("on-chain")
    address = _deploy(folder / "work" / "chain")
    job_path = _job_file(folder, {"address": address})
    rotated_at, revoked_at = _register_fleet(job_path)
    chain = connect(folder / "work" / "chain")
    HEAD_BEFORE_RUN.append(int(chain.w3.eth.block_number))
    chain.close()
    _write_readings(folder, _readings(rotated_at, revoked_at))
    summary = run_job(load_job(job_path), use_ray=False, use_chain=True)
    assert summary.accepted == EXPECTED_ACCEPTED, summary.to_json()
    assert summary.rejected == EXPECTED_REJECTED
    assert all(row["verified"] for row in summary.epochs if row["tx_hash"] is not None)
    yield folder, job_path, rotated_at, revoked_at


def test_readings_are_checked_against_the_key_in_force_on_chain(
    embedded_run: tuple[Path, Path, int, int], tmp_path: Path
) -> None:
    _, job_path, rotated_at, revoked_at = embedded_run
    job = load_job(job_path)
    dead = [(d.reason, d.detail) for d in _dead_letters(job)]
    bad = sorted(detail for reason, detail in dead if reason == "bad_signature")
    assert [b.split(":")[0] for b in bad] == [f"{SECP_DEVICE} seq 4", f"{SECP_DEVICE} seq 6"]
    _same_as_the_file_job(tmp_path, job_path, rotated_at, revoked_at)


def _dead_letters(job: Any) -> list[Any]:
    from veristream.run import open_ingest_log

    log = open_ingest_log(job)
    try:
        return list(log.dead_letters.read())
    finally:
        log.close()


def test_the_manifest_names_the_block_and_verify_rebuilds_the_view(embedded_run: tuple[Path, Path, int, int]) -> None:
    _, job_path, _, _ = embedded_run
    job = load_job(job_path)
    manifests = _manifests(job.work_dir)
    assert manifests and {m.device_registry_block for m in manifests} == set(HEAD_BEFORE_RUN)
    for manifest in manifests:
        again = manifest_from_json(manifest.to_json())
        assert again.device_registry_block == manifest.device_registry_block
        assert json.loads(manifest.to_json())["device_registry_block"] == HEAD_BEFORE_RUN[0]
    verified = [m for m in manifests if m.accepted]
    report = audit_epoch(job, verified[-1].epoch)
    assert report.reason is None, report.reason


def test_the_cache_is_extended_with_new_blocks_only(
    embedded_run: tuple[Path, Path, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, job_path, _, _ = embedded_run
    job = load_job(job_path)
    asked: list[tuple[int, int]] = []
    events = ChainRegistryReader.events

    def recorded(self: ChainRegistryReader, from_block: int, to_block: int) -> Any:
        asked.append((from_block, to_block))
        return events(self, from_block, to_block)

    monkeypatch.setattr(ChainRegistryReader, "events", recorded)
    devices = chain_devices(job)
    assert devices is not None
    before, cached_block = devices.latest()
    # the run cached every block; only blocks mined since (the run's own transactions) are read
    assert all(low > min(m.device_registry_block for m in _manifests(job.work_dir)) for low, _ in asked)
    asked.clear()
    late = Account.from_key(_secret("late")).address
    _cli("device", "register", str(job_path), "--device", late, "--owner", OWNER, "--scheme", "secp256k1")
    after, block = devices.latest()
    assert asked == [(cached_block + 1, block)]
    assert late.lower() in after.devices and late.lower() not in before.devices
    assert devices.last_sync is not None and devices.last_sync.events == 1
    # the view as of an earlier block still folds only that block's events
    assert devices.at(cached_block).devices == before.devices
    shown = _cli("device", "show", str(job_path), "--device", late, "--json")
    assert shown["keys"][0]["effective_from_ms"] == 0 and shown["revoked_from_ms"] is None


def test_show_lists_the_key_history(embedded_run: tuple[Path, Path, int, int]) -> None:
    _, job_path, rotated_at, _ = embedded_run
    shown = _cli("device", "show", str(job_path), "--device", SECP_DEVICE, "--json")
    assert shown["key_version"] == 2 and shown["owner"].lower() == OWNER
    assert [(k["effective_from_ms"], k["effective_until_ms"]) for k in shown["keys"]] == [
        (0, rotated_at),
        (rotated_at, None),
    ]
    text = runner.invoke(app, ["device", "show", str(job_path), "--device", SECP_DEVICE])
    assert text.exit_code == 0 and f"[0 ms, {rotated_at} ms)" in text.stdout
    # its DID, resolved from the job's embedded chain, lists the key in force: the new one
    assert shown["did"].startswith("did:ethr:0x") and shown["did"].endswith(":" + SECP_DEVICE)
    resolved = _cli("did", "resolve", shown["did"], "--job", str(job_path), "--json")["didDocument"]
    [controller, method] = resolved["verificationMethod"]
    assert resolved["assertionMethod"] == [controller["id"], method["id"]] and method["type"] == "Multikey"
    # the identity owner is the registry, a contract no signature recovers to; not the owner
    chain_id = int(shown["did"].split(":")[2], 16)
    assert controller["blockchainAccountId"] == f"eip155:{chain_id}:{shown['registry'].lower()}"
    assert multikey_bytes(method) == (0xE7, bytes([2 + (SECP_NEW_KEY[63] & 1)]) + SECP_NEW_KEY[:32])
    # the same from the embedded chain's directory and the registry's address, read only
    chain_dir = Path(load_job(job_path).work_dir) / CHAIN_DIR
    files = sorted(p.stat().st_mtime_ns for p in chain_dir.rglob("*"))
    by_chain = _cli("did", "resolve", shown["did"], "--chain", str(chain_dir), "--registry", shown["registry"], "--json")
    assert by_chain["didDocument"] == resolved
    assert sorted(p.stat().st_mtime_ns for p in chain_dir.rglob("*")) == files


def test_a_published_key_agreement_key_is_in_the_did_until_revoked(embedded_run: tuple[Path, Path, int, int]) -> None:
    _, job_path, _, _ = embedded_run
    x25519 = bytes(range(32)).hex()
    sent = _cli("device", "key-agreement", str(job_path), "--device", ED_DEVICE, "--public-key", x25519)
    document = _cli("did", "resolve", sent["did"], "--job", str(job_path), "--json")["didDocument"]
    methods = {m["id"]: m for m in document["verificationMethod"]}
    [agreement] = document["keyAgreement"]
    assert multikey_bytes(methods[agreement]) == (0xEC, bytes(range(32)))
    controller, *signing = document["assertionMethod"]
    assert controller == sent["did"] + "#controller"
    assert [multikey_bytes(methods[r]) for r in signing] == [(0xED, ED_KEY)]
    _cli("device", "key-agreement", str(job_path), "--device", ED_DEVICE, "--public-key", x25519, "--revoke")
    document = _cli("did", "resolve", sent["did"], "--job", str(job_path), "--json")["didDocument"]
    assert "keyAgreement" not in document and len(document["verificationMethod"]) == 2  # #controller, the key
    short = runner.invoke(app, ["device", "key-agreement", str(job_path), "--device", ED_DEVICE, "--public-key", "0x01"])
    assert short.exit_code == 2 and "32-byte X25519" in short.output


def test_device_commands_fail_in_one_line(embedded_run: tuple[Path, Path, int, int], tmp_path: Path) -> None:
    _, job_path, _, _ = embedded_run
    cases = [
        ["device", "register", str(job_path), "--device", SECP_DEVICE, "--owner", OWNER, "--scheme", "secp256k1"],
        ["device", "register", str(job_path), "--device", "0x12", "--owner", OWNER, "--scheme", "secp256k1"],
        ["device", "register", str(job_path), "--device", ED_DEVICE, "--owner", OWNER, "--scheme", "rsa"],
        ["device", "show", str(job_path), "--device", "0x" + "77" * 20],
        ["device", "revoke", str(job_path), "--device", P256_DEVICE],
        ["device", "rotate", str(job_path), "--device", ED_DEVICE, "--scheme", "ed25519", "--public-key", "zz"],
    ]
    file_folder = tmp_path / "file-job"
    file_job = _job_file(file_folder, {"file": "devices.json"})
    cases.append(["device", "show", str(file_job), "--device", SECP_DEVICE])
    for args in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)  # refused: bad usage (docs/cli.md)
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.output
    assert "DeviceExists" in runner.invoke(app, cases[0]).stderr
    assert "AlreadyRevoked" in runner.invoke(app, cases[4]).stderr
    assert "devices.file" in runner.invoke(app, cases[-1]).stderr


def test_epochs_are_rechecked_at_their_manifests_block(embedded_run: tuple[Path, Path, int, int]) -> None:
    """A later change of the registry (devices revoked for all time) does not change what an epoch
    re-executes to: operators and ``verify`` read the view at the manifest's block."""
    _, job_path, _, _ = embedded_run
    for device in (SECP_DEVICE, ED_DEVICE):
        _cli("device", "revoke", str(job_path), "--device", device, "--from-ms", "1")
    job = load_job(job_path)
    devices = chain_devices(job)
    assert devices is not None
    ctx = job_context(job, devices=devices)
    store = open_store(job.ipfs, job.work_dir)
    prev = JobState()
    changed = 0
    for checkpoint in committed_epochs(job.work_dir):
        manifest = checkpoint.manifest
        assert manifest is not None and manifest.device_registry_block is not None
        assert ctx.registry_block is not None and ctx.registry_block > manifest.device_registry_block
        if manifest.accepted:
            assert audit_epoch(job, manifest.epoch).reason is None
        batch = store.get(manifest.batch_cid)
        assert reexecute(ctx, manifest.epoch, batch, prev, registry_block=manifest.device_registry_block).clean
        # at the latest block the same batch no longer re-executes clean: the view did change
        latest = reexecute(ctx, manifest.epoch, batch, prev, registry_block=ctx.registry_block)
        changed += not latest.clean
        assert all("revoked" in problem for problem in latest.problems)
        with pytest.raises(InputRejected, match="names no device registry block"):
            reexecute(ctx, manifest.epoch, batch, prev)
        prev = checkpoint.state
    assert changed


# ANVIL


def test_devices_on_anvil(tmp_path: Path) -> None:
    with anvil(free_port()) as node:
        url = node.url
        address = _deploy(url)
        folder = tmp_path / "anvil-job"
        job_path = _job_file(folder, {"address": address}, {"mode": "rpc", "rpc_url": url})
        rotated_at, revoked_at = _register_fleet(job_path)
        _write_readings(folder, _readings(rotated_at, revoked_at))
        job = load_job(job_path)
        summary = run_job(job, use_ray=False, use_chain=False)
        assert summary.accepted == EXPECTED_ACCEPTED and summary.rejected == EXPECTED_REJECTED
        blocks = {m.device_registry_block for m in _manifests(job.work_dir)}
        assert len(blocks) == 1 and None not in blocks
        _same_as_the_file_job(tmp_path, job_path, rotated_at, revoked_at)


# THE SPEC


def _spec(devices: dict[str, Any]) -> dict[str, Any]:
    return {
        "job_id": "spec",
        "devices": devices,
        "epochs": {"length_ms": 1_000},
        "rewards": {"tokens_per_epoch": 1},
    }


def test_the_spec_takes_exactly_one_device_source() -> None:
    address = "0x" + "11" * 20
    assert parse_job(_spec({"address": address})).devices.address == address
    with pytest.raises(JobSpecError) as both:
        parse_job(_spec({"file": "d.json", "address": address}))
    assert [p for p, _ in both.value.problems] == ["devices.address"]
    assert "not both" in both.value.problems[0][1]
    with pytest.raises(JobSpecError) as neither:
        parse_job(_spec({}))
    assert [p for p, _ in neither.value.problems] == ["devices"]
    with pytest.raises(JobSpecError) as malformed:
        parse_job(_spec({"address": "0x1234"}))
    assert [p for p, _ in malformed.value.problems] == ["devices.address"]


# THE ATTACK


def test_RevertWhen_ARotatedDevicesNewKeySignsReadingsFromBeforeTheRotation(tmp_path: Path) -> None:
    """Through the Beam pipeline (not only the checks function), the key windows decide: the new
    key cannot back-date readings into the old key's window, nor the old one sign after it."""
    rotated_at = 1_796_000_000_000
    (tmp_path / "devices.json").write_text(json.dumps(_registry_file(rotated_at, rotated_at + 5_000)))
    _write_readings(tmp_path, _readings(rotated_at, rotated_at + 5_000))
    job = load_job(_job_file(tmp_path, {"file": "devices.json"}))
    summary = run_job(job, use_ray=False, use_chain=False)
    bad = sorted(d.detail.split(":")[0] for d in _dead_letters(job) if d.reason == "bad_signature")
    assert bad == [f"{SECP_DEVICE} seq 4", f"{SECP_DEVICE} seq 6"]
    assert summary.accepted == EXPECTED_ACCEPTED

"""``veristream proof reading|aggregate|reward``: each printed proof is accepted by the contract it
is made for (verifyReadingData, verifyAggregate, a RewardDistributor claim), a tampered leaf is
not, the aggregate leaf is the pipeline's statistics, and a proof of nothing exits with its code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.app.test_inspect import JOB
from veristream.chain import connect_job_chain, job_deployment
from veristream.cli import app, exit_code
from veristream.contracts import (
    claim,
    claimed,
    epoch_contains_reading_data,
    load_deployment,
    verify_aggregate,
)
from veristream.inspect import chain_view, checkpoint_of, read_store
from veristream.pipeline.batch import decode_accepted
from veristream.pipeline.jobspec import JobSpec, load_job
from veristream.provers.errors import VeriStreamError
from veristream.run import run_job


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One run of a small job (no Ray, embedded chain): the job file and the run's summary."""
    root = tmp_path_factory.mktemp("proof")
    work = root / "work"
    spec = JOB | {
        "job_id": "proof-check",
        "devices": {"file": str(work / "devices.json"), "domain": {"name": "VeriStream", "version": "1",
                                                                   "chain_id": 31337}},
        "work_dir": str(work),
        "aggregation": {"fields": ["temp_c_x100", "humidity_bp"], "quantiles": [90, 50]},
    }
    job_file = root / "job.yaml"
    job_file.write_text(yaml.safe_dump(spec))
    summary = run_job(load_job(str(job_file)), use_ray=False).to_json()
    return job_file, summary


def cli(*args: str) -> tuple[int, str]:
    """The CLI in-process as ``entry()`` runs it: a VeriStream error is its exit code."""
    result = CliRunner(env={"COLUMNS": "300"}).invoke(app, list(args))
    if isinstance(result.exception, VeriStreamError):
        return exit_code(result.exception), result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def proof_json(*args: str) -> dict[str, Any]:
    code, out = cli("proof", *args, "--json")
    assert code == 0, out
    found: dict[str, Any] = json.loads(out)
    return found


def _nodes(proof: dict[str, Any]) -> list[bytes]:
    return [bytes.fromhex(node[2:]) for node in proof["proof"]]


def _verified(summary: dict[str, Any]) -> list[int]:
    return [e["epoch"] for e in summary["epochs"] if e["verified"]]


def test_a_reading_proof_is_accepted_by_verify_reading_data(ran: tuple[Path, dict[str, Any]]) -> None:
    job_file, summary = ran
    job = load_job(str(job_file))
    epoch = _verified(summary)[-1]
    manifest = checkpoint_of(job, epoch).manifest
    assert manifest is not None
    reading = decode_accepted(read_store(job).get(manifest.batch_cid))[-1]
    proof = proof_json("reading", str(job_file), "--epoch", str(epoch), "--device", reading.device_id,
                       "--seq", str(reading.seq))
    assert proof["kind"] == "reading" and proof["epoch"] == epoch and proof["root"] == manifest.data_root
    assert proof["leaf"][1:3] == [reading.seq, reading.timestamp_ms]
    assert proof["leaf_encoding"] == ["address", "uint64", "uint64", "bytes32"]
    leaf = bytes.fromhex(proof["encoded_leaf"][2:])
    with chain_view(job) as view:
        assert epoch_contains_reading_data(view.chain, view.deployment, view.job_hash, epoch, leaf, _nodes(proof))
        # another timestamp for the same reading is not in the root
        forged = leaf[:64] + (reading.timestamp_ms + 1).to_bytes(32, "big") + leaf[96:]
        assert not epoch_contains_reading_data(view.chain, view.deployment, view.job_hash, epoch, forged, _nodes(proof))
    code, text = cli("proof", "reading", str(job_file), "--epoch", str(epoch), "--device", reading.device_id,
                     "--seq", str(reading.seq))
    assert code == 0 and proof["root"] in text and "verifyReadingData" in text


def test_an_aggregate_proof_is_accepted_by_verify_aggregate(ran: tuple[Path, dict[str, Any]]) -> None:
    job_file, summary = ran
    job = load_job(str(job_file))
    epoch = _verified(summary)[0]
    manifest = checkpoint_of(job, epoch).manifest
    assert manifest is not None
    device = decode_accepted(read_store(job).get(manifest.batch_cid))[0].device_id
    proof = proof_json("aggregate", str(job_file), "--epoch", str(epoch), "--device", device, "--field", "temp_c_x100")
    assert proof["root"] == manifest.aggregates_root
    _, field, count, low, high, total, percents, values = proof["leaf"]
    assert field == "temp_c_x100" and count >= 1 and percents == [50, 90]  # ascending, whatever order the job lists them in
    assert low <= min(values) and max(values) <= high and low * count <= total <= high * count
    leaf = bytes.fromhex(proof["encoded_leaf"][2:])
    with chain_view(job) as view:
        assert verify_aggregate(view.chain, view.deployment, view.job_hash, epoch, leaf, _nodes(proof))
        # the same leaf claimed for another epoch, or with a higher max, is refused
        other = next(e for e in _verified(summary) if e != epoch)
        assert not verify_aggregate(view.chain, view.deployment, view.job_hash, other, leaf, _nodes(proof))
        raised = leaf[:128] + (high + 1).to_bytes(32, "big", signed=True) + leaf[160:]
        assert not verify_aggregate(view.chain, view.deployment, view.job_hash, epoch, raised, _nodes(proof))


def _claim(job: JobSpec, proof: dict[str, Any]) -> tuple[int, int]:
    """Claim with a printed reward proof; (claimed before, claimed after)."""
    chain = connect_job_chain(job)
    try:
        dep = load_deployment(chain, job_deployment(job))
        job_hash = bytes.fromhex(proof["job_id"][2:])
        account, amount = proof["leaf"]
        before = claimed(chain, dep, job_hash, account)
        claim(chain, dep, job_hash, account, amount, _nodes(proof))
        return before, claimed(chain, dep, job_hash, account)
    finally:
        chain.close()


def test_a_reward_proof_claims_against_the_claimable_epoch_only(ran: tuple[Path, dict[str, Any]]) -> None:
    job_file, summary = ran
    job = load_job(str(job_file))
    verified = _verified(summary)
    last = checkpoint_of(job, verified[-1])
    paid = {c["account"] for c in summary["claims"]}
    account = next("0x" + a.hex() for a in sorted(last.state.cumulative) if "0x" + a.hex() not in paid)
    proof = proof_json("reward", str(job_file), "--account", account)
    assert proof["epoch"] == verified[-1] and proof["claimable"] is True
    assert proof["leaf"] == [account, last.state.cumulative[bytes.fromhex(account[2:])]]
    # a proof of an earlier epoch is printed, and says the distributor does not pay against it
    earlier = proof_json("reward", str(job_file), "--account", account, "--epoch", str(verified[0]))
    assert earlier["claimable"] is False and earlier["claimable_epoch"] == verified[-1]
    code, text = cli("proof", "reward", str(job_file), "--account", account, "--epoch", str(verified[0]))
    assert code == 0 and f"highest verified epoch ({verified[-1]}), not epoch {verified[0]}" in text
    # the claimable proof pays the account its cumulative amount
    assert _claim(job, proof) == (0, proof["leaf"][1])


def test_a_proof_of_nothing_exits_with_its_code(ran: tuple[Path, dict[str, Any]]) -> None:
    job_file, summary = ran
    epoch = str(_verified(summary)[0])
    job = str(job_file)
    nobody = "0x" + "00" * 20
    assert cli("proof", "reading", job, "--epoch", "99999", "--device", nobody, "--seq", "0")[0] == 3
    assert cli("proof", "reading", job, "--epoch", epoch, "--device", nobody, "--seq", "0")[0] == 3
    assert cli("proof", "aggregate", job, "--epoch", epoch, "--device", nobody, "--field", "temp_c_x100")[0] == 3
    assert cli("proof", "reward", job, "--account", nobody)[0] == 3
    assert cli("proof", "reward", job, "--account", "0x12")[0] == 2
    assert cli("proof", "reading", job, "--device", nobody, "--seq", "0")[0] == 2  # --epoch is required


def test_proofs_create_no_files(ran: tuple[Path, dict[str, Any]], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    job_file, summary = ran
    job = load_job(str(job_file))
    epoch = _verified(summary)[-1]
    manifest = checkpoint_of(job, epoch).manifest
    assert manifest is not None
    reading = decode_accepted(read_store(job).get(manifest.batch_cid))[0]
    monkeypatch.chdir(tmp_path)

    def files(root: Path) -> dict[str, tuple[int, int]]:
        return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}

    before, here = files(job_file.parent), files(tmp_path)
    e, device = str(epoch), reading.device_id
    assert cli("proof", "reading", str(job_file), "--epoch", e, "--device", device, "--seq", str(reading.seq))[0] == 0
    assert cli("proof", "aggregate", str(job_file), "--epoch", e, "--device", device, "--field", "humidity_bp")[0] == 0
    assert cli("proof", "reward", str(job_file), "--account", "0x" + sorted(
        checkpoint_of(job, epoch).state.cumulative)[0].hex(), "--json")[0] == 0
    assert files(job_file.parent) == before and files(tmp_path) == here

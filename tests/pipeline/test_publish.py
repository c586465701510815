"""`veristream run` end to end on embedded defaults, as a user runs it (subprocesses):
the shipped example against the simulator's ground truth, `verify` in a later process,
and a run killed mid-epoch that resumes to the same roots and CIDs without double counting."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

VERISTREAM = [sys.executable, "-m", "veristream"]


def _job_copy(tmp: Path, example: str, operators: int | None = None, **source_overrides: Any) -> Path:
    """The shipped example with its work directory (and registry) moved under ``tmp``."""
    spec = yaml.safe_load((REPO / "examples" / example).read_text())
    if operators is not None:
        spec["operators"]["count"] = operators
    spec["work_dir"] = str(tmp / "work")
    spec["devices"]["file"] = str(tmp / "work" / "devices.json")
    spec["sources"][0].update(source_overrides)
    spec["sources"][0]["ground_truth"] = str(tmp / "truth.jsonl")
    path = tmp / example
    path.write_text(yaml.safe_dump(spec))
    return path


def _run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_DISABLE_IMPORT_WARNING": "1"}
    return subprocess.run([*VERISTREAM, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def _truth(tmp: Path) -> dict[str, Any]:
    return dict(json.loads((tmp / "truth.jsonl.summary.json").read_text()))


@pytest.mark.slow
def test_weather_example_runs_verifies_on_chain_and_claims(tmp_path: Path) -> None:
    job = _job_copy(tmp_path, "weather.yaml")
    # one operator lies about the data root: it refuses, says why, and the other three suffice
    done = _run("run", str(job), "--json", "--operator-fault", "1:wrong_root")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    truth = _truth(tmp_path)
    # the pipeline's verdicts are exactly the simulator's ground truth
    assert summary["readings_in"] == truth["messages"]
    assert summary["accepted"] == truth["accepted"]
    assert summary["rejected"] == truth["rejected_by_reason"]
    assert set(summary) >= {"job_id", "readings_in", "accepted", "rejected", "epochs", "claims"}
    verified = [e for e in summary["epochs"] if e["verified"]]
    assert len(verified) >= 4
    for epoch in verified:
        assert epoch["tx_hash"].startswith("0x") and epoch["gas"] > 0
        assert epoch["batch_cid"].startswith("bafkrei") and len(epoch["data_root"]) == 66
    refusals = summary["refusals"]
    assert set(refusals) == {str(e["epoch"]) for e in verified}
    assert all("data root mismatch" in r["1"] for r in refusals.values())
    claim = summary["claims"][0]
    assert claim["amount"] > 0 and claim["tx_hash"].startswith("0x")

    # an auditor recomputes one epoch from IPFS and the chain in a later process
    check = _run("verify", str(job), str(verified[1]["epoch"]), "--json")
    assert check.returncode == 0, check.stdout + check.stderr[-2000:]
    assert json.loads(check.stdout)["ok"] is True
    missing = _run("verify", str(job), "12345", "--json")
    assert missing.returncode == 3  # not verified: nothing to compare, not a mismatch

    # running again changes nothing: every epoch is already verified, the claim is already paid
    again = _run("run", str(job), "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads(again.stdout)
    assert [e["data_root"] for e in second["epochs"]] == [e["data_root"] for e in summary["epochs"]]
    assert second["rejected"] == summary["rejected"] and second["accepted"] == summary["accepted"]
    assert second["claims"][0]["amount"] == 0


def _epochs(summary: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(e["epoch"], e["batch_cid"], e["data_root"], e["reward_root"]) for e in summary["epochs"]]


@pytest.mark.slow
def test_killed_mid_epoch_resumes_to_identical_results(tmp_path: Path) -> None:
    overrides = {"count": 600, "rate": 100}
    clean_dir, killed_dir = tmp_path / "clean", tmp_path / "killed"
    clean_dir.mkdir()
    killed_dir.mkdir()
    # one operator: the committee is not what this test is about, and it is the slow part
    clean_job = _job_copy(clean_dir, "weather.yaml", operators=1, **overrides)
    killed_job = _job_copy(killed_dir, "weather.yaml", operators=1, **overrides)

    clean = _run("run", str(clean_job), "--json", "--no-ray", "--no-chain")
    assert clean.returncode == 0, clean.stderr[-3000:]
    expected = json.loads(clean.stdout)

    # SIGKILL once epoch 1 is committed, i.e. while epoch 2 is being computed
    marker = killed_dir / "work" / "epochs" / f"{1:012d}.json"
    proc = subprocess.Popen(
        [*VERISTREAM, "run", str(killed_job), "--json", "--no-ray", "--no-chain"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed_dir / "work" / "epochs" / f"{5:012d}.json").exists()

    resumed = _run("run", str(killed_job), "--json", "--no-ray", "--no-chain")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got = json.loads(resumed.stdout)
    assert _epochs(got) == _epochs(expected)
    assert got["readings_in"] == expected["readings_in"] == _truth(killed_dir)["messages"]
    assert got["accepted"] == expected["accepted"]
    assert got["rejected"] == expected["rejected"]  # no dead letter filed twice


def test_crash_between_checkpoint_and_dead_letters_files_them_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from veristream import run as coordinator
    from veristream.connectors.ipfs import open_store
    from veristream.pipeline.compute import job_context
    from veristream.pipeline.jobspec import load_job

    job = load_job(_job_copy(tmp_path, "weather.yaml", operators=1, count=300))
    log = coordinator.open_ingest_log(job)
    coordinator.ingest(job, log)
    store = open_store(job.ipfs, job.work_dir)
    ctx = job_context(job)
    real = coordinator._file_dead_letters

    def crash_after_half(dead_letters: Any, epoch: int, rejected: Any) -> None:
        real(dead_letters, epoch, list(rejected)[: len(rejected) // 2])  # a torn append
        raise KeyboardInterrupt("crash")

    monkeypatch.setattr(coordinator, "_file_dead_letters", crash_after_half)
    with pytest.raises(KeyboardInterrupt):
        coordinator.process_closed_epochs(job, log, store, ctx)
    log.close()
    monkeypatch.setattr(coordinator, "_file_dead_letters", real)
    log = coordinator.open_ingest_log(job)
    try:
        coordinator.ingest(job, log)  # resumes: nothing appended twice
        coordinator.process_closed_epochs(job, log, store, ctx)
        counts = log.dead_letters.counts()
    finally:
        log.close()
    assert counts == _truth(tmp_path)["rejected_by_reason"]

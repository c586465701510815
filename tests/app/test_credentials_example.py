"""examples/weather-credentials.yaml end to end on the embedded defaults: every station holds a
manufacturer's credential, one is revoked half-way, and the run's dead letters are exactly the
simulator's ground truth, with each epoch's manifest pinning the lists it decided with."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO
from veristream.connectors.simulator import manufacturer_key, simulate
from veristream.pipeline.jobspec import load_job
from veristream.provers.did_key import did_key

EXAMPLE = REPO / "examples" / "weather-credentials.yaml"


def test_the_example_trusts_the_simulated_manufacturer() -> None:
    spec = yaml.safe_load(EXAMPLE.read_text())
    seed = spec["sources"][0]["seed"]
    assert spec["devices"]["credentials"]["trusted_issuers"] == [did_key(manufacturer_key(seed).public_key)]
    assert spec["devices"]["credentials"]["required"] is True


def test_weather_with_credentials_runs_end_to_end(tmp_path: Path) -> None:
    spec = tmp_path / EXAMPLE.name
    shutil.copy(EXAMPLE, spec)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "veristream", "run", str(spec), "--json", "--no-ray"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary: dict[str, Any] = json.loads(proc.stdout)
    job = load_job(spec)
    truth = simulate(job.sources[0]).summary()
    # the run's verdicts are the ground truth's, credential_revoked included
    assert summary["accepted"] == truth["accepted"]
    assert summary["rejected"] == {str(k): v for k, v in truth["rejected_by_reason"].items()}
    assert summary["rejected"]["credential_revoked"] > 0
    assert all(epoch["verified"] for epoch in summary["epochs"])
    # every manifest pins the credentials and the list versions in force; the revocation's
    # epoch pins two, and re-executing operators signed every epoch from those pins
    manifests = [json.loads(p.read_text())["manifest"] for p in sorted((job.work_dir / "epochs").glob("*.json"))]
    assert manifests and all("credential_status" in m for m in manifests)
    assert len(manifests[0]["credential_status"]["credentials"]) == len(json.loads(job.devices.file.read_text())["devices"])
    assert max(len(m["credential_status"]["lists"]) for m in manifests) == 2
    assert elapsed < 60, f"{elapsed:.1f} s"
    # an auditor re-executes the revocation's epoch from IPFS and the pinned lists alone
    epoch = next(e["epoch"] for e in summary["epochs"] if e["rejected"].get("credential_revoked"))
    audit = subprocess.run(
        [sys.executable, "-m", "veristream", "verify", str(spec), str(epoch), "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert audit.returncode == 0, audit.stdout[-2000:] + audit.stderr[-2000:]

"""`veristream run` against real services instead of the embedded parts: an anvil chain, a
js-ipfs RPC node and a Ray head started with `ray start --head` on loopback, all started
here and stopped after; then `veristream verify` against the same services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, free_port
from tests.ipfs_node import jsipfs_node
from tests.ray_head import ray_head as start_ray_head
from veristream.contracts.anvil import anvil

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_head() -> Iterator[dict[str, str]]:
    """A throwaway Ray head on loopback with its job API (tests/ray_head.py)."""
    with start_ray_head(dashboard=True) as head:
        assert head.jobs is not None
        yield {"address": head.address, "jobs": head.jobs}


def test_weather_example_on_anvil_jsipfs_and_a_ray_head(tmp_path: Path, ray_head: dict[str, str]) -> None:
    spec = yaml.safe_load((REPO / "examples" / "weather.yaml").read_text())
    spec["work_dir"] = str(tmp_path / "work")
    spec["devices"]["file"] = str(tmp_path / "work" / "devices.json")
    spec["sources"][0]["count"] = 200
    with anvil(free_port()) as chain, jsipfs_node() as ipfs:
        spec["chain"] = {"mode": "rpc", "rpc_url": chain.url}
        spec["ipfs"] = {"mode": "rpc", "url": ipfs}
        spec["ray"] = {"address": ray_head["address"]}
        job = tmp_path / "weather-services.yaml"
        job.write_text(yaml.safe_dump(spec))
        env = {**os.environ, "RAY_DISABLE_IMPORT_WARNING": "1", "RAY_AUTH_MODE": "disabled"}
        done = subprocess.run(
            [sys.executable, "-m", "veristream", "run", str(job), "--json"],
            capture_output=True, text=True, timeout=900, env=env, cwd=REPO,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads(done.stdout)
        verified = [e for e in summary["epochs"] if e["verified"]]
        assert len(verified) >= 2 and all(e["gas"] > 0 for e in verified)
        assert summary["claims"][0]["amount"] > 0
        # the batches live on the IPFS node: fetch one over its RPC API and check the CID
        import httpx

        cid = verified[0]["batch_cid"]
        reply = httpx.post(f"{ipfs}/api/v0/cat", params={"arg": cid}, timeout=30)
        assert reply.status_code == 200 and reply.content[:4] == b"PAR1"
        check = subprocess.run(
            [sys.executable, "-m", "veristream", "verify", str(job), str(verified[-1]["epoch"]), "--json"],
            capture_output=True, text=True, timeout=600, env=env, cwd=REPO,
        )
        assert check.returncode == 0, check.stdout + check.stderr[-2000:]


def test_submit_to_the_ray_head_and_follow_status(tmp_path: Path, ray_head: dict[str, str]) -> None:
    spec = yaml.safe_load((REPO / "examples" / "weather.yaml").read_text())
    spec["work_dir"] = str(tmp_path / "work")
    spec["devices"]["file"] = str(tmp_path / "work" / "devices.json")
    spec["sources"][0]["count"] = 150
    job = tmp_path / "weather-submitted.yaml"
    job.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "RAY_DISABLE_IMPORT_WARNING": "1", "RAY_AUTH_MODE": "disabled"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "veristream", *args], capture_output=True, text=True, timeout=300, env=env, cwd=REPO
        )

    submitted = cli("submit", str(job), "--address", ray_head["jobs"], "--json")
    assert submitted.returncode == 0, submitted.stderr[-2000:]
    assert json.loads(submitted.stdout)["submission_id"].startswith("veristream-weather-demo-")
    deadline = time.monotonic() + 900
    state: dict[str, object] = {}
    while time.monotonic() < deadline:
        status = cli("status", str(job), "--json")
        state = json.loads(status.stdout)
        if state["state"] in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(3)
    assert state["state"] == "SUCCEEDED", state
    summary = state["summary"]
    assert isinstance(summary, dict) and summary["job_id"] == "weather-demo"
    assert any(e["verified"] for e in summary["epochs"]) and summary["claims"][0]["amount"] > 0

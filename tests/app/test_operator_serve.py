"""`veristream operator serve`: an operator's prover as a named, detached actor on a real Ray
head (`ray start --head` on loopback), found by name by a coordinator's committee that
lists it in `operators.remote`, co-signing an epoch result next to a local actor."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.ray_head import RAY_ENV
from tests.ray_head import ray_head as start_ray_head
from veristream.provers.encoding import ZERO_ADDRESS

VERISTREAM = [sys.executable, "-m", "veristream"]
ENV = {**os.environ, **RAY_ENV}


def test_remote_operators_are_validated() -> None:
    from pydantic import ValidationError

    from veristream.pipeline.jobspec import OperatorsSpec

    assert OperatorsSpec(count=2, remote=["a"]).namespace == "veristream"
    with pytest.raises(ValidationError, match="count is 1"):
        OperatorsSpec(count=1, remote=["a", "b"])
    with pytest.raises(ValidationError, match="distinct"):
        OperatorsSpec(count=3, remote=["a", "a"])
    with pytest.raises(ValidationError, match="extra"):
        OperatorsSpec.model_validate({"count": 1, "remotes": ["a"]})


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """A throwaway Ray head on loopback (tests/ray_head.py); its GCS address."""
    with start_ray_head() as head:
        yield head.address


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VERISTREAM, *args], capture_output=True, text=True, timeout=600, env=ENV, cwd=REPO
    )


@pytest.mark.slow
def test_served_operator_cosigns_for_a_committee(
    tmp_path: Path, ray_head: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    from veristream.committee import RayCommittee
    from veristream.pipeline.jobspec import load_job
    from veristream.pipeline.reexecute import proposal_for
    from veristream.pipeline.workers import ensure_ray
    from veristream.provers.aggregation import Member, Proposal, demo_members
    from veristream.provers.bls import bn254
    from veristream.run import committed_epochs

    # one stored epoch to sign (no chain, no Ray: only its manifest and batch matter here)
    spec = yaml.safe_load((REPO / "examples" / "air-quality.yaml").read_text())
    spec["work_dir"] = str(tmp_path / "work")
    spec["devices"]["file"] = str(tmp_path / "work" / "devices.json")
    spec["sources"][0]["count"] = 120
    job_path = tmp_path / "air-quality.yaml"
    job_path.write_text(yaml.safe_dump(spec))
    done = _cli("run", str(job_path), "--no-ray", "--no-chain", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    key_path = tmp_path / "operator.key"
    keygen = _cli("operator", "keygen", "--scheme", "bn254", "--out", str(key_path))
    assert keygen.returncode == 0, keygen.stderr
    served_pk = bytes.fromhex(json.loads(key_path.read_text())["public_key"][2:])

    serve = subprocess.Popen(
        [
            *VERISTREAM, "operator", "serve", str(job_path), "--ray-address", ray_head,
            "--key", str(key_path), "--name", "operator-a", "--namespace", "vs-test",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=REPO,
        start_new_session=True,
    )
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline()  # printed once the actor answers
        assert line, serve.stderr.read()[-3000:] if serve.stderr else "serve exited"
        announced = json.loads(line)
        assert announced["name"] == "operator-a" and announced["public_key"] == "0x" + served_pk.hex()

        monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
        ensure_ray(ray_head)
        try:
            base = load_job(job_path)
            job = base.model_copy(
                update={
                    "operators": base.operators.model_copy(
                        update={"count": 2, "remote": ["operator-a"], "namespace": "vs-test"}
                    )
                }
            )
            # slot 0 is the served key; slot 1 a local actor; quorum 2/3 of 2 needs both
            local = demo_members("bn254", 2, base.operators.key_seed)[1]
            members = [Member(0, "bn254", 1, served_pk), local]
            checkpoint = next(c for c in committed_epochs(Path(job.work_dir)) if c.manifest and c.manifest.accepted)
            assert checkpoint.manifest is not None and checkpoint.manifest_cid is not None
            proposal = proposal_for(checkpoint.manifest, checkpoint.manifest_cid, 31337, "0x" + "11" * 20, ZERO_ADDRESS)

            committee = RayCommittee(job, members)
            try:
                aggregate = committee.sign(proposal)
                assert aggregate.refusals == {} and aggregate.signers == (0, 1)
                assert aggregate.quorum_met
                assert bn254.fast_aggregate_verify(
                    [served_pk, local.public_key], aggregate.digest, aggregate.signature
                )
                # the served operator re-executes: a wrong data root is refused with the reason
                wrong = dataclasses.replace(proposal.result, data_root=b"\x01" * 32)
                refused = committee.sign(Proposal(**{**_fields(proposal), "result": wrong}))
                assert "data root mismatch" in refused.refusals[0] and not refused.quorum_met
            finally:
                committee.close()
            # closing the run leaves the served operator alone
            assert ray.get(ray.get_actor("operator-a", namespace="vs-test").ping.remote(), timeout=60) == 0

            # a committee naming an operator nobody serves says so
            missing = job.model_copy(
                update={"operators": job.operators.model_copy(update={"remote": ["nobody"]})}
            )
            with pytest.raises(ValueError, match="no operator actor 'nobody'"):
                RayCommittee(missing, members)
        finally:
            ray.shutdown()

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0
        ensure_ray(ray_head)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    ray.get_actor("operator-a", namespace="vs-test")
                except ValueError:
                    break
                time.sleep(0.5)
            else:
                pytest.fail("the served actor outlived `operator serve`")
        finally:
            ray.shutdown()
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()


def _fields(value: Any) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}

"""The signature stage on Ray tasks (a job naming a Ray cluster) gives the same epoch as in-process."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from tests.pipeline_fleet import fleet, honest_epoch, job_dict, make_job, record
from veristream.pipeline import workers
from veristream.pipeline.compute import compute_epoch, job_context
from veristream.pipeline.jobspec import JobSpecError, parse_job
from veristream.pipeline.state import JobState

FLEET = fleet(5)
STRANGER = fleet(1, offset=700)[0]  # signs, but is not registered
PER_ELEMENT = 7


def _epoch_records() -> list[tuple[int, bytes]]:
    """Good readings and one of each common reject, in arrival order."""
    records = honest_epoch(FLEET, 0, per_device=6)
    bad = json.loads(records[2][1])
    signature = bytearray(bad["signature"][2:], "ascii")
    signature[12] = ord("0") if signature[12] != ord("0") else ord("1")
    bad["signature"] = "0x" + signature.decode()
    records += [
        (records[2][0] + 1, json.dumps(bad).encode()),  # forged signature
        record(FLEET[1], 101, 600, {"temp": 9999}),  # implausible
        record(STRANGER, 1, 700, {"temp": 1}),  # unknown device
        records[5],  # duplicate
        (900, b"not an envelope"),
    ]
    return records


def _pid() -> int:
    return os.getpid()


def test_backend_follows_the_configured_cluster() -> None:
    assert workers.backend("auto", None) == "processes"
    assert workers.backend("auto", "10.0.0.5:6379") == "ray"
    assert workers.backend("processes", "10.0.0.5:6379") == "processes"
    assert workers.backend("ray", None) == "ray"
    with pytest.raises(ValueError, match="verify_on"):
        workers.backend("threads", None)


def test_job_spec_validates_verify_on(tmp_path: Path) -> None:
    job = make_job(tmp_path, FLEET)
    assert job.beam.verify_on == "auto"
    with pytest.raises(JobSpecError, match=r"beam\.verify_on"):
        parse_job(job_dict(beam={"verify_on": "threads"}), base=tmp_path)


def test_signature_checks_on_ray_give_the_same_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ray_session: None
) -> None:
    import ray

    records = _epoch_records()
    job = make_job(tmp_path, FLEET, beam={"readings_per_element": PER_ELEMENT})
    inline = compute_epoch(job_context(job), 0, records, JobState())
    assert {"bad_signature", "unknown_device", "implausible", "malformed"} <= set(inline.rejected)

    # the pool threshold would keep so small an epoch in-process
    monkeypatch.setattr(workers, "MIN_READINGS_FOR_POOL", 1)
    workers.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        # the job names the (running) cluster: ``verify_on: auto`` picks Ray
        address = ray.get_runtime_context().gcs_address
        ray_job = job.model_copy(
            update={
                "ray": job.ray.model_copy(update={"address": address}),
                "beam": job.beam.model_copy(update={"verify_workers": 2}),
            }
        )
        before = workers.ray_tasks()
        on_ray = compute_epoch(job_context(ray_job), 0, records, JobState())
        sent = workers.ray_tasks() - before
        # no local process pool was started: every batch went to a Ray task, once
        assert workers.worker_pids() == []
        # Ray workers are other processes than this driver
        assert ray.get(ray.remote(_pid).remote()) != os.getpid()
    finally:
        workers.shutdown()
        ray.shutdown()
    assert sent == math.ceil(len(records) / PER_ELEMENT)
    assert (on_ray.data_root, on_ray.reward_root, on_ray.rejected) == (
        inline.data_root,
        inline.reward_root,
        inline.rejected,
    )
    assert on_ray.dead == inline.dead
    assert on_ray == inline

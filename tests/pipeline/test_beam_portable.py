"""The per-epoch pipeline on a Beam runner outside this process gives what the embedded one gives.

Beam's own Python job service runs as a separate process on a loopback port, and
its SDK workers are started by a separate worker pool (environment EXTERNAL), so
the epoch's transforms run in processes that share nothing with the test but the
job API and the staging folder: inputs and results must travel through files.
The EpochComputation (accepted readings, dead letters with reasons, aggregates,
rewards, roots, next state) and the stored batch bytes and CIDs must be identical
to the embedded run of the same records, and operators re-execute that batch
(embedded, as always) to the same roots. A bad runner config fails at job-spec
validation, naming the field.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, free_port, stop_process_group
from tests.pipeline_fleet import EPOCH_MS, fleet, honest_epoch, job_dict, make_job, reading, record
from veristream.connectors.envelope import encode_reading
from veristream.connectors.ipfs import EmbeddedStore
from veristream.pipeline import beam_portable
from veristream.pipeline.compute import EpochComputation, compute_epoch, job_context
from veristream.pipeline.jobspec import JobSpec, JobSpecError, parse_job
from veristream.pipeline.publish import store_epoch
from veristream.pipeline.records import Rejected
from veristream.pipeline.reexecute import reexecute
from veristream.pipeline.state import JobState
from veristream.provers.readings import Reading

DEVICES = fleet(5)
OUTSIDER = fleet(1, offset=500)[0]
REWARDS = {"tokens_per_epoch": 1_000_003, "max_per_device": 300_000}


# SERVICES


@dataclass(frozen=True)
class BeamServices:
    job_endpoint: str
    worker_pool: str
    job_log: Path


def _wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {seconds} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # each service runs in its own session: the worker pool's SDK workers go with it
    stop_process_group(proc)


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BeamServices]:
    logs = tmp_path_factory.mktemp("beam-services")
    env = dict(os.environ)
    # the worker pool starts SDK workers as `python`: this interpreter, which has veristream
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    job_port, pool_port = free_port(), free_port()
    started: list[subprocess.Popen[bytes]] = []
    try:
        with (logs / "job.log").open("wb") as job_log, (logs / "pool.log").open("wb") as pool_log:
            job = subprocess.Popen(
                [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                 "--port", str(job_port), "--staging_dir", str(logs / "artifacts")],
                stdout=job_log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
            started.append(job)
            pool = subprocess.Popen(
                [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                 "--service_port", str(pool_port)],
                stdout=pool_log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
            started.append(pool)
        _wait_listening(job_port, job, "Beam job service")
        _wait_listening(pool_port, pool, "Beam worker pool")
        yield BeamServices(f"localhost:{job_port}", f"localhost:{pool_port}", logs / "job.log")
    finally:
        for proc in started:
            _stop(proc)


# SCENARIO


def _epoch_one() -> list[tuple[int, bytes]]:
    """Epoch 1 after epoch 0: honest readings plus one of most faults, and a replay of epoch 0."""
    start = EPOCH_MS
    records = honest_epoch(DEVICES[:4], 1, per_device=6, seq_start=10)
    d0, d1, d2, d3, _ = DEVICES
    good = reading(d0, 50, start + 5_000, {"temp": 1})
    records += [(start + 5_010, encode_reading(good)), (start + 5_020, encode_reading(good))]
    records.append(record(d0, 3, start + 5_100, {"temp": 2}))  # seq 3 was accepted in epoch 0
    forged = Reading(d1.device_id, 60, start + 6_000, b'{"temp":3}', good.signature)
    records.append((start + 6_010, encode_reading(forged)))
    records.append(record(OUTSIDER, 1, start + 6_100, {"temp": 3}))
    records.append(record(d2, 70, start + 7_000, {"temp": 9_999}))
    records.append(record(d2, 71, start + 7_100, b"not json"))
    records.append(record(d3, 80, start + 2 * EPOCH_MS + 1, {"temp": 1}))
    records.append((start + 9_000, b'{"device_id": "0x12"'))
    return records


def _portable_job(base: JobSpec, services: BeamServices, staging: Path) -> JobSpec:
    beam = base.beam.model_copy(
        update={
            "runner": "portable",
            "options": {
                "job_endpoint": services.job_endpoint,
                "environment_type": "EXTERNAL",
                "environment_config": services.worker_pool,
            },
            "staging": str(staging),
            # several input files, so the runner really splits the epoch
            "readings_per_element": 9,
        }
    )
    return base.model_copy(update={"beam": beam})


def _completed_jobs(services: BeamServices) -> int:
    return services.job_log.read_text(errors="replace").count("with state DONE")


@pytest.fixture(scope="module")
def runs(services: BeamServices, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("job")
    embedded_job = make_job(tmp, DEVICES, rewards=REWARDS)
    embedded = job_context(embedded_job)
    prev = compute_epoch(embedded, 0, honest_epoch(DEVICES[:3], 0, per_device=5), JobState()).state
    records = _epoch_one()
    staging = tmp / "staging"
    remote = job_context(_portable_job(embedded_job, services, staging), embedded.registry)
    done_before = _completed_jobs(services)
    return {
        "embedded_ctx": embedded,
        "remote_ctx": remote,
        "prev": prev,
        "records": records,
        "embedded": compute_epoch(embedded, 1, records, prev),
        "remote": compute_epoch(remote, 1, records, prev),
        "jobs_run": _completed_jobs(services) - done_before,
        "staging": staging,
    }


# TESTS


def test_portable_run_equals_embedded_run(runs: dict[str, Any]) -> None:
    a: EpochComputation = runs["embedded"]
    b: EpochComputation = runs["remote"]
    assert runs["jobs_run"] == 1, "the epoch did not run on the job service"
    # the scenario exercises what it means to: carry from epoch 0, every fault
    assert runs["prev"].carry > 0
    assert a.rejected == {
        "bad_signature": 1, "duplicate": 1, "implausible": 1, "malformed": 2,
        "replay": 1, "unknown_device": 1, "wrong_epoch": 1,
    }
    assert len(a.accepted) + len(a.dead) == len(runs["records"]) == b.readings_in
    assert b.accepted == a.accepted
    assert [(r.reason, r.stage, r.raw, r.detail) for r in b.dead] == [
        (r.reason, r.stage, r.raw, r.detail) for r in a.dead
    ]
    assert b.dead == a.dead
    assert b.devices == a.devices  # aggregates and contributions
    assert b.rewards == a.rewards
    assert (b.data_root, b.reward_root) == (a.data_root, a.reward_root)
    assert b.state == a.state
    assert b == a


def test_portable_run_stores_the_same_batch_and_cids(runs: dict[str, Any], tmp_path: Path) -> None:
    ctx = runs["embedded_ctx"]
    outcomes = [
        store_epoch(ctx, runs[name], runs["prev"], EmbeddedStore(tmp_path / name))
        for name in ("embedded", "remote")
    ]
    assert outcomes[0].artifacts == outcomes[1].artifacts
    assert outcomes[0].manifest.batch_cid == outcomes[1].manifest.batch_cid
    assert outcomes[0].manifest_cid == outcomes[1].manifest_cid


def test_staging_folder_is_cleaned_after_a_good_run(runs: dict[str, Any]) -> None:
    staging: Path = runs["staging"]
    assert staging.is_dir()  # the run's inputs and outputs went there
    assert list(staging.iterdir()) == []


def test_operators_reexecute_the_portable_runs_batch_embedded(
    runs: dict[str, Any], services: BeamServices, tmp_path: Path
) -> None:
    remote = runs["remote_ctx"]
    computed: EpochComputation = runs["remote"]
    batch = store_epoch(remote, computed, runs["prev"], EmbeddedStore(tmp_path)).artifacts["batch"]
    done_before = _completed_jobs(services)
    again = reexecute(remote, 1, batch, runs["prev"])
    assert again.clean
    assert (again.data_root, again.reward_root) == (computed.data_root, computed.reward_root)
    assert again.state == computed.state
    # each operator checks on its own machine, not on the submitter's runner
    assert _completed_jobs(services) == done_before


def _example_job(tmp: Path, beam: dict[str, Any] | None) -> Path:
    """The weather example, shortened to two epochs, with its work directory under ``tmp``."""
    spec = yaml.safe_load((REPO / "examples" / "weather.yaml").read_text())
    spec["work_dir"] = str(tmp / "work")
    spec["devices"]["file"] = str(tmp / "work" / "devices.json")
    spec["sources"][0]["count"] = 150
    if beam is not None:
        spec["beam"] = beam
    path = tmp / "weather.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.slow
def test_veristream_run_on_the_job_service_matches_the_embedded_run(
    services: BeamServices, tmp_path: Path
) -> None:
    beam = {
        "runner": "portable",
        "options": {
            "job_endpoint": services.job_endpoint,
            "environment_type": "EXTERNAL",
            "environment_config": services.worker_pool,
        },
    }
    outputs = []
    for name, spec in (("embedded", None), ("portable", beam)):
        (tmp_path / name).mkdir()
        job = _example_job(tmp_path / name, spec)
        done = subprocess.run(
            [sys.executable, "-m", "veristream", "run", str(job), "--json", "--no-ray", "--no-chain"],
            capture_output=True, text=True, timeout=600, cwd=REPO,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(json.loads(done.stdout))
    embedded, remote = outputs
    assert len(embedded["epochs"]) >= 2
    assert remote == embedded
    assert list((tmp_path / "portable" / "work" / "beam-staging").iterdir()) == []


# READ-BACK ACCOUNTING (no runner needed)


def _fake_run(tmp: Path, counted: int, lines: list[Any]) -> str:
    run_dir = tmp / "run"
    (run_dir / "count").mkdir(parents=True)
    (run_dir / "out").mkdir()
    (run_dir / "count" / "dead").write_text(f"{counted}\n")
    body = "".join(beam_portable.encode_line(x) + "\n" for x in lines)
    (run_dir / "out" / "dead-00000-of-00001").write_text(body)
    return str(run_dir)


def test_read_back_returns_every_counted_result(tmp_path: Path) -> None:
    items = [Rejected("malformed", "decode", b"x" * n, n) for n in range(3)]
    assert beam_portable._read_output(_fake_run(tmp_path, 3, items), "dead") == items


def test_read_back_refuses_a_missing_shard(tmp_path: Path) -> None:
    items = [Rejected("malformed", "decode", b"x", 1)]
    with pytest.raises(beam_portable.StagingError, match="produced 2 results but 1 were read back"):
        beam_portable._read_output(_fake_run(tmp_path, 2, items), "dead")


def test_read_back_refuses_a_run_it_cannot_see(tmp_path: Path) -> None:
    with pytest.raises(beam_portable.StagingError, match=r"beam\.staging"):
        beam_portable._read_output(str(tmp_path / "elsewhere"), "devices")


# VALIDATION BEFORE ANYTHING RUNS


@pytest.mark.parametrize(
    ("beam", "field", "needle"),
    [
        ({"runner": "portable"}, "beam.options", "'job_endpoint' is required for runner 'portable'"),
        ({"runner": "flink", "options": {"flink_master": "host:8081"}}, "beam.options", "Maven Central"),
        ({"runner": "spark"}, "beam.options", "'job_endpoint' is required for runner 'spark'"),
        ({"runner": "portable", "options": {"job_endpoint": "nohost"}}, "beam.options", "HOST:PORT"),
        (
            {"runner": "flink", "options": {"job_endpoint": "h:8099", "environment_type": "loopbak"}},
            "beam.options",
            "'environment_type' 'loopbak'",
        ),
        (
            {"runner": "dataflow", "options": {"project": "p", "temp_location": "gs://b/t"}},
            "beam.options",
            "'region' is required for runner 'dataflow'",
        ),
        (
            {"runner": "dataflow", "options": {"project": "p", "region": "r", "temp_location": "/tmp/t"}},
            "beam.options",
            "gs:// location",
        ),
        (
            {"runner": "dataflow", "options": {"project": "p", "region": "r", "temp_location": "gs://b/t"},
             "staging": "/shared/x"},
            "beam.staging",
            "gs://",
        ),
        (
            {"runner": "portable", "options": {"job_endpoint": "h:1"}, "staging": "relative/dir"},
            "beam.staging",
            "absolute path",
        ),
        (
            {"runner": "portable", "options": {"job_endpoint": "h:1", "runner": "DirectRunner"}},
            "beam.options",
            "set by beam.runner",
        ),
        ({"runner": "prism"}, "beam.runner", "fnapi"),
    ],
)
def test_bad_runner_config_fails_at_validation(beam: dict[str, Any], field: str, needle: str) -> None:
    with pytest.raises(JobSpecError) as caught:
        parse_job(job_dict(beam=beam), base=Path("/tmp"))
    paths = [path for path, _ in caught.value.problems]
    assert paths == [field]
    assert needle in str(caught.value)


@pytest.mark.parametrize(
    "beam",
    [
        {},
        {"runner": "portable", "options": {"job_endpoint": "embed"}},
        {"runner": "flink", "options": {"job_endpoint": "[::1]:8099", "environment_type": "DOCKER"}},
        {"runner": "spark", "options": {"job_endpoint": "spark-js:8099"}, "staging": "hdfs://nn/vs"},
        {"runner": "dataflow", "options": {"project": "p", "region": "europe-west1", "temp_location": "gs://b/t"}},
    ],
)
def test_good_runner_configs_validate(beam: dict[str, Any]) -> None:
    job = parse_job(job_dict(beam=beam), base=Path("/tmp"))
    assert job.beam.runner == beam.get("runner", "fnapi")
    if job.beam.runner != "fnapi":
        root = beam_portable.staging_root(job)
        assert root.startswith(("gs://b/t/", "hdfs://", "/tmp/"))

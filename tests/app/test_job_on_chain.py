"""The coordinator never adopts a job on trust: a job found on chain must match the job spec in
every field, and a job created under the same name by somebody else is a different job."""

from __future__ import annotations

from pathlib import Path

import pytest

from veristream.chain import open_chain
from veristream.contracts import job_on_chain
from veristream.contracts.deploy import contract
from veristream.pipeline.jobspec import JobSpec
from veristream.provers.aggregation import demo_members
from veristream.provers.epoch_result import job_id_hash
from veristream.provers.errors import InputRejected


def _spec(tmp_path: Path, **operators: object) -> JobSpec:
    return JobSpec.model_validate(
        {
            "job_id": "field-check",
            "sources": [{"type": "simulator", "count": 1}],
            "devices": {"file": str(tmp_path / "devices.json")},
            "epochs": {"length_ms": 60_000, "genesis_ms": 1_767_225_600_000},
            "validation": {"fields": {"temp": {"min": 0, "max": 100}}},
            "aggregation": {"fields": ["temp"]},
            "rewards": {"tokens_per_epoch": 1_000},
            "operators": {"count": 3, "scheme": "bn254", **operators},
            "work_dir": str(tmp_path / "work"),
        }
    )


def _members(job: JobSpec) -> list[object]:
    return list(demo_members(job.operators.scheme, job.operators.count, job.operators.key_seed, job.operators.weights))


def test_RevertWhen_TheJobOnChainDiffersFromTheSpec(tmp_path: Path) -> None:
    job = _spec(tmp_path)
    session = open_chain(job, _members(job), 1_000)  # type: ignore[arg-type]
    found = job_on_chain(session.chain, session.deployment, session.job_hash)
    assert found is not None and found.quorum == (2, 3) and found.max_submission_delay == 86_400
    session.chain.close()
    # the same work directory and job with another quorum: refused before anything is sent
    changed = _spec(tmp_path, quorum={"numerator": 3, "denominator": 4})
    with pytest.raises(InputRejected, match=r"quorum \(2, 3\), but the job spec gives \(3, 4\)"):
        open_chain(changed, _members(changed), 1_000)  # type: ignore[arg-type]
    capped = _spec(tmp_path, max_weight_bps=5_000)
    with pytest.raises(InputRejected, match="max operator weight"):
        open_chain(capped, _members(capped), 1_000)  # type: ignore[arg-type]


def test_RevertWhen_ASquattersJobOfTheSameNameIsAdopted(tmp_path: Path) -> None:
    job = _spec(tmp_path)
    session = open_chain(job, _members(job), 1_000)  # type: ignore[arg-type]
    chain, dep = session.chain, session.deployment
    try:
        # somebody else creates "field-check" on the same set, with a quorum of its own choosing
        squatter = chain.accounts[9]
        verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
        chain.transact(verifier.functions.createJob(job.job_id, (session.set_id, 3, 4, 10_000, 0, 60, 3_600)),
                       sender=squatter)
        theirs = job_on_chain(chain, dep, job_id_hash(squatter, job.job_id))
        ours = job_on_chain(chain, dep, session.job_hash)
        assert theirs is not None and ours is not None
        assert theirs.owner == squatter and ours.owner == chain.sender
        assert session.job_hash == job_id_hash(chain.sender, job.job_id) != job_id_hash(squatter, job.job_id)
    finally:
        chain.close()
    # the coordinator reopens its own job, untouched by the squatter's
    again = open_chain(job, _members(job), 1_000)  # type: ignore[arg-type]
    try:
        assert again.job_hash == session.job_hash
    finally:
        again.chain.close()


def test_an_epoch_past_its_window_is_expired_and_one_not_ended_is_waited_for(tmp_path: Path) -> None:
    job = _spec(tmp_path)
    session = open_chain(job, _members(job), 1_000)  # type: ignore[arg-type]
    try:
        chain = session.chain
        created = chain.timestamp()
        # genesis is in the past: every epoch so far ended before the job, one window from creation
        assert session.submission_closed(0) is None
        running = (created - job.epochs.clock().genesis_s) // 60 + 2  # ends in the future
        assert session.submission_closed(running) is None
        assert chain.timestamp() >= job.epochs.clock().genesis_s + (running + 1) * 60  # clock moved to its end
        chain.advance_time(job.chain.max_submission_delay_s + 120)
        closed = session.submission_closed(0)
        assert closed is not None and closed < chain.timestamp()
    finally:
        session.chain.close()

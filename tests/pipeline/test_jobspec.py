"""The job spec: the shipped examples validate; a bad spec names every bad field and nothing runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import REPO
from tests.pipeline_fleet import job_dict
from veristream.cli import app
from veristream.pipeline.jobspec import JobSpecError, load_job, parse_job
from veristream.provers.epoch_clock import EpochClock


@pytest.mark.parametrize("name", ["weather.yaml", "air-quality.yaml"])
def test_examples_validate_and_resolve_paths_beside_the_file(name: str) -> None:
    job = load_job(REPO / "examples" / name)
    assert job.work_dir.is_absolute() and job.work_dir.is_relative_to(REPO / "examples")
    assert job.devices.file is not None and job.devices.file.is_relative_to(REPO / "examples")
    assert job.sources[0].type == "simulator"
    assert set(job.aggregation.fields) <= set(job.validation.fields)


def _problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(JobSpecError) as caught:
        parse_job(data, base=Path("/tmp"))
    return dict(caught.value.problems)


def test_every_problem_is_named_by_its_field_path() -> None:
    data = job_dict()
    data["job_id"] = "Bad Id!"
    data["epochs"] = {"length_ms": 0}
    data["rewards"] = {"tokens_per_epoch": -5, "remainder": "sink"}
    data["operators"] = {"count": 4, "scheme": "ed448", "quorum": {"numerator": 3, "denominator": 2}}
    data["validation"]["fields"]["temp"] = {"min": 10, "max": 1}
    data["colour"] = "blue"
    problems = _problems(data)
    assert "job_id" in problems
    assert "epochs.length_ms" in problems
    assert "rewards.tokens_per_epoch" in problems
    assert "operators.scheme" in problems
    assert "operators.quorum" in problems
    assert "validation.fields.temp" in problems and "greater than max" in problems["validation.fields.temp"]
    assert "colour" in problems  # extra keys are errors, not silently ignored


def test_cross_field_rules() -> None:
    data = job_dict(aggregation={"fields": ["pressure"]})
    assert "declared" in " ".join(_problems(data).values())
    sink = job_dict(rewards={"tokens_per_epoch": 1, "remainder": "sink"})
    assert "sink" in _problems(sink)["rewards"]
    on_chain = job_dict(devices={"file": "d.json", "address": "0x" + "11" * 20})
    assert "devices.address" in _problems(on_chain)
    weights = job_dict(operators={"count": 2, "weights": [1, 2, 3]})
    assert "operators" in _problems(weights)
    rpc = job_dict(chain={"mode": "rpc"})
    assert "rpc_url" in _problems(rpc)["chain"]


def test_sources_are_validated_by_the_connectors_models() -> None:
    data = job_dict(sources=[{"type": "simulator", "devices_per_scheme": 0}])
    assert "devices_per_scheme" in _problems(data)["sources"]
    data = job_dict(sources=[{"path": "x.jsonl"}])
    assert "type" in _problems(data)["sources"]


def test_yaml_errors_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("job_id: [unclosed\n")
    with pytest.raises(JobSpecError, match="not valid YAML"):
        load_job(bad)
    with pytest.raises(JobSpecError, match="cannot read"):
        load_job(tmp_path / "missing.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(JobSpecError, match="mapping"):
        load_job(scalar)


def test_run_refuses_a_bad_spec_before_starting_anything(tmp_path: Path) -> None:
    data = job_dict()
    data["epochs"] = {"length_ms": -1}
    data["work_dir"] = str(tmp_path / "work")
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["run", str(path), "--no-ray", "--no-chain"])
    assert result.exit_code == 2
    assert "epochs.length_ms" in result.output
    assert not (tmp_path / "work").exists()


def test_epoch_clock() -> None:
    clock = EpochClock(length_ms=1000, allowed_lateness_ms=200, genesis_ms=5000)
    assert clock.epoch_of(5000) == 0 and clock.epoch_of(5999) == 0 and clock.epoch_of(6000) == 1
    assert clock.start_ms(2) == 7000 and clock.end_ms(2) == 8000 and clock.closes_at_ms(2) == 8200
    assert not clock.is_closed(2, 8199) and clock.is_closed(2, 8200)
    assert clock.contains(1, 6500) and not clock.contains(1, 7000)
    with pytest.raises(ValueError):
        clock.epoch_of(4999)
    with pytest.raises(ValueError):
        EpochClock(length_ms=0)


def test_RevertWhen_APrivateKeyIsWrittenIntoTheJobFile() -> None:
    key = "0x" + "ab" * 32
    data = job_dict()
    data["chain"] = {"mode": "rpc", "rpc_url": "http://127.0.0.1:8545", "chain_id": 11155111, "signer": key}
    problems = _problems(data)
    assert "must not be written into a job file" in problems["chain.signer"]
    assert key[2:] not in repr(problems)
    data["chain"] = {"mode": "rpc", "rpc_url": "http://127.0.0.1:8545", "chain_id": 11155111}
    assert "not a development chain: set 'signer'" in _problems(data)["chain"]
    data["chain"] = {"mode": "embedded", "signer": "env:KEY"}
    assert "needs none" in _problems(data)["chain"]
    data["chain"] = {"mode": "rpc", "rpc_url": "http://127.0.0.1:8545", "chain_id": 11155111, "signer": "keystore:k.json",
                     "confirmations": 2, "max_fee_gwei": 40}
    job = parse_job(data, base=Path("/tmp"))
    assert (job.chain.signer, job.chain.confirmations, job.chain.max_fee_gwei) == ("keystore:k.json", 2, 40)

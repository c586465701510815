"""A job paying its rewards in an existing ERC-20 (`rewards.token`), funded as `rewards.funding`
says, with every amount shown in the token's units.

The embedded chain gets a 6-decimal OpenZeppelin ERC-20 (`TestToken`) deployed by the test
before `veristream run` (a subprocess, as a user runs it) deploys VeriStream's contracts
beside it; the job is the weather example, smaller.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from veristream.contracts import connect, load_deployment, pool_balance, pool_token, token_balance
from veristream.contracts.deploy import DEPLOYMENT_FILE, contract, deploy
from veristream.contracts.token import format_units, read_token
from veristream.pipeline.jobspec import JobSpecError, parse_job
from veristream.provers.epoch_result import job_id_hash

VERISTREAM = [sys.executable, "-m", "veristream"]
_ENV = {**os.environ, "RAY_DISABLE_IMPORT_WARNING": "1", "COLUMNS": "200"}
PER_EPOCH = 500_000_000  # 500 TUSD
SIGNER_FUNDS = 10**6 * 10**6  # a million TUSD


def _job(tmp_path: Path, **rewards: Any) -> Path:
    spec = yaml.safe_load((REPO / "examples" / "weather.yaml").read_text())
    spec["job_id"] = "weather-usd"
    spec["sources"][0].update(count=150, devices_per_scheme=2)
    spec["devices"]["file"] = "work/devices.json"
    spec["rewards"] = {"tokens_per_epoch": PER_EPOCH, "max_per_device": 100_000_000, **rewards}
    spec["operators"]["count"] = 3
    spec["work_dir"] = "work"
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _deploy_test_token(tmp_path: Path) -> str:
    """A 6-decimal TUSD on the job's embedded chain, a million of it held by the signer."""
    chain = connect(tmp_path / "work" / "chain")
    try:
        token = deploy(chain, "TestToken", "Test USD", "TUSD", 6)
        chain.transact(contract(chain, "TestToken", token).functions.mint(chain.sender, SIGNER_FUNDS))
        chain.save()
    finally:
        chain.close()
    return token


def _veristream(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*VERISTREAM, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=_ENV)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    return proc


def _flat(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_RevertWhen_MintFundsAForeignToken() -> None:
    spec = yaml.safe_load((REPO / "examples" / "weather.yaml").read_text())
    spec["rewards"].update(token="0x" + "11" * 20, funding="mint")
    with pytest.raises(JobSpecError) as raised:
        parse_job(spec)
    assert [path for path, _ in raised.value.problems] == ["rewards.funding"]
    # without 'funding', a foreign token is funded from the signer's balance
    del spec["rewards"]["funding"]
    assert parse_job(spec).rewards.funding == "transfer"


def test_format_units_is_exact() -> None:
    assert format_units(518_711_459, 6) == "518.711459"
    assert format_units(500_000_000, 6) == "500"
    assert format_units(1, 18) == "0.000000000000000001"
    assert format_units(2**256 - 1, 18).startswith("115792089237316195423570985008687907853269984665640564039457.")


def test_a_job_pays_in_a_6_decimal_token_funded_by_transfer(tmp_path: Path) -> None:
    token = _deploy_test_token(tmp_path)
    job = _job(tmp_path, token=token, funding="transfer")

    proc = _veristream("run", str(job), "--json", "--no-ray", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert "funding" not in summary  # the pool covers what is owed
    [claimed] = summary["claims"]
    assert claimed["amount"] > 0 and claimed["tx_hash"] is not None
    assert claimed["amount_display"] == f"{format_units(claimed['amount'], 6)} TUSD"

    chain = connect(tmp_path / "work" / "chain")
    try:
        dep = load_deployment(chain, tmp_path / "work" / DEPLOYMENT_FILE)
        job_hash = job_id_hash(chain.sender, "weather-usd")
        assert read_token(chain, token).decimals == 6
        assert pool_token(chain, dep, job_hash) == token
        # the claim arrived in TUSD; the pool was funded from the signer's TUSD, once per epoch
        assert token_balance(chain, dep, claimed["account"], token) == claimed["amount"]
        epochs = len(summary["epochs"])
        signer_after = token_balance(chain, dep, chain.sender, token)
        assert signer_after == SIGNER_FUNDS - PER_EPOCH * epochs
        assert pool_balance(chain, dep, job_hash) == PER_EPOCH * epochs - claimed["amount"]
    finally:
        chain.close()

    # a restart reads the pool first: it owes nothing more, so nothing more is sent
    again = _veristream("run", str(job), "--no-ray", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    chain = connect(tmp_path / "work" / "chain")
    try:
        assert token_balance(chain, dep, chain.sender, token) == signer_after
    finally:
        chain.close()


def test_a_pool_funded_by_somebody_else_reports_its_shortfall(tmp_path: Path) -> None:
    token = _deploy_test_token(tmp_path)
    job = _job(tmp_path, token=token, funding="none")

    # nobody funded the pool: the run says so, and does not send a claim that would fail
    proc = _veristream("run", str(job), "--json", "--no-ray", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    funding = summary["funding"]
    assert funding["balance"] == 0 and funding["short"] == funding["owed"] > 0
    assert funding["short_display"] == f"{format_units(funding['short'], 6)} TUSD"
    [refused] = summary["claims"]
    assert refused["tx_hash"] is None and refused["amount"] == 0
    assert refused["short"] == refused["due"] > 0 and refused["pool"] == 0

    # the claim command says the same in words, and fails
    words = _veristream("claim", str(job), cwd=tmp_path)
    assert words.returncode == 1
    assert f"would fail: the reward pool holds 0 TUSD, {refused['short_display']} short" in _flat(words.stdout)

    # somebody else funds the pool; now the claim is paid, shown in TUSD
    chain = connect(tmp_path / "work" / "chain")
    try:
        dep = load_deployment(chain, tmp_path / "work" / DEPLOYMENT_FILE)
        job_hash = job_id_hash(chain.sender, "weather-usd")
        sponsor = chain.accounts[7]
        erc20 = contract(chain, "TestToken", token)
        chain.transact(erc20.functions.mint(sponsor, funding["owed"]), sender=sponsor)
        chain.transact(erc20.functions.approve(dep.reward_distributor, funding["owed"]), sender=sponsor)
        distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
        chain.transact(distributor.functions.fund(job_hash, funding["owed"]), sender=sponsor)
        chain.save()
    finally:
        chain.close()
    paid = _veristream("claim", str(job), cwd=tmp_path)
    assert paid.returncode == 0, paid.stderr[-3000:]
    assert f"claimed {refused['due_display']} for {refused['account']}" in _flat(paid.stdout)

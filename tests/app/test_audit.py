"""`veristream verify` recomputes an epoch from the chain and IPFS alone, in a later process:
with the work directory's checkpoints, epoch history and ingest log moved away it still
verifies, and a tampered block, another epoch's batch or an unverified epoch each fail with a reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

VERISTREAM = [sys.executable, "-m", "veristream"]


def _run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_DISABLE_IMPORT_WARNING": "1"}
    return subprocess.run(
        [*VERISTREAM, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
    )


def _verify(job: Path, epoch: int, *extra: str) -> tuple[int, dict[str, Any]]:
    done = _run("verify", str(job), str(epoch), "--json", *extra)
    assert done.stdout.strip(), done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout)


@pytest.mark.slow
def test_verify_from_chain_and_ipfs_alone(tmp_path: Path) -> None:
    from veristream.connectors.ipfs import EmbeddedStore
    from veristream.connectors.ipfs.cid import parse_cid

    # air-quality: bn254 verifies fastest on the embedded EVM
    spec = yaml.safe_load((REPO / "examples" / "air-quality.yaml").read_text())
    work = tmp_path / "work"
    spec["work_dir"] = str(work)
    spec["devices"]["file"] = str(work / "devices.json")
    job = tmp_path / "air-quality.yaml"
    job.write_text(yaml.safe_dump(spec))
    done = _run("run", str(job), "--json", "--no-ray")
    assert done.returncode == 0, done.stderr[-3000:]
    verified = [e for e in json.loads(done.stdout)["epochs"] if e["verified"]]
    assert len(verified) >= 2

    # only the chain (state + addresses), the IPFS store and the device registry remain
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("checkpoint.json", "epochs", "ingest"):
        shutil.move(str(work / name), str(moved / name))
    assert not (work / "epochs").exists() and not (work / "checkpoint.json").exists()

    # a later epoch: every earlier one is replayed from its batch and anchored on chain
    last = verified[-1]
    code, report = _verify(job, last["epoch"])
    assert code == 0, report
    assert report["ok"] is True and report["reason"] is None
    checks = {c["field"]: c for c in report["checks"]}
    assert set(checks) == {
        "data root", "aggregates root", "reward root", "batch CID", "manifest CID hash", "tree dumps"
    }
    assert checks["data root"]["chain"] == last["data_root"] == checks["data root"]["recomputed"]
    assert checks["aggregates root"]["chain"] == last["aggregates_root"] != "0x" + "00" * 32
    assert checks["reward root"]["chain"] == last["reward_root"]
    assert checks["batch CID"]["chain"] == last["batch_cid"]
    assert report["tx_hash"] == last["tx_hash"]

    # the rich report names each field
    human = _run("verify", str(job), str(last["epoch"]))
    assert human.returncode == 0 and "reward root" in human.stdout and "verified" in human.stdout

    # another epoch's batch presented for this epoch: roots and CID differ from the chain's
    other = verified[0]
    code, report = _verify(job, last["epoch"], "--batch-cid", other["batch_cid"])
    assert code == 1 and report["ok"] is False
    assert "batch CID" in report["reason"] and "data root" in report["reason"]

    # an epoch the chain never verified
    code, report = _verify(job, 99999)
    assert code == 3 and "not verified on chain" in report["reason"]  # nothing to compare: not found

    # one flipped byte in the audited batch's block on disk
    store = EmbeddedStore(work / "ipfs")
    block = store._block_path(parse_cid(last["batch_cid"]).binary)
    data = bytearray(block.read_bytes())
    data[len(data) // 2] ^= 0xFF
    block.chmod(0o644)
    block.write_bytes(bytes(data))
    code, report = _verify(job, last["epoch"])
    assert code == 1 and report["ok"] is False
    assert "cannot fetch batch" in report["reason"], report


@pytest.mark.services
def test_the_manifest_chain_is_followed_by_cid_through_an_ipfs_node() -> None:
    from tests.ipfs_node import jsipfs_node
    from veristream.audit import manifest_history
    from veristream.connectors.ipfs import RpcStore
    from veristream.pipeline.manifest import Manifest, RewardSummary, TreeDumps

    def manifest(epoch: int, prev: str | None, job_id: str = "job-x") -> Manifest:
        rewards, trees = RewardSummary(1, 1, 0, 0, 0, 1), TreeDumps(None, None, None)
        return Manifest(
            job_id, epoch, 0, 1, "bafkreib", "d", "a", "s", prev, "0x00", "0x00", "0x00", 1, 1, {}, rewards, trees
        )

    with jsipfs_node() as url, RpcStore(url) as store:
        first = store.put(manifest(1, None).to_json())
        second = store.put(manifest(4, first).to_json())
        assert [(cid, m.epoch) for cid, m in manifest_history(store, "job-x", second)] == [(first, 1), (second, 4)]
        with pytest.raises(ValueError, match="not 'another-job'"):
            manifest_history(store, "another-job", second)
        backwards = store.put(manifest(9, second).to_json())
        loop = store.put(manifest(2, backwards).to_json())
        with pytest.raises(ValueError, match="back to 9"):
            manifest_history(store, "job-x", loop)
        missing = manifest(5, "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
        with pytest.raises(ValueError, match=r"linked from epoch 5\) is not in the store"):
            manifest_history(store, "job-x", store.put(missing.to_json()))

"""The committee of a job on an existing chain comes from the OperatorRegistry: registered keys,
weights and slots, each slot matched by its key to a served operator actor.

The services test is the operator's whole flow on real parts: anvil, contracts deployed and an
operator set created with `veristream chain`, four random keys from `operator keygen`
registered (in an order unlike their actor names, with unequal weights) by `operator
register`, served on a `ray start --head` cluster by `operator serve`; `veristream run`
verifies the epochs on chain; a served key nobody registered is refused by name; with one
operator stopped the next epochs still verify, with a signer bitmap without its slot.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO, free_port
from tests.ray_head import RAY_ENV
from tests.ray_head import ray_head as start_ray_head
from veristream.committee import InProcessCommittee, RayCommittee
from veristream.contracts import SetOperator
from veristream.pipeline.jobspec import JobSpecError, parse_job
from veristream.provers.aggregation import OperatorKey, demo_members, registry_members
from veristream.provers.bls import bls12381, bn254

VERISTREAM = [sys.executable, "-m", "veristream"]
ENV = {**os.environ, **RAY_ENV}
GENESIS_MS = 1_767_225_600_000  # examples/air-quality.yaml and the simulator's default start


def _set(scheme: str, secrets: dict[int, int], weights: dict[int, int] | None = None) -> list[SetOperator]:
    """A set as the registry reports it: slot -> the G1 key it stores for that secret."""
    return [
        SetOperator(slot, f"0x{slot + 1:040x}", (weights or {}).get(slot, 1), OperatorKey.from_secret(scheme, sk).pubkey)
        for slot, sk in secrets.items()
    ]


def _served_key(scheme: str, secret: int) -> bytes:
    return bn254.sk_to_pk(secret) if scheme == "bn254" else bls12381.sk_to_pk(secret)


# MATCHING (pure)


@pytest.mark.parametrize("scheme", ["bls12381", "bn254"])
def test_served_keys_are_matched_to_registered_slots(scheme: str) -> None:
    # slots with a gap (a removed operator's slot is free), registered out of name order
    secrets = {0: 1001, 2: 1002, 5: 1003}
    registered = _set(scheme, secrets, {0: 3, 2: 1, 5: 2})
    served = {"zeta": _served_key(scheme, 1001), "alpha": _served_key(scheme, 1003)}
    members = registry_members(scheme, registered, served, set_id=7)
    assert [(m.slot, m.weight, m.actor) for m in members] == [(0, 3, "zeta"), (2, 1, None), (5, 2, "alpha")]
    assert members[0].public_key == served["zeta"] and members[2].public_key == served["alpha"]
    assert members[1].public_key == b"" and all(m.secret_key == 0 for m in members)


@pytest.mark.parametrize("scheme", ["bls12381", "bn254"])
def test_a_served_key_that_is_not_registered_is_refused_by_name(scheme: str) -> None:
    registered = _set(scheme, {0: 2001, 1: 2002})
    served = {"honest": _served_key(scheme, 2001), "intruder": _served_key(scheme, 2999)}
    with pytest.raises(ValueError, match=r"'intruder' serves key 0x.*not registered in operator set 4"):
        registry_members(scheme, registered, served, set_id=4)


def test_two_actors_serving_one_slot_are_refused() -> None:
    registered = _set("bls12381", {0: 3001})
    key = _served_key("bls12381", 3001)
    with pytest.raises(ValueError, match="both serve the key of slot 0"):
        registry_members("bls12381", registered, {"a": key, "b": key})


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="no operators"):
        registry_members("bls12381", [], {})
    with pytest.raises(ValueError, match="unknown BLS scheme"):
        registry_members("ed25519", _set("bls12381", {0: 5}), {})
    # garbage from an actor is not a registered key (not a crash inside the curve code)
    with pytest.raises(ValueError, match="not registered"):
        registry_members("bls12381", _set("bls12381", {0: 5}), {"x": b"\x01" * 48})
    with pytest.raises(ValueError, match="not registered"):
        registry_members("bn254", _set("bn254", {0: 5}), {"x": b"\x01" * 128})


@settings(max_examples=8, deadline=None)
@given(st.integers(1, bn254.R - 1), st.integers(1, bn254.R - 1))
def test_bn254_keys_match_exactly_when_they_share_a_secret(a: int, b: int) -> None:
    from py_ecc.optimized_bn128 import G1, G2, multiply, normalize

    assert bn254.keys_match(bn254.sk_to_pk_g1(a), bn254.sk_to_pk(a))
    assert bn254.keys_match(bn254.sk_to_pk_g1(a), bn254.sk_to_pk(b)) == (a == b)
    # cross-check the encodings against py-ecc's own scalar multiplications
    x, y = normalize(multiply(G1, a))
    assert bn254.sk_to_pk_g1(a) == int(x).to_bytes(32, "big") + int(y).to_bytes(32, "big")
    x2, _ = normalize(multiply(G2, a))
    assert bn254.sk_to_pk(a)[:64] == int(x2.coeffs[1]).to_bytes(32, "big") + int(x2.coeffs[0]).to_bytes(32, "big")


# JOB SPEC


def _spec(**changes: Any) -> dict[str, Any]:
    spec = yaml.safe_load((REPO / "examples" / "air-quality.yaml").read_text())
    spec.update(changes)
    return spec


def test_job_spec_names_the_registry_fields() -> None:
    rpc = {"mode": "rpc", "rpc_url": "http://127.0.0.1:8545", "deployment": "deployment.json"}
    job = parse_job(_spec(operators={"scheme": "bn254", "set_id": 3}, chain=rpc), base=Path("/srv/job"))
    assert job.operators.set_id == 3 and job.chain.deployment == Path("/srv/job/deployment.json")
    # five remote names with the default count of 4: the set, not count, says how many there are
    assert parse_job(_spec(operators={"set_id": 3, "remote": list("abcde")}, chain=rpc)).operators.remote

    def problems(**changes: Any) -> str:
        with pytest.raises(JobSpecError) as error:
            parse_job(_spec(**changes))
        return str(error.value)

    assert "operators.set_id reads an existing OperatorRegistry" in problems(operators={"set_id": 3})
    assert "operators.set_id" in problems(operators={"set_id": 0}, chain=rpc)
    assert "weights come from the OperatorRegistry" in problems(operators={"set_id": 3, "weights": [1] * 4}, chain=rpc)
    assert "distinct" in problems(operators={"set_id": 3, "remote": ["a", "a"]}, chain=rpc)
    assert "chain: 'deployment' names contracts on a JSON-RPC chain" in problems(
        chain={"mode": "embedded", "deployment": "d.json"}
    )


def test_a_registry_committee_does_not_run_in_process() -> None:
    rpc = {"mode": "rpc", "rpc_url": "http://127.0.0.1:8545", "deployment": "deployment.json"}
    job = parse_job(_spec(operators={"scheme": "bn254", "set_id": 1}, chain=rpc))
    with pytest.raises(ValueError, match="run the committee on Ray"):
        InProcessCommittee(job, [])
    # demo keys never stand in for the on-chain set (checked before Ray starts)
    with pytest.raises(ValueError, match="the committee is the on-chain set"):
        RayCommittee(job, demo_members("bn254", 2))


# THE WHOLE FLOW ON ANVIL AND A RAY HEAD


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VERISTREAM, *args], capture_output=True, text=True, timeout=timeout, env=ENV, cwd=REPO)


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout


class Served:
    """`veristream operator serve` processes, by actor name; each stopped like Ctrl-C."""

    def __init__(self, job: Path, address: str, namespace: str) -> None:
        self.job, self.address, self.namespace = job, address, namespace
        self.processes: dict[str, subprocess.Popen[str]] = {}

    def start(self, names_and_keys: dict[str, Path]) -> dict[str, str]:
        """Start them all at once; wait for each announcement; name -> announced public key."""
        for name, key in names_and_keys.items():
            self.processes[name] = subprocess.Popen(
                [
                    *VERISTREAM, "operator", "serve", str(self.job), "--ray-address", self.address,
                    "--key", str(key), "--name", name, "--namespace", self.namespace,
                ],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=REPO,
                start_new_session=True,
            )
        announced = {}
        for name in names_and_keys:
            process = self.processes[name]
            assert process.stdout is not None and process.stderr is not None
            line = process.stdout.readline()  # printed once the actor answers
            assert line, f"{name}: " + process.stderr.read()[-3000:]
            announced[name] = json.loads(line)["public_key"]
        return announced

    def stop(self, name: str) -> None:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """A throwaway Ray head on loopback (tests/ray_head.py); its GCS address."""
    with start_ray_head() as head:
        yield head.address


def _split_readings(recorded: Path, first: Path, later: Path) -> None:
    """Epochs 0-1 for the first run; epochs 4+ appended later (epochs 2-3 left out, so the later
    readings land in epochs the first run's watermark has not closed)."""
    early, late = [], []
    for line in recorded.read_text().splitlines():
        ts = json.loads(line)["timestamp_ms"]
        if ts < GENESIS_MS + 2000:
            early.append(line)
        elif ts >= GENESIS_MS + 4000:
            late.append(line)
    assert early and late
    first.write_text("\n".join(early) + "\n")
    later.write_text("\n".join(late) + "\n")


@pytest.mark.services
@pytest.mark.slow
def test_registered_operators_serve_and_verify_epochs_on_anvil(tmp_path: Path, ray_head: str) -> None:
    from veristream.contracts.anvil import anvil

    namespace = "vs-registry"
    recorded, feed, later = tmp_path / "recorded.jsonl", tmp_path / "feed.jsonl", tmp_path / "later.jsonl"
    _ok(
        _cli(
            "simulate", "--seed", "5", "--profile", "air-quality", "--schemes", "secp256k1,p256",
            "--devices", "2", "--count", "600", "--rate", "100", "--to", "file",
            "--output", str(recorded), "--registry", str(tmp_path / "devices.json"),
        )
    )
    _split_readings(recorded, feed, later)

    with anvil(free_port()) as node:
        # THE PROJECT: contracts and an empty operator set on an existing chain
        deployment = tmp_path / "deployment.json"
        deployment.write_text(_ok(_cli("chain", "deploy", node.ipc, "--json", "--dev")))
        set_id = int(_ok(_cli("chain", "operator-set", node.ipc, "--deployment", str(deployment), "--scheme", "bn254")))

        spec = _spec(
            job_id="air-quality-registry",
            sources=[{"type": "file", "path": str(feed)}],
            devices={"file": str(tmp_path / "devices.json"), "domain": {"name": "VeriStream", "version": "1", "chain_id": 31337}},
            operators={"scheme": "bn254", "set_id": set_id, "namespace": namespace,
                       "remote": ["op-a", "op-b", "op-c", "op-d"]},
            chain={"mode": "rpc", "rpc_url": node.ipc, "deployment": str(deployment)},
            ray={"address": ray_head},
            work_dir=str(tmp_path / "work"),
        )
        job = tmp_path / "job.yaml"
        job.write_text(yaml.safe_dump(spec))

        # THE OPERATORS: random keys; registered in the order d, b, a, c (slot 0 = op-d, ...)
        keys = {name: tmp_path / f"{name}.key" for name in ("op-a", "op-b", "op-c", "op-d", "intruder")}
        for key in keys.values():
            _ok(_cli("operator", "keygen", "--scheme", "bn254", "--out", str(key)))
        weights = {"op-d": 2, "op-b": 1, "op-a": 1, "op-c": 1}
        for n, name in enumerate(weights):
            registered = json.loads(
                _ok(_cli("operator", "register", str(job), "--key", str(keys[name]),
                         "--account", f"0x{0xA0 + n:040x}", "--weight", str(weights[name])))
            )
            assert registered["set_id"] == set_id
        slot = {name: n for n, name in enumerate(weights)}

        served = Served(job, ray_head, namespace)
        try:
            announced = served.start({name: keys[name] for name in ("op-a", "op-b", "op-c", "op-d")})
            for name, public_key in announced.items():
                assert public_key == json.loads(keys[name].read_text())["public_key"]

            # FIRST RUN: every registered operator serves
            summary = json.loads(_ok(_cli("run", str(job), "--json")))
            first = [e for e in summary["epochs"] if e["data_root"] != "0x" + "00" * 32]
            assert first and all(e["verified"] and e["gas"] > 0 for e in first), summary["epochs"]
            assert summary["refusals"] == {} and summary["claims"][0]["amount"] > 0
            assert _on_chain(node.ipc, deployment, first[0]["epoch"]) == (0b1111, 5, 5)
            # the seed committee is not involved: the chain knows only the served random keys
            assert not (tmp_path / "work" / "chain").exists()

            # AN INTRUDER: served in the namespace with a key nobody registered
            served.start({"intruder": keys["intruder"]})
            spec["operators"]["remote"] = []  # every actor of the namespace
            job.write_text(yaml.safe_dump(spec))
            refused = _cli("run", str(job), "--json")
            assert refused.returncode == 1
            said = " ".join(refused.stderr.split())  # rich wraps long lines
            assert "'intruder' serves key" in said and "not registered in operator set" in said, said[-2000:]
            served.stop("intruder")

            # ONE OPERATOR DOWN: op-a stops; later epochs still reach the quorum (4 of 5 weight)
            served.stop("op-a")
            with feed.open("a") as handle:
                handle.write(later.read_text())
            summary = json.loads(_ok(_cli("run", str(job), "--json")))
            verified = {e["epoch"] for e in summary["epochs"] if e["verified"]}
            new = [e for e in summary["epochs"] if e["epoch"] >= 4 and e["data_root"] != "0x" + "00" * 32]
            assert new and all(e["epoch"] in verified for e in new) and {e["epoch"] for e in first} <= verified
            everyone_but_a = 0b1111 & ~(1 << slot["op-a"])
            assert _on_chain(node.ipc, deployment, new[0]["epoch"]) == (everyone_but_a, 4, 5)
        finally:
            served.close()


def _on_chain(url: str, deployment: Path, epoch: int) -> tuple[int | None, int | None, int | None]:
    """(signer bitmap, signed weight, total weight) of a verified epoch, from the EpochVerified event."""
    from veristream.contracts import connect, epoch_info, load_deployment
    from veristream.provers.epoch_result import job_id_hash

    chain = connect(url)
    try:
        info = epoch_info(chain, load_deployment(chain, deployment), job_id_hash(chain.sender, "air-quality-registry"), epoch)
    finally:
        chain.close()
    assert info is not None, f"epoch {epoch} is not verified"
    return info.signer_bitmap, info.signed_weight, info.total_weight

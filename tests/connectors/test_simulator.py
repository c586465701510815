"""The fleet simulator: deterministic, real keys, and ground truth that independent checks confirm.

Each fault's ground truth is re-derived here from first principles (signature
verification with the registry keys, the registry's revocations, send times,
the profiles' plausible ranges, earlier accepted readings), and every fault is
pushed through a real connector to show it is counted and nothing is lost.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import REPO, free_port
from veristream.cli import app
from veristream.connectors.envelope import TOO_LARGE, EnvelopeError, parse_reading
from veristream.connectors.ingest_log import GroupCommitter, IngestLog
from veristream.connectors.sim_profiles import PROFILES
from veristream.connectors.simulator import Simulation, simulate
from veristream.connectors.sources.config import FAULTS, HttpSourceConfig, SimulatorSourceConfig
from veristream.connectors.sources.http import UvicornThread, create_app, post_messages
from veristream.provers.reasons import Reason
from veristream.provers.signing import device_id_from_public_key, verify_many

ALL = SimulatorSourceConfig(
    seed=11, count=400, faults=list(FAULTS), fault_rate=0.02, devices_per_scheme=4
)


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(ALL)


def test_same_seed_same_bytes_other_seed_other_keys() -> None:
    config = SimulatorSourceConfig(seed=3, count=80, faults=list(FAULTS))
    a, b = simulate(config), simulate(config)
    assert a.messages == b.messages
    assert a.registry() == b.registry()
    c = simulate(config.model_copy(update={"seed": 4}))
    assert {d["device_id"] for d in c.registry()["devices"]}.isdisjoint(
        {d["device_id"] for d in a.registry()["devices"]}
    )


def test_registry_holds_real_keys_of_each_scheme(sim: Simulation) -> None:
    devices = sim.registry()["devices"]
    by_scheme = Counter(d["scheme"] for d in devices)
    # 4 per scheme, plus the device revoked half-way and the one with a fast clock
    # (the unknown device is not registered).
    assert sorted(by_scheme.values()) == [4, 5, 5]
    for entry in devices:
        key = bytes.fromhex(entry["public_key"][2:])
        assert device_id_from_public_key(entry["scheme"], key) == entry["device_id"]
        assert entry["owner"].startswith("0x") and len(entry["owner"]) == 42
    revoked = [d for d in devices if d["status"] == "revoked"]
    assert len(revoked) == 1 and isinstance(revoked[0]["revoked_at_ms"], int)


def test_every_fault_is_present_with_a_known_reason(sim: Simulation) -> None:
    kinds = Counter(m.kind for m in sim.messages)
    per_fault = round(ALL.fault_rate * ALL.count)
    for fault in FAULTS:
        assert kinds[fault] == per_fault, fault
    for m in sim.messages:
        assert (m.expected == "accept") == (m.reason is None)
        assert m.reason is None or m.reason in set(Reason)
    summary = sim.summary()
    assert summary["messages"] == ALL.count + per_fault * (len(FAULTS) - 1)
    assert summary["accepted"] == ALL.count


def _plausible(profile_name: str, values: dict[str, int]) -> bool:
    ranges = PROFILES[profile_name].plausible()
    return all(k in ranges and ranges[k][0] <= v <= ranges[k][1] for k, v in values.items())


def test_ground_truth_matches_independent_checks(sim: Simulation) -> None:
    registry = {d["device_id"]: d for d in sim.registry()["devices"]}
    keys = {i: bytes.fromhex(d["public_key"][2:]) for i, d in registry.items()}
    every_key = {d.device_id: d.public_key for d in sim.devices}
    accepted: dict[str, list[tuple[int, int]]] = {}
    accepted_raw: set[bytes] = set()
    for m in sorted(sim.messages, key=lambda m: (m.timestamp_ms or 0, m.index)):
        if m.stage == "ingest" and m.reason != "clock_skew":  # a well-formed envelope, stamped ahead
            with pytest.raises(EnvelopeError) as caught:
                parse_reading(m.raw)
            assert (caught.value.reason == TOO_LARGE) == (m.reason == "oversized")
            continue
        reading = parse_reading(m.raw)
        verdict = verify_many([reading], sim.domain, keys)[0]
        # Signed by the device's own key, whether or not it is registered.
        self_signed = verify_many([reading], sim.domain, every_key)[0].ok
        entry = registry.get(reading.device_id)
        if m.reason == "bad_signature":
            assert verdict.reason == "bad_signature"
            continue
        assert self_signed, m.kind
        if m.reason == "unknown_device":
            assert entry is None and verdict.reason == "unknown_device"
            continue
        assert entry is not None and verdict.ok
        revoked_at = entry["revoked_at_ms"]
        is_revoked = revoked_at is not None and reading.timestamp_ms >= revoked_at
        assert is_revoked == (m.reason == "revoked"), m.kind
        if is_revoked:
            continue
        skew = reading.timestamp_ms - m.send_ms
        assert (skew >= ALL.clock_skew_ms) == (m.reason == "clock_skew"), m.kind
        if m.reason == "clock_skew":
            continue
        assert skew <= 0  # good readings are never stamped after they are sent
        history = accepted.setdefault(reading.device_id, [])
        if m.reason == "duplicate":
            assert m.raw in accepted_raw
            continue
        if m.reason == "replay":
            assert any(seq == reading.seq and ts < reading.timestamp_ms for seq, ts in history)
            continue
        assert m.raw not in accepted_raw
        assert all(seq < reading.seq for seq, _ in history), "sequence numbers must grow"
        values = json.loads(reading.payload)
        assert _plausible(entry["profile"], values) == (m.reason != "implausible"), m.kind
        if m.reason == "implausible":
            continue
        assert m.expected == "accept"
        history.append((reading.seq, reading.timestamp_ms))
        accepted_raw.add(m.raw)
    assert len(accepted_raw) == ALL.count


def test_out_of_order_delivery_is_bounded(sim: Simulation) -> None:
    delayed = [m for m in sim.messages if m.kind == "out_of_order"]
    assert delayed
    slot_ms = 1000 / ALL.rate
    for m in delayed:
        assert m.timestamp_ms is not None
        lag = m.send_ms - m.timestamp_ms
        assert 0 < lag <= 4 * slot_ms + 1
    order = [m.timestamp_ms for m in sim.messages if m.kind in ("ok", "out_of_order")]
    assert order != sorted(order)


def test_every_fault_through_http_is_counted_and_nothing_is_lost(tmp_path: Path) -> None:
    config = ALL.model_copy(update={"count": 150})
    messages = list(simulate(config, start_ms=time.time_ns() // 1_000_000).messages)
    assert {m.kind for m in messages} == {"ok", *FAULTS}
    # as a job opens it: readings stamped further ahead than the allowed skew are refused here
    log = IngestLog(tmp_path, 10_000, 30_000, max_clock_skew_ms=60_000)
    committer = GroupCommitter(log)
    server = UvicornThread(create_app(committer, HttpSourceConfig()), port=free_port()).start()
    try:
        singles = post_messages(server.url, [m.raw for m in messages], batch_size=1)
    finally:
        server.stop()
        committer.close()
    ingest_truth = Counter(m.reason for m in messages if m.stage == "ingest")
    # The sender heard a clear error for each ingest-time fault: 400 malformed JSON, 413 oversized,
    # 422 a timestamp too far ahead.
    assert singles["statuses"] == {
        202: len(messages) - sum(ingest_truth.values()),
        400: ingest_truth["malformed"],
        413: ingest_truth["oversized"],
        422: ingest_truth["clock_skew"],
    }
    counts = log.counts()
    assert counts["arrived"] == len(messages)
    assert counts["rejected_by_reason"] == dict(ingest_truth)
    log.advance_clock(time.time_ns() // 1_000_000 + 10**9)
    logged = sorted(raw for e in log.closed_epochs() for raw in log.read_epoch(e))
    dead = sorted(d.raw for d in log.dead_letters.read())
    # Pipeline-time faults pass ingest untouched; ingest-time ones are dead letters, byte for byte.
    assert logged == sorted(m.raw for m in messages if m.stage != "ingest")
    assert dead == sorted(m.raw for m in messages if m.stage == "ingest")


def test_cli_writes_messages_registry_and_truth_deterministically(tmp_path: Path) -> None:
    runner = CliRunner()
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / run
        result = runner.invoke(
            app,
            [
                "simulate",
                "--seed", "9", "--count", "60", "--all-faults", "--devices", "2",
                "--output", str(out / "readings.jsonl"),
                "--registry", str(out / "registry.json"),
                "--truth", str(out / "truth.jsonl"),
            ],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["delivery"]["messages"] == report["summary"]["messages"]
        outputs.append(
            [
                (out / name).read_bytes()
                for name in ("readings.jsonl", "registry.json", "truth.jsonl")
            ]
        )
    assert outputs[0] == outputs[1]
    truth = [json.loads(line) for line in outputs[0][2].splitlines()]
    lines = outputs[0][0].splitlines()
    assert [t["raw"].encode() for t in truth] == lines
    bad = runner.invoke(app, ["simulate", "--faults", "gremlins", "--output", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "unknown faults" in bad.output


@pytest.mark.slow
def test_ground_truth_equals_the_pipelines_verdicts(tmp_path: Path) -> None:
    """Cross-check with the pipeline's own epoch computation: same accepted bytes, same reasons."""
    from veristream.pipeline.compute import compute_epoch, job_context
    from veristream.pipeline.jobspec import load_job
    from veristream.pipeline.registry import parse_registry
    from veristream.pipeline.state import JobState

    job = load_job(REPO / "examples" / "weather.yaml")
    config = job.sources[0].model_copy(update={"seed": 5, "count": 200})
    sim = simulate(config)
    log = IngestLog(
        tmp_path,
        job.epochs.length_ms,
        job.epochs.allowed_lateness_ms,
        job.epochs.genesis_ms,
        max_payload_bytes=job.validation.max_payload_bytes,
    )
    log.append_batch([(m.raw, "sim", m.send_ms) for m in sim.messages])
    log.advance_clock(sim.start_ms + 10**9)
    ctx = job_context(job, parse_registry(sim.registry()))
    state = JobState()
    accepted: list[bytes] = []
    rejected = [(d.reason, d.raw) for d in log.dead_letters.read()]
    for epoch in log.closed_epochs():
        records = log.read_records(epoch)
        computed = compute_epoch(ctx, epoch, [(r.received_ms, r.raw) for r in records], state)
        state = computed.state
        accepted += [c.raw for c in computed.accepted]
        rejected += [(d.reason, d.raw) for d in computed.dead]
    assert sorted(accepted) == sorted(m.raw for m in sim.messages if m.expected == "accept")
    assert sorted(rejected) == sorted(
        (m.reason, m.raw) for m in sim.messages if m.reason is not None
    )


@pytest.mark.parametrize("count", [0, 1, 2, 5])
def test_tiny_runs_with_every_fault_still_have_consistent_truth(count: int) -> None:
    sim = simulate(
        SimulatorSourceConfig(seed=count, count=count, faults=list(FAULTS), devices_per_scheme=1)
    )
    summary = sim.summary()
    assert summary["messages"] == len(sim.messages) >= count
    assert summary["accepted"] + summary["rejected"] == summary["messages"]
    for m in sim.messages:
        if m.kind in ("duplicate", "replayed_seq"):
            assert any(o.expected == "accept" for o in sim.messages)

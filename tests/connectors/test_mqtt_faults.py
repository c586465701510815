"""MQTT ingest under real faults: the broker killed (SIGKILL) and restarted mid-stream, a full disk.

Counted against the simulator's ground truth through the pipeline's checks:
every reading sent is accepted once or rejected with its reason, redeliveries
are caught by the duplicate guard, and nothing acknowledged is lost.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.connectors.test_ingest_faults import SmallDisk, small_disk  # noqa: F401 (fixture)
from tests.mosquitto import Mosquitto
from veristream.connectors.ingest_log import GroupCommitter, IngestLog
from veristream.connectors.simulator import Simulation, deliver, simulate
from veristream.connectors.sources.config import MqttSourceConfig, SimulatorSourceConfig
from veristream.connectors.sources.mqtt import MqttSource, publish_messages
from veristream.pipeline.compute import compute_epoch, job_context
from veristream.pipeline.jobspec import parse_job
from veristream.pipeline.state import JobState

pytestmark = pytest.mark.services

EPOCH_MS = 60_000
# order-independent faults (redelivery reorders messages) and the two rejected at ingest
FAULTS = ["bad_signature", "duplicate", "unknown_device", "implausible", "malformed_json", "oversized"]
FIELDS = {
    "temp_c_x100": {"min": -6000, "max": 6000},
    "humidity_bp": {"min": 0, "max": 10000},
    "pressure_pa": {"min": 87000, "max": 108500},
    "wind_mm_s": {"min": 0, "max": 75000},
    "rain_um_h": {"min": 0, "max": 300000},
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def wait_for(predicate: Any, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    running = Mosquitto(tmp_path / "broker")
    # Save the session store after every change, so a SIGKILL loses no in-flight QoS 1 message.
    with open(running.config_file, "a") as config:
        config.write("autosave_interval 1\nautosave_on_changes true\n")
    with running:
        yield running


def source_config(broker: Mosquitto, client_id: str) -> MqttSourceConfig:
    return MqttSourceConfig(
        port=broker.port,
        topics=["veristream/readings/+"],
        client_id=client_id,
        reconnect_min_s=0.05,
        reconnect_max_s=0.3,
        max_payload_bytes=1024,
    )


def simulation(rate: float) -> Simulation:
    config = SimulatorSourceConfig(
        seed=11,
        devices_per_scheme=1,
        profile="weather-station",
        count=300,
        rate=rate,
        faults=FAULTS,
        fault_rate=0.03,
        max_payload_bytes=1024,
    )
    return simulate(config, start_ms=now_ms())


def pipeline_verdicts(sim: Simulation, log: IngestLog, tmp: Path) -> dict[str, Any]:
    """Run the pipeline's checks over every closed epoch of ``log``: accepted readings and reasons."""
    registry = tmp / "devices.json"
    registry.write_text(json.dumps(sim.registry()))
    job = parse_job(
        {
            "job_id": "mqtt-faults",
            "devices": {"file": str(registry)},
            "epochs": {"length_ms": EPOCH_MS, "allowed_lateness_ms": EPOCH_MS},
            "validation": {"max_clock_skew_ms": 600_000, "max_payload_bytes": 1024, "fields": FIELDS},
            "aggregation": {"fields": ["temp_c_x100"], "quantiles": [50]},
            "rewards": {"tokens_per_epoch": 10**21, "max_per_device": 3 * 10**20},
            "operators": {"count": 2},
        },
        base=tmp,
    )
    ctx = job_context(job)
    log.advance_clock(now_ms() + 10 * EPOCH_MS)
    state = JobState()
    accepted: list[bytes] = []
    reasons: Counter[str] = Counter(log.dead_letters.counts())
    for epoch in log.closed_epochs():
        records = [(r.received_ms, r.raw) for r in log.read_records(epoch)]
        if not records:
            continue
        computation = compute_epoch(ctx, epoch, records, state)
        state = computation.state
        accepted += [c.raw for c in computation.accepted]
        reasons.update(computation.rejected)
    return {"accepted": accepted, "reasons": reasons}


def check_against_truth(sim: Simulation, log: IngestLog, tmp: Path) -> None:
    sent = len(sim.messages)
    arrived = log.counts()["arrived"]
    verdicts = pipeline_verdicts(sim, log, tmp)
    accepted, reasons = verdicts["accepted"], verdicts["reasons"]
    truth = sim.summary()
    # Every reading the simulator meant to be accepted is accepted, and only once.
    assert sorted(accepted) == sorted(m.raw for m in sim.messages if m.expected == "accept")
    # Every arrival has exactly one verdict; arrivals beyond what was sent are redeliveries,
    # and each of those is rejected (the duplicate guard, or the same reason again).
    assert len(accepted) + sum(reasons.values()) == arrived >= sent
    assert len(accepted) == truth["accepted"]
    assert sum(reasons.values()) == truth["rejected"] + (arrived - sent)
    for reason, count in truth["rejected_by_reason"].items():
        assert reasons[reason] >= count, reason


def test_broker_killed_and_restarted_mid_stream(broker: Mosquitto, tmp_path: Path) -> None:
    sim = simulation(rate=400.0)
    log = IngestLog(tmp_path / "log", EPOCH_MS, EPOCH_MS, max_payload_bytes=1024)
    committer = GroupCommitter(log)
    config = source_config(broker, "faults-sub")
    source = MqttSource(config, committer).start()
    published: dict[str, Any] = {}
    publisher = threading.Thread(
        target=lambda: published.update(deliver(sim, "mqtt", mqtt_config=config, realtime=True))
    )
    try:
        publisher.start()
        assert wait_for(lambda: source.stats.acked >= len(sim.messages) // 3), source.stats
        assert broker.process is not None
        os.kill(broker.process.pid, signal.SIGKILL)
        broker.process.wait()
        time.sleep(0.3)  # both clients notice the broker is gone and start backing off
        broker.start()
        publisher.join(timeout=60)
        assert published.get("published") == len(sim.messages)
        assert source.wait_subscribed(2, timeout_s=15), source.stats
        assert wait_for(lambda: log.counts()["arrived"] >= len(sim.messages)), log.counts()
        assert wait_for(lambda: source.stats.acked == source.stats.received)
    finally:
        source.stop()
        committer.close()
    assert source.stats.connects >= 2
    check_against_truth(sim, log, tmp_path)
    log.close()


def test_RevertWhen_TheDiskFillsUnderMqtt_PubacksAreHeldAndIngestResumes(
    broker: Mosquitto,
    small_disk: SmallDisk,  # noqa: F811
    tmp_path: Path,
) -> None:
    sim = simulation(rate=1000.0)
    log = IngestLog(small_disk.path / "log", EPOCH_MS, EPOCH_MS, max_payload_bytes=1024)
    committer = GroupCommitter(log)
    config = source_config(broker, "full-disk-sub")
    source = MqttSource(config, committer).start()
    first, rest = sim.messages[:100], sim.messages[100:]
    topic = "veristream/readings/x"
    try:
        publish_messages(config, [(topic, m.raw) for m in first], client_id="pub-1")
        assert wait_for(lambda: source.stats.acked == len(first)), source.stats
        small_disk.fill()
        publish_messages(config, [(topic, m.raw) for m in rest], client_id="pub-2")
        assert wait_for(lambda: source.stats.received > source.stats.acked), source.stats
        time.sleep(0.5)
        # What is acknowledged is exactly what is durable.
        assert log.counts()["arrived"] == source.stats.acked
        small_disk.free()
        assert wait_for(lambda: source.stats.acked >= len(sim.messages)), source.stats
    finally:
        source.stop()
        committer.close()
    assert log.counts()["arrived"] == source.stats.acked
    check_against_truth(sim, log, tmp_path)
    log.close()

"""MQTT at the edge, against a real mosquitto: per-client topic ACLs, per-device rates held without PUBACK."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mosquitto import Mosquitto
from veristream.connectors.ingest_log import GroupCommitter, IngestLog
from veristream.connectors.sources.config import MqttSourceConfig
from veristream.connectors.sources.mqtt import MqttSource, publish_messages

pytestmark = pytest.mark.services

INGEST, INGEST_PW = "ingest", "ingest-pw"
STATION_A, STATION_A_PW = "station-a", "a-pw"
DEVICE = "0x" + "12" * 20


def envelope(seq: int, device: str = DEVICE) -> bytes:
    return json.dumps(
        {
            "device_id": device,
            "seq": seq,
            "timestamp_ms": time.time_ns() // 1_000_000,
            "payload": "0x0102",
            "signature": "0x" + "44" * 65,
        }
    ).encode()


def wait_for(predicate: object, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    acls = {
        INGEST: ["read fleet/#"],
        STATION_A: ["write fleet/station-a/#"],
    }
    users = {INGEST: INGEST_PW, STATION_A: STATION_A_PW}
    with Mosquitto(tmp_path / "broker", users=users, acls=acls) as running:
        yield running


@pytest.fixture
def log(tmp_path: Path) -> Iterator[IngestLog]:
    ingest = IngestLog(tmp_path / "log", 60_000, 60_000)
    yield ingest
    ingest.close()


def config(broker: Mosquitto, user: str, password: str, **more: object) -> MqttSourceConfig:
    return MqttSourceConfig.model_validate(
        {
            "port": broker.port,
            "topics": ["fleet/#"],
            "username": user,
            "password": password,
            "client_id": f"{user}-client",
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.5,
            **more,
        }
    )


def logged_seqs(log: IngestLog) -> list[int]:
    log.advance_clock(time.time_ns() // 1_000_000 + 10**8)
    return sorted(json.loads(r)["seq"] for e in log.closed_epochs() for r in log.read_epoch(e))


def test_RevertWhen_ClientPublishesOutsideItsAcl(broker: Mosquitto, log: IngestLog) -> None:
    committer = GroupCommitter(log)
    source = MqttSource(config(broker, INGEST, INGEST_PW), committer).start()
    try:
        station = config(broker, STATION_A, STATION_A_PW)
        messages = [("fleet/station-a/readings", envelope(i)) for i in range(5)]
        # station-a posing as station-b: the broker takes the PUBLISH but delivers it to nobody
        messages += [("fleet/station-b/readings", envelope(100 + i)) for i in range(5)]
        publish_messages(station, messages, client_id="station-a-pub")
        assert wait_for(lambda: source.stats.acked >= 5)
        time.sleep(0.3)  # nothing else is coming
        assert source.stats.received == 5
        assert logged_seqs(log) == list(range(5))
    finally:
        source.stop()
        committer.close()


def test_RevertWhen_OneDeviceFloodsTheBroker(broker: Mosquitto, log: IngestLog) -> None:
    """Over its rate a device's messages wait unacknowledged, then all land: none lost, none early."""
    committer = GroupCommitter(log)
    limits = {"per_device_per_s": 20, "burst": 5, "junk_bodies_per_epoch": 2}
    source = MqttSource(config(broker, INGEST, INGEST_PW, limits=limits), committer).start()
    try:
        station = config(broker, STATION_A, STATION_A_PW)
        started = time.monotonic()
        messages = [("fleet/station-a/readings", envelope(i)) for i in range(25)]
        messages += [("fleet/station-a/readings", b"junk %d" % i) for i in range(4)]
        publish_messages(station, messages, client_id="station-a-flood")
        assert wait_for(lambda: source.stats.acked == 29)
        elapsed = time.monotonic() - started
        # 25 readings of one device at 20/s with a burst of 5: at least (25 - 5) / 20 s
        assert elapsed >= 0.9, elapsed
        assert source.counters.snapshot()["rate_limited"] >= 15
        assert logged_seqs(log) == list(range(25))
        counts = log.counts()
        assert counts["arrived"] == 29 and counts["junk_tallied"] == 2
        assert len(log.dead_letters) == 2
    finally:
        source.stop()
        committer.close()

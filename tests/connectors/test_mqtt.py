"""MQTT source against a real mosquitto: QoS 1, topic patterns, TLS, passwords, WebSockets, restarts, late PUBACKs."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.mosquitto import Mosquitto
from veristream.connectors.ingest_log import AppendResult, GroupCommitter, IngestLog
from veristream.connectors.sources.config import MqttSourceConfig, TlsConfig
from veristream.connectors.sources.mqtt import MqttSource, publish_messages

pytestmark = pytest.mark.services

USER, PASSWORD = "device-fleet", "s3cret-pw"


def envelope(seq: int) -> bytes:
    return json.dumps(
        {
            "device_id": "0x" + "12" * 20,
            "seq": seq,
            "timestamp_ms": time.time_ns() // 1_000_000,
            "payload": "0x" + json.dumps({"temp_c_x100": seq}).encode().hex(),
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
    with Mosquitto(
        tmp_path / "broker", tls=True, websockets=True, users={USER: PASSWORD}
    ) as running:
        yield running


@pytest.fixture
def log(tmp_path: Path) -> Iterator[IngestLog]:
    ingest = IngestLog(tmp_path / "log", 60_000, 60_000)
    yield ingest
    ingest.close()


def source_config(broker: Mosquitto, **overrides: object) -> MqttSourceConfig:
    base: dict[str, object] = {
        "port": broker.port,
        "topics": ["fleet/+/readings", "bulk/#"],
        "username": USER,
        "password": PASSWORD,
        "client_id": "ingest-test",
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
    }
    base.update(overrides)
    return MqttSourceConfig.model_validate(base)


def logged_seqs(log: IngestLog) -> list[int]:
    log.advance_clock(time.time_ns() // 1_000_000 + 10**8)
    return sorted(json.loads(r)["seq"] for e in log.closed_epochs() for r in log.read_epoch(e))


def test_qos1_topic_patterns_and_accounting(broker: Mosquitto, log: IngestLog) -> None:
    committer = GroupCommitter(log)
    config = source_config(broker)
    source = MqttSource(config, committer).start()
    try:
        messages = [(f"fleet/dev{i % 5}/readings", envelope(i)) for i in range(300)]
        messages += [("bulk/a/b", envelope(300)), ("bulk/x", b"{not json")]
        messages += [("other/topic", envelope(999)), ("fleet/dev1/status", envelope(998))]
        publish_messages(config, messages, client_id="pub-1")
        assert wait_for(lambda: source.stats.acked == 302), source.stats
        time.sleep(
            0.2
        )  # nothing else is coming: the two unmatched topics are filtered by the broker
        assert source.stats.received == 302
        counts = log.counts()
        assert (counts["arrived"], counts["appended"], counts["rejected_by_reason"]) == (
            302,
            301,
            {"malformed": 1},
        )
        assert logged_seqs(log) == list(range(301))
        sources = {r.source for e in log.closed_epochs() for r in log.read_records(e)}
        assert sources == {f"mqtt:fleet/dev{i}/readings" for i in range(5)} | {"mqtt:bulk/a/b"}
    finally:
        source.stop()
        committer.close()


def test_tls_with_the_test_ca_and_password(broker: Mosquitto, log: IngestLog) -> None:
    assert broker.ca is not None and broker.tls_port is not None
    committer = GroupCommitter(log)
    config = source_config(broker, port=broker.tls_port, tls=TlsConfig(ca_file=broker.ca.ca_file))
    source = MqttSource(config, committer).start()
    try:
        publish_messages(
            config, [("fleet/d/readings", envelope(i)) for i in range(50)], client_id="pub-tls"
        )
        assert wait_for(lambda: source.stats.acked == 50)
        assert logged_seqs(log) == list(range(50))
    finally:
        source.stop()
        committer.close()


def test_wrong_password_and_unknown_ca_are_refused(
    broker: Mosquitto, log: IngestLog, tmp_path: Path
) -> None:
    committer = GroupCommitter(log)
    try:
        with pytest.raises(RuntimeError, match="could not subscribe"):
            MqttSource(source_config(broker, password="wrong"), committer).start(timeout_s=2)
        from tests.mosquitto import make_test_ca

        other = make_test_ca(tmp_path / "other-ca")
        assert broker.tls_port is not None
        bad_tls = source_config(broker, port=broker.tls_port, tls=TlsConfig(ca_file=other.ca_file))
        with pytest.raises(RuntimeError, match="could not subscribe"):
            MqttSource(bad_tls, committer).start(timeout_s=2)
        assert log.counts()["arrived"] == 0
    finally:
        committer.close()


def test_mqtt_over_websockets(broker: Mosquitto, log: IngestLog) -> None:
    assert broker.ws_port is not None
    committer = GroupCommitter(log)
    config = source_config(broker, port=broker.ws_port, transport="websockets")
    source = MqttSource(config, committer).start()
    try:
        publish_messages(
            config, [("fleet/w/readings", envelope(i)) for i in range(40)], client_id="pub-ws"
        )
        assert wait_for(lambda: source.stats.acked == 40)
        assert logged_seqs(log) == list(range(40))
    finally:
        source.stop()
        committer.close()


@pytest.mark.slow
def test_reconnects_after_the_broker_restarts_and_gets_queued_messages(
    broker: Mosquitto, log: IngestLog
) -> None:
    committer = GroupCommitter(log)
    config = source_config(broker)
    source = MqttSource(config, committer).start()
    expected = set(range(250))
    try:
        publish_messages(
            config, [("fleet/a/readings", envelope(i)) for i in range(100)], client_id="pub-a"
        )
        assert wait_for(lambda: source.stats.acked == 100)
        # Restart at once: PUBACKs still on their way make the broker redeliver (at least once).
        broker.restart()
        assert source.wait_subscribed(2, timeout_s=15), source.stats
        assert source.stats.connects >= 2
        publish_messages(
            config, [("fleet/a/readings", envelope(i)) for i in range(100, 200)], client_id="pub-b"
        )
        assert wait_for(
            lambda: source.stats.acked >= 200 and source.stats.acked == source.stats.received
        )
        # While the source is away its persistent session queues QoS 1 messages.
        source.stop()
        publish_messages(
            config, [("fleet/a/readings", envelope(i)) for i in range(200, 250)], client_id="pub-c"
        )
        again = MqttSource(config, committer).start()
        assert wait_for(lambda: again.stats.acked >= 50), again.stats
        again.stop()
        seqs = logged_seqs(log)
        assert set(seqs) == expected, "a published message is missing"
        assert log.counts()["appended"] == len(seqs) == source.stats.acked + again.stats.acked
        # Duplicates come only from the restart window's redelivery of the first 100.
        assert all(seq < 100 for seq in seqs if seqs.count(seq) > 1)
    finally:
        source.stop()
        committer.close()


class GatedLog(IngestLog):
    """A log whose appends never finish until released: a crash before the fsync."""

    gate = threading.Event()

    def append_batch(self, items: Sequence[tuple[bytes, str, int]]) -> list[AppendResult]:
        self.gate.wait()
        return super().append_batch(items)


def test_puback_waits_for_the_log_so_the_broker_redelivers_after_a_crash(
    broker: Mosquitto, tmp_path: Path
) -> None:
    GatedLog.gate.clear()
    stuck_log = GatedLog(tmp_path / "stuck", 60_000, 60_000)
    stuck = GroupCommitter(stuck_log)
    config = source_config(broker, client_id="crashy")
    first = MqttSource(config, stuck).start()
    publish_messages(
        config, [("fleet/c/readings", envelope(i)) for i in range(20)], client_id="pub-crash"
    )
    assert wait_for(lambda: first.stats.received >= 1)
    time.sleep(0.3)
    assert first.stats.acked == 0  # nothing is durable, so nothing is acknowledged
    first.stop()  # the process "dies": its appends never completed

    good_log = IngestLog(tmp_path / "good", 60_000, 60_000)
    good = GroupCommitter(good_log)
    second = MqttSource(config, good).start()
    try:
        assert wait_for(lambda: second.stats.acked >= 20), second.stats
        assert logged_seqs(good_log) == list(range(20))
    finally:
        second.stop()
        good.close()
        GatedLog.gate.set()
        stuck.close()


def test_every_simulated_fault_over_mqtt_is_counted_and_nothing_is_lost(
    broker: Mosquitto, tmp_path: Path
) -> None:
    # as a job opens it: readings stamped further ahead than the allowed skew are refused here
    log = IngestLog(tmp_path / "skew-log", 60_000, 60_000, max_clock_skew_ms=60_000)
    from veristream.connectors.simulator import deliver, simulate
    from veristream.connectors.sources.config import FAULTS, SimulatorSourceConfig

    sim = simulate(
        SimulatorSourceConfig(seed=21, count=150, faults=list(FAULTS)),
        start_ms=time.time_ns() // 1_000_000,
    )
    committer = GroupCommitter(log)
    config = source_config(broker, topics=["veristream/readings/+"], client_id="sim-sub")
    source = MqttSource(config, committer).start()
    try:
        report = deliver(sim, "mqtt", mqtt_config=config)
        assert report["published"] == len(sim.messages)
        assert wait_for(lambda: source.stats.acked >= len(sim.messages)), source.stats
    finally:
        source.stop()
        committer.close()
    ingest_truth = Counter(m.reason for m in sim.messages if m.stage == "ingest")
    counts = log.counts()
    assert counts["arrived"] == len(sim.messages)
    assert counts["rejected_by_reason"] == dict(ingest_truth)
    log.advance_clock(time.time_ns() // 1_000_000 + 10**9)
    logged = sorted(raw for e in log.closed_epochs() for raw in log.read_epoch(e))
    assert logged == sorted(m.raw for m in sim.messages if m.stage != "ingest")
    assert sorted(d.raw for d in log.dead_letters.read()) == sorted(
        m.raw for m in sim.messages if m.stage == "ingest"
    )
    log.close()


def test_a_slow_log_pushes_back_on_the_broker_instead_of_buffering(
    broker: Mosquitto, tmp_path: Path
) -> None:
    GatedLog.gate.clear()
    slow_log = GatedLog(tmp_path / "slow", 60_000, 60_000)
    committer = GroupCommitter(slow_log)
    config = source_config(broker, client_id="pushback")
    source = MqttSource(config, committer, max_pending=5).start()
    try:
        publish_messages(
            config, [("fleet/p/readings", envelope(i)) for i in range(50)], client_id="pub-p"
        )
        assert wait_for(lambda: source.stats.received >= 5)
        time.sleep(0.5)
        # The network thread stops taking messages once 5 wait for the log.
        assert source.stats.received == 5 and committer.pending == 5
        GatedLog.gate.set()
        assert wait_for(lambda: source.stats.acked == 50), source.stats
        assert logged_seqs(slow_log) == list(range(50))
    finally:
        GatedLog.gate.set()
        source.stop()
        committer.close()
        slow_log.close()

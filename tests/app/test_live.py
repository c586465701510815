"""`veristream run` on a live MQTT source (a real mosquitto), as a user runs it (subprocesses).

Signed readings from the simulator, bad ones included, are published while
`run` serves the job: every message is accounted for, each epoch is verified
on the embedded chain as it closes, and the roots equal those of a bounded
`run` replaying the same messages from a JSON-lines file. A run stopped by
SIGTERM in the middle of the stream and started again loses nothing that was
acknowledged and counts nothing twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.mosquitto import Mosquitto
from veristream.connectors.simulator import Simulation, deliver, simulate, write_jsonl
from veristream.connectors.sources.config import MqttSourceConfig, SimulatorSourceConfig

VERISTREAM = [sys.executable, "-m", "veristream"]
# wide enough that rich never wraps a line a test looks for
_ENV = {**os.environ, "RAY_DISABLE_IMPORT_WARNING": "1", "COLUMNS": "200"}
EPOCH_MS = 1000
LATENESS_MS = 500
# order-independent faults: live arrival order and a file's timestamp order give the same verdicts
FAULTS = ["bad_signature", "duplicate", "unknown_device", "implausible"]
# rejected at ingest, filed under the epoch open at arrival: wall clock live, event time replayed
INGEST_FAULTS = ["malformed_json", "oversized"]
# how far ahead the part published across a restart is stamped: more than stopping and
# starting take even on a busy machine, or its epochs close meanwhile and it is `late`
SECOND_PART_AHEAD_MS = 50_000
FIELDS = {
    "temp_c_x100": {"min": -6000, "max": 6000},
    "humidity_bp": {"min": 0, "max": 10000},
    "pressure_pa": {"min": 87000, "max": 108500},
    "wind_mm_s": {"min": 0, "max": 75000},
    "rain_um_h": {"min": 0, "max": 300000},
}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path_factory.mktemp("broker")) as running:
        yield running


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _aligned(ms: int) -> int:
    """The first epoch start at or after ``ms``."""
    return -(-ms // EPOCH_MS) * EPOCH_MS


def _fleet(seed: int, count: int, rate: float, faults: list[str] = FAULTS) -> SimulatorSourceConfig:
    return SimulatorSourceConfig(
        seed=seed,
        devices_per_scheme=1,
        profile="weather-station",
        count=count,
        rate=rate,
        faults=faults,
        fault_rate=0.02,
        max_payload_bytes=1024,
    )


def _write_registry(path: Path, *simulations: Simulation) -> None:
    registries = [s.registry() for s in simulations]
    merged = {**registries[0], "devices": [d for r in registries for d in r["devices"]]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged))


def _job(tmp: Path, name: str, source: dict[str, Any], registry: Path) -> Path:
    spec = {
        "job_id": f"live-{name}",
        "sources": [source],
        "devices": {"file": str(registry)},
        "epochs": {"length_ms": EPOCH_MS, "allowed_lateness_ms": LATENESS_MS},
        "validation": {"max_clock_skew_ms": 60_000, "max_payload_bytes": 1024, "fields": FIELDS},
        "aggregation": {"fields": ["temp_c_x100"], "quantiles": [50]},
        # no carry between epochs: an epoch holding only dead letters must not shift later rewards
        "rewards": {
            "tokens_per_epoch": 10**21,
            "max_per_device": 3 * 10**20,
            "remainder": "sink",
            "sink": "0x" + "de" * 20,
        },
        "operators": {"count": 2, "quorum": {"numerator": 2, "denominator": 3}},
        "work_dir": str(tmp / f"work-{name}"),
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _mqtt_source(broker: Mosquitto, name: str) -> dict[str, Any]:
    return {
        "type": "mqtt",
        "port": broker.port,
        "topics": [f"{name}/#"],
        "client_id": f"veristream-{name}",
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
        "max_payload_bytes": 1024,
    }


class Run:
    """``veristream run`` in a subprocess, its stderr collected as it comes."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [*VERISTREAM, "run", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=_ENV,
        )
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def wait_serving(self, timeout_s: float = 240) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(line.startswith("serving ") for line in self.stderr):
            assert self.process.poll() is None, "".join(self.stderr)[-3000:]
            assert time.monotonic() < deadline, "".join(self.stderr)[-3000:]
            time.sleep(0.05)

    def summary(self, timeout_s: float = 300) -> dict[str, Any]:
        try:
            out, _ = self.process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        self._reader.join(timeout=5)
        assert self.process.returncode == 0, "".join(self.stderr)[-3000:]
        return dict(json.loads(out))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _publish(broker: Mosquitto, name: str, simulation: Simulation, *, realtime: bool = False) -> None:
    config = MqttSourceConfig(port=broker.port)
    report = deliver(simulation, "mqtt", mqtt_config=config, topic_prefix=name, realtime=realtime)
    assert report["published"] == len(simulation.messages)


def _data_epochs(*simulations: Simulation) -> set[int]:
    return {
        m.timestamp_ms // EPOCH_MS
        for s in simulations
        for m in s.messages
        if m.expected == "accept" and m.timestamp_ms is not None
    }


def _expected(*simulations: Simulation) -> tuple[int, int, dict[str, int]]:
    messages = sum(len(s.messages) for s in simulations)
    accepted = sum(s.summary()["accepted"] for s in simulations)
    rejected: dict[str, int] = {}
    for s in simulations:
        for reason, count in s.summary()["rejected_by_reason"].items():
            rejected[reason] = rejected.get(reason, 0) + count
    return messages, accepted, dict(sorted(rejected.items()))


def _roots(summary: dict[str, Any]) -> dict[int, tuple[str, str]]:
    return {
        e["epoch"]: (e["data_root"], e["reward_root"])
        for e in summary["epochs"]
        if e["data_root"] != "0x" + "00" * 32
    }


def _checkpointed(job: Path, epoch: int) -> bool:
    work = Path(yaml.safe_load(job.read_text())["work_dir"])
    return (work / "epochs" / f"{epoch:012d}.json").exists()


@pytest.mark.slow
def test_live_mqtt_run_verifies_each_epoch_with_the_roots_of_a_bounded_replay(
    broker: Mosquitto, tmp_path: Path
) -> None:
    # 60 good readings + 8 faults at 34 a second: two 1 s epochs, each with accepted readings.
    # Ingest-stage faults are left out here: an epoch holding only their dead letters
    # is where arrival time put it, and with rewards it moves the sink's running total.
    fleet = _fleet(seed=5, count=60, rate=34)
    layout = simulate(fleet, start_ms=0)
    epochs = _data_epochs(layout)
    assert epochs == {m.timestamp_ms // EPOCH_MS for m in layout.messages if m.timestamp_ms is not None}
    registry = tmp_path / "devices.json"
    _write_registry(registry, layout)
    live_job = _job(tmp_path, "live", _mqtt_source(broker, "t1"), registry)

    run = Run(str(live_job), "--no-ray", "--json", "--epochs", str(len(epochs)))
    try:
        run.wait_serving()
        # stamped a little ahead: every message arrives while its epoch is still open
        simulation = simulate(fleet, start_ms=_aligned(_now_ms() + 2500))
        _publish(broker, "t1", simulation)
        live = run.summary()
    finally:
        run.kill()

    # every published message is accounted for, with the simulator's verdicts
    messages, accepted, rejected = _expected(simulation)
    assert live["readings_in"] == messages
    assert live["accepted"] == accepted
    assert live["rejected"] == rejected
    assert live["accepted"] + sum(live["rejected"].values()) == messages
    # each epoch with readings was verified on the embedded chain, and a contributor claimed
    verified = {e["epoch"]: e for e in live["epochs"] if e["verified"]}
    assert set(verified) == _data_epochs(simulation)
    assert all(e["tx_hash"].startswith("0x") and e["gas"] > 0 for e in verified.values())
    assert live["claims"] and live["claims"][0]["amount"] > 0

    # the same messages replayed from a file by a bounded run: the same roots, epoch by epoch
    recording = tmp_path / "recording.jsonl"
    write_jsonl(simulation.messages, recording)
    file_source = {"type": "file", "path": str(recording), "max_payload_bytes": 1024}
    bounded_job = _job(tmp_path, "bounded", file_source, registry)
    replay = Run(str(bounded_job), "--no-ray", "--no-chain", "--json")
    try:
        bounded = replay.summary()
    finally:
        replay.kill()
    assert bounded["readings_in"] == messages and bounded["accepted"] == accepted
    assert bounded["rejected"] == rejected
    assert _roots(live) == _roots(bounded)
    assert set(_roots(live)) == _data_epochs(simulation)


@pytest.mark.slow
def test_sigterm_mid_stream_then_restart_loses_nothing_acknowledged_and_counts_nothing_twice(
    broker: Mosquitto, tmp_path: Path
) -> None:
    faults = FAULTS + INGEST_FAULTS
    first_fleet = _fleet(seed=6, count=30, rate=34, faults=faults)
    second_fleet = _fleet(seed=7, count=50, rate=25, faults=faults)
    registry = tmp_path / "devices.json"
    _write_registry(registry, simulate(first_fleet, start_ms=0), simulate(second_fleet, start_ms=0))
    job = _job(tmp_path, "restart", _mqtt_source(broker, "t2"), registry)

    run = Run(str(job), "--no-ray", "--json")
    try:
        run.wait_serving()
        first = simulate(first_fleet, start_ms=_aligned(_now_ms() + 2500))
        _publish(broker, "t2", first)
        deadline = time.monotonic() + 120
        while not _checkpointed(job, min(_data_epochs(first))):
            assert run.process.poll() is None and time.monotonic() < deadline, "".join(run.stderr)[-3000:]
            time.sleep(0.1)
        # the second part is stamped well ahead, so what the broker holds during the
        # restart still finds its epochs open; it is published at its own pace, and the
        # run is stopped in the middle of it
        second = simulate(second_fleet, start_ms=_aligned(_now_ms() + SECOND_PART_AHEAD_MS))
        publisher = threading.Thread(target=_publish, args=(broker, "t2", second), kwargs={"realtime": True})
        publisher.start()
        time.sleep(1.2)
        run.process.send_signal(signal.SIGTERM)
        stopped = run.summary()
        publisher.join(timeout=60)
        assert not publisher.is_alive()
    finally:
        run.kill()
    total = len(first.messages) + len(second.messages)
    # stopped mid-stream: part of the second batch was taken, the rest waits at the broker
    assert len(first.messages) < stopped["readings_in"] < total
    # what the stopped run settled is accounted for; the rest waits in open epochs
    assert stopped["accepted"] + sum(stopped["rejected"].values()) <= stopped["readings_in"]
    settled_before = {e["epoch"] for e in stopped["epochs"] if e["verified"]}
    assert min(_data_epochs(first)) in settled_before

    remaining = _data_epochs(first, second) - settled_before
    again = Run(str(job), "--no-ray", "--json", "--epochs", str(len(remaining)))
    try:
        resumed = again.summary()
    finally:
        again.kill()
    messages, accepted, rejected = _expected(first, second)
    assert resumed["readings_in"] == messages == total  # no redelivery logged twice
    assert resumed["accepted"] == accepted
    assert resumed["rejected"] == rejected  # no "duplicate" or "late" beyond the simulator's own
    epochs = [e["epoch"] for e in resumed["epochs"]]
    assert len(epochs) == len(set(epochs))
    assert {e["epoch"] for e in resumed["epochs"] if e["verified"]} == _data_epochs(first, second)


def test_live_and_bounded_sources_do_not_mix(tmp_path: Path) -> None:
    registry = tmp_path / "devices.json"
    _write_registry(registry, simulate(_fleet(seed=1, count=5, rate=10), start_ms=0))
    recording = tmp_path / "r.jsonl"
    recording.write_text("")
    job = _job(tmp_path, "mixed", {"type": "mqtt", "port": 1}, registry)
    spec = yaml.safe_load(job.read_text())
    spec["sources"].append({"type": "file", "path": str(recording)})
    job.write_text(yaml.safe_dump(spec))
    done = subprocess.run(
        [*VERISTREAM, "run", str(job), "--no-ray", "--json"], capture_output=True, text=True, cwd=REPO, timeout=120, env=_ENV
    )
    assert done.returncode == 1
    assert "sources[1] (file)" in done.stdout + done.stderr
    assert not (tmp_path / "work-mixed" / "ingest").exists()  # refused before anything started


def test_stop_rules_apply_to_live_sources_only(tmp_path: Path) -> None:
    registry = tmp_path / "devices.json"
    _write_registry(registry, simulate(_fleet(seed=1, count=5, rate=10), start_ms=0))
    recording = tmp_path / "r.jsonl"
    recording.write_text("")
    job = _job(tmp_path, "bounded", {"type": "file", "path": str(recording)}, registry)
    done = subprocess.run(
        [*VERISTREAM, "run", str(job), "--epochs", "2"], capture_output=True, text=True, cwd=REPO, timeout=120, env=_ENV
    )
    assert done.returncode == 2
    assert "live sources" in done.stdout + done.stderr


def test_http_source_answers_503_while_draining_and_logs_nothing(tmp_path: Path) -> None:
    from veristream.connectors.ingest_log import GroupCommitter, IngestLog
    from veristream.connectors.sources.config import HttpSourceConfig
    from veristream.connectors.sources.http import post_messages, serve

    simulation = simulate(_fleet(seed=2, count=4, rate=10), start_ms=_now_ms())
    log = IngestLog(tmp_path / "log", 60_000, 60_000, max_payload_bytes=1024)
    committer = GroupCommitter(log)
    server = serve(committer, HttpSourceConfig(port=0, max_payload_bytes=1024))
    try:
        assert post_messages(server.url, [simulation.messages[0].raw])["statuses"] == {202: 1}
        server.server.config.app.state.draining = True  # what stop() does first
        import httpx

        refused = httpx.post(
            f"{server.url}/v1/readings", content=simulation.messages[1].raw, headers={"content-type": "application/json"}
        )
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert refused.json()["error"]["reason"] == "draining"
        assert log.counts()["arrived"] == 1  # the refused request left no record
    finally:
        server.stop()
        committer.close()
        log.close()
    assert not server._thread.is_alive()


@pytest.mark.slow
def test_live_http_run_stops_after_its_duration_with_every_posted_reading_settled(tmp_path: Path) -> None:
    from veristream.connectors.sources.http import post_messages

    fleet = _fleet(seed=3, count=12, rate=100, faults=[])
    registry = tmp_path / "devices.json"
    _write_registry(registry, simulate(fleet, start_ms=0))
    job = _job(tmp_path, "http", {"type": "http", "port": 0, "max_payload_bytes": 1024}, registry)
    run = Run(str(job), "--no-ray", "--json", "--duration", "4")
    try:
        run.wait_serving()
        line = next(line for line in run.stderr if line.startswith("serving "))
        url = line.split()[1].removesuffix("/v1/readings")
        simulation = simulate(fleet, start_ms=_now_ms())
        posted = post_messages(url, [m.raw for m in simulation.messages], batch_size=4)
        assert posted["accepted"] == len(simulation.messages)
        summary = run.summary()
    finally:
        run.kill()
    # the readings' epochs closed within the duration or during the drain: all settled and verified
    assert summary["readings_in"] == summary["accepted"] == len(simulation.messages)
    assert {e["epoch"] for e in summary["epochs"] if e["verified"]} == _data_epochs(simulation)


def test_open_epoch_tail_reads_each_appended_reading_once(tmp_path: Path) -> None:
    from veristream.connectors.ingest_log import IngestLog, OpenEpochTail

    simulation = simulate(_fleet(seed=4, count=9, rate=10, faults=[]), start_ms=10 * EPOCH_MS)
    raws = [m.raw for m in simulation.messages]
    log = IngestLog(tmp_path / "log", EPOCH_MS, LATENESS_MS, max_payload_bytes=1024, max_future_ms=None)
    try:
        tail = OpenEpochTail(log)
        log.append_many(raws[:4], "test", 0)
        assert tail.new_raws() == raws[:4]
        assert tail.new_raws() == []
        log.append_many(raws[4:], "test", 0)
        assert sorted(tail.new_raws()) == sorted(raws[4:])  # grouped by epoch, each read once
        log.advance_clock(100 * EPOCH_MS)  # every epoch closes: the pipeline reads them whole
        assert log.open_epochs() == [] and tail.new_raws() == []
    finally:
        log.close()

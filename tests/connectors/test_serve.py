"""`veristream ingest JOB.yaml`: a job's live sources served into its log, read by another process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, free_port
from tests.mosquitto import Mosquitto
from veristream.connectors.ingest_log import IngestLog
from veristream.connectors.simulator import deliver, simulate, write_jsonl
from veristream.connectors.sources.config import FAULTS, MqttSourceConfig, SimulatorSourceConfig

pytestmark = pytest.mark.services


def test_ingest_command_serves_http_mqtt_websocket_and_file_into_the_jobs_log(tmp_path: Path) -> None:
    http_port, ws_port = free_port(), free_port()
    with Mosquitto(tmp_path / "broker") as broker:
        configs = [SimulatorSourceConfig(seed=s, count=60, faults=list(FAULTS)) for s in (1, 2, 3)]
        simulate(configs[0]).write(tmp_path / "devices.json", None)
        # A recorded file, replayed by the server as it starts: stamped a few seconds ahead,
        # so its epochs are still open when the replay arrives.
        recorded = simulate(
            configs[0].model_copy(update={"seed": 4}), start_ms=time.time_ns() // 1_000_000 + 5000
        )
        write_jsonl(recorded.messages, tmp_path / "recorded.jsonl")
        job = {
            "job_id": "live",
            "sources": [
                {"type": "http", "port": http_port},
                {"type": "mqtt", "port": broker.port, "topics": ["veristream/readings/#"]},
                {"type": "websocket", "port": ws_port},
                {"type": "file", "path": "recorded.jsonl"},
            ],
            "devices": {"file": "devices.json"},
            "epochs": {"length_ms": 1000, "allowed_lateness_ms": 3000},
            "rewards": {"tokens_per_epoch": 1000},
            "work_dir": "work",
        }
        (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "veristream.cli",
                "ingest",
                str(tmp_path / "job.yaml"),
                "--duration",
                "120",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stderr is not None
            banner = server.stderr.readline()
            assert banner.startswith("serving"), banner + server.stderr.read()
            # Stamped now, as live devices would be: the server's wall clock closes epochs.
            sims = [simulate(c, start_ms=time.time_ns() // 1_000_000) for c in configs] + [recorded]
            deliver(sims[0], "http", url=f"http://127.0.0.1:{http_port}")
            deliver(sims[1], "mqtt", mqtt_config=MqttSourceConfig(port=broker.port))
            deliver(sims[2], "ws", url=f"ws://127.0.0.1:{ws_port}/v1/stream")
            total = sum(len(s.messages) for s in sims)
            # Readings of the fast-clock device are refused at ingest (clock_skew), filed under the
            # epoch open at their arrival: none opens an epoch ten minutes ahead.
            reader = IngestLog(tmp_path / "work" / "ingest", 1000, 3000, read_only=True)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                reader.refresh()
                counts = reader.counts()
                logged = sum(len(reader.read_epoch(e)) for e in reader.closed_epochs())
                # Arrived, and the wall-clock watermark closed every epoch of the present.
                if counts["arrived"] == total and logged == counts["appended"]:
                    break
                time.sleep(0.2)
            ingest_truth = Counter(
                m.reason for s in sims for m in s.messages if m.stage == "ingest"
            )
            assert counts["arrived"] == total
            assert counts["rejected_by_reason"] == dict(ingest_truth)
            assert counts["appended"] == total - sum(ingest_truth.values())
            assert logged == counts["appended"]
            assert "clock_skew" in counts["rejected_by_reason"]
        finally:
            server.send_signal(signal.SIGTERM)
            out, err = server.communicate(timeout=30)
        assert server.returncode == 0, err
        assert json.loads(out)["arrived"] == total
        # stopped: a summary of the run on stderr
        assert "ingest stopped after" in err and f"{total:,} received" in err, err


def test_ingest_command_refuses_a_bad_job(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text("job_id: x\nsources: []\n")
    done = subprocess.run(
        [sys.executable, "-m", "veristream.cli", "ingest", str(tmp_path / "job.yaml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "error:" in done.stderr

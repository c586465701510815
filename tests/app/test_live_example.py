"""The shipped live example as a user starts it: ``ingest`` in one process (status lines, a
summary when stopped), the simulator posting to it with ``--registry``, ``process`` in another
process verifying the closed epochs; and a plain HTTP source following the job's payload limit."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO, free_port
from veristream.commands import IngestStatus
from veristream.pipeline.jobspec import load_job, parse_job

EXAMPLE = REPO / "examples" / "live-http.yaml"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from veristream.cli import entry; entry()", *args]


def test_a_plain_http_source_follows_the_jobs_payload_limit(tmp_path: Path) -> None:
    assert load_job(EXAMPLE).sources[0].max_payload_bytes == 1024
    weather = load_job(REPO / "examples" / "weather.yaml")
    spec = weather.model_dump(mode="json", exclude={"sources"}) | {"sources": [{"type": "http"}]}
    assert parse_job(spec, base=tmp_path).sources[0].max_payload_bytes == weather.validation.max_payload_bytes


def test_ingest_status_line_and_summary() -> None:
    start = {"arrived": 10, "appended": 8, "rejected_by_reason": {"malformed": 2}}
    status = IngestStatus(start, every_s=5.0, started_at=100.0)
    now = {"arrived": 60, "appended": 50, "rejected_by_reason": {"malformed": 5, "clock_skew": 7}}
    assert status.line(now, 2, now=103.0) is None  # not yet five seconds
    assert status.line(now, 2, now=105.0) == (
        "ingest: 50 received, 42 accepted, 8 rejected, 2 open epoch(s), 10.0 msg/s"
    )
    summary = status.summary(now, 1, now=110.0)
    assert summary.startswith("ingest stopped after 10.0 s: 50 received (5.0 msg/s), 42 accepted, 8 rejected")
    assert "(clock_skew 7, malformed 3)" in summary and "1 epoch(s) still open" in summary


def test_live_example_runs_as_written_with_ingest_and_process_in_two_processes(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "examples").mkdir()
    job = tmp_path / "examples" / "live-http.yaml"
    job.write_text(EXAMPLE.read_text().replace("port: 8080", f"port: {port}"))
    ingest = subprocess.Popen(
        _cli("ingest", "examples/live-http.yaml", "--status-every", "0.5"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert ingest.stderr is not None
        banner = ingest.stderr.readline()
        assert banner.startswith("serving http://127.0.0.1:"), banner
        # the README's line, on this test's port
        sent = subprocess.run(
            _cli(
                "simulate", "--profile", "weather-station", "--all-faults", "--to", "http",
                "--url", f"http://127.0.0.1:{port}",
                "--registry", "examples/.veristream/live-http/devices.json", "--truth", "truth.jsonl",
            ),
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )
        assert sent.returncode == 0, sent.stderr
        truth = json.loads(sent.stdout)["summary"]
        time.sleep(8)  # the wall clock closes every epoch the readings touched (5 s + 1 s lateness)
        processed = subprocess.run(
            _cli("process", "examples/live-http.yaml", "--no-ray", "--json", "--duration", "3"),
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )
        assert processed.returncode == 0, processed.stderr
        summary = json.loads(processed.stdout)
    finally:
        ingest.send_signal(signal.SIGINT)
        out, err = ingest.communicate(timeout=60)
    assert ingest.returncode == 0, err
    assert "ingest: " in err and "msg/s" in err  # status lines while it ran
    assert "ingest stopped after" in err  # and the summary of its run
    assert json.loads(out)["arrived"] == truth["messages"]
    assert summary["accepted"] == truth["accepted"]
    assert summary["rejected"] == truth["rejected_by_reason"]
    assert summary["epochs"] and all(row["status"] == "verified" for row in summary["epochs"])
    assert summary["claims"]

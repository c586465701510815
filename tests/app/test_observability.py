"""Metrics and dashboard against one small job run once: the counters scraped from ``/metrics``
and the dashboard's epochs table (read by headless Chromium) match the run's own summary."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
import yaml
from prometheus_client.parser import text_string_to_metric_families
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.conftest import REPO
from veristream import inspect
from veristream.connectors.ingest_log import GroupCommitter, IngestLog
from veristream.connectors.sources.config import HttpSourceConfig
from veristream.connectors.sources.http import UvicornThread, create_app
from veristream.dashboard import serve as serve_dashboard
from veristream.metrics import Metrics, epoch_status
from veristream.metrics import serve as serve_metrics
from veristream.pipeline.jobspec import JobSpec, load_job
from veristream.run import run_job

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def small_job(tmp: Path) -> JobSpec:
    """The weather example, smaller: 60 readings over 3 epochs, every kind of fault."""
    spec = yaml.safe_load((REPO / "examples" / "weather.yaml").read_text())
    spec["sources"][0].update(count=60, rate=20, devices_per_scheme=1, fault_rate=0.05)
    spec["work_dir"] = str(tmp / "work")
    spec["devices"]["file"] = str(tmp / "work" / "devices.json")
    path = tmp / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return load_job(path)


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[JobSpec, dict[str, Any], str]]:
    """The small job run once in this process with metrics served: (job, summary, scraped page)."""
    tmp = tmp_path_factory.mktemp("observability")
    job = small_job(tmp)
    metrics = Metrics()
    server = serve_metrics(metrics, 0)
    try:
        summary = run_job(job, use_ray=False, metrics=metrics).to_json()
        page = httpx.get(f"{server.url}/metrics", timeout=10).text
    finally:
        server.stop()
    yield job, summary, page


def _samples(page: str) -> dict[str, list[Any]]:
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def test_metrics_count_what_the_run_reports(observed: tuple[JobSpec, dict[str, Any], str]) -> None:
    _, summary, page = observed
    samples = _samples(page)

    def total(name: str, **labels: str) -> float:
        return sum(s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))

    # MESSAGES: received, accepted, rejected by reason (all from the simulator source)
    assert total("veristream_messages_received_total") == summary["readings_in"] > 0
    assert total("veristream_messages_received_total", source="simulator") == summary["readings_in"]
    assert total("veristream_messages_accepted_total") == summary["accepted"] > 0
    by_reason: Counter[str] = Counter()
    for sample in samples["veristream_messages_rejected_total"]:
        by_reason[sample.labels["reason"]] += int(sample.value)
    assert dict(by_reason) == summary["rejected"] and summary["rejected"]
    # EPOCHS, COMMITTEE, CHAIN, CLAIMS
    rows = summary["epochs"]
    verified = [r for r in rows if r["verified"]]
    assert verified
    assert total("veristream_epochs_total", status="verified") == len(verified)
    assert total("veristream_epochs_total") == len(rows)
    assert total("veristream_submission_gas_count") == len(verified)
    assert total("veristream_submission_gas_sum") == sum(r["gas"] for r in verified)
    assert total("veristream_epoch_verify_lag_seconds_count") == len(verified)
    assert total("veristream_committee_latency_seconds_count") == len(verified)
    assert total("veristream_committee_signed_weight") == total("veristream_committee_total_weight") == 4
    assert total("veristream_claims_total") == len([c for c in summary["claims"] if c["tx_hash"]]) == 1
    assert total("veristream_claimed_amount_total") == pytest.approx(float(summary["claims"][0]["amount"]))
    assert total("veristream_ingest_log_bytes") > 0
    assert total("veristream_open_epochs") == 0  # a bounded replay closes every epoch it touched


def test_ingest_server_serves_metrics_counting_http_messages(tmp_path: Path) -> None:
    config = HttpSourceConfig(type="http", port=0)
    log = IngestLog(tmp_path / "ingest", 60_000, 60_000, max_payload_bytes=config.max_payload_bytes)
    committer = GroupCommitter(log)
    server = UvicornThread(create_app(committer, config)).start()
    try:
        assert httpx.get(f"{server.url}/metrics").status_code == 404  # no metrics registered here
        metrics = Metrics()
        metrics.watch_log(log)
        metrics.attach()
        try:
            headers = {"content-type": "application/json"}
            assert httpx.post(f"{server.url}/v1/readings", content=b"not json", headers=headers).status_code == 400
            assert httpx.post(f"{server.url}/v1/readings", content=b'{"x": 1}', headers=headers).status_code == 422
            response = httpx.get(f"{server.url}/metrics")
        finally:
            metrics.detach()
    finally:
        server.stop()
        committer.close()
        log.close()
    assert response.status_code == 200
    samples = _samples(response.text)
    received = {s.labels["source"]: s.value for s in samples["veristream_messages_received_total"]}
    assert received == {"http": 2}
    rejected = sum(s.value for s in samples["veristream_messages_rejected_total"] if s.labels["source"] == "http")
    assert rejected == 2 == log.counts()["rejected"]
    assert next(iter(samples["veristream_ingest_log_bytes"])).value > 0


def test_dashboard_in_headless_chromium_shows_the_runs_epochs(
    observed: tuple[JobSpec, dict[str, Any], str], tmp_path: Path
) -> None:
    job, summary, _ = observed
    assert shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER), "infra/setup.sh installs chromium and chromium-driver"
    expected = {row["epoch"]: row for row in inspect.list_epochs(job)}  # `veristream epochs --json`
    summary_rows = {row["epoch"]: row for row in summary["epochs"]}
    assert set(expected) == set(summary_rows)
    assert sum(row["accepted"] for row in expected.values()) == summary["accepted"]

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(flag)
    server = serve_dashboard(job, 0)
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        browser.get(f"{server.url}/")
        cells = [
            [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in browser.find_elements(By.CSS_SELECTOR, "#epochs tbody tr")
        ]
        shot = tmp_path / "dashboard.png"
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        assert len(browser.find_elements(By.CSS_SELECTOR, "svg")) >= 2  # dead letters + aggregates
        # ONE EPOCH'S DETAIL, through its link
        first = min(expected)
        browser.find_element(By.LINK_TEXT, str(first)).click()
        time.sleep(0.2)
        assert f"epoch {first}" in browser.find_element(By.TAG_NAME, "h1").text
    finally:
        browser.quit()
        server.stop()
    shown = {int(row[0]): row for row in cells}
    assert set(shown) == set(expected)
    for epoch, row in shown.items():
        want = expected[epoch]
        status = epoch_status(summary_rows[epoch], want["accepted"])
        assert (row[1], int(row[3]), int(row[4])) == (status, want["accepted"], want["rejected"]), epoch
        assert row[1] == want["status"]


def test_websocket_messages_are_counted_as_they_arrive(tmp_path: Path) -> None:
    config = HttpSourceConfig(type="http", port=0)
    log = IngestLog(tmp_path / "ingest", 60_000, 60_000, max_payload_bytes=config.max_payload_bytes)
    committer = GroupCommitter(log)
    server = UvicornThread(create_app(committer, config)).start()
    metrics = Metrics()
    metrics.attach()

    async def stream() -> None:
        async with websockets.connect(server.url.replace("http://", "ws://") + "/v1/stream") as ws:
            for body in (b"not json", b'{"x": 1}', b"[]"):
                await ws.send(body)
                await ws.recv()

    try:
        asyncio.run(stream())
        page = metrics.exposition()[0].decode()
    finally:
        metrics.detach()
        server.stop()
        committer.close()
        log.close()
    samples = _samples(page)
    received = {s.labels["source"]: s.value for s in samples["veristream_messages_received_total"]}
    assert received == {"ws": 3} and log.counts()["arrived"] == 3

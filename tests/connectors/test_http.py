"""HTTP ingest over real HTTP on loopback: 202/400/413/415/422/429, OpenAPI, and an overload from another process."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, free_port
from veristream.connectors.ingest_log import AppendResult, GroupCommitter, IngestLog
from veristream.connectors.sources.config import HttpSourceConfig
from veristream.connectors.sources.http import UvicornThread, create_app, openapi_document

DEVICE = "0x" + "cd" * 20


def envelope(seq: int, ts: int | None = None, payload: str = "0x0102") -> bytes:
    return json.dumps(
        {
            "device_id": DEVICE,
            "seq": seq,
            "timestamp_ms": ts if ts is not None else time.time_ns() // 1_000_000,
            "payload": payload,
            "signature": "0x" + "22" * 65,
            "scheme": "secp256k1",
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


class Server:
    def __init__(
        self, directory: Path, config: HttpSourceConfig, log: IngestLog | None = None
    ) -> None:
        self.log = log or IngestLog(
            directory, 60_000, 60_000, max_payload_bytes=config.max_payload_bytes
        )
        self.committer = GroupCommitter(self.log, max_pending=config.max_pending)
        self.thread = UvicornThread(create_app(self.committer, config), port=free_port()).start()
        self.url = self.thread.url

    def stop(self) -> None:
        self.thread.stop()
        self.committer.close()
        self.log.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(
        tmp_path, HttpSourceConfig(max_body_bytes=64 * 1024, max_batch=50, max_payload_bytes=256)
    )
    yield srv
    srv.stop()


def post(url: str, body: bytes, content_type: str = "application/json") -> httpx.Response:
    return httpx.post(f"{url}/v1/readings", content=body, headers={"content-type": content_type})


def test_single_array_and_ndjson_bodies_are_accepted(server: Server) -> None:
    one = post(server.url, envelope(1))
    assert one.status_code == 202
    assert one.json() == {"accepted": 1, "rejected": []}
    batch = post(server.url, json.dumps([json.loads(envelope(i)) for i in range(2, 12)]).encode())
    assert batch.status_code == 202
    assert batch.json()["accepted"] == 10
    lines = b"\n".join(envelope(i) for i in range(12, 20)) + b"\n\n"
    nd = post(server.url, lines, "application/x-ndjson")
    assert nd.status_code == 202
    assert nd.json()["accepted"] == 8
    counts = server.log.counts()
    assert counts["appended"] == 19 and counts["rejected"] == 0


def test_a_batch_reports_each_rejection_by_index_and_field(server: Server) -> None:
    items = [json.loads(envelope(1)), {"seq": 2}, json.loads(envelope(3, payload="0xzz")), 5]
    response = post(server.url, json.dumps(items).encode())
    assert response.status_code == 202
    data = response.json()
    assert data["accepted"] == 1
    assert [(r["index"], r["field"], r["code"]) for r in data["rejected"]] == [
        (1, "device_id", "missing"),
        (2, "payload", "not_hex"),
        (3, "envelope", "wrong_type"),
    ]
    assert server.log.counts()["rejected_by_reason"] == {"malformed": 3}


@pytest.mark.parametrize(
    ("body", "status", "field", "reason"),
    [
        (b"{this is not json", 400, "envelope", "not_json"),
        (b"[1, 2", 400, "body", "not_json"),
        (b'{"seq": 1}', 422, "device_id", "missing"),
        (envelope(1).replace(b'"seq":1', b'"seq":"one"'), 422, "seq", "wrong_type"),
        (envelope(1, payload="0x" + "00" * 257), 413, "payload", "too_large"),
    ],
)
def test_a_bad_single_envelope_is_answered_with_its_field_and_kept(
    server: Server, body: bytes, status: int, field: str, reason: str
) -> None:
    response = post(server.url, body)
    assert response.status_code == status
    assert response.json()["error"]["field"] == field
    assert response.json()["error"]["reason"] == reason
    # It arrived, so it is a dead letter: accepted + rejected == arrived.
    letters = server.log.dead_letters.read()
    assert [d.raw for d in letters] == [body]
    assert letters[0].reason == ("oversized" if status == 413 else "malformed")
    assert server.log.counts()["arrived"] == 1


def test_refusals_before_reading_are_not_logged(server: Server) -> None:
    too_big = post(server.url, b"[" + b" " * (64 * 1024) + b"]")
    assert too_big.status_code == 413
    assert too_big.json()["error"] == {
        "field": "body",
        "reason": "too_large",
        "message": too_big.json()["error"]["message"],
    }
    too_many = post(server.url, b"\n".join(envelope(i) for i in range(51)), "application/x-ndjson")
    assert too_many.status_code == 413
    assert too_many.json()["error"]["reason"] == "too_many"
    wrong_type = post(server.url, envelope(1), "text/plain")
    assert wrong_type.status_code == 415
    assert server.log.counts()["arrived"] == 0


def test_late_single_envelope_is_202_with_the_reason(server: Server) -> None:
    post(server.url, envelope(1))
    response = post(server.url, envelope(2, ts=1000))
    assert response.status_code == 202
    assert response.json()["accepted"] == 0
    assert response.json()["rejected"][0]["reason"] == "late"


def test_openapi_describes_the_endpoint(server: Server) -> None:
    doc = httpx.get(f"{server.url}/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    post_op = doc["paths"]["/v1/readings"]["post"]
    assert {"202", "400", "413", "422", "429"} <= set(post_op["responses"])
    envelope_schema = doc["components"]["schemas"]["Envelope"]
    assert set(envelope_schema["required"]) == {
        "device_id",
        "seq",
        "timestamp_ms",
        "payload",
        "signature",
    }
    assert doc == openapi_document(
        HttpSourceConfig(max_body_bytes=64 * 1024, max_batch=50, max_payload_bytes=256)
    )
    health = httpx.get(f"{server.url}/healthz").json()
    assert health["status"] == "ok"


class SlowLog(IngestLog):
    """A log on a slow disk: each group commit takes a few milliseconds more."""

    def append_batch(self, items: Sequence[tuple[bytes, str, int]]) -> list[AppendResult]:
        time.sleep(0.004)
        return super().append_batch(items)


LOAD = r"""
import json, sys, threading, time, httpx
url, senders, requests_each, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
accepted, statuses, lock = [], {}, threading.Lock()
def sender(s):
    with httpx.Client(timeout=30) as client:
        for r in range(requests_each):
            seqs = [(s * requests_each + r) * batch + k for k in range(batch)]
            body = b"\n".join(json.dumps({"device_id": "0x" + "cd" * 20, "seq": q, "timestamp_ms": time.time_ns() // 1_000_000,
                   "payload": "0x01", "signature": "0x" + "22" * 65}).encode() for q in seqs)
            resp = client.post(url + "/v1/readings", content=body, headers={"content-type": "application/x-ndjson"})
            with lock:
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
                if resp.status_code == 202:
                    assert resp.json()["accepted"] == batch
                    accepted.extend(seqs)
                elif resp.status_code == 429:
                    assert resp.headers["retry-after"] == "1"
threads = [threading.Thread(target=sender, args=(s,)) for s in range(senders)]
[t.start() for t in threads]; [t.join() for t in threads]
print(json.dumps({"statuses": statuses, "accepted": accepted}))
"""


@pytest.mark.slow
def test_overload_from_another_process_gets_429_and_loses_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    config = HttpSourceConfig(max_pending=100, max_in_flight_requests=4, max_batch=50)
    server = Server(tmp_path, config, SlowLog(tmp_path, 60_000, 60_000))
    peak = {"pending": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["pending"] = max(peak["pending"], server.committer.pending)
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        load = subprocess.run(
            [sys.executable, "-c", LOAD, server.url, "16", "15", "25"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO,
        )
    finally:
        stop.set()
        sampler.join()
    assert load.returncode == 0, load.stderr
    result: dict[str, Any] = json.loads(load.stdout)
    statuses = {int(k): v for k, v in result["statuses"].items()}
    assert set(statuses) <= {202, 429}
    assert statuses.get(429, 0) > 0, statuses
    assert statuses.get(202, 0) > 0, statuses
    # Bounded: never more waiting than the queue bound plus one request's batch.
    assert peak["pending"] <= config.max_pending + config.max_batch
    server.log.advance_clock(time.time_ns() // 1_000_000 + 10**7)
    logged = [
        json.loads(r)["seq"] for e in server.log.closed_epochs() for r in server.log.read_epoch(e)
    ]
    # Everything answered 202 is in the log, once; nothing refused with 429 is.
    assert sorted(logged) == sorted(result["accepted"])
    server.stop()


class FullDiskLog(IngestLog):
    """A log whose disk is full."""

    def append_batch(self, items: Sequence[tuple[bytes, str, int]]) -> list[AppendResult]:
        raise OSError(28, "No space left on device")


def test_a_log_that_cannot_write_answers_503_not_202(tmp_path: Path) -> None:
    config = HttpSourceConfig()
    server = Server(tmp_path, config, FullDiskLog(tmp_path, 60_000, 60_000))
    try:
        response = post(server.url, envelope(1))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"]["reason"] == "log_unavailable"
    finally:
        server.stop()


def test_a_sender_leaving_mid_body_logs_nothing_and_the_server_goes_on(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    body = envelope(1)
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(
            b"POST /v1/readings HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + b"content-length: %d\r\n\r\n" % (len(body) + 100)
            + body
        )
        time.sleep(0.2)
    time.sleep(0.3)
    assert server.log.counts()["arrived"] == 0
    assert post(server.url, envelope(2)).status_code == 202
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text

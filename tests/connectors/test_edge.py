"""The ingest edge under abuse, over real loopback servers: tokens, TLS and mutual TLS, rate limits.

HTTP through httpx and WebSocket through websockets, against ``serve`` and the
stand-alone WebSocket app; each test stops what it started.
"""

from __future__ import annotations

import json
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import free_port
from tests.mosquitto import BrokerCa, issue_client_certificate, make_test_ca
from veristream.connectors.auth import token_digest
from veristream.connectors.ingest_log import GroupCommitter, IngestLog
from veristream.connectors.sources.config import (
    HttpSourceConfig,
    MqttSourceConfig,
    WebSocketSourceConfig,
)
from veristream.connectors.sources.gate import uvicorn_tls_options
from veristream.connectors.sources.http import UvicornThread, serve
from veristream.connectors.sources.websocket import create_app
from veristream.pipeline.jobspec import JobSpecError, parse_job
from veristream.provers.errors import SpecError

TOKEN = "device-fleet-token-1"


def envelope(seq: int, device: str = "0x" + "cd" * 20) -> bytes:
    return json.dumps(
        {
            "device_id": device,
            "seq": seq,
            "timestamp_ms": time.time_ns() // 1_000_000,
            "payload": "0x0102",
            "signature": "0x" + "22" * 65,
        }
    ).encode()


def logged_sources(log: IngestLog) -> list[str]:
    log.advance_clock(time.time_ns() // 1_000_000 + 10**9)
    return [r.source for e in log.closed_epochs() for r in log.read_records(e)]


class Edge:
    """A log, a committer and the HTTP source (with its /v1/stream) served on a free port."""

    def __init__(self, directory: Path, **settings: Any) -> None:
        self.log = IngestLog(directory / "log", 60_000, 60_000)
        self.committer = GroupCommitter(self.log)
        self.config = HttpSourceConfig.model_validate({"port": free_port(), **settings})
        self.server = serve(self.committer, self.config)
        self.url = self.server.url
        self.gate = self.server.server.config.app.state.gate

    def stop(self) -> None:
        self.server.stop()
        self.committer.close()
        self.log.close()


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"# fleet tokens\n{token_digest(TOKEN)}\n")
    return path


@pytest.fixture
def ca(tmp_path: Path) -> BrokerCa:
    return make_test_ca(tmp_path / "tls")


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", "content-type": "application/json"}


def test_RevertWhen_UnauthenticatedPostIsLogged(tmp_path: Path, tokens_file: Path) -> None:
    edge = Edge(tmp_path, auth={"tokens_file": str(tokens_file)})
    try:
        with httpx.Client(base_url=edge.url) as client:
            for headers in ({}, bearer("guessed"), {"authorization": "Basic eDp5"}):
                response = client.post("/v1/readings", content=b"x" * 1000, headers=headers)
                assert response.status_code == 401
                assert response.headers["www-authenticate"] == "Bearer"
            assert edge.log.counts()["arrived"] == 0  # refused unread: nothing on disk
            assert edge.gate.counters.snapshot() == {"unauthenticated": 3}
            assert client.post("/v1/readings", content=envelope(1), headers=bearer(TOKEN)).status_code == 202
            # the file is read again when it changes: a new token works, the old one is revoked
            time.sleep(0.01)
            tokens_file.write_text(token_digest("rotated") + "\n")
            assert client.post("/v1/readings", content=envelope(2), headers=bearer(TOKEN)).status_code == 401
            assert client.post("/v1/readings", content=envelope(3), headers=bearer("rotated")).status_code == 202
            # a file that is not digests admits nobody rather than everybody
            tokens_file.write_text("rotated\n")
            assert client.post("/v1/readings", content=envelope(4), headers=bearer("rotated")).status_code == 401
        assert edge.log.counts()["arrived"] == 2
    finally:
        edge.stop()


def test_RevertWhen_UnauthenticatedWebSocketStreams(tmp_path: Path, tokens_file: Path) -> None:
    edge = Edge(tmp_path, auth={"tokens_file": str(tokens_file)})
    ws_url = edge.url.replace("http", "ws") + "/v1/stream"
    try:
        with pytest.raises(InvalidStatus) as refused, connect(ws_url, open_timeout=5):
            pass
        assert refused.value.response.status_code == 401
        with connect(ws_url, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            ws.send(envelope(1).decode())
            assert json.loads(ws.recv(timeout=5))["accepted"] is True
        assert edge.log.counts()["arrived"] == 1
        assert edge.gate.counters.snapshot() == {"unauthenticated": 1}
    finally:
        edge.stop()


def test_RevertWhen_OneDeviceFloodsPastItsRate(tmp_path: Path) -> None:
    edge = Edge(tmp_path, limits={"per_device_per_s": 2, "burst": 5})
    flooder, other = "0x" + "aa" * 20, "0x" + "bb" * 20
    try:
        statuses: list[int] = []
        with httpx.Client(base_url=edge.url) as client:
            for seq in range(20):
                response = client.post("/v1/readings", content=envelope(seq, flooder))
                statuses.append(response.status_code)
                if response.status_code == 429:
                    assert int(response.headers["retry-after"]) >= 1
                    assert response.json()["error"]["reason"] == "rate_limited"
            # another device is not held back by the flood
            assert client.post("/v1/readings", content=envelope(0, other)).status_code == 202
            # a batch is all or none: one device over its rate refuses the whole request, unread
            batch = b"\n".join([envelope(100, flooder), envelope(1, other)])
            response = client.post(
                "/v1/readings", content=batch, headers={"content-type": "application/x-ndjson"}
            )
            assert response.status_code == 429
        accepted = statuses.count(202)
        assert 5 <= accepted <= 7 and statuses.count(429) == 20 - accepted
        counts = edge.log.counts()
        assert counts["arrived"] == accepted + 1  # refused messages never reached the log
        assert edge.gate.counters.snapshot() == {"rate_limited": 20 - accepted + 2}
    finally:
        edge.stop()


def test_RevertWhen_OneAddressFloodsPastItsRate(tmp_path: Path) -> None:
    edge = Edge(tmp_path, limits={"per_address_per_s": 1, "per_address_burst": 3})
    try:
        with httpx.Client(base_url=edge.url) as client:
            codes = [
                client.post("/v1/readings", content=b"junk that is never read").status_code
                for _ in range(10)
            ]
        assert codes[:3] == [400, 400, 400] and set(codes[3:]) <= {400, 429}
        assert codes.count(429) >= 6
        assert edge.log.counts()["arrived"] == codes.count(400)
    finally:
        edge.stop()


def test_RevertWhen_WebSocketFloodIsLogged(tmp_path: Path) -> None:
    """Per connection and per device over the stream: refused in order, not logged, counted."""
    log = IngestLog(tmp_path / "log", 60_000, 60_000)
    committer = GroupCommitter(log)
    config = WebSocketSourceConfig.model_validate(
        {"limits": {"per_device_per_s": 1, "burst": 3, "max_connections_per_address": 1}}
    )
    app = create_app(committer, config)
    server = UvicornThread(app, port=free_port()).start()
    url = f"ws://127.0.0.1:{server.port}{config.path}"
    try:
        with connect(url) as ws:
            for seq in range(10):
                ws.send(envelope(seq).decode())
            acks = [json.loads(ws.recv(timeout=5)) for _ in range(10)]
            assert [a["n"] for a in acks] == list(range(1, 11))
            assert [a["accepted"] for a in acks[:3]] == [True] * 3
            refused = [a for a in acks if not a["accepted"]]
            assert len(refused) >= 6
            assert all(a["reason"] == "rate_limited" and a["retry_after_s"] >= 1 for a in refused)
            # a second connection from the same address is refused at the handshake
            with pytest.raises(InvalidStatus) as second, connect(url, open_timeout=5):
                pass
            assert second.value.response.status_code == 429
        assert log.counts()["arrived"] == 10 - len(refused)
        assert app.state.gate.counters.snapshot() == {
            "rate_limited": len(refused),
            "too_many_connections": 1,
        }
    finally:
        server.stop()
        committer.close()
        log.close()


def test_tls_with_the_test_ca(tmp_path: Path, ca: BrokerCa) -> None:
    edge = Edge(tmp_path, tls={"cert_file": str(ca.cert_file), "key_file": str(ca.key_file)})
    try:
        assert edge.url.startswith("https://")
        with httpx.Client(base_url=edge.url, verify=ssl.create_default_context(cafile=ca.ca_file)) as client:
            assert client.post("/v1/readings", content=envelope(1)).status_code == 202
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA
            httpx.post(f"{edge.url}/v1/readings", content=envelope(2))
        assert edge.log.counts()["arrived"] == 1
    finally:
        edge.stop()


def test_RevertWhen_ClientWithoutCertificateSends(tmp_path: Path, ca: BrokerCa) -> None:
    """Mutual TLS: no certificate (or one from another CA) fails the handshake; the subject is recorded."""
    edge = Edge(
        tmp_path,
        tls={
            "cert_file": str(ca.cert_file),
            "key_file": str(ca.key_file),
            "client_ca_file": str(ca.ca_file),
        },
    )
    cert, key = issue_client_certificate(ca, tmp_path / "clients", "station-7")
    stranger_ca = make_test_ca(tmp_path / "stranger")
    stranger = issue_client_certificate(stranger_ca, tmp_path / "stranger-clients", "station-7")
    try:
        anonymous = ssl.create_default_context(cafile=ca.ca_file)
        refused = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)
        with pytest.raises(refused), httpx.Client(verify=anonymous) as client:
            client.post(f"{edge.url}/v1/readings", content=envelope(1))
        forged = ssl.create_default_context(cafile=ca.ca_file)
        forged.load_cert_chain(*stranger)
        with pytest.raises(refused), httpx.Client(verify=forged) as client:
            client.post(f"{edge.url}/v1/readings", content=envelope(2))
        assert edge.log.counts()["arrived"] == 0
        mutual = ssl.create_default_context(cafile=ca.ca_file)
        mutual.load_cert_chain(cert, key)
        with httpx.Client(verify=mutual) as client:
            assert client.post(f"{edge.url}/v1/readings", content=envelope(3)).status_code == 202
        ws_url = edge.url.replace("https", "wss") + "/v1/stream"
        with connect(ws_url, ssl=mutual) as ws:
            ws.send(envelope(4).decode())
            assert json.loads(ws.recv(timeout=5))["accepted"] is True
        sources = logged_sources(edge.log)
        assert sources == [
            "http:127.0.0.1|O=VeriStream test fleet,CN=station-7",
            sources[1],
        ]
        assert sources[1].startswith("ws:127.0.0.1:")
        assert sources[1].endswith("|O=VeriStream test fleet,CN=station-7")
    finally:
        edge.stop()


def test_stand_alone_websocket_source_serves_tls(tmp_path: Path, ca: BrokerCa) -> None:
    log = IngestLog(tmp_path / "log", 60_000, 60_000)
    committer = GroupCommitter(log)
    config = WebSocketSourceConfig.model_validate(
        {"tls": {"cert_file": str(ca.cert_file), "key_file": str(ca.key_file)}}
    )
    app = create_app(committer, config)
    server = UvicornThread(
        app, port=free_port(), **uvicorn_tls_options(config.tls, app.state.gate.subjects)
    ).start()
    try:
        trusting = ssl.create_default_context(cafile=ca.ca_file)
        with connect(f"wss://127.0.0.1:{server.port}{config.path}", ssl=trusting) as ws:
            ws.send(envelope(1).decode())
            assert json.loads(ws.recv(timeout=5))["accepted"] is True
        assert log.counts()["arrived"] == 1
    finally:
        server.stop()
        committer.close()
        log.close()


def test_limits_config_is_checked() -> None:
    with pytest.raises((SpecError, ValueError), match="per_address_per_s"):
        MqttSourceConfig.model_validate({"limits": {"per_address_per_s": 5}})
    with pytest.raises((SpecError, ValueError), match=r"needs limits\.per_device_per_s"):
        HttpSourceConfig.model_validate({"limits": {"burst": 5}})


def test_job_spec_sources_follow_validation_and_resolve_their_files(repo: Path) -> None:
    job = yaml.safe_load((repo / "examples" / "weather.yaml").read_text())
    job["validation"]["max_payload_bytes"] = 1024
    job["sources"] = [
        {
            "type": "http",
            "auth": {"tokens_file": "tokens"},
            "tls": {"cert_file": "s.pem", "key_file": "/k/s.key"},
        },
        {"type": "mqtt", "limits": {"per_device_per_s": 2}},
    ]
    spec = parse_job(job, "job", Path("/jobs"))
    http, mqtt = spec.sources
    assert (http.max_payload_bytes, mqtt.max_payload_bytes) == (1024, 1024)
    assert isinstance(http, HttpSourceConfig) and http.tls is not None
    assert http.auth.tokens_file == Path("/jobs/tokens")
    assert (http.tls.cert_file, http.tls.key_file) == (Path("/jobs/s.pem"), Path("/k/s.key"))
    # a source's own limit may not contradict the job's
    job["sources"] = [{"type": "http", "max_payload_bytes": 4096}]
    with pytest.raises(JobSpecError, match=r"contradicts validation\.max_payload_bytes"):
        parse_job(job, "job", Path("/jobs"))

"""WebSocket stream over real loopback: per-message acks, in order, only after the durable append."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from websockets.sync.client import connect

from tests.conftest import free_port
from veristream.connectors.ingest_log import AppendResult, GroupCommitter, IngestLog
from veristream.connectors.simulator import simulate
from veristream.connectors.sources.config import (
    FAULTS,
    SimulatorSourceConfig,
    WebSocketSourceConfig,
)
from veristream.connectors.sources.http import UvicornThread
from veristream.connectors.sources.websocket import create_app, send_messages

DEVICE = "0x" + "ef" * 20


def envelope(seq: int) -> bytes:
    return json.dumps(
        {
            "device_id": DEVICE,
            "seq": seq,
            "timestamp_ms": time.time_ns() // 1_000_000,
            "payload": "0xaa",
            "signature": "0x" + "33" * 64,
            "scheme": "ed25519",
        }
    ).encode()


class GatedLog(IngestLog):
    """A log whose appends wait for a gate: stands for a disk that has not finished the fsync."""

    gate = threading.Event()

    def append_batch(self, items: Sequence[tuple[bytes, str, int]]) -> list[AppendResult]:
        self.gate.wait()
        return super().append_batch(items)


def _serve(log: IngestLog) -> tuple[UvicornThread, GroupCommitter, str]:
    committer = GroupCommitter(log)
    config = WebSocketSourceConfig(port=free_port())
    server = UvicornThread(create_app(committer, config), port=config.port).start()
    return server, committer, f"ws://127.0.0.1:{server.port}{config.path}"


def test_every_message_is_acknowledged_in_order_with_its_outcome(tmp_path: Path) -> None:
    log = IngestLog(tmp_path, 60_000, 60_000)
    server, committer, url = _serve(log)
    try:
        raws = [envelope(i) for i in range(500)]
        raws[10] = b"{broken"
        raws[20] = envelope(20).replace(b'"seq": 20', b'"seq": -1')
        acks = send_messages(url, raws, window=64)
        assert [a["n"] for a in acks] == list(range(1, 501))
        assert [i for i, a in enumerate(acks) if not a["accepted"]] == [10, 20]
        assert (acks[10]["reason"], acks[10]["field"], acks[10]["code"]) == (
            "malformed",
            "envelope",
            "not_json",
        )
        assert (acks[20]["field"], acks[20]["code"]) == ("seq", "out_of_range")
        counts = log.counts()
        assert (counts["arrived"], counts["appended"], counts["rejected"]) == (500, 498, 2)
        # Binary frames carry envelopes too.
        with connect(url) as ws:
            ws.send(envelope(1000))
            assert json.loads(ws.recv(timeout=10))["accepted"] is True
    finally:
        server.stop()
        committer.close()


def test_no_ack_before_the_append_is_durable(tmp_path: Path) -> None:
    GatedLog.gate.clear()
    log = GatedLog(tmp_path, 60_000, 60_000)
    server, committer, url = _serve(log)
    try:
        with connect(url) as ws:
            ws.send(envelope(1).decode())
            ws.send(envelope(2).decode())
            try:
                early = ws.recv(timeout=0.5)
            except TimeoutError:
                early = None
            assert early is None, "acknowledged before the log append completed"
            assert log.counts()["arrived"] == 0
            GatedLog.gate.set()
            acks = [json.loads(ws.recv(timeout=10)) for _ in range(2)]
        assert [a["n"] for a in acks] == [1, 2] and all(a["accepted"] for a in acks)
        assert log.counts()["appended"] == 2
    finally:
        GatedLog.gate.set()
        server.stop()
        committer.close()


def test_every_simulated_fault_over_websocket_gets_a_clear_ack(tmp_path: Path) -> None:
    sim = simulate(
        SimulatorSourceConfig(seed=8, count=100, faults=list(FAULTS)),
        start_ms=time.time_ns() // 1_000_000,
    )
    # as a job opens it: readings stamped further ahead than the allowed skew are refused here
    log = IngestLog(tmp_path, 60_000, 60_000, max_clock_skew_ms=60_000)
    server, committer, url = _serve(log)
    try:
        acks = send_messages(url, [m.raw for m in sim.messages])
    finally:
        server.stop()
        committer.close()
    for m, ack in zip(sim.messages, acks, strict=True):
        if m.stage == "ingest":
            assert (ack["accepted"], ack["reason"]) == (False, m.reason)
            fields = {"oversized": "payload", "clock_skew": "timestamp_ms"}
            assert ack["field"] == fields.get(m.reason, "envelope")
        else:
            assert ack["accepted"], (m.kind, ack)
    assert log.counts()["arrived"] == len(sim.messages)

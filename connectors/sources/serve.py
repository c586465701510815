"""Serve a job's live sources (MQTT, HTTP, WebSocket, file replay) into its ingest log.

``serve_sources`` starts every source on one group committer, advances the
log's wall-clock watermark every tick so idle streams still close their epochs,
and stops cleanly (sources first, then the committer, so every message that
was acknowledged is in the log). What sources refused before the log
(``rate_limited``, ``unauthenticated``, ...) is reported beside the log's
counts, under ``refused``, per endpoint. ``veristream ingest JOB.yaml`` runs it; a
pipeline in another process reads the same log with ``IngestLog(read_only=True)``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from veristream.connectors.ingest_log import GroupCommitter, IngestLog
from veristream.connectors.sources.config import (
    FileSourceConfig,
    HttpSourceConfig,
    MqttSourceConfig,
    SimulatorSourceConfig,
    WebSocketSourceConfig,
)
from veristream.provers.errors import InputRejected


@dataclass
class Running:
    """The started sources and how to stop them."""

    stops: list[Callable[[], None]] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)
    refused: dict[str, Callable[[], dict[str, int]]] = field(default_factory=dict)

    def refusals(self) -> dict[str, dict[str, int]]:
        """Endpoint -> what its source refused before the log, by reason."""
        return {endpoint: counters() for endpoint, counters in self.refused.items()}


def start_sources(
    sources: Sequence[Any], committer: GroupCommitter, stop: threading.Event
) -> Running:
    """Start each source; a simulator is refused (send it with ``veristream simulate --to``)."""
    running = Running()
    try:
        for source in sources:
            if isinstance(source, MqttSourceConfig):
                from veristream.connectors.sources.mqtt import MqttSource

                mqtt_source = MqttSource(source, committer).start()
                running.stops.append(mqtt_source.stop)
                endpoint = f"mqtt://{source.host}:{source.port} {','.join(source.topics)}"
                running.endpoints.append(endpoint)
                running.refused[endpoint] = mqtt_source.counters.snapshot
            elif isinstance(source, HttpSourceConfig):
                from veristream.connectors.sources.http import serve

                server = serve(committer, source)
                running.stops.append(server.stop)
                endpoint = f"{server.url}/v1/readings (+ /v1/stream)"
                running.endpoints.append(endpoint)
                running.refused[endpoint] = server.server.config.app.state.gate.counters.snapshot
            elif isinstance(source, WebSocketSourceConfig):
                from veristream.connectors.sources.gate import uvicorn_tls_options
                from veristream.connectors.sources.http import UvicornThread
                from veristream.connectors.sources.websocket import create_app

                ws_app = create_app(committer, source)
                ws_server = UvicornThread(
                    ws_app,
                    source.host,
                    source.port,
                    **uvicorn_tls_options(source.tls, ws_app.state.gate.subjects),
                ).start()
                running.stops.append(ws_server.stop)
                scheme = "wss" if source.tls is not None else "ws"
                endpoint = f"{scheme}://{source.host}:{ws_server.port}{source.path}"
                running.endpoints.append(endpoint)
                running.refused[endpoint] = ws_app.state.gate.counters.snapshot
            elif isinstance(source, FileSourceConfig):
                running.stops.append(_start_replay(source, committer, stop))
                running.endpoints.append(f"file:{source.path}")
            elif isinstance(source, SimulatorSourceConfig):
                raise InputRejected(
                    "a simulator is not a live source: send it with `veristream simulate --to http|mqtt|ws`"
                )
    except BaseException:
        for stop_one in reversed(running.stops):
            stop_one()
        raise
    return running


def _start_replay(
    source: FileSourceConfig, committer: GroupCommitter, stop: threading.Event
) -> Callable[[], None]:
    from veristream.connectors.sources import replay

    messages = replay.load(source.path, source.format)
    name = f"file:{source.path.name}"

    def sink(batch: Sequence[tuple[int, bytes]]) -> None:
        if stop.is_set():
            raise _Stopped
        now = time.time_ns() // 1_000_000
        committer.append([(raw, name, now) for _, raw in batch])

    def run() -> None:
        with contextlib.suppress(_Stopped):
            replay.replay(messages, sink, speed=source.speed)

    thread = threading.Thread(target=run, name=f"replay-{source.path.name}", daemon=True)
    thread.start()
    return lambda: thread.join(timeout=30)


class _Stopped(Exception):
    pass


def serve_sources(
    log: IngestLog,
    sources: Sequence[Any],
    *,
    duration_s: float | None = None,
    tick_s: float = 1.0,
    wall_clock: bool = True,
    stop: threading.Event | None = None,
    on_tick: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[list[str]], None] | None = None,
) -> dict[str, Any]:
    """Run the sources until ``stop`` is set or ``duration_s`` passes; returns the log's counts.

    With any source refusing before the log (auth or limits configured), the
    counts carry ``refused``: endpoint -> reason -> messages (requests for
    HTTP refusals made before the body is read).
    """
    stop = stop or threading.Event()
    committer = GroupCommitter(log)
    refusals: dict[str, dict[str, int]] = {}
    try:
        running = start_sources(sources, committer, stop)
        if on_start is not None:
            on_start(running.endpoints)
        deadline = None if duration_s is None else time.monotonic() + duration_s
        try:
            while not stop.is_set():
                timeout = tick_s if deadline is None else min(tick_s, deadline - time.monotonic())
                if timeout <= 0 or stop.wait(timeout):
                    break
                if wall_clock:
                    log.advance_clock(time.time_ns() // 1_000_000)
                if on_tick is not None:
                    on_tick(log.counts())
        finally:
            stop.set()
            for stop_one in reversed(running.stops):
                stop_one()
            refusals = running.refusals()
    finally:
        committer.close()
    counts = log.counts()
    if any(refusals.values()) or any(_gated(source) for source in sources):
        counts["refused"] = refusals
    return counts


def _gated(source: Any) -> bool:
    """Whether a source may refuse messages before the log (auth or limits set)."""
    auth = getattr(source, "auth", None)
    limits = getattr(source, "limits", None)
    has_auth = auth is not None and auth.tokens_file is not None
    has_limits = limits is not None and limits.model_dump(exclude_defaults=True) != {}
    return has_auth or has_limits

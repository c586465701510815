"""Prometheus metrics of a VeriStream process: ingest, epochs, committee, chain, claims.

One ``Metrics`` object per process holds every metric on its own registry.
``veristream ingest`` attaches it to the ingest server (``/metrics`` on the HTTP
source's port); ``veristream run --metrics-port P`` serves it on ``P`` as well.
The run loop reports to it at four points: messages appended to the ingest
log (by source kind, through ``connectors.observe`` for live sources), each
epoch computed (readings accepted and rejected by reason and source kind),
each epoch settled (committee latency and weight, gas, lag from the epoch's end
to its verification), and each claim. Gauges (ingest log bytes, open epochs)
are read from the log when scraped.

Counters start at zero with the process: they count what this process did,
which for a run from an empty work directory is what ``run --json`` reports.
"""

from __future__ import annotations

import time
from collections import Counter as Multiset
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from veristream.connectors import observe
from veristream.connectors.ingest_log import AppendResult, IngestLog, LogRecord, source_kind
from veristream.pipeline.manifest import Manifest
from veristream.pipeline.records import Rejected
from veristream.provers.aggregation import Aggregate

NAMESPACE = "veristream"
# Event-time lag and committee latency: sub-second in the embedded demo, minutes on a real chain.
SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, float("inf"))
GAS_BUCKETS = (50_000, 100_000, 200_000, 300_000, 500_000, 1_000_000, 2_000_000, float("inf"))


class Metrics:
    """Every VeriStream metric, registered on ``registry`` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "messages_received", "Messages that reached the ingest log, by source kind.",
            ["source"], namespace=NAMESPACE, registry=r,
        )
        self.accepted = Counter(
            "messages_accepted", "Readings accepted into an epoch's batch, by source kind.",
            ["source"], namespace=NAMESPACE, registry=r,
        )
        self.rejected = Counter(
            "messages_rejected", "Messages filed as dead letters (at ingest or in the pipeline), by reason and source kind.",
            ["reason", "source"], namespace=NAMESPACE, registry=r,
        )
        self.epochs = Counter(
            "epochs", "Epochs settled by this process, by status (verified, empty, refused, pending).",
            ["status"], namespace=NAMESPACE, registry=r,
        )
        self.ingest_log_bytes = Gauge(
            "ingest_log_bytes", "Bytes on disk in the ingest log directory (segments, dead letters, state).",
            namespace=NAMESPACE, registry=r,
        )
        self.open_epochs = Gauge(
            "open_epochs", "Epochs of the ingest log still open (their end plus lateness not yet passed).",
            namespace=NAMESPACE, registry=r,
        )
        self.verify_lag = Histogram(
            "epoch_verify_lag_seconds", "Wall time from an epoch's end (event time) to its verification on chain.",
            namespace=NAMESPACE, registry=r, buckets=SECONDS_BUCKETS,
        )
        self.committee_latency = Histogram(
            "committee_latency_seconds", "Time the committee took to sign an epoch (propose to aggregate).",
            namespace=NAMESPACE, registry=r, buckets=SECONDS_BUCKETS,
        )
        self.signed_weight = Gauge(
            "committee_signed_weight", "Operator weight that signed the latest epoch.",
            namespace=NAMESPACE, registry=r,
        )
        self.total_weight = Gauge(
            "committee_total_weight", "Total operator weight of the committee at the latest epoch.",
            namespace=NAMESPACE, registry=r,
        )
        self.gas = Histogram(
            "submission_gas", "Gas used by each epoch submission to the EpochVerifier.",
            namespace=NAMESPACE, registry=r, buckets=GAS_BUCKETS,
        )
        self.claims = Counter(
            "claims", "Reward claims sent on chain (a claim of nothing due is not counted).",
            namespace=NAMESPACE, registry=r,
        )
        self.claimed = Counter(
            "claimed_amount", "Reward token base units claimed (a float: approximate past 2^53).",
            namespace=NAMESPACE, registry=r,
        )
        self._log: IngestLog | None = None
        self.ingest_log_bytes.set_function(self._log_bytes)
        self.open_epochs.set_function(self._open_epochs)

    # --- exposition -----------------------------------------------------------
    def exposition(self) -> tuple[bytes, str]:
        """The metrics page in Prometheus' text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def attach(self) -> None:
        """Count what live sources append and serve this page on the ingest server's ``/metrics``."""
        observe.add_observer(self.ingested)
        observe.set_exposition(self.exposition)

    def detach(self) -> None:
        """Undo ``attach``."""
        observe.remove_observer(self.ingested)
        observe.set_exposition(None)

    # --- ingest ---------------------------------------------------------------
    def watch_log(self, log: IngestLog) -> None:
        """Read the log's size and open epochs when scraped."""
        self._log = log

    def _log_bytes(self) -> float:
        if self._log is None:
            return 0.0
        return float(sum(p.stat().st_size for p in Path(self._log.directory).rglob("*") if p.is_file()))

    def _open_epochs(self) -> float:
        return 0.0 if self._log is None else float(len(self._log.open_epochs()))

    def ingested(self, source: str, results: Sequence[AppendResult]) -> None:
        """Messages of one source appended to the log: received, and those the log rejected."""
        kind = source_kind(source)
        self.received.labels(kind).inc(len(results))
        for result in results:
            if not result.accepted:
                self.rejected.labels(result.reason or "unknown", kind).inc()

    def ingested_batch(self, items: Iterable[tuple[bytes, str, int]], results: Sequence[AppendResult]) -> None:
        """``IngestLog.append_batch``'s items and answers (sources may differ within a batch)."""
        for (_, source, _), result in zip(items, results, strict=True):
            self.ingested(source, [result])

    # --- epochs ---------------------------------------------------------------
    def computed(self, records: Sequence[LogRecord], dead: Sequence[Rejected]) -> None:
        """An epoch through the pipeline: each appended record is accepted or one of ``dead``."""
        by_raw: dict[bytes, list[str]] = {}
        for record in records:
            by_raw.setdefault(record.raw, []).append(source_kind(record.source))
        accepted = Multiset(source_kind(record.source) for record in records)
        for rejected in dead:
            kinds = by_raw.get(rejected.raw)
            kind = kinds.pop() if kinds else "unknown"
            accepted[kind] -= 1
            self.rejected.labels(rejected.reason, kind).inc()
        for kind, n in accepted.items():
            if n > 0:
                self.accepted.labels(kind).inc(n)

    def signed(self, aggregate: Aggregate, seconds: float) -> None:
        """The committee answered for an epoch after ``seconds``."""
        self.committee_latency.observe(seconds)
        self.signed_weight.set(aggregate.signed_weight)
        self.total_weight.set(aggregate.total_weight)

    def settled(self, row: dict[str, Any], manifest: Manifest) -> None:
        """An epoch's summary row once settled: its status, gas and lag when verified now."""
        self.epochs.labels(epoch_status(row, manifest.accepted)).inc()
        if row.get("gas") is not None:
            self.gas.observe(row["gas"])
            self.verify_lag.observe(max(0.0, time.time() - manifest.end_ms / 1000))

    def claimed_reward(self, claim: dict[str, Any]) -> None:
        """A claim's result (``veristream.chain.claim_for``)."""
        if claim.get("tx_hash"):
            self.claims.inc()
            self.claimed.inc(float(claim.get("amount") or 0))


def epoch_status(row: dict[str, Any], accepted: int) -> str:
    """A ``run --json`` epoch row's status: its own ``status`` when it has one, else ``verified``,
    ``empty`` (no accepted reading), ``refused`` (its submission window expired) or ``pending``."""
    if "status" in row:
        return str(row["status"])
    if row.get("verified"):
        return "verified"
    if accepted == 0:
        return "empty"
    return "refused" if row.get("expired") is not None else "pending"


def serve(metrics: Metrics, port: int, host: str = "127.0.0.1") -> Any:
    """Serve ``metrics`` on ``http://host:port/metrics`` in a background thread (a ``UvicornThread``)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from veristream.connectors.sources.http import UvicornThread

    async def page(_: Request) -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    return UvicornThread(Starlette(routes=[Route("/metrics", page, methods=["GET"])]), host, port).start()

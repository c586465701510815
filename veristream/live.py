"""``veristream run`` on live sources: serve MQTT / HTTP / WebSocket into the ingest log, verify epochs as they close.

A job whose sources include a live connector runs as a loop instead of a replay:

- **serve**: the sources start in this process through
  ``connectors.sources.serve.serve_sources`` (exactly what ``veristream ingest`` runs),
  each message appended durably to the job's ingest log before it is
  acknowledged; the serving thread also pushes the log's wall-clock watermark,
  so epochs close on an idle stream too.
- **loop**: every tick, the readings newly appended to still-open epochs go to
  the pre-verifier (``veristream.pipeline.preverify``), every epoch that has
  closed is run through the pipeline and checkpointed
  (``veristream.run.process_closed_epochs``), proposed to the committee and
  submitted on chain (``veristream.run.verify_epoch``); the reward pool is topped
  up by one epoch's budget for each epoch verified, as ``rewards.funding`` says
  (``veristream.chain.fund_pool``, which reads the pool first, so a restart
  never funds an epoch twice), and the summary grows epoch by epoch.
- **stop**: after ``max_epochs`` epochs verified by this run, after
  ``duration_s``, or when ``stop`` is set (SIGINT/SIGTERM in the CLI): the
  sources stop accepting (MQTT stops taking messages and disconnects, keeping
  its persistent session so the broker holds what arrives meanwhile; HTTP and
  WebSocket servers finish the requests in flight), then every epoch that has
  closed is processed and verified, the top earner claims, and the summary is
  returned. Epochs still open stay in the log: a restart continues them, and
  since every step is resumable from the work directory nothing acknowledged is
  lost or counted twice.

Bounded and live sources do not mix in one job: a bounded source is resumed by
counting what the log holds, which live arrivals would falsify. Such a job is
refused before anything starts; replay a recording into a live source instead
(``veristream simulate --to mqtt|http|ws``) or run it as its own job.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veristream.chain import ChainSession, fund_pool, open_chain
from veristream.committee import Committee
from veristream.connectors.deadletters import DeadLetterStore
from veristream.connectors.ingest_log import IngestLog, OpenEpochTail
from veristream.connectors.ipfs import BlockStore, open_store
from veristream.connectors.sources.serve import serve_sources
from veristream.credential_anchors import credential_source
from veristream.devices import chain_devices
from veristream.metrics import Metrics
from veristream.pipeline.compute import EpochContext, job_context
from veristream.pipeline.jobspec import JobSpec
from veristream.pipeline.preverify import Preverifier
from veristream.pipeline.state import Checkpoint, load_epoch_checkpoint
from veristream.provers.errors import InputRejected
from veristream.provers.reasons import PIPELINE_STAGES
from veristream.run import (
    LIVE_SOURCE_TYPES,
    Progress,
    RunSummary,
    claim_top_earner,
    committed_epochs,
    committee_members,
    no_progress,
    open_ingest_log,
    process_closed_epochs,
    start_committee,
    verify_epoch,
)

EpochHook = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class LiveOptions:
    """When a live run stops, how often it looks at the log, and whom it tells.

    ``max_epochs``: stop once this many epochs were verified by this run (the
    epochs that closed meanwhile are still processed, so it can be a few more);
    ``duration_s``: stop accepting after this many seconds; ``stop``: an event
    that ends the run when set (signal handlers set it). ``on_start`` receives
    the served endpoints, ``on_epoch`` each epoch's summary row as it is settled.
    """

    max_epochs: int | None = None
    duration_s: float | None = None
    tick_s: float = 0.25
    stop: threading.Event | None = None
    on_start: Callable[[list[str]], None] | None = None
    on_epoch: EpochHook | None = None
    metrics: Metrics | None = None
    """Counted as the run goes (``veristream run --metrics-port``)."""

    def __post_init__(self) -> None:
        if self.max_epochs is not None and self.max_epochs < 1:
            raise InputRejected(f"max_epochs must be at least 1, got {self.max_epochs}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise InputRejected(f"duration_s must be positive, got {self.duration_s}")
        if self.tick_s <= 0:
            raise InputRejected(f"tick_s must be positive, got {self.tick_s}")


def live_sources(job: JobSpec) -> list[Any]:
    """The job's sources as connector configs; ``ValueError`` when live and bounded sources are mixed."""
    bounded = [
        f"sources[{i}] ({s.type})" for i, s in enumerate(job.sources) if not isinstance(s, LIVE_SOURCE_TYPES)
    ]
    if bounded:
        raise InputRejected(
            f"{', '.join(bounded)}: a job with live sources (mqtt, http, websocket) cannot also have "
            "bounded ones (simulator, file); run them as their own job, or send them into the live "
            "source with `veristream simulate --to mqtt|http|ws`"
        )
    return list(job.sources)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """Set ``stop`` on SIGINT or SIGTERM while the block runs (main thread only), then restore the handlers."""
    signums = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.getsignal(signum) for signum in signums}
    for signum in signums:
        signal.signal(signum, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# THE LOOP


@dataclass
class _Settled:
    """What this run has settled: the summary rows and how many epochs it verified."""

    summary: RunSummary
    verified_here: int = 0
    metrics: Metrics | None = None


def _settle(
    job: JobSpec,
    session: ChainSession | None,
    committee: Committee,
    checkpoint: Checkpoint,
    settled: _Settled,
    on_epoch: EpochHook | None,
    *,
    resumed: bool = False,
) -> None:
    """Verify one committed epoch, top up the reward pool for it, and report its row.

    ``resumed``: a previous run committed it; without a chain it is signed again
    (nothing records a signature) but not counted as verified by this run.
    """
    manifest = checkpoint.manifest
    assert manifest is not None
    row = verify_epoch(job, session, committee, checkpoint, settled.summary, settled.metrics)
    if settled.metrics is not None:
        settled.metrics.settled(row, manifest)
    submitted_now = row["gas"] is not None
    signed_now = session is None and manifest.accepted > 0 and not resumed
    if submitted_now or signed_now:
        settled.verified_here += 1
    if row["verified"] and session is not None and job.rewards.tokens_per_epoch > 0:
        # the number of epochs is not known up front: the pool grows with each verified one,
        # one epoch ahead (open_chain funds the first); resumed epochs are only read
        with_readings = [
            c for c in committed_epochs(Path(job.work_dir))
            if c.manifest is not None and c.manifest.accepted > 0 and c.manifest.epoch <= manifest.epoch
        ]
        fund_pool(session, job, job.rewards.tokens_per_epoch * (1 + len(with_readings)))
    if on_epoch is not None:
        on_epoch(row)


def _process_and_settle(
    job: JobSpec,
    log: IngestLog,
    store: BlockStore,
    ctx: EpochContext,
    session: ChainSession | None,
    committee: Committee,
    settled: _Settled,
    on_epoch: EpochHook | None,
    preverifier: Preverifier,
) -> None:
    """Run every epoch that has closed through the pipeline (with its pre-verified memo), then verify each one."""
    work_dir = Path(job.work_dir)
    for epoch in process_closed_epochs(job, log, store, ctx, memos=preverifier, metrics=settled.metrics):
        checkpoint = load_epoch_checkpoint(work_dir, epoch)
        if checkpoint is not None and checkpoint.manifest is not None:
            _settle(job, session, committee, checkpoint, settled, on_epoch)


class _Server:
    """``serve_sources`` in a thread until ``stop`` is set: its endpoints once started, its error if it failed.

    The run's own stop event is the sources' stop event, so a signal stops
    accepting at once, even while the loop is busy with an epoch.
    """

    def __init__(self, log: IngestLog, sources: Sequence[Any], tick_s: float, stop: threading.Event) -> None:
        self.stop = stop
        self.endpoints: list[str] = []
        self.error: BaseException | None = None
        self._started = threading.Event()

        def on_start(endpoints: list[str]) -> None:
            self.endpoints = list(endpoints)
            self._started.set()

        def serve() -> None:
            try:
                serve_sources(log, sources, tick_s=tick_s, stop=self.stop, on_start=on_start)
            except BaseException as error:  # reported to the loop, which owns the run
                self.error = error
            finally:
                self._started.set()

        self._thread = threading.Thread(target=serve, name="live-sources", daemon=True)

    def start(self) -> list[str]:
        """Start the sources; their endpoints, or the error that kept them from starting."""
        self._thread.start()
        self._started.wait()
        self.check()
        return self.endpoints

    def check(self) -> None:
        """Raise what stopped the sources, if they stopped on their own."""
        if self.error is not None:
            raise self.error
        if self._started.is_set() and not self._thread.is_alive() and not self.stop.is_set():
            raise RuntimeError("the live sources stopped unexpectedly")

    def close(self) -> None:
        """Stop accepting; returns once every acknowledged message is in the log."""
        self.stop.set()
        self._thread.join()


def _check_modes(job: JobSpec, use_ray: bool, use_chain: bool) -> None:
    if job.operators.set_id is not None and not (use_chain and use_ray):
        raise InputRejected("operators.set_id: the committee is on chain and served on Ray (drop --no-chain/--no-ray)")


@dataclass(frozen=True)
class _Parts:
    """What verifies a job's epochs: the store, the chain session (None off chain), the committee."""

    store: BlockStore
    session: ChainSession | None
    committee: Committee


@contextlib.contextmanager
def _verifying(
    job: JobSpec, ctx: EpochContext, *, use_ray: bool, use_chain: bool, faults: Any
) -> Iterator[_Parts]:
    """Open the job's store and chain and start its committee; close them in reverse order."""
    on_chain_set = job.operators.set_id is not None
    store = open_store(job.ipfs, Path(job.work_dir))
    members = [] if on_chain_set else committee_members(job)
    session = open_chain(job, members, job.rewards.tokens_per_epoch) if use_chain else None
    try:
        if on_chain_set:
            # the set in force now; a change of the set during a run takes effect at the next start
            now_epoch = ctx.clock.slot_of(time.time_ns() // 1_000_000)
            members = committee_members(job, session, max(0, now_epoch))
        committee = start_committee(job, ctx, members, use_ray=use_ray, faults=faults)
        try:
            yield _Parts(store, session, committee)
        finally:
            committee.close()
    finally:
        if session is not None:
            session.chain.close()


class _StopRule:
    """When a loop stops: ``max_epochs`` verified by this run, ``duration_s`` elapsed, or the stop event."""

    def __init__(self, options: LiveOptions, stop: threading.Event) -> None:
        self.options = options
        self.stop = stop
        self.deadline = None if options.duration_s is None else time.monotonic() + options.duration_s

    def reached(self, verified_here: int) -> bool:
        """Whether to stop now; otherwise waits one tick (less when the deadline is nearer)."""
        if self.options.max_epochs is not None and verified_here >= self.options.max_epochs:
            return True
        remaining = None if self.deadline is None else self.deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return True
        return self.stop.wait(self.options.tick_s if remaining is None else min(self.options.tick_s, remaining))


def _resume(
    job: JobSpec, parts: _Parts, options: LiveOptions, progress: Progress
) -> tuple[_Settled, EpochHook]:
    """Start settling: the summary, the per-epoch report, and the epochs a previous run or
    process committed (and closed ones it left) settled first."""
    settled = _Settled(RunSummary(job.job_id), metrics=options.metrics)

    def report(row: dict[str, Any]) -> None:
        progress("epochs", settled.verified_here, options.max_epochs or settled.verified_here)
        if options.on_epoch is not None:
            options.on_epoch(row)

    for checkpoint in committed_epochs(Path(job.work_dir)):
        _settle(job, parts.session, parts.committee, checkpoint, settled, report, resumed=True)
    return settled, report


def run_live(
    job: JobSpec,
    options: LiveOptions,
    *,
    use_ray: bool = True,
    use_chain: bool = True,
    faults: Any = None,
    progress: Progress = no_progress,
) -> RunSummary:
    """Serve the job's live sources and verify its epochs as they close, until a stop rule; resumable."""

    # CHECKS: before any service starts
    sources = live_sources(job)
    _check_modes(job, use_ray, use_chain)
    Path(job.work_dir).mkdir(parents=True, exist_ok=True)
    ctx = job_context(job, devices=chain_devices(job), credentials=credential_source(job))
    stop = options.stop or threading.Event()

    # PARTS: log, store, chain, committee
    log = open_ingest_log(job)
    try:
        with _verifying(job, ctx, use_ray=use_ray, use_chain=use_chain, faults=faults) as parts:
            return _loop(job, options, stop, sources, log, ctx, parts, progress)
    finally:
        log.close()


def _loop(
    job: JobSpec,
    options: LiveOptions,
    stop: threading.Event,
    sources: Sequence[Any],
    log: IngestLog,
    ctx: EpochContext,
    parts: _Parts,
    progress: Progress,
) -> RunSummary:
    if options.metrics is not None:
        options.metrics.watch_log(log)

    # RESUME: epochs a previous run committed (and closed ones it left) are settled first
    settled, report = _resume(job, parts, options, progress)
    # readings of still-open epochs are checked as they arrive, here and by every operator
    preverifier = Preverifier(ctx, parts.committee.observe)
    tail = OpenEpochTail(log)

    def process() -> None:
        _process_and_settle(
            job, log, parts.store, ctx, parts.session, parts.committee, settled, report, preverifier
        )

    # SERVE + LOOP
    server = _Server(log, sources, min(options.tick_s, 1.0), stop)
    endpoints = server.start()
    if options.on_start is not None:
        options.on_start(endpoints)
    rule = _StopRule(options, stop)
    try:
        while True:
            server.check()
            raws = tail.new_raws()
            if raws:
                preverifier.observe(raws)  # PREVERIFY: the one call site
            process()
            if rule.reached(settled.verified_here):
                break
    finally:
        # STOP ACCEPTING: sources close, and every acknowledged message is in the log
        server.close()

    # DRAIN: what closed meanwhile, then a claim
    process()
    summary = settled.summary
    summary.readings_in = int(log.counts()["arrived"])
    # at ingest from the log's counts (junk beyond a source's cap is only tallied, never a
    # dead-letter record), beside the pipeline's dead letters
    rejected = Counter(log.counts()["rejected_by_reason"])
    for stage in PIPELINE_STAGES:
        rejected.update(log.dead_letters.counts(stage=stage))
    summary.rejected = dict(sorted(rejected.items()))
    checkpoints = committed_epochs(Path(job.work_dir))
    summary.accepted = sum(c.manifest.accepted for c in checkpoints if c.manifest is not None)
    claim_top_earner(parts.session, checkpoints, summary, options.metrics)
    return summary


# THE CONSUMER HALF (`veristream process`)

PROCESS_DEAD_LETTERS = "process/deadletters"
"""Where ``veristream process`` files the pipeline's dead letters (under the work directory): the
ingest log's own store has one writer, the ``veristream ingest`` process."""


def open_log_reader(job: JobSpec) -> IngestLog:
    """The job's ingest log as another process writes it (``veristream ingest``): read-only, with
    the pipeline's dead letters in a store of this process's own."""
    directory = Path(job.work_dir) / "ingest"
    if not (directory / "segments").is_dir():
        raise InputRejected(
            f"{directory} holds no ingest log yet: start `veristream ingest JOB` first (or run the job "
            "with `veristream run JOB`, which serves and processes in one process)"
        )
    return IngestLog(
        directory,
        job.epochs.length_ms,
        job.epochs.allowed_lateness_ms,
        job.epochs.genesis_ms,
        max_payload_bytes=job.validation.max_payload_bytes,
        read_only=True,
        dead_letters=DeadLetterStore(Path(job.work_dir) / PROCESS_DEAD_LETTERS),
    )


def process_live(
    job: JobSpec,
    options: LiveOptions,
    *,
    use_ray: bool = True,
    use_chain: bool = True,
    faults: Any = None,
    progress: Progress = no_progress,
) -> RunSummary:
    """Verify the epochs of a job whose live sources ``veristream ingest`` serves in another
    process: every tick, catch up with the log, run each closed epoch through the pipeline,
    the committee and the chain; stop on ``options`` (duration, epochs, the stop event).

    The same steps as ``run_live`` without the serving, so the two halves can be restarted
    independently; epochs a previous run or process committed are settled first.
    """
    live_sources(job)  # the same job rules as a live run
    _check_modes(job, use_ray, use_chain)
    stop = options.stop or threading.Event()
    log = open_log_reader(job)
    try:
        ctx = job_context(job, devices=chain_devices(job), credentials=credential_source(job))
        with _verifying(job, ctx, use_ray=use_ray, use_chain=use_chain, faults=faults) as parts:
            settled, report = _resume(job, parts, options, progress)
            # no tail to pre-verify: every closed epoch is checked in full when it is processed
            preverifier = Preverifier(ctx, parts.committee.observe)
            rule = _StopRule(options, stop)
            while True:
                log.refresh()
                _process_and_settle(
                    job, log, parts.store, ctx, parts.session, parts.committee, settled, report, preverifier
                )
                if rule.reached(settled.verified_here):
                    break
            return _process_summary(job, log, parts.session, settled)
    finally:
        log.close()


def _process_summary(job: JobSpec, log: IngestLog, session: ChainSession | None, settled: _Settled) -> RunSummary:
    """The summary of a ``process`` run: the log's arrivals, rejections at ingest (the writer's
    store) and in the pipeline (this process's store), the epochs settled, the top earner's claim."""
    summary = settled.summary
    directory = log.directory / "deadletters"
    at_ingest = DeadLetterStore(directory, read_only=True).counts() if directory.is_dir() else {}
    rejected = Counter(at_ingest) + Counter(log.dead_letters.counts())
    summary.rejected = dict(sorted(rejected.items()))
    summary.readings_in = int(log.counts()["appended"]) + sum(at_ingest.values())
    checkpoints = committed_epochs(Path(job.work_dir))
    summary.accepted = sum(c.manifest.accepted for c in checkpoints if c.manifest is not None)
    claim_top_earner(session, checkpoints, summary, settled.metrics)
    return summary

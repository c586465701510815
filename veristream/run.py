"""The coordinator behind ``veristream run``: sources -> ingest log -> closed epochs -> committee -> chain.

Every step is resumable from the work directory, so a run killed at any point
and started again ends with the same roots and CIDs for every epoch and no
reading counted twice:

- **ingest**: bounded sources (simulator, file replay) are appended to the
  ingest log in order; every message leaves exactly one durable record (a
  segment record or an ingest dead letter), so the log's ``arrived`` count is
  how far the sources got, and a restart resumes there.
- **pipeline**: each closed epoch is computed (``run_epoch``), its batches go to
  the store, and its state and manifest are committed together in one atomic
  checkpoint; only then is the epoch marked processed in the log and its dead
  letters filed (skipped when the epoch's pipeline dead letters are already in
  the store).
- **committee and chain**: every committed epoch not yet verified on chain is
  proposed to the committee and, with a quorum, submitted; a restart asks the
  chain what is already verified.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from veristream.chain import ChainSession, claim_for, open_chain, pool_status
from veristream.committee import (
    Committee,
    InProcessCommittee,
    ProcessCommittee,
    RayCommittee,
    served_keys,
)
from veristream.connectors.deadletters import DeadLetter
from veristream.connectors.ingest_log import IngestLog
from veristream.connectors.ipfs import BlockStore, open_store
from veristream.connectors.simulator import simulate
from veristream.connectors.sources import replay
from veristream.connectors.sources.config import (
    FileSourceConfig,
    HttpSourceConfig,
    MqttSourceConfig,
    SimulatorSourceConfig,
    WebSocketSourceConfig,
)
from veristream.contracts import (
    operator_set_members,
    reference_time,
)
from veristream.credential_anchors import credential_source
from veristream.devices import chain_devices
from veristream.metrics import Metrics
from veristream.pipeline.batch import decode_dead_letters
from veristream.pipeline.compute import EpochContext, job_context
from veristream.pipeline.jobspec import JobSpec
from veristream.pipeline.preverify import Preverifier
from veristream.pipeline.publish import run_epoch
from veristream.pipeline.reexecute import proposal_for
from veristream.pipeline.registry import load_registry
from veristream.pipeline.state import (
    Checkpoint,
    commit_checkpoint,
    load_checkpoint,
    load_epoch_checkpoint,
)
from veristream.pipeline.workers import ensure_ray
from veristream.provers.aggregation import QuorumNotMet, demo_members, registry_members
from veristream.provers.encoding import ZERO_ADDRESS
from veristream.provers.errors import InputRejected, SpecError
from veristream.provers.reasons import PIPELINE_STAGES

Progress = Callable[[str, int, int], None]

# An epoch row's ``status`` in a run summary: on chain; no accepted reading (nothing to verify,
# nothing paid); the committee or the chain would not take it; committed, not yet on chain.
VERIFIED, EMPTY, REFUSED, PENDING = "verified", "empty", "refused", "pending"


def no_progress(stage: str, done: int, total: int) -> None:
    """A progress callback that reports nothing."""


@dataclass
class RunSummary:
    """What ``veristream run --json`` prints."""

    job_id: str
    readings_in: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    refusals: dict[str, dict[str, str]] = field(default_factory=dict)
    funding: dict[str, Any] | None = None
    """The reward pool when it is short of what contributors can claim (``PoolStatus.to_json``)."""
    committee: str | None = None
    """Where the committee ran (``committee_runtime``); said on the console, not in ``--json``."""

    def to_json(self) -> dict[str, Any]:
        """The machine-readable summary: counts, one row per epoch, claims, operators' refusals,
        and the reward pool's shortfall when there is one."""
        out = {
            "job_id": self.job_id,
            "readings_in": self.readings_in,
            "accepted": self.accepted,
            "rejected": dict(sorted(self.rejected.items())),
            "epochs": self.epochs,
            "claims": self.claims,
            "refusals": self.refusals,
        }
        if self.funding is not None:
            out["funding"] = self.funding
        return out


# SOURCES -> INGEST LOG


def open_ingest_log(job: JobSpec) -> IngestLog:
    """The job's ingest log (and dead-letter store) in its work directory.

    When a source caps junk (``limits.junk_bodies_per_epoch``) and the registry is a file
    that exists, readings of devices it does not know are junk at ingest too (rejected
    ``unknown_device`` there, their bodies bounded like unparseable messages).
    """
    return IngestLog(
        Path(job.work_dir) / "ingest",
        job.epochs.length_ms,
        job.epochs.allowed_lateness_ms,
        job.epochs.genesis_ms,
        max_payload_bytes=job.validation.max_payload_bytes,
        # the watermark never runs ahead of arrival time: one device's clock must not close epochs
        max_future_ms=0,
        known_device=_known_device(job),
        # a reading stamped too far ahead is refused where it arrives, in the epoch open then
        max_clock_skew_ms=job.validation.max_clock_skew_ms,
    )


def _known_device(job: JobSpec) -> Callable[[str], bool] | None:
    caps_junk = any(getattr(getattr(s, "limits", None), "junk_bodies_per_epoch", None) for s in job.sources)
    registry = job.devices.file
    if not caps_junk or registry is None or not Path(registry).exists():
        return None
    devices = load_registry(registry).devices
    return devices.__contains__


def bounded_messages(job: JobSpec) -> list[tuple[bytes, str, int]]:
    """Every message of the job's bounded sources, in delivery order: ``(raw, source, received_ms)``.

    The simulator also writes the device registry file the job names (when the
    source does not name its own) and its ``devices.credentials.file``, so the
    embedded demo needs no setup.
    """
    messages: list[tuple[bytes, str, int]] = []
    for index, source in enumerate(job.sources):
        if isinstance(source, SimulatorSourceConfig):
            simulation = simulate(source)
            registry_file = source.registry_file or job.devices.file
            credentials = job.devices.credentials
            if credentials is not None and credentials.file is not None and not Path(credentials.file).exists():
                # the simulated manufacturer's credentials and status lists, written with the registry
                simulation.write(None, None, Path(credentials.file))
            if registry_file is not None and not Path(registry_file).exists():
                simulation.write(Path(registry_file), source.ground_truth)
            elif source.ground_truth is not None:
                simulation.write(None, source.ground_truth)
            messages += [(m.raw, f"simulator:{index}", m.send_ms) for m in simulation.messages]
        elif isinstance(source, FileSourceConfig):
            messages += [(raw, f"file:{index}", ts) for ts, raw in replay.load(source.path, source.format)]
        else:
            raise SpecError(
                f"sources[{index}]: type {source.type!r} is a live source, not a bounded one "
                "(a job with live sources runs through veristream.live)"
            )
    return messages


LIVE_SOURCE_TYPES = (MqttSourceConfig, HttpSourceConfig, WebSocketSourceConfig)


def is_live(job: JobSpec) -> bool:
    """Whether the job has a live source (MQTT, HTTP, WebSocket): ``run`` then serves it until stopped."""
    return any(isinstance(source, LIVE_SOURCE_TYPES) for source in job.sources)


def ingest(
    job: JobSpec, log: IngestLog, progress: Progress = no_progress, chunk: int = 2048, metrics: Metrics | None = None
) -> int:
    """Append the bounded sources to the log, resuming after what a previous run appended."""
    messages = bounded_messages(job)
    done = int(log.counts()["arrived"])
    if done > len(messages):
        raise InputRejected(f"the ingest log holds {done} messages but the sources have {len(messages)}")
    for start in range(done, len(messages), chunk):
        items = messages[start : start + chunk]
        results = log.append_batch(items)
        if metrics is not None:
            metrics.ingested_batch(items, results)
        progress("ingest", min(start + chunk, len(messages)), len(messages))
    if messages:
        # a bounded replay has ended: move the watermark past every epoch it touched
        last = max(received for _, _, received in messages)
        top = max(last, log.watermark_ms)
        for epoch in log.open_epochs():  # readings stamped in the future close with the rest
            top = max(top, log.epoch_bounds(epoch)[1])
        log.advance_clock(top + job.epochs.length_ms + job.epochs.allowed_lateness_ms + 1)
    return len(messages)


# CLOSED EPOCHS -> PIPELINE -> CHECKPOINT


def _file_dead_letters(dead_letters: Any, epoch: int, rejected: Sequence[Any]) -> None:
    """File an epoch's pipeline dead letters, minus any a crashed run already filed.

    A crash can stop between the checkpoint and this call, or in the middle of the
    append: what is already in the store for this epoch is subtracted (as a
    multiset), so every dead letter ends up filed exactly once.
    """
    letters = [
        DeadLetter(r.raw, r.reason, r.stage, epoch, f"{r.device_id} seq {r.seq}: {r.detail}")
        for r in rejected
    ]
    filed = Counter(
        (d.raw, d.reason, d.stage, d.detail)
        for d in dead_letters.read(epoch=epoch)
        if d.stage in PIPELINE_STAGES
    )
    missing = []
    for letter in letters:
        key = (letter.raw, letter.reason, letter.stage, letter.detail)
        if filed[key]:
            filed[key] -= 1
        else:
            missing.append(letter)
    dead_letters.add_many(missing)


def process_closed_epochs(
    job: JobSpec,
    log: IngestLog,
    store: BlockStore,
    ctx: EpochContext,
    progress: Progress = no_progress,
    memos: Preverifier | None = None,
    metrics: Metrics | None = None,
) -> list[int]:
    """Run every closed, unprocessed epoch in order; returns the epochs committed by this call.

    ``memos``: the live run's pre-verifier, whose ``take(epoch)`` is the epoch's
    verdict memo.
    """
    work_dir = Path(job.work_dir)
    committed: list[int] = []
    pending = log.closed_epochs()
    for n, epoch in enumerate(pending):
        checkpoint = load_checkpoint(work_dir)
        if checkpoint.state.epoch >= epoch:
            # committed before a crash: its dead letters may not be filed yet, and it is not marked
            committed_epoch = load_epoch_checkpoint(work_dir, epoch)
            if committed_epoch is not None and committed_epoch.manifest is not None:
                dead = decode_dead_letters(store.get(committed_epoch.manifest.dead_letter_cid))
                _file_dead_letters(log.dead_letters, epoch, dead)
            log.mark_processed(epoch)
            continue
        records = [(r.received_ms, r.raw) for r in log.read_records(epoch)]
        memo = memos.take(epoch) if memos is not None else None
        outcome = run_epoch(ctx, epoch, records, checkpoint.state, store, memo=memo)
        commit_checkpoint(work_dir, Checkpoint(outcome.state, outcome.manifest, outcome.manifest_cid))
        _file_dead_letters(log.dead_letters, epoch, outcome.computation.dead)
        if metrics is not None:
            metrics.computed(log.read_records(epoch), outcome.computation.dead)
        log.mark_processed(epoch)
        committed.append(epoch)
        progress("epochs", n + 1, len(pending))
    return committed


def committed_epochs(work_dir: Path) -> list[Checkpoint]:
    """Every epoch checkpoint this work directory holds, by epoch."""
    history = work_dir / "epochs"
    if not history.is_dir():
        return []
    out = []
    for path in sorted(history.glob("*.json")):
        checkpoint = load_epoch_checkpoint(work_dir, int(path.stem))
        if checkpoint is not None and checkpoint.manifest is not None:
            out.append(checkpoint)
    return out


# CHAIN


def claim_top_earner(
    session: ChainSession | None, checkpoints: Sequence[Checkpoint], summary: RunSummary, metrics: Metrics | None
) -> None:
    """Claim for the top earner of the latest epoch with readings (the pool's shortfall, if any,
    goes in the summary beside the claim)."""
    verified = [c for c in checkpoints if c.manifest is not None and c.manifest.accepted > 0]
    if session is None or not verified:
        return
    status = pool_status(session, verified[-1])
    if status.short:
        summary.funding = status.to_json(session.token)
    summary.claims.append(claim_for(session, verified[-1]))
    if metrics is not None:
        metrics.claimed_reward(summary.claims[-1])


def verify_on_chain(
    job: JobSpec,
    session: ChainSession | None,
    committee: Committee,
    summary: RunSummary,
    progress: Progress,
    metrics: Metrics | None = None,
) -> None:
    """Propose every committed epoch to the committee and submit those not yet verified."""
    checkpoints = committed_epochs(Path(job.work_dir))
    for n, checkpoint in enumerate(checkpoints):
        row = verify_epoch(job, session, committee, checkpoint, summary, metrics)
        if metrics is not None and checkpoint.manifest is not None:
            metrics.settled(row, checkpoint.manifest)
        progress("verify", n + 1, len(checkpoints))


def verify_epoch(
    job: JobSpec,
    session: ChainSession | None,
    committee: Committee,
    checkpoint: Checkpoint,
    summary: RunSummary,
    metrics: Metrics | None = None,
) -> dict[str, Any]:
    """Propose one committed epoch to the committee and submit it unless the chain already has it.

    Appends the epoch's row to ``summary.epochs`` (and any refusals) and returns
    the row; ``QuorumNotMet`` when too few operators sign.
    """
    manifest = checkpoint.manifest
    assert manifest is not None and checkpoint.manifest_cid is not None
    row: dict[str, Any] = {
        "epoch": manifest.epoch,
        "status": PENDING,
        "batch_cid": manifest.batch_cid,
        "manifest_cid": checkpoint.manifest_cid,
        "data_root": manifest.data_root,
        "aggregates_root": manifest.aggregates_root,
        "reward_root": manifest.reward_root,
        "tx_hash": None,
        "gas": None,
        "verified": False,
        "accepted": manifest.accepted,
        "rejected": dict(sorted(manifest.rejected.items())),
    }
    summary.epochs.append(row)
    if manifest.accepted == 0:
        row["status"] = EMPTY  # nothing to verify and nothing paid: the epoch only carried dead letters
        return row
    if session is not None:
        tx_hash = session.verified_tx(manifest.epoch)
        if tx_hash is not None:
            row.update(status=VERIFIED, tx_hash=tx_hash, verified=True)
            return row
    if session is not None:
        closed_at = session.submission_closed(manifest.epoch)
        if closed_at is not None:
            # the EpochVerifier no longer takes it: its signers may have left the set since
            row.update(status=REFUSED, expired=closed_at)
            return row
    chain_id = session.chain_id if session else job.chain.chain_id
    verifier = session.verifier if session else ZERO_ADDRESS
    owner = session.job_owner if session else ZERO_ADDRESS
    proposal = proposal_for(manifest, checkpoint.manifest_cid, chain_id, verifier, owner)
    asked = time.monotonic()
    aggregate = committee.sign(proposal)
    if metrics is not None:
        metrics.signed(aggregate, time.monotonic() - asked)
    if aggregate.refusals:
        summary.refusals[str(manifest.epoch)] = {str(k): v for k, v in aggregate.refusals.items()}
    if not aggregate.quorum_met:
        row["status"] = REFUSED
        raise QuorumNotMet(aggregate)
    if session is not None:
        receipt = session.submit(proposal.result, aggregate)
        row.update(status=VERIFIED, tx_hash=receipt.tx_hash, gas=receipt.gas_used, verified=True)
    return row


def add_ingest_rejections(rows: Sequence[dict[str, Any]], letters: Sequence[DeadLetter]) -> None:
    """Add to each epoch row the ingest dead letters (``letters``) filed under its epoch
    (``clock_skew``, ``malformed``, ...), beside those its pipeline rejected."""
    by_epoch: dict[int | None, Counter[str]] = {}
    for letter in letters:
        if letter.stage not in PIPELINE_STAGES:
            by_epoch.setdefault(letter.epoch, Counter())[letter.reason] += 1
    for row in rows:
        rejected = Counter(row["rejected"]) + by_epoch.get(row["epoch"], Counter())
        row["rejected"] = dict(sorted(rejected.items()))


# COMMITTEE


def committee_members(job: JobSpec, session: ChainSession | None = None, epoch: int = 0) -> list[Any]:
    """The committee's members, in the EpochVerifier's signer-bitmap order.

    Embedded default: ``operators.count`` seed-derived demo keys (``open_chain`` registers
    them). With ``operators.set_id``: the operator set in force for ``epoch`` of the job as
    the chain's OperatorRegistry holds it (keys, weights, slots), each slot matched by its
    key to a served operator actor (``operators.remote`` names, or every actor of
    ``operators.namespace``); a slot nobody serves is down, a served key that is not
    registered is a ``ValueError``. Connects to Ray (``job.ray``).
    """
    operators = job.operators
    if operators.set_id is None:
        return demo_members(operators.scheme, operators.count, operators.key_seed, operators.weights)

    if session is None:
        raise InputRejected("operators.set_id reads the committee from the chain: drop --no-chain")
    # READ the set the EpochVerifier checks this epoch against
    timestamp = reference_time(session.chain, session.deployment, session.job_hash, epoch)
    registered = operator_set_members(session.chain, session.deployment, operators.set_id, timestamp)
    # MATCH it to the served operators
    ensure_ray(job.ray.address, job.ray.num_cpus)
    served = served_keys(operators.remote, operators.namespace)
    members = registry_members(operators.scheme, registered, served, operators.set_id)
    if not any(m.actor for m in members):
        where = f"named {list(operators.remote)}" if operators.remote else "at all"
        raise InputRejected(
            f"none of the {len(members)} operators of set {operators.set_id} is served in Ray namespace "
            f"{operators.namespace!r} {where}: start them with `veristream operator serve`"
        )
    return members


SMALL_JOB_READINGS = 100_000
"""A bounded run with at most this many messages and no Ray cluster named runs its committee in
local processes: starting Ray would cost more than the whole job."""

IN_PROCESS, PROCESSES, RAY = "in this process", "local processes", "Ray"


def committee_runtime(job: JobSpec, *, use_ray: bool, readings: int | None = None) -> str:
    """Where the committee's operators run: ``RAY`` (actors; a cluster, served operators, or a
    large or live job), ``PROCESSES`` (a small bounded job: ``readings`` messages, no cluster) or
    ``IN_PROCESS`` (``use_ray=False``: one after another, tests and reproducible recordings)."""
    if not use_ray:
        return IN_PROCESS
    served = bool(job.operators.remote) or job.operators.set_id is not None
    if readings is None or served or job.ray.address is not None or readings > SMALL_JOB_READINGS:
        return RAY
    return PROCESSES


def start_committee(
    job: JobSpec,
    ctx: EpochContext,
    members: list[Any],
    *,
    use_ray: bool,
    faults: Mapping[int, str] | None = None,
    runtime: str | None = None,
) -> Committee:
    """A running committee of ``members`` (Ray actors, local processes or in-process, as
    ``runtime`` says; by default Ray unless ``use_ray`` is off), with demo faults applied."""
    runtime = runtime or committee_runtime(job, use_ray=use_ray)
    committee_cls: Any = {RAY: RayCommittee, PROCESSES: ProcessCommittee, IN_PROCESS: InProcessCommittee}[runtime]
    faults = dict(faults or {})
    down = [slot for slot, kind in faults.items() if kind == "down"]
    behaviours = {slot: kind for slot, kind in faults.items() if kind != "down"}
    committee = committee_cls(job, members, ctx.registry, faults=behaviours)
    for slot in down:
        committee.stop_operator(slot)
    return committee


# THE WHOLE RUN


def run_job(
    job: JobSpec,
    *,
    use_ray: bool = True,
    use_chain: bool = True,
    faults: Mapping[int, str] | None = None,
    progress: Progress = no_progress,
    metrics: Metrics | None = None,
) -> RunSummary:
    """Run a job with bounded sources end to end on its configured parts (embedded by
    default); resumable. A job with live sources runs through ``veristream.live.run_live``.

    ``faults`` (demos and tests) maps operator slots to a misbehaviour of
    ``veristream.operator.FAULTS`` or ``"down"``. ``metrics``: counted as the run goes.
    """
    if is_live(job):
        raise InputRejected("a job with live sources runs through veristream.live.run_live")

    work_dir = Path(job.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    summary = RunSummary(job.job_id)

    # INGEST
    log = open_ingest_log(job)
    if metrics is not None:
        metrics.watch_log(log)
    try:
        summary.readings_in = ingest(job, log, progress, metrics=metrics)
        store = open_store(job.ipfs, work_dir)
        ctx = job_context(job, devices=chain_devices(job), credentials=credential_source(job))
        # PIPELINE
        process_closed_epochs(job, log, store, ctx, progress, metrics=metrics)
        counts = log.dead_letters.counts()
        letters = log.dead_letters.read()
    finally:
        log.close()
    checkpoints = committed_epochs(work_dir)
    summary.accepted = sum(c.manifest.accepted for c in checkpoints if c.manifest is not None)
    summary.rejected = dict(counts)

    # COMMITTEE + CHAIN: demo keys registered by open_chain, or the operator set on chain
    on_chain_set = job.operators.set_id is not None
    if on_chain_set and not (use_chain and use_ray):
        raise InputRejected("operators.set_id: the committee is on chain and served on Ray (drop --no-chain/--no-ray)")
    members = [] if on_chain_set else committee_members(job)
    # an empty epoch draws no budget (veristream.pipeline.rewards)
    paying = sum(1 for c in checkpoints if c.manifest is not None and c.manifest.accepted)
    budget = job.rewards.tokens_per_epoch * max(1, paying)
    session = open_chain(job, members, budget) if use_chain else None
    if on_chain_set:
        # the latest epoch's set: a run verifies the epochs closed since the previous one
        with_readings = [c.manifest.epoch for c in checkpoints if c.manifest is not None and c.manifest.accepted]
        members = committee_members(job, session, max(with_readings, default=0))
    summary.committee = committee_runtime(job, use_ray=use_ray, readings=summary.readings_in)
    committee = start_committee(job, ctx, members, use_ray=use_ray, faults=faults, runtime=summary.committee)
    try:
        verify_on_chain(job, session, committee, summary, progress, metrics)
        add_ingest_rejections(summary.epochs, letters)
        claim_top_earner(session, checkpoints, summary, metrics)
    finally:
        committee.close()
        if session is not None:
            session.chain.close()
    return summary

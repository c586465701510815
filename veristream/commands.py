"""The bodies of ``veristream run``, ``verify`` and ``claim`` (the CLI wraps these lazily).

Each returns a process exit code; output goes through rich for people and as
one JSON object with ``--json`` for machines.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from veristream import render
from veristream.audit import AuditReport, audit_epoch
from veristream.chain import claim_all, claim_for, open_chain
from veristream.live import LiveOptions, run_live, stop_on_signals
from veristream.metrics import Metrics
from veristream.metrics import serve as serve_metrics
from veristream.operator import FAULTS
from veristream.pipeline.jobspec import JobSpec, JobSpecError, load_job
from veristream.provers.aggregation import QuorumNotMet, demo_members
from veristream.provers.encoding import parse_address
from veristream.provers.errors import InputRejected
from veristream.run import committed_epochs, is_live, run_job


def _load(job_path: str) -> JobSpec | None:
    try:
        return load_job(job_path)
    except JobSpecError as error:
        Console(stderr=True).print(f"[red]{error}[/red]")
        return None


def parse_faults(specs: list[str]) -> dict[int, str]:
    """``["1:wrong_root", "3:down"]`` as ``{1: "wrong_root", 3: "down"}``; ``ValueError`` otherwise."""
    faults: dict[int, str] = {}
    for spec in specs:
        slot, _, kind = spec.partition(":")
        if not slot.isdigit() or kind not in (*FAULTS, "down"):
            raise InputRejected(f"operator fault {spec!r} is not SLOT:KIND with KIND in {(*FAULTS, 'down')}")
        faults[int(slot)] = kind
    return faults


def run_command(
    job_path: str,
    as_json: bool,
    use_ray: bool,
    use_chain: bool,
    ray_address: str | None,
    operator_faults: list[str] | None = None,
    max_epochs: int | None = None,
    duration_s: float | None = None,
    metrics_port: int | None = None,
) -> int:
    """``veristream run``: the whole job on its configured parts, resumable; with ``metrics_port``,
    Prometheus metrics on ``http://127.0.0.1:PORT/metrics`` while it runs."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn


    job = _load(job_path)
    if job is None:
        return 2
    try:
        faults = parse_faults(operator_faults or [])
        if (max_epochs is not None or duration_s is not None) and not is_live(job):
            raise InputRejected("--epochs and --duration stop live sources; this job's sources are bounded")
    except ValueError as error:
        print(f"error: {error}")
        return 2
    if ray_address:
        job = job.model_copy(update={"ray": job.ray.model_copy(update={"address": ray_address})})
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        disable=as_json,
        transient=False,
    ) as bars:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)


        try:
            with _live_options(job, as_json, console, max_epochs, duration_s) as live, _serve_metrics(
                metrics_port, console
            ) as metrics:
                if live is not None:
                    live = dataclasses.replace(live, metrics=metrics)
                    outcome = run_live(
                        job, live, use_ray=use_ray, use_chain=use_chain, faults=faults, progress=progress
                    )
                else:
                    outcome = run_job(
                        job, use_ray=use_ray, use_chain=use_chain, faults=faults, progress=progress, metrics=metrics
                    )
                summary = outcome.to_json()
        except (ValueError, RuntimeError, QuorumNotMet) as error:
            # a bad input or a committee that refused: say why, keep the work directory for a rerun
            console.print(f"[red]error: {error}[/red]")
            return 1
    if as_json:
        print(json.dumps(summary, sort_keys=True))
    else:
        render.run_summary(summary, Console())
        if outcome.committee is not None:
            Console().print(render.committee_line(outcome.committee, len(summary["epochs"])), highlight=False)
    return 0


@contextmanager
def _serve_metrics(port: int | None, console: Any) -> Iterator[Metrics | None]:
    """A ``Metrics`` served on ``port`` (and on the ingest server's ``/metrics``) while the block runs."""
    if port is None:
        yield None
        return
    metrics = Metrics()
    metrics.attach()
    server = serve_metrics(metrics, port)
    console.print(f"metrics on http://127.0.0.1:{server.port}/metrics", highlight=False)
    try:
        yield metrics
    finally:
        server.stop()
        metrics.detach()


@contextmanager
def _live_options(
    job: JobSpec, as_json: bool, console: Any, max_epochs: int | None, duration_s: float | None
) -> Iterator[Any]:
    """Stop rules, signal handling and per-epoch lines for a job with live sources (``None`` otherwise)."""
    if not is_live(job):
        yield None
        return
    import threading


    def started(endpoints: list[str]) -> None:
        # on stderr in every mode: the line a supervisor (or a test) waits for
        console.print("serving " + "; ".join(endpoints), highlight=False)

    def epoch_done(row: dict[str, Any]) -> None:
        if not as_json:
            state = "[green]verified[/green]" if row["verified"] else render.why_unverified(row)
            console.print(f"epoch {row['epoch']}: {row['batch_cid']} {state}")

    stop = threading.Event()
    with stop_on_signals(stop):
        yield LiveOptions(max_epochs, duration_s, stop=stop, on_start=started, on_epoch=epoch_done)


def verify_command(
    job_path: str, epoch: int, as_json: bool, batch_cid: str | None = None, deployment: str | None = None
) -> int:
    """``veristream verify``: exit 0 only if the epoch recomputes, from the chain and IPFS alone,
    to what the chain holds (``veristream.audit``)."""
    job = _load(job_path)
    if job is None:
        return 2
    notes = Console(stderr=True, quiet=as_json)
    try:
        report = audit_epoch(
            job,
            epoch,
            batch_cid=batch_cid,
            deployment=Path(deployment) if deployment else None,
            progress=notes.print,
        )
    except (ValueError, LookupError) as error:
        report = AuditReport(epoch, reason=f"{type(error).__name__}: {error}")
    # an epoch the chain has not verified is not a mismatch: there is nothing to compare with
    failed = 1 if report.verified_on_chain else 3
    if as_json:
        print(json.dumps(report.to_json() | {"verified_on_chain": report.verified_on_chain}, sort_keys=True))
        return 0 if report.ok else failed
    if not report.verified_on_chain:
        Console(stderr=True).print(f"not verified: {report.reason}: nothing to recompute (see `veristream epochs JOB`)")
        return failed
    render.audit_report(report, epoch, Console())
    return 0 if report.ok else failed


def claim_command(job_path: str, account: str | None, as_json: bool, all_accounts: bool = False) -> int:
    """``veristream claim``: build ``account``'s proof against the latest verified epoch and claim
    (with ``all_accounts``: every account's, batched through ``claimMany``)."""
    job = _load(job_path)
    if job is None:
        return 2
    console = Console(stderr=True)
    if all_accounts and account:
        console.print("[red]error: --all claims for every account; leave out --account[/red]")
        return 2
    verified = [c for c in committed_epochs(Path(job.work_dir)) if c.manifest and c.manifest.accepted]
    if not verified:
        console.print("[red]no verified epoch in this work directory: run the job first[/red]")
        return 3
    members = demo_members(job.operators.scheme, job.operators.count, job.operators.key_seed, job.operators.weights)
    session = open_chain(job, members, 0)
    try:
        if all_accounts:
            result = claim_all(session, verified[-1])
        else:
            result = claim_for(session, verified[-1], parse_address(account) if account else None)
    except ValueError as error:
        console.print(f"[red]error: {error}[/red]")
        return 1
    finally:
        session.chain.close()
    if all_accounts:
        return _claim_all_report(result, verified[-1].state.epoch, as_json, console)
    if result["tx_hash"] is None and not result.get("short"):
        # everything earned up to the latest verified epoch is already paid: nothing was sent
        if as_json:
            print(json.dumps(result | {"nothing_to_claim": True}, sort_keys=True))
        else:
            console.print(
                f"nothing to claim for {result['account']}: everything it earned up to epoch "
                f"{verified[-1].state.epoch} is already paid; the next verified epoch brings more"
            )
        return 3
    if as_json:
        print(json.dumps(result, sort_keys=True))
    else:
        Console().print(render.claim_line(result))
    return 1 if result.get("short") else 0


def _claim_all_report(result: dict[str, Any], epoch: int, as_json: bool, console: Console) -> int:
    """Prints ``claim --all``'s result; its exit code (3: nothing was due, 1: the pool is short)."""
    if as_json:
        print(json.dumps(result | {"nothing_to_claim": not result["accounts"]}, sort_keys=True))
    elif not result["accounts"]:
        console.print(f"nothing to claim: every account was paid what it earned up to epoch {epoch}")
    else:
        Console().print(render.claim_all_line(result))
    if not result["accounts"]:
        return 3
    return 1 if result.get("short") else 0


SUBMISSION_FILE = "ray-submission.json"
SUBMIT_RETRY_S = 120.0


def submit_command(job_path: str, address: str, python: str | None, as_json: bool) -> int:
    """``veristream submit``: hand ``veristream run JOB`` to a Ray cluster's job submission API."""
    import shlex
    import sys
    import uuid

    from ray.job_submission import JobSubmissionClient

    job = _load(job_path)
    if job is None:
        return 2
    interpreter = python or sys.executable
    entrypoint = " ".join(
        shlex.quote(part)
        for part in (interpreter, "-m", "veristream", "run", str(Path(job_path).resolve()), "--json")
    )
    client = JobSubmissionClient(address)
    submission_id = f"veristream-{job.job_id}-{uuid.uuid4().hex[:8]}"
    # A head that has just started answers 500 "No available agent to submit job,
    # please try again later" until its job agent registers: retry that, boundedly.
    deadline = time.monotonic() + SUBMIT_RETRY_S
    while True:
        try:
            client.submit_job(
                entrypoint=entrypoint,
                submission_id=submission_id,
                metadata={"veristream_job_id": job.job_id},
            )
            break
        except RuntimeError as error:
            if "No available agent" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(2.0)
    work_dir = Path(job.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    record = {"address": address, "submission_id": submission_id, "entrypoint": entrypoint}
    (work_dir / SUBMISSION_FILE).write_text(json.dumps(record, indent=1))
    print(json.dumps(record) if as_json else f"submitted {submission_id} to {address}")
    return 0


def status_command(job_path: str, as_json: bool) -> int:
    """``veristream status``: the submitted run's state, and its summary once it succeeded."""
    from ray.job_submission import JobSubmissionClient

    job = _load(job_path)
    if job is None:
        return 2
    path = Path(job.work_dir) / SUBMISSION_FILE
    if not path.exists():
        if as_json:
            print(json.dumps({"submission_id": None, "state": None, "summary": None}, sort_keys=True))
        else:
            print(f"no submission recorded in {job.work_dir}: use `veristream submit` first")
        return 3
    record = json.loads(path.read_text())
    client = JobSubmissionClient(record["address"])
    state = str(client.get_job_status(record["submission_id"]))
    state = state.rsplit(".", 1)[-1]
    summary = None
    logs = client.get_job_logs(record["submission_id"])
    if state == "SUCCEEDED":
        for line in reversed(logs.splitlines()):
            if line.startswith("{") and '"job_id"' in line:
                summary = json.loads(line)
                break
    out = {"submission_id": record["submission_id"], "state": state, "summary": summary}
    if as_json:
        print(json.dumps(out, sort_keys=True))
    else:
        print(f"{record['submission_id']}: {state}")
        if summary is not None:
            render.run_summary(summary, Console())
        elif state == "FAILED":
            print(logs[-3000:])
    return 0 if state != "FAILED" else 1


def repair_command(target: str, as_json: bool) -> int:
    """``veristream ingest-repair``: quarantine an ingest log's damaged ranges; 0 if nothing was damaged."""
    from veristream.connectors.ingest_log import repair_log

    directory = Path(target)
    if not directory.is_dir():
        job = _load(target)
        if job is None:
            return 2
        directory = Path(job.work_dir) / "ingest"
    try:
        report = repair_log(directory)
    except InputRejected as error:
        Console(stderr=True).print(f"[red]{error}[/red]")
        return 2
    if as_json:
        print(json.dumps(report.to_dict(), sort_keys=True))
    elif not report.repaired:
        print(f"{directory}: {report.checked} files checked, no damage")
    else:
        exact = "" if report.exact else "at least "
        print(
            f"{directory}: {len(report.repaired)} damaged files; lost {exact}"
            f"{report.records_lost} records, {report.bytes_lost} bytes; originals in "
            f"{directory / str(report.quarantine)}"
        )
        for item in report.repaired:
            ranges = ", ".join(f"[{d.start}, {d.end})" for d in item.damaged)
            print(
                f"  {item.path}: bytes {ranges} set aside ({item.records_lost} records), "
                f"{item.records_kept} records kept"
            )
    return 1 if report.repaired else 0


# LIVE: THE TWO HALVES (`veristream ingest` serves, `veristream process` verifies)


@dataclasses.dataclass
class IngestStatus:
    """What ``veristream ingest`` says while it runs (one line every ``every_s`` seconds) and
    when it stops (a summary of its run); counts are the log's, since this run started."""

    start: dict[str, Any]
    every_s: float = 5.0
    started_at: float = dataclasses.field(default_factory=time.monotonic)
    _last_at: float = 0.0
    _last_received: int = 0

    def __post_init__(self) -> None:
        self._last_at = self.started_at
        self._last_received = 0

    def _since_start(self, counts: dict[str, Any]) -> tuple[int, int, int]:
        received = int(counts["arrived"]) - int(self.start["arrived"])
        accepted = int(counts["appended"]) - int(self.start["appended"])
        return received, accepted, received - accepted

    def line(self, counts: dict[str, Any], open_epochs: int, now: float | None = None) -> str | None:
        """The status line when ``every_s`` has passed since the last one, else None."""
        now = time.monotonic() if now is None else now
        if now - self._last_at < self.every_s:
            return None
        received, accepted, rejected = self._since_start(counts)
        rate = (received - self._last_received) / max(now - self._last_at, 1e-9)
        self._last_at, self._last_received = now, received
        return (
            f"ingest: {received:,} received, {accepted:,} accepted, {rejected:,} rejected, "
            f"{open_epochs} open epoch(s), {rate:,.1f} msg/s"
        )

    def summary(self, counts: dict[str, Any], open_epochs: int, now: float | None = None) -> str:
        """The run's summary line: totals, the mean rate, rejections by reason, what stays open."""
        now = time.monotonic() if now is None else now
        elapsed = max(now - self.started_at, 1e-9)
        received, accepted, rejected = self._since_start(counts)
        before = self.start["rejected_by_reason"]
        reasons = {
            r: n - before.get(r, 0) for r, n in sorted(counts["rejected_by_reason"].items()) if n > before.get(r, 0)
        }
        why = f" ({', '.join(f'{r} {n:,}' for r, n in reasons.items())})" if reasons else ""
        return (
            f"ingest stopped after {elapsed:,.1f} s: {received:,} received ({received / elapsed:,.1f} msg/s), "
            f"{accepted:,} accepted, {rejected:,} rejected{why}; {open_epochs} epoch(s) still open "
            "(`veristream process JOB` or `veristream run JOB` verifies the closed ones)"
        )


def ingest_command(job_path: str, duration_s: float | None, wall_clock: bool, status_every_s: float) -> int:
    """``veristream ingest``: serve the job's live sources into its ingest log (the log ``run`` and
    ``process`` read) until stopped; a status line on stderr every ``status_every_s`` seconds, a
    summary when it stops, the log's counts as JSON on stdout."""
    import threading

    from veristream.connectors.sources.serve import serve_sources
    from veristream.run import open_ingest_log

    try:
        job = load_job(job_path)
    except JobSpecError as error:
        Console(stderr=True).print(f"error: {error}", highlight=False)
        return 2
    console = Console(stderr=True)
    log = open_ingest_log(job)  # the job's epochs, payload limit, clock skew and registry, as `run` opens it
    # the HTTP source's /metrics serves these while the sources run
    metrics = Metrics()
    metrics.watch_log(log)
    metrics.attach()
    status = IngestStatus(log.counts(), status_every_s)

    def tick(counts: dict[str, Any]) -> None:
        line = status.line(counts, len(log.open_epochs()))
        if line is not None:
            console.print(line, highlight=False, soft_wrap=True)

    stop = threading.Event()
    try:
        with stop_on_signals(stop):
            counts = serve_sources(
                log,
                list(job.sources),
                duration_s=duration_s,
                wall_clock=wall_clock,
                stop=stop,
                on_tick=tick,
                on_start=lambda endpoints: console.print("serving " + "; ".join(endpoints), highlight=False, soft_wrap=True),
            )
        console.print(status.summary(log.counts(), len(log.open_epochs())), highlight=False, soft_wrap=True)
    except (RuntimeError, OSError) as error:  # a source that cannot start (a port taken, a broker down)
        console.print(f"error: {error}", highlight=False)
        return 2
    finally:
        metrics.detach()
        log.close()
    print(json.dumps(counts, sort_keys=True))
    return 0


def process_command(
    job_path: str,
    as_json: bool,
    use_ray: bool,
    use_chain: bool,
    max_epochs: int | None,
    duration_s: float | None,
) -> int:
    """``veristream process``: verify the epochs of a live job whose sources ``veristream ingest``
    serves in another process, until stopped (Ctrl-C), ``--duration`` or ``--epochs``."""
    import threading

    from veristream.live import process_live

    try:
        job = load_job(job_path)
    except JobSpecError as error:
        Console(stderr=True).print(f"error: {error}", highlight=False)
        return 2
    console = Console(stderr=True)

    def epoch_done(row: dict[str, Any]) -> None:
        if not as_json:
            state = "[green]verified[/green]" if row["verified"] else render.why_unverified(row)
            console.print(f"epoch {row['epoch']}: {row['batch_cid']} {state}")

    stop = threading.Event()
    with stop_on_signals(stop):
        options = LiveOptions(max_epochs, duration_s, tick_s=1.0, stop=stop, on_epoch=epoch_done)
        console.print(f"processing {job.job_id}: epochs as they close in {Path(job.work_dir) / 'ingest'}", highlight=False)
        summary = process_live(job, options, use_ray=use_ray, use_chain=use_chain).to_json()
    if as_json:
        print(json.dumps(summary, sort_keys=True))
    else:
        render.run_summary(summary, Console())
    return 0

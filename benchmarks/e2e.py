"""Suite ``e2e``: the whole pipeline on this machine.

- readings/s through one epoch's Beam pipeline with signature checks (embedded
  FnApiRunner), beside the raw ``verify_many`` rate on the same readings in the
  same run (their ratio is the pipeline's overhead);
- time from an epoch's end to its verification on chain: pipeline + batches to
  the store + manifest, 4 operators re-executing from the store and
  co-signing (Ray actors), aggregation, and the EpochVerifier transaction on
  the embedded EVM, for 10^4 and 10^5 readings per epoch (10^6 with
  ``VERISTREAM_E2E_MILLION=1``: ~10 minutes here); each size twice: cold
  (every signature checked at epoch end) and pre-verified (the readings first
  handed to a ``Preverifier`` and the operators while the epoch is "open",
  untimed, as a live run does), with the time split into pipeline / store /
  committee / chain, and what one operator's re-execution costs on one core.

Setup (keys, signing the readings, deploying and registering on the chain,
starting Ray) is outside every timing.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import comparison
from veristream.provers.encoding import ZERO_ADDRESS

DEVICES = 100
# readings per Preverifier.observe call while an epoch is open (a live loop's tick)
OBSERVE_CHUNK = 10_000


def _fleet(n: int) -> list[tuple[str, bytes, bytes]]:
    from veristream.provers.signing import device_id_from_public_key, public_key_of

    out = []
    for i in range(n):
        sk = (0xBE7C_0000 + i).to_bytes(32, "big")
        pk = public_key_of("secp256k1", sk)
        out.append((device_id_from_public_key("secp256k1", pk), sk, pk))
    return out


def _records(
    fleet: list[tuple[str, bytes, bytes]], epoch: int, length_ms: int, count: int, domain: Any
) -> list[tuple[int, bytes]]:
    from veristream.connectors.envelope import encode_reading
    from veristream.provers.readings import Reading
    from veristream.provers.signing import sign_reading

    per_device = -(-count // len(fleet))
    step = max(1, (length_ms - 10) // per_device)
    base = epoch * length_ms
    out: list[tuple[int, bytes]] = []
    for k in range(per_device):
        for i, (device_id, sk, _) in enumerate(fleet):
            if len(out) == count:
                return out
            ts = base + 1 + k * step
            payload = json.dumps({"temp": (k * 7 + i) % 1000 - 300, "hum": (k + i) % 100}).encode()
            reading = sign_reading(
                Reading(device_id, epoch * 10**7 + k, ts, payload, b""), domain, sk
            )
            out.append((ts + 5, encode_reading(reading)))
    return out


def _job(work: Path, fleet: list[tuple[str, bytes, bytes]]) -> Any:
    from veristream.pipeline.jobspec import parse_job

    (work / "devices.json").write_text(
        json.dumps(
            {"devices": [{"device_id": d, "public_key": "0x" + pk.hex()} for d, _, pk in fleet]}
        )
    )
    spec = {
        "job_id": "bench-e2e",
        "devices": {"file": "devices.json"},
        "epochs": {"length_ms": 3_600_000, "allowed_lateness_ms": 0},
        "validation": {
            "fields": {"temp": {"min": -1000, "max": 1000}, "hum": {"min": 0, "max": 100}},
            "max_clock_skew_ms": 60_000,
        },
        "aggregation": {"fields": ["temp", "hum"], "quantiles": [50, 90, 99]},
        "rewards": {"tokens_per_epoch": 10**21, "max_per_device": 10**20},
        "operators": {"count": 4, "scheme": "bls12381"},
        "work_dir": "work",
    }
    return parse_job(spec, base=work)


# readings the two-process raw measurement's workers inherit when forked
_RAW_READINGS: list[Any] = []


def _verify_slice(domain: Any, keys: Any, start: int, end: int) -> int:
    from veristream.provers.signing import verify_many

    return sum(v.ok for v in verify_many(_RAW_READINGS[start:end], domain, keys))


def _raw_two_processes(readings: list[Any], domain: Any, keys: Any) -> float:
    """Seconds for two forked processes to ``verify_many`` half the readings each (readings
    inherited by the fork, so nothing but the verdict counts crosses a pipe): the most two
    cores can do, the pipeline's ceiling."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from benchmarks.measure import best_seconds

    _RAW_READINGS[:] = readings
    half = len(readings) // 2
    try:
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
            list(pool.map(_verify_slice, [domain] * 2, [keys] * 2, [0, 0], [10, 10]))  # started

            def both() -> None:
                parts = [(0, half), (half, len(readings))]
                futures = [pool.submit(_verify_slice, domain, keys, a, b) for a, b in parts]
                if sum(f.result() for f in futures) != len(readings):
                    raise AssertionError("benchmark readings failed raw verification")

            return best_seconds(both, repeat=3)
    finally:
        _RAW_READINGS.clear()


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the given processes so far (Linux /proc; 0 elsewhere)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _throughput(
    ctx: Any, records: list[tuple[int, bytes]]
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Readings/s through ``compute_epoch`` (best of 3) beside raw ``verify_many`` on one core
    and on two processes (the ceiling), all on the same readings in the same run; and the
    pipeline's CPU per reading in this process and in the verify workers."""
    from benchmarks.measure import best_seconds
    from veristream.connectors.envelope import parse_reading
    from veristream.pipeline import workers
    from veristream.pipeline.compute import compute_epoch
    from veristream.pipeline.state import JobState
    from veristream.provers.signing import verify_many

    n = len(records)
    readings = [parse_reading(raw) for _, raw in records]
    keys = ctx.registry.keys()
    # one small epoch and the worker pool first: imports, caches and the pool live as long
    # as the coordinator's process (it runs epoch after epoch), they are not per-epoch work
    compute_epoch(ctx, 0, records[:100], JobState())
    n_workers = workers.auto_workers(n, ctx.job.beam.verify_workers)
    if n_workers > 1:
        skew = ctx.job.validation.max_clock_skew_ms
        workers.pool_for(n_workers, ctx.domain, keys, dict(ctx.registry.devices), skew)
    raw_rate = n / best_seconds(lambda: verify_many(readings, ctx.domain, keys), repeat=2)
    raw2_rate = n / _raw_two_processes(readings, ctx.domain, keys)
    out: dict[str, Any] = {}
    pids = workers.worker_pids()
    cpu = {"main": 0.0, "workers": 0.0}

    def epoch() -> None:
        main, pool = time.process_time(), _cpu_seconds(pids)
        out["computation"] = compute_epoch(ctx, 0, records, JobState())
        cpu["main"] += time.process_time() - main
        cpu["workers"] += _cpu_seconds(pids) - pool

    pipe_rate = n / best_seconds(epoch, repeat=3)
    if len(out["computation"].accepted) != n:
        raise AssertionError(f"benchmark readings rejected: {out['computation'].rejected}")
    name = f"pipeline, {n:,} readings/epoch ({n_workers} verify process(es))"
    # CPU per reading, averaged over the timed runs: where the work is, whatever the load
    split = {
        "pipeline's own process, CPU us/reading": round(cpu["main"] / 3 / n * 1e6, 1),
        "verify workers together, CPU us/reading": round(cpu["workers"] / 3 / n * 1e6, 1),
    }
    rows = [
        comparison(name, pipe_rate, raw2_rate, "readings/s", "raw verify_many, 2 processes (ceiling)"),
        comparison(name, pipe_rate, raw_rate, "readings/s", "raw verify_many, one core"),
        comparison(
            "raw verify_many, 2 processes", raw2_rate, raw_rate, "readings/s", "raw verify_many, one core"
        ),
    ]
    return rows, split


def _epoch_to_verified(
    ctx: Any,
    epoch: int,
    records: list[tuple[int, bytes]],
    state: Any,
    store: Any,
    committee: Any,
    session: Any,
    preverified: bool,
) -> tuple[dict[str, float], Any]:
    """One epoch from its end to verified on chain; with ``preverified`` its readings are first
    observed while "open" (untimed, as a live run does during the epoch), operators included."""
    from veristream.pipeline.compute import compute_epoch
    from veristream.pipeline.preverify import Preverifier
    from veristream.pipeline.publish import store_epoch
    from veristream.pipeline.reexecute import proposal_for
    from veristream.pipeline.state import Checkpoint, commit_checkpoint

    times: dict[str, float] = {}
    memo = None
    if preverified:
        before = time.perf_counter()
        preverifier = Preverifier(ctx, committee.observe)
        raws = [raw for _, raw in records]
        for at in range(0, len(raws), OBSERVE_CHUNK):  # as a live loop hands them over
            preverifier.observe(raws[at : at + OBSERVE_CHUNK])
        committee.drain()
        times["observe_while_open"] = time.perf_counter() - before
        memo = preverifier.take(epoch)

    # EPOCH END: the timer starts
    start = time.perf_counter()
    computation = compute_epoch(ctx, epoch, records, state, memo=memo)
    times["pipeline"] = time.perf_counter() - start
    mark = time.perf_counter()
    outcome = store_epoch(ctx, computation, state, store)
    commit_checkpoint(
        Path(ctx.job.work_dir), Checkpoint(outcome.state, outcome.manifest, outcome.manifest_cid)
    )
    times["store"] = time.perf_counter() - mark
    if len(computation.accepted) != len(records):
        raise AssertionError(f"benchmark readings rejected: {computation.rejected}")
    mark = time.perf_counter()
    chain_id = session.chain_id if session else 31337
    verifier = session.verifier if session else "0x" + "11" * 20
    owner = session.job_owner if session else ZERO_ADDRESS
    proposal = proposal_for(outcome.manifest, outcome.manifest_cid, chain_id, verifier, owner)
    aggregate = committee.sign(proposal)
    times["committee"] = time.perf_counter() - mark
    if not aggregate.quorum_met:
        raise AssertionError(f"quorum not met: {aggregate.refusals}")
    mark = time.perf_counter()
    if session is not None:
        from veristream.contracts import submit_epoch

        submit_epoch(
            session.chain,
            session.deployment,
            proposal.result,
            aggregate.signer_bitmap,
            aggregate.signature_evm,
            aggregate.apk_g2,
        )
    times["chain"] = time.perf_counter() - mark
    times["total"] = time.perf_counter() - start
    return times, outcome


def _operator_share(ctx: Any, epoch: int, records: list[tuple[int, bytes]], state: Any, outcome: Any) -> dict[str, float]:
    """What one operator's re-execution of an epoch costs on one core, cold and pre-verified,
    and the parts that are not signature checks (fetching aside: the store is local)."""
    from veristream.connectors.ipfs import cid_of
    from veristream.pipeline.batch import decode_accepted
    from veristream.pipeline.commitments import data_root
    from veristream.pipeline.compute import compute_epoch
    from veristream.pipeline.preverify import EpochMemos, decode_by_epoch, preverify
    from veristream.pipeline.publish import dump_cids, tree_dumps
    from veristream.pipeline.reexecute import reexecute

    batch = outcome.artifacts["batch"]
    times: dict[str, float] = {}
    before = time.perf_counter()
    reexecute(ctx, epoch, batch, state)
    times["reexecute_cold"] = time.perf_counter() - before
    memos = EpochMemos()
    groups = decode_by_epoch([raw for _, raw in records], ctx.clock, ctx.job.validation.max_payload_bytes)
    preverify(memos, groups, ctx.domain, ctx.registry.keys())
    before = time.perf_counter()
    reexecute(ctx, epoch, batch, state, memos.take(epoch))
    times["reexecute_preverified"] = time.perf_counter() - before
    before = time.perf_counter()
    candidates = decode_accepted(batch)
    times["decode_batch"] = time.perf_counter() - before
    memos = EpochMemos()
    preverify(memos, {epoch: candidates}, ctx.domain, ctx.registry.keys())
    before = time.perf_counter()
    computation = compute_epoch(ctx, epoch, candidates, state, decoded=True, memo=memos.take(epoch))
    times["beam_checks_aggregates_preverified"] = time.perf_counter() - before
    before = time.perf_counter()
    data_root(computation.accepted, b"".join(d.leaf_hashes for d in computation.devices))
    times["data_root"] = time.perf_counter() - before
    # the CIDs of the three trees' dumps, which the operator checks against the manifest's
    before = time.perf_counter()
    dump_cids(tree_dumps(computation), cid_of)
    times["tree_dump_cids"] = time.perf_counter() - before
    return times


def run(quick: bool = False) -> dict[str, Any]:
    """Throughput and epoch-end-to-verified latency, cold and pre-verified (``quick``: small
    sizes, no chain, operators in-process)."""
    from veristream.chain import open_chain
    from veristream.committee import InProcessCommittee, RayCommittee
    from veristream.connectors.ipfs import open_store
    from veristream.pipeline.compute import job_context
    from veristream.pipeline.state import JobState
    from veristream.provers.aggregation import demo_members

    sizes = [2_000] if quick else [10_000, 100_000]
    if os.environ.get("VERISTREAM_E2E_MILLION") == "1" and not quick:
        sizes.append(1_000_000)
    with tempfile.TemporaryDirectory(prefix="veristream-e2e-") as tmp:
        work = Path(tmp)
        fleet = _fleet(DEVICES)
        job = _job(work, fleet)
        ctx = job_context(job)
        length = job.epochs.length_ms
        rates, cpu = _throughput(
            ctx, _records(fleet, 0, length, 5_000 if quick else 50_000, ctx.domain)
        )
        result: dict[str, Any] = {"throughput": rates, "throughput_cpu": cpu}

        members = demo_members("bls12381", 4)
        setup_start = time.perf_counter()
        session = None if quick else open_chain(job, members, 10**21 * (2 * len(sizes) + 1))
        committee: Any = (InProcessCommittee if quick else RayCommittee)(job, members, ctx.registry)
        setup_s = time.perf_counter() - setup_start
        store = open_store(job.ipfs, job.work_dir)
        state = JobState()
        latency: dict[str, Any] = {"setup_s (not timed below)": setup_s}
        rows = []
        epoch = 0
        try:
            for size in sizes:
                runs = {}
                for preverified in (False, True):
                    records = _records(fleet, epoch, length, size, ctx.domain)
                    times, outcome = _epoch_to_verified(
                        ctx, epoch, records, state, store, committee, session, preverified
                    )
                    runs[preverified] = times
                    mode = "pre-verified" if preverified else "cold"
                    latency[f"{size:,} readings, {mode}: epoch end -> verified (s)"] = round(times["total"], 2)
                    latency[f"{size:,} readings, {mode}: pipeline / store / committee / chain (s)"] = (
                        f"{times['pipeline']:.1f} / {times['store']:.1f} / "
                        f"{times['committee']:.1f} / {times['chain']:.1f}"
                    )
                    dumps = [data for name, data in outcome.artifacts.items() if name.endswith("_tree")]
                    latency[f"{size:,} readings: tree dumps stored (MB)"] = round(sum(map(len, dumps)) / 1e6, 1)
                    if preverified:
                        latency[f"{size:,} readings: observing while open, untimed (s)"] = round(
                            times["observe_while_open"], 1
                        )
                        if size == sizes[-1]:
                            share = _operator_share(ctx, epoch, records, state, outcome)
                            latency[f"{size:,} readings: one operator on one core (s)"] = {
                                k: round(v, 2) for k, v in share.items()
                            }
                    state = outcome.state
                    epoch += 1
                rows.append(
                    comparison(
                        f"epoch end -> verified, {size:,} readings, pre-verified",
                        runs[True]["total"],
                        runs[False]["total"],
                        "s",
                        "cold (signatures checked at epoch end)",
                    )
                )
        finally:
            committee.close()
            if session is not None:
                session.chain.close()
        result["epoch_to_verified"] = latency
        result["latency"] = rows
        return result

"""What a job holds, read without writing anything: its epochs, one epoch in full, its dead
letters, and exports of chosen epochs (``veristream epochs``, ``epoch``, ``deadletters``,
``export``).

The work directory's epoch checkpoints (``pipeline.state``) give each epoch's manifest and
the state after it; the IPFS store gives the batches the manifest names; the dead-letter
store (``WORK_DIR/ingest/deadletters``) every rejected message; the chain (opened read-only)
whether each epoch is verified, by whom and at what gas. Nothing here creates a file:
stores and the embedded chain are opened read-only, and a work directory that was never
run is ``NotFound``.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from veristream.chain import connect_job_chain, job_deployment, job_token
from veristream.connectors.deadletters import DeadLetter, DeadLetterStore
from veristream.connectors.ipfs import BlockStore, open_store
from veristream.connectors.ipfs.cid import format_cid
from veristream.contracts import Deployment, epoch_info, load_deployment
from veristream.contracts.chain import Chain
from veristream.contracts.epoch_verifier import EpochInfo
from veristream.contracts.token import TokenInfo
from veristream.pipeline.jobspec import JobSpec
from veristream.pipeline.state import Checkpoint
from veristream.provers.epoch_result import job_id_hash
from veristream.provers.errors import InputRejected, NotFound
from veristream.provers.reasons import PIPELINE_STAGES
from veristream.run import committed_epochs

DEAD_LETTER_DIR = Path("ingest") / "deadletters"
EXPORT_FORMATS = ("parquet", "csv")
EXPORT_TABLES = ("readings", "aggregates", "rewards", "deadletters")


# THE JOB'S PARTS, READ-ONLY


def checkpoints(job: JobSpec) -> dict[int, Checkpoint]:
    """Every committed epoch of the job, by number; ``NotFound`` when the job never ran here."""
    work_dir = Path(job.work_dir)
    if not work_dir.is_dir():
        raise NotFound(f"job {job.job_id!r} has no work directory {work_dir}: run it first (veristream run JOB)")
    return {c.manifest.epoch: c for c in committed_epochs(work_dir) if c.manifest is not None}


def checkpoint_of(job: JobSpec, epoch: int) -> Checkpoint:
    """The checkpoint committed after ``epoch``; ``NotFound`` when the epoch was never computed."""
    found = checkpoints(job)
    if epoch not in found:
        known = f"epochs {min(found)}..{max(found)}" if found else "no epochs yet"
        raise NotFound(f"epoch {epoch} of job {job.job_id!r} was never computed here ({known})")
    return found[epoch]


def read_store(job: JobSpec) -> BlockStore:
    """The job's IPFS store, opened without writing."""
    return open_store(job.ipfs, job.work_dir, read_only=True)


def dead_letter_store(job: JobSpec) -> DeadLetterStore | None:
    """The job's dead-letter store, read-only (None before anything was rejected)."""
    directory = Path(job.work_dir) / DEAD_LETTER_DIR
    return DeadLetterStore(directory, read_only=True) if directory.is_dir() else None


@dataclass
class ChainView:
    """The job's chain opened read-only, with its contracts, job id and token."""

    chain: Chain
    deployment: Deployment
    job_hash: bytes
    token: TokenInfo

    def epoch(self, epoch: int) -> EpochInfo | None:
        """The verified epoch as the chain holds it, or None while it is not verified."""
        return epoch_info(self.chain, self.deployment, self.job_hash, epoch)

    def gas(self, tx_hash: str | None) -> int | None:
        """The gas a transaction used."""
        if tx_hash is None:
            return None
        return int(self.chain.w3.eth.get_transaction_receipt(tx_hash)["gasUsed"])


@contextmanager
def chain_view(job: JobSpec) -> Iterator[ChainView]:
    """The job's chain, read-only; ``NotFound`` before its first run deployed the contracts."""
    deployment = job_deployment(job)
    if not deployment.is_file():
        raise NotFound(f"job {job.job_id!r} has no deployment ({deployment}): run it first (veristream run JOB)")
    chain = connect_job_chain(job, read_only=True)
    try:
        dep = load_deployment(chain, deployment)
        yield ChainView(chain, dep, job_id_hash(chain.sender, job.job_id), job_token(job, chain, dep))
    finally:
        chain.close()


@contextmanager
def chain_view_if_deployed(job: JobSpec) -> Iterator[ChainView | None]:
    """``chain_view``, or None while the job has no deployment (its epochs are then pending)."""
    if not job_deployment(job).is_file():
        yield None
        return
    with chain_view(job) as view:
        yield view


# EPOCHS


def _hex(value: bytes | None) -> str | None:
    return None if value is None else "0x" + value.hex()


def signer_slots(bitmap: int | None) -> list[int]:
    """The committee slots set in a signer bitmap."""
    if bitmap is None:
        return []
    return [slot for slot in range(bitmap.bit_length()) if bitmap >> slot & 1]


def epoch_status(checkpoint: Checkpoint, info: EpochInfo | None) -> str:
    """``verified`` on chain, ``empty`` (no accepted reading: nothing to verify), else ``pending``."""
    assert checkpoint.manifest is not None
    if info is not None:
        return "verified"
    return "empty" if checkpoint.manifest.accepted == 0 else "pending"


def epoch_row(
    checkpoint: Checkpoint, info: EpochInfo | None, gas: int | None, rejected: dict[str, int]
) -> dict[str, Any]:
    """One epoch as ``veristream epochs --json`` lists it: status, counts, CIDs, roots, signers, gas, tx."""
    manifest = checkpoint.manifest
    assert manifest is not None
    return {
        "epoch": manifest.epoch,
        "status": epoch_status(checkpoint, info),
        "verified": info is not None,
        "readings_in": manifest.readings_in,
        "accepted": manifest.accepted,
        "rejected": sum(rejected.values()),
        "rejected_by_reason": dict(sorted(rejected.items())),
        "batch_cid": manifest.batch_cid,
        "manifest_cid": checkpoint.manifest_cid,
        "data_root": manifest.data_root,
        "aggregates_root": manifest.aggregates_root,
        "reward_root": manifest.reward_root,
        "signers": signer_slots(info.signer_bitmap if info else None),
        "signed_weight": info.signed_weight if info else None,
        "total_weight": info.total_weight if info else None,
        "gas": gas,
        "tx_hash": info.tx_hash if info else None,
    }


def _rejected_by_epoch(job: JobSpec, found: dict[int, Checkpoint]) -> dict[int, dict[str, int]]:
    """Dead letters per epoch and reason: the store's, or the manifests' pipeline counts without one."""
    store = dead_letter_store(job)
    if store is None:
        return {n: dict(c.manifest.rejected) for n, c in found.items() if c.manifest is not None}
    try:
        counts: dict[int, Counter[str]] = {}
        for letter in store.read():
            if letter.epoch is not None:
                counts.setdefault(letter.epoch, Counter())[letter.reason] += 1
    finally:
        store.close()
    return {n: dict(counts.get(n, Counter())) for n in found}


def list_epochs(job: JobSpec) -> list[dict[str, Any]]:
    """Every committed epoch of the job, in order, as ``epoch_row``s checked against the chain."""
    found = checkpoints(job)
    if not found:
        return []
    rejected = _rejected_by_epoch(job, found)
    rows = []
    with chain_view_if_deployed(job) as view:
        for epoch in sorted(found):
            info = view.epoch(epoch) if view else None
            gas = view.gas(info.tx_hash) if view and info else None
            rows.append(epoch_row(found[epoch], info, gas, rejected[epoch]))
    return rows


def epoch_detail(job: JobSpec, epoch: int) -> dict[str, Any]:
    """One epoch in full: its row, window, every CID its manifest links, the reward split (with
    the token's display amounts), the batch CID the chain holds, and dead letters by reason."""
    checkpoint = checkpoint_of(job, epoch)
    manifest = checkpoint.manifest
    assert manifest is not None
    rejected = _rejected_by_epoch(job, {epoch: checkpoint})[epoch]
    with chain_view_if_deployed(job) as view:
        info = view.epoch(epoch) if view else None
        row = epoch_row(checkpoint, info, view.gas(info.tx_hash) if view and info else None, rejected)
        # amounts in the token's units once the chain names the token
        display = view.token.format if view else str
    rewards = {
        name: getattr(manifest.rewards, name)
        for name in ("budget", "paid", "remainder", "carry_out", "sink_paid", "beneficiaries")
    }
    for name in ("budget", "paid", "remainder", "carry_out", "sink_paid"):
        rewards[f"{name}_display"] = display(rewards[name])
    return row | {
        "job_id": manifest.job_id,
        "start_ms": manifest.start_ms,
        "end_ms": manifest.end_ms,
        "prev_manifest_cid": manifest.prev_manifest_cid,
        "dead_letter_cid": manifest.dead_letter_cid,
        "aggregates_cid": manifest.aggregates_cid,
        "state_cid": manifest.state_cid,
        "trees": {"data": manifest.trees.data, "aggregates": manifest.trees.aggregates, "rewards": manifest.trees.rewards},
        "chain_batch_cid": format_cid(info.batch_cid) if info and info.batch_cid else None,
        "device_registry_block": manifest.device_registry_block,
        "rewards": rewards,
        "carry": str(checkpoint.state.carry),
        "beneficiaries_total": len(checkpoint.state.cumulative),
    }


# DEAD LETTERS


def letter_device(letter: DeadLetter) -> str | None:
    """The device a dead letter is about: a pipeline one names it (its detail starts ``DEVICE seq
    N:``), an ingest one when its envelope parses and names one (None otherwise)."""
    if letter.stage in PIPELINE_STAGES:
        return letter.detail.partition(" seq ")[0] if " seq " in letter.detail else None
    try:
        envelope = json.loads(letter.raw)
    except (ValueError, UnicodeDecodeError):
        return None
    device = envelope.get("device_id") if isinstance(envelope, dict) else None
    return device if isinstance(device, str) else None


def dead_letter_row(letter: DeadLetter) -> dict[str, Any]:
    """One dead letter as ``veristream deadletters --json`` lists it (raw bytes as 0x-hex)."""
    return {
        "epoch": letter.epoch,
        "stage": letter.stage,
        "reason": letter.reason,
        "device": letter_device(letter),
        "detail": letter.detail,
        "raw": "0x" + letter.raw.hex(),
    }


def list_dead_letters(
    job: JobSpec, epoch: int | None = None, reason: str | None = None, device: str | None = None
) -> list[dict[str, Any]]:
    """The job's rejected messages with their reasons, in the order they were filed, filtered."""
    checkpoints(job)  # NotFound for a job that never ran
    store = dead_letter_store(job)
    if store is None:
        return []
    try:
        letters = store.read(epoch)
    finally:
        store.close()
    rows = [dead_letter_row(letter) for letter in letters]
    return [
        row
        for row in rows
        if (reason is None or row["reason"] == reason) and (device is None or row["device"] == device)
    ]


# EXPORT


def _with_epoch(table: pa.Table, epoch: int) -> pa.Table:
    return table.add_column(0, "epoch", pa.array([epoch] * table.num_rows, type=pa.uint64()))


def _parquet(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def reward_rows(before: Checkpoint | None, after: Checkpoint) -> pa.Table:
    """What each account earned in ``after``'s epoch and its running total (decimal strings: amounts
    exceed 64 bits)."""
    assert after.manifest is not None
    previous = before.state.cumulative if before is not None else {}
    accounts = sorted(after.state.cumulative)
    return pa.table(
        {
            "epoch": pa.array([after.manifest.epoch] * len(accounts), type=pa.uint64()),
            "account": ["0x" + a.hex() for a in accounts],
            "earned": [str(after.state.cumulative[a] - previous.get(a, 0)) for a in accounts],
            "cumulative": [str(after.state.cumulative[a]) for a in accounts],
        }
    )


def _csv_ready(table: pa.Table) -> pa.Table:
    """Binary columns as 0x-hex text: CSV has no bytes."""
    for index, column in enumerate(table.schema):
        kind = column.type
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
            values = ["0x" + bytes(v).hex() if v is not None else None for v in table.column(index).to_pylist()]
            table = table.set_column(index, column.name, pa.array(values, type=pa.string()))
    return table


def export_epochs(job: JobSpec, fmt: str, out: Path, epochs: Sequence[int] = ()) -> dict[str, Any]:
    """Write the accepted readings, aggregates, rewards and dead letters of ``epochs`` (default:
    every committed one) to ``out/<table>.<fmt>``, each row tagged with its epoch; every batch
    is fetched from the store re-hashed. Returns the files written and their row counts."""
    if fmt not in EXPORT_FORMATS:
        raise InputRejected(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    found = checkpoints(job)
    chosen = sorted(set(epochs)) if epochs else sorted(found)
    for epoch in chosen:
        checkpoint_of(job, epoch)
    store = read_store(job)
    tables: dict[str, list[pa.Table]] = {name: [] for name in EXPORT_TABLES}
    ordered = sorted(found)
    for epoch in chosen:
        checkpoint = found[epoch]
        manifest = checkpoint.manifest
        assert manifest is not None
        tables["readings"].append(_with_epoch(_parquet(store.get(manifest.batch_cid)), epoch))
        tables["aggregates"].append(_with_epoch(_parquet(store.get(manifest.aggregates_cid)), epoch))
        tables["deadletters"].append(_with_epoch(_parquet(store.get(manifest.dead_letter_cid)), epoch))
        index = ordered.index(epoch)
        tables["rewards"].append(reward_rows(found[ordered[index - 1]] if index else None, checkpoint))
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    for name, parts in tables.items():
        if not parts:
            continue
        table = pa.concat_tables(parts)
        path = out / f"{name}.{fmt}"
        if fmt == "parquet":
            pq.write_table(table, path)
        else:
            pa_csv.write_csv(_csv_ready(table), path)
        files[name] = {"path": str(path), "rows": table.num_rows}
    return {"job_id": job.job_id, "format": fmt, "epochs": chosen, "files": files}

"""Recompute one verified epoch from the chain and IPFS alone (``veristream verify``).

Nothing here reads the coordinator's work directory state (checkpoints, epoch
history, ingest log). The auditor needs only what the job spec names: the
chain (and its deployment addresses), the IPFS store, and the device registry.

1. **Chain**: the EpochVerifier says whether the epoch is verified and holds its
   data root, reward root and batch CID (from the ``EpochVerified`` event).
2. **Manifest chain**: the store's pinned manifests of the job are indexed; the
   one for this epoch whose batch CID is the chain's is taken, and its
   ``prev_manifest_cid`` links are walked back to the job's first epoch.
3. **Replay**: from the empty state, every earlier epoch of that chain is
   re-executed with ``reexecute`` (the operators' code path). An earlier epoch
   with accepted readings must itself be verified on chain with the recomputed
   roots and batch; so the state before the audited epoch is derived from the
   chain's commitments, not trusted from a stored state file.
4. **Audited epoch**: its batch is fetched (every block re-hashed by the store),
   re-executed, and data root, reward root and batch CID compared with the chain.

Cost is one re-execution per epoch up to the audited one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from veristream.chain import connect_job_chain
from veristream.connectors.ipfs import BlockStore, open_store
from veristream.connectors.ipfs.cid import RAW, cid_to_bytes, format_cid, normalize_cid, parse_cid
from veristream.contracts import epoch_info, load_deployment
from veristream.contracts.deploy import DEPLOYMENT_FILE
from veristream.devices import chain_devices
from veristream.pipeline.compute import job_context
from veristream.pipeline.jobspec import JobSpec
from veristream.pipeline.manifest import manifest_from_json
from veristream.pipeline.reexecute import reexecute
from veristream.pipeline.state import JobState
from veristream.provers.encoding import keccak256
from veristream.provers.epoch_result import job_id_hash
from veristream.provers.errors import InputRejected

# a manifest is a few hundred bytes: one raw block; batches and states larger than a chunk are skipped
_MANIFEST_MARK = b'"batch_cid"'


@dataclass(frozen=True, slots=True)
class FieldCheck:
    """One compared field: what the chain holds and what was recomputed."""

    name: str
    chain: str
    recomputed: str

    @property
    def ok(self) -> bool:
        """Whether both sides agree."""
        return self.chain == self.recomputed


@dataclass
class AuditReport:
    """The verdict of ``audit_epoch``: per-field checks and every finding, ``reason`` when it failed."""

    epoch: int
    checks: list[FieldCheck] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    reason: str | None = None
    tx_hash: str | None = None
    verified_on_chain: bool = True
    """False when the chain holds no verified result for the epoch (nothing to compare with)."""

    @property
    def ok(self) -> bool:
        """Verified on chain, and every field recomputes to the chain's value."""
        return self.reason is None and bool(self.checks) and all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        """The machine-readable verdict."""
        return {
            "epoch": self.epoch,
            "ok": self.ok,
            "reason": self.reason,
            "tx_hash": self.tx_hash,
            "checks": [
                {"field": c.name, "chain": c.chain, "recomputed": c.recomputed, "ok": c.ok}
                for c in self.checks
            ],
            "findings": self.findings,
        }


def pinned_cids(store: BlockStore) -> list[str]:
    """The store's pinned root CIDs (embedded: its pin folder; RPC: ``pin/ls`` of the node)."""
    if hasattr(store, "pins"):
        return list(store.pins())
    import httpx

    reply = httpx.post(f"{store.url}/api/v0/pin/ls", params={"type": "recursive"}, timeout=60.0)
    if reply.status_code != 200:
        raise InputRejected(f"IPFS node at {store.url} did not list its pins: HTTP {reply.status_code}")

    keys = reply.json().get("Keys") or {}
    return sorted(normalize_cid(str(k)) for k in keys)


def job_manifests(store: BlockStore, job_id: str) -> dict[str, Any]:
    """Every manifest of ``job_id`` pinned in ``store``, by CID."""
    found: dict[str, Any] = {}
    for cid in pinned_cids(store):
        try:
            if parse_cid(cid).codec != RAW:
                continue
            data = store.get(cid)
        except (ValueError, LookupError):
            continue  # not ours to judge here: only blocks on the audited path must be intact
        if not data.startswith(b"{") or _MANIFEST_MARK not in data:
            continue
        try:
            manifest = manifest_from_json(data)
        except ValueError:
            continue
        if manifest.job_id == job_id:
            found[cid] = manifest
    return found


def manifest_chain(manifests: dict[str, Any], head_cid: str) -> list[tuple[str, Any]]:
    """The manifests from the job's first epoch up to ``head_cid``, oldest first."""
    chain: list[tuple[str, Any]] = []
    cid: str | None = head_cid
    while cid is not None:
        if cid not in manifests:
            raise InputRejected(f"manifest {cid} (linked from epoch {chain[-1][1].epoch}) is not in the store")
        manifest = manifests[cid]
        if chain and manifest.epoch >= chain[-1][1].epoch:
            raise InputRejected(f"manifest chain goes from epoch {chain[-1][1].epoch} back to {manifest.epoch}")
        chain.append((cid, manifest))
        cid = manifest.prev_manifest_cid
    return chain[::-1]


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def audit_epoch(
    job: JobSpec,
    epoch: int,
    *,
    batch_cid: str | None = None,
    deployment: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> AuditReport:
    """Recompute ``epoch`` from the chain and IPFS alone and compare it with the chain.

    ``batch_cid`` recomputes that batch instead of the chain's (an auditor
    checking a candidate: it passes only if it is the chain's batch).
    ``deployment`` is the contracts' address file (default: the work directory's).
    """
    say = progress or (lambda _: None)
    report = AuditReport(epoch)
    work_dir = Path(job.work_dir)
    # CHAIN
    chain = connect_job_chain(job, read_only=True)
    job_hash = job_id_hash(chain.sender, job.job_id)  # the job this signer created
    try:
        dep = load_deployment(chain, deployment or Path(job.work_dir) / DEPLOYMENT_FILE)
        info = epoch_info(chain, dep, job_hash, epoch)
        if info is None:
            report.reason = f"epoch {epoch} of job {job.job_id!r} is not verified on chain"
            report.verified_on_chain = False
            return report
        report.tx_hash = info.tx_hash
        if info.batch_cid is None:
            report.reason = f"no EpochVerified event found for epoch {epoch}: the chain's batch CID is unknown"
            return report
        if info.manifest_cid is None or keccak256(info.manifest_cid) != info.manifest_cid_hash:
            report.reason = "the event's manifest CID does not hash to the stored manifestCidHash"
            return report
        chain_cid = format_cid(info.batch_cid)
        say(f"chain: epoch {epoch} verified in tx {info.tx_hash}, batch {chain_cid}")

        # MANIFEST CHAIN
        store = open_store(job.ipfs, work_dir, read_only=True)
        manifests = job_manifests(store, job.job_id)
        heads = [cid for cid, m in manifests.items() if m.epoch == epoch and m.batch_cid == chain_cid]
        if not heads:
            report.reason = (
                f"no manifest of job {job.job_id!r} epoch {epoch} naming the chain's batch {chain_cid} "
                f"is pinned in the store ({len(manifests)} manifests of the job found)"
            )
            return report
        history = manifest_chain(manifests, heads[0])
        say(f"ipfs: manifest {heads[0]}, {len(history) - 1} earlier epochs to replay")

        # REPLAY THE EARLIER EPOCHS FROM THE EMPTY STATE, EACH ANCHORED ON CHAIN
        ctx = job_context(job, devices=chain_devices(job, chain))
        state = JobState()
        for _cid, manifest in history[:-1]:
            earlier = reexecute(
                ctx, manifest.epoch, store.get(manifest.batch_cid), state, registry_block=manifest.device_registry_block
            )
            if not earlier.clean:
                report.reason = f"epoch {manifest.epoch} (before the audited one) holds readings that fail: " + "; ".join(
                    earlier.problems[:3]
                )
                return report
            if earlier.accepted:
                anchor = epoch_info(chain, dep, job_hash, manifest.epoch)
                if anchor is None:
                    report.reason = f"earlier epoch {manifest.epoch} has accepted readings but is not verified on chain"
                    return report
                if (
                    anchor.data_root != earlier.data_root
                    or anchor.reward_root != earlier.reward_root
                    or anchor.batch_cid != cid_to_bytes(manifest.batch_cid)
                ):
                    report.reason = f"earlier epoch {manifest.epoch} does not recompute to what the chain holds"
                    return report
            state = earlier.state
            say(f"replayed epoch {manifest.epoch} ({earlier.accepted} readings)")
    finally:
        chain.close()

    # THE AUDITED EPOCH
    head = history[-1][1]
    target = normalize_cid(batch_cid) if batch_cid else chain_cid
    try:
        batch = store.get(target)
    except (ValueError, LookupError) as error:
        report.reason = f"cannot fetch batch {target} intact from the store: {error}"
        return report
    try:
        recomputed = reexecute(ctx, epoch, batch, state, registry_block=head.device_registry_block)
    except ValueError as error:
        report.reason = f"cannot re-execute batch {target}: {error}"
        return report
    report.findings += [f"batch reading fails a check: {p}" for p in recomputed.problems]
    report.checks = [
        FieldCheck("data root", _hex(info.data_root), _hex(recomputed.data_root)),
        FieldCheck("reward root", _hex(info.reward_root), _hex(recomputed.reward_root)),
        FieldCheck("batch CID", chain_cid, target),
    ]
    if head.data_root != _hex(recomputed.data_root):
        report.findings.append(f"the manifest's data root {head.data_root} differs from the recomputed one")
    reasons = []
    mismatched = [c.name for c in report.checks if not c.ok]
    if mismatched:
        reasons.append("recomputed " + ", ".join(mismatched) + " differ from the chain")
    if recomputed.problems:
        reasons.append(f"readings of the batch fail the checks ({recomputed.problems[0]})")
    report.reason = "; ".join(reasons) or None
    return report

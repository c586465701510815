"""Recompute one verified epoch from the chain and IPFS alone (``veristream verify``).

Nothing here reads the coordinator's work directory state (checkpoints, epoch
history, ingest log). The auditor needs only what the job spec names: the
chain (and its deployment addresses), the IPFS store, and the device registry.

1. **Chain**: the EpochVerifier says whether the epoch is verified and holds its
   data, aggregates and reward roots and its manifest's CID hash; the
   ``EpochVerified`` event gives the manifest's and the batch's CIDs.
2. **Manifest chain**: the manifest the chain names is fetched from the store
   (its CID must hash to the chain's ``manifestCidHash``, and it must name this
   job, epoch and the chain's batch), and its ``prev_manifest_cid`` links are
   walked back to the job's first epoch.
3. **Replay**: from the empty state, every earlier epoch of that chain is
   re-executed with ``reexecute`` (the operators' code path). An earlier epoch
   with accepted readings must itself be verified on chain with the recomputed
   roots, batch and manifest; so the state before the audited epoch is derived
   from the chain's commitments, not trusted from a stored state file.
4. **Audited epoch**: its batch is fetched (every block re-hashed by the store),
   re-executed, and the three roots, the batch CID and the manifest CID hash
   compared with the chain, and the manifest's tree dumps with the recomputed
   trees' dumps.

Cost is one re-execution per epoch up to the audited one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from veristream.chain import connect_job_chain
from veristream.connectors.ipfs import BlockStore, open_store
from veristream.connectors.ipfs.cid import cid_to_bytes, format_cid, normalize_cid
from veristream.contracts import epoch_info, load_deployment
from veristream.contracts.deploy import DEPLOYMENT_FILE
from veristream.devices import chain_devices
from veristream.pipeline.compute import job_context
from veristream.pipeline.jobspec import JobSpec
from veristream.pipeline.manifest import Manifest, TreeDumps, manifest_from_json
from veristream.pipeline.reexecute import reexecute
from veristream.pipeline.state import JobState
from veristream.provers.encoding import keccak256
from veristream.provers.epoch_result import job_id_hash
from veristream.provers.errors import InputRejected


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


def manifest_history(store: BlockStore, job_id: str, head_cid: str) -> list[tuple[str, Manifest]]:
    """The manifests of ``job_id`` from its first epoch up to ``head_cid``, oldest first, each
    fetched by CID (so re-hashed) following ``prev_manifest_cid``; ``InputRejected`` when a link
    is missing, of another job, or does not go back in epochs."""
    history: list[tuple[str, Manifest]] = []
    cid: str | None = head_cid
    while cid is not None:
        try:
            manifest = manifest_from_json(store.get(cid))
        except LookupError:
            linked = f" (linked from epoch {history[-1][1].epoch})" if history else ""
            raise InputRejected(f"manifest {cid}{linked} is not in the store") from None
        if manifest.job_id != job_id:
            raise InputRejected(f"manifest {cid} is of job {manifest.job_id!r}, not {job_id!r}")
        if history and manifest.epoch >= history[-1][1].epoch:
            raise InputRejected(f"manifest chain goes from epoch {history[-1][1].epoch} back to {manifest.epoch}")
        history.append((cid, manifest))
        cid = manifest.prev_manifest_cid
    return history[::-1]


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _trees(trees: TreeDumps) -> str:
    return f"data {trees.data}, aggregates {trees.aggregates}, rewards {trees.rewards}"


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
        manifest_cid = format_cid(info.manifest_cid)
        say(f"chain: epoch {epoch} verified in tx {info.tx_hash}, manifest {manifest_cid}, batch {chain_cid}")

        # MANIFEST CHAIN, FROM THE CHAIN'S MANIFEST
        store = open_store(job.ipfs, work_dir, read_only=True)
        try:
            history = manifest_history(store, job.job_id, manifest_cid)
        except ValueError as error:
            report.reason = f"cannot follow the chain's manifest {manifest_cid}: {error}"
            return report
        head = history[-1][1]
        if head.epoch != epoch or head.batch_cid != chain_cid:
            report.reason = (
                f"the chain's manifest {manifest_cid} is of epoch {head.epoch} with batch {head.batch_cid}, "
                f"not epoch {epoch} with the chain's batch {chain_cid}"
            )
            return report
        say(f"ipfs: manifest {manifest_cid}, {len(history) - 1} earlier epochs to replay")

        # REPLAY THE EARLIER EPOCHS FROM THE EMPTY STATE, EACH ANCHORED ON CHAIN
        ctx = job_context(job, devices=chain_devices(job, chain))
        state = JobState()
        for cid, manifest in history[:-1]:
            earlier = reexecute(
                ctx,
                manifest.epoch,
                store.get(manifest.batch_cid),
                state,
                registry_block=manifest.device_registry_block,
                credential_status=manifest.credential_status,
                fetch=store.get,
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
                    or anchor.aggregates_root != earlier.aggregates_root
                    or anchor.reward_root != earlier.reward_root
                    or anchor.manifest_cid_hash != keccak256(cid_to_bytes(cid))
                    or anchor.batch_cid not in (None, cid_to_bytes(manifest.batch_cid))
                ):
                    report.reason = f"earlier epoch {manifest.epoch} does not recompute to what the chain holds"
                    return report
            state = earlier.state
            say(f"replayed epoch {manifest.epoch} ({earlier.accepted} readings)")
    finally:
        chain.close()

    # THE AUDITED EPOCH
    target = normalize_cid(batch_cid) if batch_cid else chain_cid
    try:
        batch = store.get(target)
    except (ValueError, LookupError) as error:
        report.reason = f"cannot fetch batch {target} intact from the store: {error}"
        return report
    try:
        recomputed = reexecute(
            ctx,
            epoch,
            batch,
            state,
            registry_block=head.device_registry_block,
            credential_status=head.credential_status,
            fetch=store.get,
        )
    except ValueError as error:
        report.reason = f"cannot re-execute batch {target}: {error}"
        return report
    report.findings += [f"batch reading fails a check: {p}" for p in recomputed.problems]
    report.checks = [
        FieldCheck("data root", _hex(info.data_root), _hex(recomputed.data_root)),
        FieldCheck("aggregates root", _hex(info.aggregates_root), _hex(recomputed.aggregates_root)),
        FieldCheck("reward root", _hex(info.reward_root), _hex(recomputed.reward_root)),
        FieldCheck("batch CID", chain_cid, target),
        # the manifest the chain names: its hash, and the dumps it links against the recomputed trees'
        FieldCheck("manifest CID hash", _hex(info.manifest_cid_hash), _hex(keccak256(cid_to_bytes(manifest_cid)))),
        FieldCheck("tree dumps", _trees(head.trees), _trees(recomputed.trees)),
    ]
    stated = {"data": head.data_root, "aggregates": head.aggregates_root, "reward": head.reward_root}
    actual = {"data": recomputed.data_root, "aggregates": recomputed.aggregates_root, "reward": recomputed.reward_root}
    for name, root in stated.items():
        if root != _hex(actual[name]):
            report.findings.append(f"the manifest's {name} root {root} differs from the recomputed one")
    reasons = []
    mismatched = [c.name for c in report.checks if not c.ok]
    if mismatched:
        reasons.append("recomputed " + ", ".join(mismatched) + " differ from the chain")
    if recomputed.problems:
        reasons.append(f"readings of the batch fail the checks ({recomputed.problems[0]})")
    report.reason = "; ".join(reasons) or None
    return report

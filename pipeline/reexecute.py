"""Re-execution: an epoch recomputed from its stored batch alone, and the one proposal check.

``reexecute`` recomputes an epoch's roots, tree dumps and next state from its
batch and the state before it; ``check_proposal`` is what every operator (and
the auditor) decides about a proposed ``EpochResult``: whether the manifest,
batch, roots, tree dumps and committed state it names are the honest output of
the pipeline, and the signed manifest CID is that manifest's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from veristream.connectors.ipfs import BlockStore, cid_of, cid_to_bytes
from veristream.pipeline.batch import (
    decode_accepted,
)
from veristream.pipeline.compute import (
    EpochContext,
    compute_epoch,
    context_at,
    credentials_pinned,
    job_context,
)
from veristream.pipeline.credential_status import CredentialPins, pins_disagree
from veristream.pipeline.jobspec import JobSpec
from veristream.pipeline.manifest import Manifest, TreeDumps, manifest_from_json
from veristream.pipeline.publish import dump_cids, tree_dumps
from veristream.pipeline.state import JobState, state_from_json
from veristream.provers.aggregation import Proposal
from veristream.provers.encoding import parse_bytes32
from veristream.provers.epoch_result import EpochResult, job_id_hash
from veristream.provers.errors import InputRejected, Mismatch
from veristream.provers.signing import VerdictMemo


@dataclass(frozen=True, slots=True)
class Recomputed:
    """What re-executing a batch gives, and any reading of the batch that should not be there."""

    data_root: bytes
    aggregates_root: bytes
    reward_root: bytes
    accepted: int
    state: JobState
    problems: tuple[str, ...]
    trees: TreeDumps

    @property
    def clean(self) -> bool:
        """Whether every reading of the batch passed every check again."""
        return not self.problems


def reexecute(
    job: JobSpec | EpochContext,
    epoch: int,
    batch_bytes: bytes,
    prev_state: JobState,
    memo: VerdictMemo | None = None,
    registry_block: int | None = None,
    credential_status: dict[str, Any] | None = None,
    fetch: Callable[[str], bytes] | None = None,
) -> Recomputed:
    """Recompute an epoch's roots from its batch alone and the state before it.

    Every reading in the batch is checked again (signature, replay guard,
    plausibility); a reading that fails is reported in ``problems`` (the batch
    is then not the honest output of the pipeline). ``trees`` are the CIDs the
    three trees' dumps have (computed, not stored). ``ValueError`` when the
    batch is not a readable batch. ``memo``: the operator's own verdict memo
    of the epoch (pre-verification; same result without it). ``registry_block``:
    the manifest's ``device_registry_block``, the block the on-chain device
    registry is read at (None for a registry file). ``credential_status``: the manifest's
    pinned credentials and status lists, whose documents ``fetch`` gives by CID (a job with
    ``devices.credentials`` needs both).
    """
    ctx = job if isinstance(job, EpochContext) else job_context(job)
    ctx = context_at(ctx, registry_block)
    if credential_status is not None or ctx.job.devices.credentials is not None:
        if fetch is None:
            raise InputRejected("re-executing an epoch with pinned credentials needs a store to fetch them from")
        ctx = credentials_pinned(ctx, epoch, credential_status, fetch)
    candidates = decode_accepted(batch_bytes)
    computation = compute_epoch(ctx, epoch, candidates, prev_state, decoded=True, memo=memo)
    problems = tuple(
        f"{d.reason} ({d.device_id} seq {d.seq}{': ' + d.detail if d.detail else ''})"
        for d in computation.dead[:20]
    )
    if len(computation.dead) > 20:
        problems += (f"... and {len(computation.dead) - 20} more",)
    return Recomputed(
        data_root=computation.data_root,
        aggregates_root=computation.aggregates_root,
        reward_root=computation.reward_root,
        accepted=len(computation.accepted),
        state=computation.state,
        problems=problems,
        trees=dump_cids(tree_dumps(computation), cid_of),
    )


def states_match(a: JobState, b: JobState) -> bool:
    """Whether two states agree on everything an epoch computes (ignoring the manifest link)."""
    return (
        a.epoch == b.epoch
        and dict(a.high_water) == dict(b.high_water)
        and dict(a.cumulative) == dict(b.cumulative)
        and a.carry == b.carry
    )


def proposal_for(manifest: Manifest, manifest_cid: str, chain_id: int, verifier: str, job_owner: str) -> Proposal:
    """The proposal for an epoch the submitter stored (its manifest and the manifest's CID), for
    the job ``job_owner`` created on chain."""
    result = EpochResult(
        job_id=job_id_hash(job_owner, manifest.job_id),
        epoch=manifest.epoch,
        data_root=parse_bytes32(manifest.data_root),
        aggregates_root=parse_bytes32(manifest.aggregates_root),
        reward_root=parse_bytes32(manifest.reward_root),
        batch_cid=cid_to_bytes(manifest.batch_cid),
        manifest_cid=cid_to_bytes(manifest_cid),
    )
    return Proposal(manifest.job_id, manifest.epoch, manifest_cid, result, chain_id, verifier, job_owner)


@dataclass(frozen=True, slots=True)
class Checked:
    """An operator's decision on a proposal: the reason to refuse, or the state after the epoch."""

    reason: str | None
    state: JobState | None = None


def check_proposal(
    ctx: EpochContext,
    store: BlockStore,
    proposal: Proposal,
    known_states: Mapping[str, JobState],
    memo: VerdictMemo | None = None,
    corrupt_data_root: bool = False,
) -> Checked:
    """Whether ``proposal`` is the honest result of its epoch, re-executed from ``store`` alone.

    The proposed manifest CID must be the manifest's, and the manifest must name
    this job, the epoch and the proposed batch; the batch must re-execute to the
    proposed roots, to the manifest's roots, counts and committed state, and to
    the tree dumps it links (each present in the store). The state before the epoch is ``known_states[prev manifest
    CID]`` when the caller co-signed that epoch, otherwise the state the previous
    manifest commits to (a late joiner trusts the previous, verified, epoch).
    ``corrupt_data_root`` flips a bit of the recomputed data root (a demo fault).
    """
    result = proposal.result
    # MANIFEST
    if result.manifest_cid != cid_to_bytes(proposal.manifest_cid):
        return Checked("proposed manifest CID is not the CID of the manifest proposed")
    manifest = manifest_from_json(store.get(proposal.manifest_cid))
    if manifest.job_id != ctx.job.job_id or proposal.job_id != manifest.job_id:
        return Checked(f"manifest is for job {manifest.job_id!r}, not {ctx.job.job_id!r}")
    if result.job_id != job_id_hash(proposal.job_owner, manifest.job_id):
        return Checked("proposed jobId is not the on-chain id of the manifest's job for the proposed owner")
    if manifest.epoch != proposal.epoch or result.epoch != proposal.epoch:
        return Checked(f"manifest is for epoch {manifest.epoch}, not {proposal.epoch}")
    if cid_to_bytes(manifest.batch_cid) != result.batch_cid:
        return Checked("proposed batch CID is not the manifest's batch")
    # STATE BEFORE THE EPOCH
    prev_cid = manifest.prev_manifest_cid
    if prev_cid is None:
        prev = JobState()
    elif prev_cid in known_states:
        prev = known_states[prev_cid]
    else:
        previous = manifest_from_json(store.get(prev_cid))
        prev = state_from_json(store.get(previous.state_cid))
    # PINNED CREDENTIALS: the ones anchored, no revocation left out
    if ctx.credentials is not None and manifest.credential_status is not None:
        try:
            expected = ctx.credentials(ctx.clock.start_ms(proposal.epoch), ctx.clock.end_ms(proposal.epoch), store)
            disagree = pins_disagree(CredentialPins.from_json(manifest.credential_status), expected, store.get)
        except InputRejected as exc:
            disagree = str(exc)
        if disagree is not None:
            return Checked(f"the manifest's pinned credentials do not hold: {disagree}")
    # RE-EXECUTE
    try:
        recomputed = reexecute(
            ctx,
            proposal.epoch,
            store.get(manifest.batch_cid),
            prev,
            memo,
            manifest.device_registry_block,
            manifest.credential_status,
            store.get,
        )
    except Mismatch as exc:
        return Checked(f"the manifest's pinned credentials do not hold: {exc}")
    except InputRejected as exc:
        if manifest.credential_status is None and ctx.job.devices.credentials is None:
            raise
        return Checked(f"the manifest's pinned credentials do not hold: {exc}")
    if not recomputed.clean:
        return Checked("batch holds readings that fail the checks: " + "; ".join(recomputed.problems[:3]))
    data_root = recomputed.data_root
    if corrupt_data_root:
        data_root = bytes([data_root[0] ^ 1]) + data_root[1:]
    if data_root != result.data_root:
        return Checked(
            f"data root mismatch: proposed 0x{result.data_root.hex()}, recomputed 0x{data_root.hex()}"
        )
    if recomputed.aggregates_root != result.aggregates_root:
        return Checked(
            f"aggregates root mismatch: proposed 0x{result.aggregates_root.hex()}, "
            f"recomputed 0x{recomputed.aggregates_root.hex()}"
        )
    if recomputed.reward_root != result.reward_root:
        return Checked(
            f"reward root mismatch: proposed 0x{result.reward_root.hex()}, "
            f"recomputed 0x{recomputed.reward_root.hex()}"
        )
    roots = {
        "data": (manifest.data_root, recomputed.data_root),
        "aggregates": (manifest.aggregates_root, recomputed.aggregates_root),
        "reward": (manifest.reward_root, recomputed.reward_root),
    }
    for name, (stated, actual) in roots.items():
        if stated != "0x" + actual.hex():
            return Checked(f"the manifest's {name} root {stated} is not the recomputed 0x{actual.hex()}")
    if manifest.trees != recomputed.trees:
        return Checked(f"the manifest's tree dumps {manifest.trees} are not the recomputed {recomputed.trees}")
    missing = [cid for cid in (manifest.trees.data, manifest.trees.aggregates, manifest.trees.rewards)
               if cid is not None and not store.has(cid)]
    if missing:
        return Checked(f"tree dumps the manifest links are not in the store: {', '.join(missing)}")
    if recomputed.accepted != manifest.accepted:
        return Checked(f"manifest claims {manifest.accepted} accepted readings, batch has {recomputed.accepted}")
    committed = state_from_json(store.get(manifest.state_cid))
    if not states_match(committed, recomputed.state):
        return Checked("the manifest's committed state differs from the recomputed one")
    return Checked(None, recomputed.state)

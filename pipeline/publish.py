"""Publishes a computed epoch: its batch, dead letters, aggregates, state, tree dumps and manifest.

``run_epoch`` computes a closed epoch (``veristream.pipeline.compute``) and
stores everything the manifest links in a content-addressed store, pinned:
among them the data, aggregates and reward trees as OpenZeppelin
``standard-v1`` dumps (``tree_dumps``). Running it again on the same inputs
gives byte-identical batches, dumps, CIDs and roots.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from veristream.connectors.ipfs import BlockStore
from veristream.pipeline.batch import (
    encode_accepted,
    encode_aggregates,
    encode_dead_letters,
)
from veristream.pipeline.commitments import aggregates_tree, data_tree, dump_json, reward_tree
from veristream.pipeline.compute import (
    EpochComputation,
    EpochContext,
    compute_epoch,
    credentials_at,
    job_context,
)
from veristream.pipeline.jobspec import JobSpec
from veristream.pipeline.manifest import Manifest, RewardSummary, TreeDumps
from veristream.pipeline.state import JobState
from veristream.provers.signing import VerdictMemo


@dataclass(frozen=True, slots=True)
class EpochOutcome:
    """One processed epoch: its manifest (stored), the state after it, and the computation."""

    manifest: Manifest
    manifest_cid: str
    state: JobState
    computation: EpochComputation
    artifacts: dict[str, bytes] = field(default_factory=dict)


def run_epoch(
    job: JobSpec | EpochContext,
    epoch: int,
    raw_records: Sequence[tuple[int, bytes]],
    state: JobState,
    store: BlockStore,
    memo: VerdictMemo | None = None,
) -> EpochOutcome:
    """Process one closed epoch: Beam checks, rewards, roots, batches into ``store``, manifest.

    ``memo``: the epoch's verdict memo from pre-verification (``compute_epoch``).

    Nothing here commits the state: the caller commits the returned state and
    manifest together (``veristream.pipeline.state.commit_checkpoint``). Running
    it again on the same inputs gives byte-identical batches, CIDs and roots.
    """
    ctx = job if isinstance(job, EpochContext) else job_context(job)
    ctx = credentials_at(ctx, epoch, store)
    computation = compute_epoch(ctx, epoch, raw_records, state, memo=memo)
    return store_epoch(ctx, computation, state, store)


def tree_dumps(computation: EpochComputation) -> dict[str, bytes | None]:
    """The ``standard-v1`` dumps (``commitments.dump_json``) of the epoch's data, aggregates and
    reward trees, by name; None for an empty tree. Their roots are the computation's."""
    trees = {
        "data": data_tree(computation.accepted, computation.leaf_hashes),
        "aggregates": aggregates_tree(computation.stats),
        "rewards": reward_tree(computation.state.cumulative),
    }
    return {name: None if tree is None else dump_json(tree) for name, tree in trees.items()}


def dump_cids(dumps: dict[str, bytes | None], cid: Callable[[bytes], str]) -> TreeDumps:
    """The manifest's ``trees``: ``cid`` of each dump (a store's ``put``, or ``cid_of``)."""
    named = {name: None if dump is None else cid(dump) for name, dump in dumps.items()}
    return TreeDumps(data=named["data"], aggregates=named["aggregates"], rewards=named["rewards"])


def store_epoch(
    ctx: EpochContext, computation: EpochComputation, prev: JobState, store: BlockStore
) -> EpochOutcome:
    """Write an epoch's batches, state and manifest to the content-addressed ``store``."""
    job = ctx.job
    batch = encode_accepted(computation.accepted)
    dead = encode_dead_letters(computation.dead)
    aggregates = encode_aggregates(
        {d.device_id: d.stats for d in computation.devices}, job.aggregation.quantiles
    )
    state_bytes = computation.state.to_json()
    dumps = tree_dumps(computation)
    cids = {
        "batch": store.put(batch),
        "dead": store.put(dead),
        "aggregates": store.put(aggregates),
        "state": store.put(state_bytes),
    }
    trees = dump_cids(dumps, store.put)
    rewards = computation.rewards
    manifest = Manifest(
        job_id=job.job_id,
        epoch=computation.epoch,
        start_ms=ctx.clock.start_ms(computation.epoch),
        end_ms=ctx.clock.end_ms(computation.epoch),
        batch_cid=cids["batch"],
        dead_letter_cid=cids["dead"],
        aggregates_cid=cids["aggregates"],
        state_cid=cids["state"],
        prev_manifest_cid=prev.manifest_cid,
        data_root="0x" + computation.data_root.hex(),
        aggregates_root="0x" + computation.aggregates_root.hex(),
        reward_root="0x" + computation.reward_root.hex(),
        readings_in=computation.readings_in,
        accepted=len(computation.accepted),
        rejected=computation.rejected,
        rewards=RewardSummary(
            budget=rewards.budget,
            paid=rewards.paid,
            remainder=rewards.remainder,
            carry_out=rewards.carry_out,
            sink_paid=rewards.sink_paid,
            beneficiaries=len(rewards.payouts),
        ),
        trees=trees,
        device_registry_block=ctx.registry_block,
        credential_status=None if ctx.credential_pins is None else ctx.credential_pins.to_json(),
    )
    manifest_bytes = manifest.to_json()
    manifest_cid = store.put(manifest_bytes)
    dump_pins = [cid for cid in (trees.data, trees.aggregates, trees.rewards) if cid is not None]
    for cid in (*cids.values(), *dump_pins, manifest_cid):
        store.pin(cid)
    state = JobState(
        epoch=computation.state.epoch,
        high_water=computation.state.high_water,
        cumulative=computation.state.cumulative,
        carry=computation.state.carry,
        manifest_cid=manifest_cid,
    )
    artifacts = {"batch": batch, "dead": dead, "aggregates": aggregates, "manifest": manifest_bytes}
    artifacts |= {f"{name}_tree": dump for name, dump in dumps.items() if dump is not None}
    return EpochOutcome(manifest, manifest_cid, state, computation, artifacts)

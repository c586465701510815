"""Why a device earned what it earned (``veristream explain JOB --device D``).

For each epoch the device's accepted readings are taken from the epoch's batch and its
rejections from the epoch's dead letters (both fetched from the store, re-hashed), and the
epoch's reward split is recomputed from the batch with the job's policy
(``pipeline.rewards.split_rewards``): the device's valid count, quality weight, points
against the epoch's total, its exact share of the budget, the floor rounding, the cap. The
recomputed split must give the manifest's budget and payout, else the explanation is a
``Mismatch``. Last, the device's beneficiary's leaf in the reward tree of the epoch claims
pay against (the highest verified one) is proved against the root the chain holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from veristream.connectors.ipfs import BlockStore
from veristream.contracts import claimable_root, claimed
from veristream.devices import chain_devices
from veristream.inspect import (
    ChainView,
    chain_view,
    checkpoint_of,
    checkpoints,
    list_dead_letters,
    read_store,
)
from veristream.pipeline.batch import decode_accepted, decode_dead_letters
from veristream.pipeline.commitments import REWARD_LEAF_ENCODING, reward_proof
from veristream.pipeline.compute import EpochContext, context_at, job_context
from veristream.pipeline.jobspec import JobSpec
from veristream.pipeline.records import Candidate
from veristream.pipeline.rewards import Contribution, split_rewards
from veristream.pipeline.state import Checkpoint
from veristream.provers.errors import Mismatch, NotFound
from veristream.provers.merkle import verify_proof
from veristream.provers.reasons import PIPELINE_STAGES


def contributions(ctx: EpochContext, accepted: Sequence[Candidate]) -> dict[str, Contribution]:
    """Each device's contribution to an epoch, from its accepted batch (what the pipeline split)."""
    seqs: dict[str, list[int]] = {}
    for reading in accepted:
        seqs.setdefault(reading.device_id, []).append(reading.seq)
    out = {}
    for device, numbers in seqs.items():
        info = ctx.registry.devices.get(device)
        if info is None:
            raise Mismatch(f"device {device} has accepted readings but is not in the job's registry")
        out[device] = Contribution(info.beneficiary, len(numbers), min(numbers), max(numbers))
    return out


def epoch_share(
    ctx: EpochContext,
    store: BlockStore,
    checkpoint: Checkpoint,
    device: str,
    token: Any,
    at_ingest: Counter[str] | None = None,
) -> dict[str, Any]:
    """How ``device`` fared in ``checkpoint``'s epoch: readings accepted and rejected by reason
    (the pipeline's, from the epoch's dead letters, plus ``at_ingest``: those refused before the
    pipeline), quality, points, share of the budget before and after the cap, and the rounding."""
    manifest = checkpoint.manifest
    assert manifest is not None
    job = ctx.job
    ctx = context_at(ctx, manifest.device_registry_block)
    # READ the epoch's batch and dead letters
    accepted = decode_accepted(store.get(manifest.batch_cid))
    rejected = Counter(r.reason for r in decode_dead_letters(store.get(manifest.dead_letter_cid)) if r.device_id == device)
    rejected.update(at_ingest or Counter())
    # RECOMPUTE the split with the job's policy, carrying in what the manifest's budget says
    carry_in = manifest.rewards.budget - job.rewards.tokens_per_epoch
    everyone = contributions(ctx, accepted)
    outcome = split_rewards(everyone, job.rewards, carry_in) if everyone else None
    if outcome is not None and (outcome.budget != manifest.rewards.budget or outcome.paid != manifest.rewards.paid):
        raise Mismatch(
            f"epoch {manifest.epoch}: the batch's readings split to {outcome.paid} of {outcome.budget}, but the "
            f"manifest records {manifest.rewards.paid} of {manifest.rewards.budget}"
        )
    mine = everyone.get(device)
    row: dict[str, Any] = {
        "epoch": manifest.epoch,
        "accepted": mine.valid if mine else 0,
        "rejected": sum(rejected.values()),
        "rejected_by_reason": dict(sorted(rejected.items())),
        "budget": manifest.rewards.budget,
        "budget_display": token.format(manifest.rewards.budget),
        "devices_paid": len(everyone),
    }
    if mine is None or outcome is None:
        return row | {"share": 0, "share_display": token.format(0), "why": "no accepted reading: no share"}
    quality = outcome.quality_bps[device]
    points = mine.valid * quality
    total = sum(c.valid * outcome.quality_bps[d] for d, c in everyone.items())
    exact = Fraction(outcome.budget * points, total)
    floor = exact.numerator // exact.denominator
    cap = job.rewards.max_per_device
    share = outcome.shares.get(device, 0)
    return row | {
        "min_seq": mine.min_seq,
        "max_seq": mine.max_seq,
        "quality_weight": job.rewards.quality_weight,
        "quality_bps": quality,
        "points": points,
        "total_points": total,
        "share_exact": f"{exact.numerator}/{exact.denominator}" if exact.denominator != 1 else str(floor),
        "share_floor": floor,
        "rounding_lost": str(exact - floor),
        "cap": cap,
        "cap_display": token.format(cap) if cap is not None else None,
        "capped": cap is not None and floor > cap,
        "cut_by_cap": max(0, floor - cap) if cap is not None else 0,
        "share": share,
        "share_display": token.format(share),
        "beneficiary": "0x" + mine.beneficiary.hex(),
    }


def ingest_rejections(job: JobSpec, device: str) -> dict[int, Counter[str]]:
    """The device's messages refused at ingest (before any epoch's pipeline), by epoch and reason."""
    out: dict[int, Counter[str]] = {}
    for row in list_dead_letters(job, device=device):
        if row["stage"] not in PIPELINE_STAGES and row["epoch"] is not None:
            out.setdefault(row["epoch"], Counter())[row["reason"]] += 1
    return out


def reward_leaf(view: ChainView, found: Mapping[int, Checkpoint], beneficiary: bytes) -> dict[str, Any]:
    """The beneficiary's leaf in the reward tree claims pay against (the highest verified epoch),
    its proof, and whether the proof checks against the root the chain holds."""
    claimable = claimable_root(view.chain, view.deployment, view.job_hash)
    if claimable is None:
        raise NotFound("no epoch of the job is verified on chain: nothing can be claimed yet")
    epoch, root = claimable
    if epoch not in found:
        raise NotFound(f"claims pay against epoch {epoch}, whose checkpoint this work directory lacks")
    cumulative = found[epoch].state.cumulative
    account = "0x" + beneficiary.hex()
    paid = claimed(view.chain, view.deployment, view.job_hash, account)
    if cumulative.get(beneficiary, 0) <= 0:
        return {"epoch": epoch, "account": account, "amount": 0, "proof": [], "root": "0x" + root.hex(),
                "proof_ok": None, "claimed": paid}
    amount, proof = reward_proof(cumulative, beneficiary)
    proof_hex = ["0x" + p.hex() for p in proof]
    ok = verify_proof("0x" + root.hex(), REWARD_LEAF_ENCODING, [account, amount], proof_hex)
    return {
        "epoch": epoch,
        "account": account,
        "amount": amount,
        "amount_display": view.token.format(amount),
        "proof": proof_hex,
        "root": "0x" + root.hex(),
        "proof_ok": ok,
        "claimed": paid,
        "claimed_display": view.token.format(paid),
        "claimable": max(0, amount - paid),
        "claimable_display": view.token.format(max(0, amount - paid)),
    }


def explain_device(job: JobSpec, device: str, epoch: int | None = None) -> dict[str, Any]:
    """Why ``device`` earned what it earned, in ``epoch`` or in every committed epoch, with its
    beneficiary's reward leaf proved against the chain; ``NotFound`` for a device the job
    never saw; ``Mismatch`` when the recomputed split disagrees with the manifest (a proof that
    fails against the chain's root is ``leaf.proof_ok`` False: the caller exits 1)."""
    found = checkpoints(job)
    chosen = [checkpoint_of(job, epoch)] if epoch is not None else [found[n] for n in sorted(found)]
    store = read_store(job)
    at_ingest = ingest_rejections(job, device)
    with chain_view(job) as view:
        ctx = job_context(job, devices=chain_devices(job, view.chain))
        epochs = [
            epoch_share(ctx, store, c, device, view.token, at_ingest.get(c.state.epoch)) for c in chosen
        ]
        info = ctx.registry.devices.get(device)
        seen = any(row["accepted"] or row["rejected"] for row in epochs)
        if info is None and not seen:
            raise NotFound(f"device {device} is not in job {job.job_id!r}'s registry and sent nothing it kept")
        leaf = reward_leaf(view, found, info.beneficiary) if info is not None else None
    earned = sum(row["share"] for row in epochs)
    out = {
        "job_id": job.job_id,
        "device": device,
        "beneficiary": "0x" + info.beneficiary.hex() if info is not None else None,
        "policy": {
            "tokens_per_epoch": job.rewards.tokens_per_epoch,
            "max_per_device": job.rewards.max_per_device,
            "quality_weight": job.rewards.quality_weight,
            "remainder": job.rewards.remainder,
        },
        "epochs": epochs,
        "earned": earned,
        "earned_display": view.token.format(earned),
        "leaf": leaf,
    }
    return out

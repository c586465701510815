"""Computes one closed epoch as a bounded Beam pipeline: checks, aggregates, rewards, roots.

``compute_epoch`` is the one code path behind both the submitter's run
(``veristream.pipeline.publish.run_epoch``) and every operator's and auditor's
re-execution (``veristream.pipeline.reexecute``): the same ``EpochChecks``
transform, then the same pure steps: rewards, roots, next state.

The checks run on Beam's embedded runner (``veristream.pipeline.beam_embedded``)
or, for any other ``beam.runner`` (a portable job service, Flink, Spark,
Dataflow), with inputs and results in files (``veristream.pipeline.beam_portable``);
``compute_epoch`` gives the same ``EpochComputation`` either way. Re-execution
of a stored batch always runs embedded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from veristream.connectors.ipfs import BlockStore
from veristream.pipeline import beam_embedded, beam_portable, commitments, workers
from veristream.pipeline.aggregates import FieldStats
from veristream.pipeline.credential_status import (
    CredentialPins,
    CredentialSource,
    FileSource,
    credential_revocations,
    with_revocations,
)
from veristream.pipeline.device_view import ChainDevices
from veristream.pipeline.jobspec import JobSpec
from veristream.pipeline.records import Candidate, Rejected
from veristream.pipeline.registry import DeviceRegistryView, load_registry
from veristream.pipeline.rewards import RewardOutcome, add_payouts
from veristream.pipeline.stages import (
    DeviceEpoch,
    EpochChecksConfig,
    PlausibilityRules,
    lent_memo,
)
from veristream.pipeline.state import JobState
from veristream.pipeline.workers import auto_workers
from veristream.provers.epoch_clock import EpochClock
from veristream.provers.errors import InputRejected
from veristream.provers.readings import Domain
from veristream.provers.signing import VerdictMemo

# CONTEXT


@dataclass(frozen=True, slots=True)
class EpochContext:
    """What every epoch of a job needs, built once per run from the job spec.

    With ``devices.address`` the registry is the on-chain one as of ``registry_block`` (which
    the epoch's manifest names), and ``devices`` gives it as of any other block.
    """

    job: JobSpec
    registry: DeviceRegistryView
    domain: Domain
    clock: EpochClock
    registry_block: int | None = None
    devices: ChainDevices | None = None
    # devices.credentials: where each epoch's pins come from, and the pins applied to registry
    credentials: CredentialSource | None = None
    credential_pins: CredentialPins | None = None


def job_context(
    job: JobSpec,
    registry: DeviceRegistryView | None = None,
    devices: ChainDevices | None = None,
    credentials: CredentialSource | None = None,
) -> EpochContext:
    """The context of ``job``; the registry is read from its file (``devices.file``), or from
    the chain as of its latest block through ``devices`` (``devices.address``), unless given.
    ``credentials``: where a job with ``devices.credentials`` gets each epoch's pins (default:
    its ``devices.credentials.file``)."""
    spec = job.devices.credentials
    if spec is not None and credentials is None and spec.file is not None:
        credentials = FileSource(spec.file)
    block = None
    if job.devices.address is not None:
        if devices is None:
            raise InputRejected(
                "devices.address: the device registry is on chain; the caller reads it "
                "(veristream.devices.chain_devices)"
            )
        if registry is None:
            registry, block = devices.latest()
    elif registry is None:
        assert job.devices.file is not None  # the spec requires one of file and address
        registry = load_registry(job.devices.file)
    d = job.devices.domain
    domain = Domain(
        name=d.name, version=d.version, chain_id=d.chain_id, verifying_contract=d.verifying_contract
    )
    clock = job.epochs.clock()
    return EpochContext(job, registry, domain, clock, block, devices, credentials)


def credentials_at(ctx: EpochContext, epoch: int, store: BlockStore) -> EpochContext:
    """``ctx`` with the credential pins of ``epoch`` (from its ``credentials`` source) applied to
    the registry: what the submitter runs the epoch with. ``ctx`` itself for a job without
    ``devices.credentials``."""
    spec = ctx.job.devices.credentials
    if spec is None:
        return ctx
    if ctx.credentials is None:
        raise InputRejected(
            "devices.credentials: give devices.credentials.file, or read the CredentialRegistry "
            "(veristream.credential_anchors.credential_source)"
        )
    pins = ctx.credentials(ctx.clock.start_ms(epoch), ctx.clock.end_ms(epoch), store)
    return credentials_pinned(ctx, epoch, pins.to_json(), store.get)


def credentials_pinned(
    ctx: EpochContext, epoch: int, pinned: dict[str, Any] | None, fetch: Callable[[str], bytes]
) -> EpochContext:
    """``ctx`` with a manifest's ``credential_status`` applied to the registry, documents fetched
    by CID: what an operator or auditor re-executes the epoch with. ``InputRejected`` when the
    manifest and the job disagree on whether devices hold credentials."""
    spec = ctx.job.devices.credentials
    if spec is None:
        if pinned is not None:
            raise InputRejected("the manifest pins credentials but the job has no devices.credentials")
        return ctx
    if pinned is None:
        raise InputRejected("the job has devices.credentials but the manifest pins none")
    pins = CredentialPins.from_json(pinned)
    spans = credential_revocations(pins, fetch, spec, ctx.clock.start_ms(epoch))
    return replace(ctx, registry=with_revocations(ctx.registry, spans, spec), credential_pins=pins)


def context_at(ctx: EpochContext, block: int | None) -> EpochContext:
    """``ctx`` with the device registry as of ``block``, the block an epoch's manifest names:
    what an operator or auditor re-executes that epoch with. ``InputRejected`` when the manifest
    and the job disagree on where device keys come from."""
    if ctx.devices is None:
        if block is not None:
            raise InputRejected(
                f"the manifest reads devices on chain (block {block}) but the job names a registry file"
            )
        return ctx
    if block is None:
        raise InputRejected("the manifest names no device registry block but the job reads devices.address")
    if block == ctx.registry_block:
        return ctx
    return replace(ctx, registry=ctx.devices.at(block), registry_block=block)


# THE BEAM RUN

def _checks_config(
    ctx: EpochContext, epoch: int, state: JobState, decoded: bool, readings: int
) -> EpochChecksConfig:
    job = ctx.job
    rules = PlausibilityRules(
        validation=job.validation,
        epoch_start_ms=ctx.clock.start_ms(epoch),
        epoch_end_ms=ctx.clock.end_ms(epoch),
        devices=dict(ctx.registry.devices),
    )
    return EpochChecksConfig(
        domain=ctx.domain,
        keys=ctx.registry.keys(),
        high_water=dict(state.high_water),
        rules=rules,
        fields=list(job.aggregation.fields),
        quantiles=list(job.aggregation.quantiles),
        beneficiaries={d: info.beneficiary for d, info in ctx.registry.devices.items()},
        decoded=decoded,
        # an operator re-executing verifies in-process: on one machine the operators already
        # share the cores, and forking from a Ray worker is best avoided
        verify_workers=1 if decoded else auto_workers(readings, job.beam.verify_workers),
        verify_on=workers.backend(job.beam.verify_on, job.ray.address),
    )


def _run_checks(
    ctx: EpochContext,
    epoch: int,
    inputs: Sequence[Any],
    state: JobState,
    decoded: bool,
    memo: VerdictMemo | None = None,
) -> tuple[list[DeviceEpoch], list[Rejected], RewardOutcome]:
    config = _checks_config(ctx, epoch, state, decoded, len(inputs))
    if memo is None:
        return _run_checks_with(ctx, epoch, inputs, state, config)
    # used in-process, or copied to the worker pool's processes (a pool for this memo)
    with lent_memo(memo) as token:
        return _run_checks_with(ctx, epoch, inputs, state, replace(config, memo=token))


def _run_checks_with(
    ctx: EpochContext,
    epoch: int,
    inputs: Sequence[Any],
    state: JobState,
    config: EpochChecksConfig,
) -> tuple[list[DeviceEpoch], list[Rejected], RewardOutcome]:
    # re-executing a stored batch (operators, auditors) stays embedded: each party
    # checks on its own machine, with its verdict memos, not on the submitter's cluster
    if ctx.job.beam.runner != "fnapi" and not config.decoded:
        return beam_portable.run_checks(ctx.job, config, inputs, state.carry, f"epoch-{epoch}")
    return beam_embedded.run_checks(ctx.job, config, inputs, state.carry)


# THE PURE REST


@dataclass(frozen=True, slots=True)
class EpochComputation:
    """An epoch's results before anything is stored: what every operator must reproduce."""

    epoch: int
    readings_in: int
    accepted: list[Candidate]
    dead: list[Rejected]
    devices: list[DeviceEpoch]
    rewards: RewardOutcome
    data_root: bytes
    aggregates_root: bytes
    reward_root: bytes
    state: JobState

    @property
    def leaf_hashes(self) -> bytes:
        """The accepted readings' data-leaf hashes, concatenated in their order (empty when the
        checks did not compute them)."""
        return b"".join(d.leaf_hashes for d in self.devices)

    @property
    def stats(self) -> dict[str, dict[str, FieldStats]]:
        """Per device (by id) and aggregated field, its ``FieldStats``."""
        return {d.device_id: d.stats for d in self.devices}

    @property
    def rejected(self) -> dict[str, int]:
        """Dead letters per reason."""
        counts: dict[str, int] = {}
        for item in self.dead:
            counts[item.reason] = counts.get(item.reason, 0) + 1
        return dict(sorted(counts.items()))


def next_state(
    prev: JobState, epoch: int, devices: Sequence[DeviceEpoch], rewards: RewardOutcome
) -> JobState:
    """The cross-epoch state after ``epoch`` (the manifest CID is filled in when stored)."""
    high_water = dict(prev.high_water)
    for device in devices:
        top = device.contribution.max_seq  # the highest seq among its accepted readings
        high_water[device.device_id] = max(top, high_water.get(device.device_id, -1))
    return JobState(
        epoch=epoch,
        high_water=high_water,
        cumulative=add_payouts(prev.cumulative, rewards.payouts),
        carry=rewards.carry_out,
        manifest_cid=prev.manifest_cid,
    )


def compute_epoch(
    ctx: EpochContext,
    epoch: int,
    inputs: Sequence[Any],
    state: JobState,
    *,
    decoded: bool = False,
    memo: VerdictMemo | None = None,
) -> EpochComputation:
    """Run the epoch's checks on Beam, then rewards, roots and the next state.

    ``inputs`` are ``(received_ms, envelope bytes)`` ingest records, or
    ``Candidate``s with ``decoded=True`` (re-execution of a batch). ``memo`` is
    a ``signing.VerdictMemo`` filled while the epoch was open (pre-verification,
    ``veristream.pipeline.preverify``): the result is the same with or without it.
    """
    if state.epoch >= epoch:
        raise InputRejected(f"state is already at epoch {state.epoch}; cannot compute epoch {epoch}")
    devices, dead, rewards = _run_checks(ctx, epoch, inputs, state, decoded, memo)
    accepted = [c for d in devices for c in d.accepted]
    new_state = next_state(state, epoch, devices, rewards)
    computation = EpochComputation(
        epoch=epoch,
        readings_in=len(inputs),
        accepted=accepted,
        dead=dead,
        devices=devices,
        rewards=rewards,
        data_root=commitments.data_root(accepted, b"".join(d.leaf_hashes for d in devices)),
        aggregates_root=commitments.aggregates_root({d.device_id: d.stats for d in devices}),
        reward_root=commitments.reward_root(new_state.cumulative),
        state=new_state,
    )
    if len(accepted) + len(dead) != len(inputs):
        raise AssertionError(
            f"epoch {epoch}: {len(accepted)} accepted + {len(dead)} rejected != {len(inputs)} in"
        )
    return computation

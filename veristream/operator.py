"""One operator of the committee: re-executes a proposed epoch and co-signs it only if it matches.

An operator holds one BLS key. Given a ``Proposal`` (job, epoch, manifest CID
and the ``EpochResult`` the coordinator wants signed), it

1. fetches the manifest and checks it names this job and epoch, the proposed
   batch CID and the proposed roots;
2. takes the state before the epoch: its own, when it co-signed the previous
   epoch of this manifest chain; otherwise the state the previous manifest
   commits to (an operator joining late trusts the previous epoch, which the
   committee already verified);
3. fetches the batch, re-verifies every reading and recomputes aggregates,
   data root, reward root and the next state (``veristream.pipeline.reexecute.
   check_proposal``: the same Beam transform the submitter ran);
4. signs ``epoch_result_digest(result, chain_id, verifier)`` if everything
   matches, and otherwise refuses with the first reason it found.

``observe`` pre-verifies readings of epochs still open (the coordinator's
``veristream.pipeline.preverify.Preverifier`` hands them over): the operator
checks their signatures itself into its own per-epoch verdict memo, and the
re-execution of step 3 then skips the checks it already did (same result).

``Operator`` is a plain class; ``veristream.committee`` runs one per
key as a Ray actor. ``fault`` makes an operator misbehave on purpose for tests
and demos: ``"wrong_root"`` recomputes a wrong data root (so it refuses), and
``"bad_signature"`` signs a different digest (the aggregator must catch it).
"""

from __future__ import annotations

from collections.abc import Sequence

from veristream.connectors.ipfs import CidMismatch, open_store
from veristream.credential_anchors import credential_source
from veristream.devices import chain_devices
from veristream.pipeline.compute import job_context
from veristream.pipeline.jobspec import JobSpec
from veristream.pipeline.preverify import EpochMemos, decode_by_epoch, preverify
from veristream.pipeline.reexecute import check_proposal
from veristream.pipeline.registry import DeviceRegistryView
from veristream.pipeline.state import JobState
from veristream.provers.aggregation import Proposal, Review
from veristream.provers.bls.scheme import scheme_for
from veristream.provers.epoch_result import epoch_result_digest
from veristream.provers.errors import InputRejected, SpecError

FAULTS = ("wrong_root", "bad_signature")


class Operator:
    """An operator's prover: one BLS key, its own view of the job's state, a store to read."""

    def __init__(
        self,
        index: int,
        scheme: str,
        secret_key: int,
        job: JobSpec,
        registry: DeviceRegistryView | None = None,
        fault: str | None = None,
    ) -> None:
        if fault is not None and fault not in FAULTS:
            raise SpecError(f"unknown operator fault {fault!r}; known: {FAULTS}")
        self.index = index
        self._scheme = scheme_for(scheme)
        self._secret_key = secret_key
        self._ctx = job_context(job, registry, chain_devices(job), credential_source(job))
        self._store = open_store(job.ipfs, job.work_dir)
        self._fault = fault
        self._states: dict[str, JobState] = {}  # manifest CID -> state after that epoch
        self._memos = EpochMemos()  # this operator's own pre-verification verdicts
        self._keys = self._ctx.registry.keys()

    def ping(self) -> int:
        """Liveness check: the operator's index."""
        return self.index

    def public_key(self) -> bytes:
        """The operator's BLS public key (bls12381: 48-byte G1; bn254: 128-byte G2)."""
        return self._scheme.sk_to_pk(self._secret_key)

    def observe(self, raws: Sequence[bytes]) -> int:
        """Pre-verify raw readings of still-open epochs into this operator's own memos; returns
        how many signatures it checked (undecodable messages are skipped: the pipeline rejects them)."""
        ctx = self._ctx
        groups = decode_by_epoch(raws, ctx.clock, ctx.job.validation.max_payload_bytes)
        return preverify(self._memos, groups, ctx.domain, self._keys)

    def review(self, proposal: Proposal) -> Review:
        """Re-execute the proposed epoch; sign its digest if and only if it matches."""
        try:
            reason = self._check(proposal)
        except (InputRejected, CidMismatch) as error:
            # an unreadable or tampered manifest, batch or state is the proposal's fault; a store
            # that cannot answer is the run's problem, and anything else is a bug: both propagate
            reason = f"cannot re-execute: {error}"
        finally:
            # the epoch's pre-verification is used up (or stale): free it
            self._memos.forget_through(proposal.epoch)
        if reason is not None:
            return Review(self.index, None, reason)
        digest = epoch_result_digest(proposal.result, proposal.chain_id, proposal.verifier)
        if self._fault == "bad_signature":
            digest = bytes(32)
        return Review(self.index, self._scheme.sign(self._secret_key, digest))

    def _check(self, proposal: Proposal) -> str | None:
        checked = check_proposal(
            self._ctx,
            self._store,
            proposal,
            self._states,
            self._memos.take(proposal.epoch),
            corrupt_data_root=self._fault == "wrong_root",
        )
        if checked.state is not None:
            self._states = {proposal.manifest_cid: checked.state}
        return checked.reason

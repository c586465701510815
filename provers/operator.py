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
   data root, reward root and the next state (``veristream.pipeline.runner.
   reexecute``: the same Beam transform the coordinator ran);
4. signs ``epoch_result_digest(result, chain_id, verifier)`` if everything
   matches, and otherwise refuses with the first reason it found.

``observe`` pre-verifies readings of epochs still open (the coordinator's
``veristream.pipeline.preverify.Preverifier`` hands them over): the operator
checks their signatures itself into its own per-epoch verdict memo, and the
re-execution of step 3 then skips the checks it already did (same result).

``Operator`` is a plain class; ``veristream.provers.committee`` runs one per
key as a Ray actor. ``fault`` makes an operator misbehave on purpose for tests
and demos: ``"wrong_root"`` recomputes a wrong data root (so it refuses), and
``"bad_signature"`` signs a different digest (the aggregator must catch it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from veristream.provers.epoch import EpochResult, epoch_result_digest

FAULTS = ("wrong_root", "bad_signature")


@dataclass(frozen=True, slots=True)
class Proposal:
    """What the coordinator asks the committee to sign for one epoch."""

    job_id: str
    epoch: int
    manifest_cid: str
    result: EpochResult
    chain_id: int
    verifier: str


def proposal_for(manifest: Any, manifest_cid: str, chain_id: int, verifier: str) -> Proposal:
    """The proposal for an epoch the coordinator stored (its manifest and the manifest's CID)."""
    from veristream.connectors.ipfs import cid_to_bytes
    from veristream.provers.epoch import job_id_hash

    from veristream.encoding import parse_bytes32

    result = EpochResult(
        job_id=job_id_hash(manifest.job_id),
        epoch=manifest.epoch,
        data_root=parse_bytes32(manifest.data_root),
        reward_root=parse_bytes32(manifest.reward_root),
        batch_cid=cid_to_bytes(manifest.batch_cid),
    )
    return Proposal(manifest.job_id, manifest.epoch, manifest_cid, result, chain_id, verifier)


@dataclass(frozen=True, slots=True)
class Review:
    """An operator's answer: a signature, or the reason it refused."""

    operator: int
    signature: bytes | None
    reason: str | None = None

    def __post_init__(self) -> None:
        if (self.signature is None) == (self.reason is None):
            raise ValueError("a review carries either a signature or a refusal reason")


def sign_digest(scheme: str, secret_key: int, digest: bytes) -> bytes:
    """The operator's signature of ``digest`` in the scheme's native encoding."""
    from veristream.provers.bls import bls12381, bn254

    if scheme == "bn254":
        return bn254.sign(secret_key, digest)
    if scheme == "bls12381":
        return bls12381.sign(secret_key, digest)
    raise ValueError(f"unknown BLS scheme {scheme!r}")


def open_store(ipfs: Any, work_dir: Any) -> Any:
    """The content-addressed store a job's IPFS settings name (embedded: in the work directory)."""
    from pathlib import Path

    from veristream.connectors.ipfs import EmbeddedStore, RpcStore

    if ipfs.mode == "rpc":
        return RpcStore(ipfs.url)
    return EmbeddedStore(Path(work_dir) / "ipfs")


class Operator:
    """An operator's prover: one BLS key, its own view of the job's state, a store to read."""

    def __init__(
        self,
        index: int,
        scheme: str,
        secret_key: int,
        job: Any,
        registry: Any = None,
        fault: str | None = None,
    ) -> None:
        from veristream.pipeline.preverify import EpochMemos
        from veristream.pipeline.runner import job_context

        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown operator fault {fault!r}; known: {FAULTS}")
        self.index = index
        self._scheme = scheme
        self._secret_key = secret_key
        self._ctx = job_context(job, registry)
        self._store = open_store(job.ipfs, job.work_dir)
        self._fault = fault
        self._states: dict[str, Any] = {}  # manifest CID -> state after that epoch
        self._memos = EpochMemos()  # this operator's own pre-verification verdicts
        self._keys = self._ctx.registry.keys()

    def ping(self) -> int:
        """Liveness check: the operator's index."""
        return self.index

    def public_key(self) -> bytes:
        """The operator's BLS public key (bls12381: 48-byte G1; bn254: 128-byte G2)."""
        from veristream.provers.bls import bls12381, bn254

        if self._scheme == "bn254":
            return bytes(bn254.sk_to_pk(self._secret_key))
        return bytes(bls12381.sk_to_pk(self._secret_key))

    def observe(self, raws: Sequence[bytes]) -> int:
        """Pre-verify raw readings of still-open epochs into this operator's own memos; returns
        how many signatures it checked (undecodable messages are skipped: the pipeline rejects them)."""
        from veristream.pipeline.preverify import decode_by_epoch, preverify

        ctx = self._ctx
        groups = decode_by_epoch(raws, ctx.clock, ctx.job.validation.max_payload_bytes)
        return preverify(self._memos, groups, ctx.domain, self._keys)

    def review(self, proposal: Proposal) -> Review:
        """Re-execute the proposed epoch; sign its digest if and only if it matches."""
        try:
            reason = self._check(proposal)
        except ValueError as error:
            reason = f"cannot re-execute: {error}"
        finally:
            # the epoch's pre-verification is used up (or stale): free it
            self._memos.forget_through(proposal.epoch)
        if reason is not None:
            return Review(self.index, None, reason)
        digest = epoch_result_digest(proposal.result, proposal.chain_id, proposal.verifier)
        if self._fault == "bad_signature":
            digest = bytes(32)
        return Review(self.index, sign_digest(self._scheme, self._secret_key, digest))

    def _check(self, proposal: Proposal) -> str | None:
        from veristream.connectors.ipfs import cid_to_bytes
        from veristream.pipeline.manifest import manifest_from_json
        from veristream.pipeline.runner import reexecute, states_match
        from veristream.pipeline.state import JobState, state_from_json
        from veristream.provers.epoch import job_id_hash

        result = proposal.result
        # MANIFEST
        manifest = manifest_from_json(self._store.get(proposal.manifest_cid))
        if manifest.job_id != self._ctx.job.job_id or proposal.job_id != manifest.job_id:
            return f"manifest is for job {manifest.job_id!r}, not {self._ctx.job.job_id!r}"
        if result.job_id != job_id_hash(manifest.job_id):
            return "proposed jobId is not the hash of the manifest's job id"
        if manifest.epoch != proposal.epoch or result.epoch != proposal.epoch:
            return f"manifest is for epoch {manifest.epoch}, not {proposal.epoch}"
        if cid_to_bytes(manifest.batch_cid) != result.batch_cid:
            return "proposed batch CID is not the manifest's batch"
        # STATE BEFORE THE EPOCH
        prev_cid = manifest.prev_manifest_cid
        if prev_cid is None:
            prev = JobState()
        elif prev_cid in self._states:
            prev = self._states[prev_cid]
        else:
            previous = manifest_from_json(self._store.get(prev_cid))
            prev = state_from_json(self._store.get(previous.state_cid))
        # RE-EXECUTE
        batch = self._store.get(manifest.batch_cid)
        recomputed = reexecute(self._ctx, proposal.epoch, batch, prev, self._memos.take(proposal.epoch))
        if not recomputed.clean:
            return "batch holds readings that fail the checks: " + "; ".join(
                recomputed.problems[:3]
            )
        data_root = recomputed.data_root
        if self._fault == "wrong_root":
            data_root = bytes([data_root[0] ^ 1]) + data_root[1:]
        if data_root != result.data_root:
            return f"data root mismatch: proposed 0x{result.data_root.hex()}, recomputed 0x{data_root.hex()}"
        if recomputed.reward_root != result.reward_root:
            return (
                f"reward root mismatch: proposed 0x{result.reward_root.hex()}, "
                f"recomputed 0x{recomputed.reward_root.hex()}"
            )
        if recomputed.accepted != manifest.accepted:
            return f"manifest claims {manifest.accepted} accepted readings, batch has {recomputed.accepted}"
        committed = state_from_json(self._store.get(manifest.state_cid))
        if not states_match(committed, recomputed.state):
            return "the manifest's committed state differs from the recomputed one"
        self._states = {proposal.manifest_cid: recomputed.state}
        return None


# KEYS AND REGISTRATION (what `veristream operator keygen/register` wrap)


def keygen(scheme: str) -> dict[str, str]:
    """A fresh operator key with the encodings the OperatorRegistry takes (hex strings).

    The secret comes from the OS's CSPRNG; the caller must keep the result private.
    """
    import secrets

    from veristream.contracts.committee import OperatorKey
    from veristream.provers.bls import bls12381, bn254

    if scheme == "bn254":
        order = bn254.R
        public = bn254.sk_to_pk
    elif scheme == "bls12381":
        order = bls12381.CURVE_ORDER
        public = bls12381.sk_to_pk
    else:
        raise ValueError(f"unknown BLS scheme {scheme!r}; expected bls12381 or bn254")
    secret = 1 + secrets.randbelow(order - 1)
    key = OperatorKey.from_secret(scheme, secret)
    return {
        "scheme": scheme,
        "secret_key": hex(secret),
        "public_key": "0x" + public(secret).hex(),
        "registry_pubkey": "0x" + key.pubkey.hex(),
        "registry_pubkey_g2": "0x" + key.pubkey_g2.hex(),
        "registry_pop": "0x" + key.pop.hex(),
    }


def register_key(job: Any, key: dict[str, str], account: str | None, weight: int) -> dict[str, Any]:
    """Register ``key`` (from ``keygen``) for ``account`` in the job's operator set on its chain."""
    import json
    from pathlib import Path

    from veristream.contracts import connect, load_deployment, register_operator
    from veristream.contracts.chain import ChainConfig

    if key.get("scheme") != job.operators.scheme:
        raise ValueError(f"key is {key.get('scheme')!r} but the job's operators use {job.operators.scheme!r}")
    work_dir = Path(job.work_dir)
    setup = work_dir / "chain-setup.json"
    if job.operators.set_id is not None:  # an existing set on an existing deployment (the spec names both)
        set_id, deployment = job.operators.set_id, job.chain.deployment
    elif setup.exists():
        set_id, deployment = int(json.loads(setup.read_text())["set_id"]), work_dir / "deployment.json"
    else:
        raise ValueError("the job has no operator set on chain yet: run it once (veristream run) first")
    chain = connect(ChainConfig(url=job.chain.rpc_url) if job.chain.mode == "rpc" else work_dir / "chain")
    try:
        dep = load_deployment(chain, deployment)
        operator = account or chain.sender
        receipt = register_operator(
            chain,
            dep,
            set_id,
            operator,
            weight,
            bytes.fromhex(key["registry_pubkey"][2:]),
            bytes.fromhex(key["registry_pop"][2:]),
            bytes.fromhex(key["registry_pubkey_g2"][2:]),
        )
        chain.save()
    finally:
        chain.close()
    return {"operator": operator, "set_id": set_id, "tx_hash": receipt.tx_hash, "gas": receipt.gas_used}

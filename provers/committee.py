"""The operator committee: one prover per BLS key (Ray actors by default) and the aggregator.

The aggregator sends every operator the same ``Proposal``, waits for the
answers (an operator that is down or too slow simply does not count),
verifies the signatures it got, and aggregates those of the operators that
signed. The epoch goes on chain only when the signers' weight reaches the
quorum: ``signed_weight * denominator >= total_weight * numerator``.

What the chain needs comes out of ``Aggregate``: the signer bitmap (bit ``i``
is the operator in slot ``i``), the aggregated signature in the contract's
encoding (bls12381: 256-byte EIP-2537 G2; bn254: 64-byte G1) and, for bn254,
the signers' aggregated G2 key ``apk_g2``. Refusals carry each operator's
reason, so a lying or buggy operator is named, not just outvoted.

Local Ray is started once per run (``ray.init`` costs seconds and ~1.3 GB
here); ``address`` connects to a cluster instead.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from veristream.provers.epoch import epoch_result_digest
from veristream.provers.operator import Operator, Proposal, Review


@dataclass(frozen=True, slots=True)
class Member:
    """One operator as the aggregator knows it: slot, weight, public key and (locally) secret key,
    or the name of the Ray actor that serves it (``operator serve``)."""

    slot: int
    scheme: str
    weight: int
    public_key: bytes  # bls12381: 48-byte compressed G1; bn254: 128-byte G2; b"" if nobody serves it
    secret_key: int = field(repr=False, default=0)
    actor: str | None = None  # a registry committee's served operator actor


def local_members(
    scheme: str, count: int, seed: int = 1, weights: Sequence[int] | None = None
) -> list[Member]:
    """The embedded mode's operators: keys derived from ``seed`` exactly as the contracts'
    ``LocalCommittee.deterministic`` derives the keys it registers (demo keys: guessable)."""
    from veristream.contracts.committee import LocalCommittee
    from veristream.provers.bls import bls12381, bn254

    if weights is not None and len(weights) != count:
        raise ValueError(f"{len(weights)} weights for {count} operators")
    keys = LocalCommittee.deterministic(scheme, count, seed).keys
    members = []
    for slot, key in enumerate(keys):
        pk = (
            bn254.sk_to_pk(key.secret_key)
            if scheme == "bn254"
            else bls12381.sk_to_pk(key.secret_key)
        )
        members.append(Member(slot, scheme, weights[slot] if weights else 1, pk, key.secret_key))
    return members


@dataclass(frozen=True, slots=True)
class Aggregate:
    """The committee's answer for one epoch."""

    epoch: int
    digest: bytes
    signers: tuple[int, ...]
    signer_bitmap: int
    signature: bytes  # native encoding (bls12381: 96-byte compressed; bn254: 64-byte G1)
    signature_evm: bytes  # what the EpochVerifier takes
    apk_g2: bytes  # bn254 only
    refusals: dict[int, str]
    down: tuple[int, ...]
    signed_weight: int
    total_weight: int
    quorum_met: bool


class QuorumNotMet(RuntimeError):
    """Too little weight signed; carries the aggregate with every refusal reason."""

    def __init__(self, aggregate: Aggregate) -> None:
        self.aggregate = aggregate
        reasons = "; ".join(f"operator {i}: {r}" for i, r in sorted(aggregate.refusals.items()))
        super().__init__(
            f"epoch {aggregate.epoch}: signed weight {aggregate.signed_weight} of "
            f"{aggregate.total_weight} misses the quorum (down: {list(aggregate.down)}; {reasons})"
        )


def _verify(scheme: str, pks: Sequence[bytes], digest: bytes, signature: bytes) -> bool:
    from veristream.provers.bls import bls12381, bn254

    if scheme == "bn254":
        return bn254.fast_aggregate_verify(list(pks), digest, signature)
    return bls12381.fast_aggregate_verify(list(pks), digest, signature)


def _aggregate(scheme: str, signatures: Sequence[bytes]) -> bytes:
    from veristream.provers.bls import bls12381, bn254

    return (
        bn254.aggregate(list(signatures))
        if scheme == "bn254"
        else bls12381.aggregate(list(signatures))
    )


def aggregate_reviews(
    members: Sequence[Member],
    reviews: Mapping[int, Review | None],
    digest: bytes,
    epoch: int,
    quorum: tuple[int, int],
) -> Aggregate:
    """Combine the operators' answers into one aggregate signature and check the quorum.

    ``reviews[slot]`` is None for an operator that did not answer. Signatures
    are checked together first (one pairing check); only if that fails is each
    checked alone, and the invalid ones are refused ("signature does not verify").
    """
    from veristream.provers.bls import bls12381, bn254

    # VALIDATE
    if not members:
        raise ValueError("a committee needs at least one member")
    schemes = {m.scheme for m in members}
    if len(schemes) != 1:
        raise ValueError(f"members mix schemes {sorted(schemes)}")
    scheme = schemes.pop()
    numerator, denominator = quorum
    if not 0 < numerator <= denominator:
        raise ValueError(f"quorum {numerator}/{denominator} is not a fraction in (0, 1]")
    by_slot = {m.slot: m for m in members}

    # COLLECT
    refusals: dict[int, str] = {}
    down: list[int] = []
    signed: dict[int, bytes] = {}
    for slot in sorted(by_slot):
        review = reviews.get(slot)
        if review is None:
            down.append(slot)
        elif review.signature is None:
            refusals[slot] = str(review.reason)
        else:
            signed[slot] = review.signature

    # VERIFY (together, then one by one only if needed)
    if signed:
        try:
            together = _verify(
                scheme,
                [by_slot[s].public_key for s in signed],
                digest,
                _aggregate(scheme, list(signed.values())),
            )
        except ValueError:
            together = False
        if not together:
            for slot in list(signed):
                if not _verify(scheme, [by_slot[slot].public_key], digest, signed[slot]):
                    refusals[slot] = "signature does not verify for the proposed epoch result"
                    del signed[slot]

    # AGGREGATE
    signers = tuple(sorted(signed))
    total = sum(m.weight for m in members)
    weight = sum(by_slot[s].weight for s in signers)
    signature = _aggregate(scheme, [signed[s] for s in signers]) if signers else b""
    if scheme == "bn254":
        evm = signature
        apk_g2 = (
            bn254.aggregate_pks_g2([by_slot[s].public_key for s in signers]) if signers else b""
        )
    else:
        evm = bls12381.signature_to_evm(signature) if signers else b""
        apk_g2 = b""
    return Aggregate(
        epoch=epoch,
        digest=digest,
        signers=signers,
        signer_bitmap=sum(1 << s for s in signers),
        signature=signature,
        signature_evm=evm,
        apk_g2=apk_g2,
        refusals=refusals,
        down=tuple(down),
        signed_weight=weight,
        total_weight=total,
        quorum_met=bool(signers) and weight * denominator >= total * numerator,
    )


class InProcessCommittee:
    """Every operator in this process, one after another: no Ray (tests, tiny demos)."""

    def __init__(
        self,
        job: Any,
        members: Sequence[Member],
        registry: Any = None,
        faults: Mapping[int, str] | None = None,
    ) -> None:
        if job.operators.remote or job.operators.set_id is not None:
            raise ValueError(
                "operators.remote / operators.set_id name served Ray actors: run the committee on Ray (drop --no-ray)"
            )
        faults = faults or {}
        self.members = list(members)
        self._quorum = (job.operators.quorum.numerator, job.operators.quorum.denominator)
        self._operators = {
            m.slot: Operator(m.slot, m.scheme, m.secret_key, job, registry, faults.get(m.slot))
            for m in members
        }
        self._down: set[int] = set()

    def stop_operator(self, slot: int) -> None:
        """Take one operator down (it no longer answers)."""
        self._down.add(slot)

    def observe(self, raws: Sequence[bytes]) -> None:
        """Hand raw readings of still-open epochs to every live operator to pre-verify."""
        for slot, op in self._operators.items():
            if slot not in self._down:
                op.observe(raws)

    def drain(self, timeout_s: float | None = None) -> None:
        """Nothing to wait for: ``observe`` is done when it returns."""

    def sign(self, proposal: Proposal) -> Aggregate:
        """Ask every live operator, then aggregate and check the quorum."""
        digest = epoch_result_digest(proposal.result, proposal.chain_id, proposal.verifier)
        reviews: dict[int, Review | None] = {
            slot: None if slot in self._down else op.review(proposal)
            for slot, op in self._operators.items()
        }
        return aggregate_reviews(self.members, reviews, digest, proposal.epoch, self._quorum)

    def close(self) -> None:
        """Nothing to release."""


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start local Ray (or connect to ``address``) once per process."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    elif os.environ.get("RAY_ADDRESS"):
        # running as a submitted Ray job (veristream submit): Ray names the cluster
        ray.init(log_to_driver=False)
    else:
        # "local": always a fresh local instance, never a stale or foreign cluster that
        # /tmp/ray/ray_current_cluster happens to name
        ray.init(
            address="local",
            num_cpus=num_cpus or 2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )


class RayCommittee:
    """One Ray actor per operator key; the aggregator runs in the caller."""

    def __init__(
        self,
        job: Any,
        members: Sequence[Member],
        registry: Any = None,
        faults: Mapping[int, str] | None = None,
        timeout_s: float = 300.0,
    ) -> None:
        import ray

        faults = faults or {}
        on_chain_set = job.operators.set_id is not None
        if on_chain_set and any(m.secret_key for m in members):
            raise ValueError(
                "operators.set_id: the committee is the on-chain set, not demo keys "
                "(build it with veristream.pipeline.coordinator.committee_members)"
            )
        ensure_ray(job.ray.address, job.ray.num_cpus)
        self.members = list(members)
        self._quorum = (job.operators.quorum.numerator, job.operators.quorum.denominator)
        self._timeout_s = timeout_s
        # served operators (`operator serve`): a registry committee names each slot's actor (a slot
        # nobody serves is down); otherwise slots 0.. of operators.remote, the rest local actors
        served = (
            {m.slot: m.actor for m in members if m.actor is not None}
            if on_chain_set
            else dict(enumerate(job.operators.remote))
        )
        self._remote = {m.slot for m in members} if on_chain_set else set(served)
        self._actors = {
            m.slot: find_operator(served[m.slot], job.operators.namespace, m, timeout_s)
            for m in members
            if m.slot in served
        }
        # num_cpus=0: operators mostly wait; on 2 cores four of them must fit at once
        actor = ray.remote(num_cpus=0, max_restarts=0)(Operator)
        for m in members:
            if m.slot not in self._remote:
                self._actors[m.slot] = actor.remote(
                    m.slot, m.scheme, m.secret_key, job, registry, faults.get(m.slot)
                )
        ray.get([a.ping.remote() for a in self._actors.values()], timeout=timeout_s)
        self._observing: list[Any] = []  # pre-verification calls in flight

    def observe(self, raws: Sequence[bytes]) -> None:
        """Hand raw readings of still-open epochs to every operator to pre-verify, without waiting
        (one object in Ray's store for all of them; an operator that is down is skipped)."""
        import ray

        if not raws:
            return
        # forget finished calls; their outcome does not matter (a failed one is a cold memo)
        if self._observing:
            _, self._observing = ray.wait(self._observing, num_returns=len(self._observing), timeout=0)
        shared = ray.put(list(raws))
        for actor in self._actors.values():
            with contextlib.suppress(Exception):  # a dead or older operator: it re-verifies at review
                self._observing.append(actor.observe.remote(shared))

    def drain(self, timeout_s: float | None = None) -> None:
        """Wait until the operators have pre-verified everything handed to them (or the timeout)."""
        import ray

        if self._observing:
            ray.wait(self._observing, num_returns=len(self._observing), timeout=timeout_s or self._timeout_s)
            self._observing = []

    def stop_operator(self, slot: int) -> None:
        """Take one operator down: kill a local actor; stop asking a remote one (it is not ours)."""
        import ray

        actor = self._actors.pop(slot, None)
        if actor is not None and slot not in self._remote:
            ray.kill(actor, no_restart=True)

    def sign(self, proposal: Proposal) -> Aggregate:
        """Fan the proposal out to every actor, collect within the timeout, aggregate."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        digest = epoch_result_digest(proposal.result, proposal.chain_id, proposal.verifier)
        refs = {slot: actor.review.remote(proposal) for slot, actor in self._actors.items()}
        ray.wait(list(refs.values()), num_returns=len(refs), timeout=self._timeout_s)
        reviews: dict[int, Review | None] = {}
        for slot, ref in refs.items():
            try:
                reviews[slot] = ray.get(ref, timeout=0)
            except (RayActorError, GetTimeoutError):
                reviews[slot] = None
            except Exception as error:  # an operator that crashes is a refusal, with its reason
                reviews[slot] = Review(
                    slot, None, f"operator failed: {type(error).__name__}: {error}"
                )
        return aggregate_reviews(self.members, reviews, digest, proposal.epoch, self._quorum)

    def close(self) -> None:
        """Release the actors (Ray itself stays up for the rest of the run)."""
        import ray

        for slot, actor in self._actors.items():
            if slot in self._remote:
                continue  # a served operator outlives this run
            with contextlib.suppress(Exception):  # already dead
                ray.kill(actor, no_restart=True)


# OPERATORS SERVED ON THEIR OWN CLUSTER (`veristream operator serve`)


def find_operator(name: str, namespace: str, member: Member, timeout_s: float = 60.0) -> Any:
    """The named operator actor ``operator serve`` started; ``ValueError`` if it is not there or
    holds another key than the one ``member``'s slot is registered with."""
    import ray

    try:
        actor = ray.get_actor(name, namespace=namespace)
    except ValueError:
        raise ValueError(
            f"no operator actor {name!r} in Ray namespace {namespace!r}: "
            "start it with `veristream operator serve`"
        ) from None
    served = bytes(ray.get(actor.public_key.remote(), timeout=timeout_s))
    if served != member.public_key:
        raise ValueError(
            f"operator {name!r} serves key 0x{served[:8].hex()}…, slot {member.slot} expects "
            f"0x{member.public_key[:8].hex()}…"
        )
    return actor


def served_keys(names: Sequence[str], namespace: str, timeout_s: float = 60.0) -> dict[str, bytes]:
    """The public key each served operator actor reports, by actor name (Ray must be connected).

    The actors ``names`` lists, or with no names every named actor of ``namespace``
    that answers ``public_key``; one that is not running (or dies meanwhile) is left
    out: its slot counts as down.
    """
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError

    if not names:
        names = sorted(
            actor["name"]
            for actor in ray.util.list_named_actors(all_namespaces=True)
            if actor["namespace"] == namespace
        )
    refs: dict[str, Any] = {}
    for name in names:
        try:
            refs[name] = ray.get_actor(name, namespace=namespace).public_key.remote()
        except (ValueError, AttributeError):
            continue  # not running, or not an operator
    keys: dict[str, bytes] = {}
    for name, ref in refs.items():
        try:
            keys[name] = bytes(ray.get(ref, timeout=timeout_s))
        except (RayActorError, GetTimeoutError):
            continue
    return keys


def registry_members(
    scheme: str, registered: Sequence[Any], served: Mapping[str, bytes], set_id: int | None = None
) -> list[Member]:
    """The committee of an on-chain operator set: one member per registered slot, with the slot
    and weight the registry holds, each matched to the served actor whose key is the slot's.

    ``registered`` holds ``veristream.contracts.SetOperator`` rows (``slot``, ``weight`` and
    the G1 ``pubkey`` as the registry stores it); ``served`` maps actor names to the key each
    reports (bls12381: 48-byte compressed G1; bn254: 128-byte G2, matched to the registered G1
    key by a pairing check). A slot nobody serves gets no actor (down: the quorum decides).
    ``ValueError`` for a served key no slot registered, or two actors serving one slot.
    """
    # VALIDATE
    if scheme not in ("bls12381", "bn254"):
        raise ValueError(f"unknown BLS scheme {scheme!r}")
    if not registered:
        raise ValueError("the operator set has no operators")
    label = f"operator set {set_id}" if set_id is not None else "the operator set"

    # MATCH
    actor_of: dict[int, str] = {}
    for name in sorted(served):
        slot = _registered_slot(scheme, registered, served[name])
        if slot is None:
            raise ValueError(
                f"operator actor {name!r} serves key 0x{served[name][:8].hex()}…, which is not registered in "
                f"{label} (slots {[op.slot for op in registered]}): register it with `veristream operator "
                "register`, or stop serving it"
            )
        if slot in actor_of:
            raise ValueError(f"operator actors {actor_of[slot]!r} and {name!r} both serve the key of slot {slot}")
        actor_of[slot] = name

    # MEMBERS (bitmap order: by slot)
    return [
        Member(
            int(op.slot),
            scheme,
            int(op.weight),
            served[actor_of[op.slot]] if op.slot in actor_of else b"",
            actor=actor_of.get(op.slot),
        )
        for op in sorted(registered, key=lambda op: int(op.slot))
    ]


def _registered_slot(scheme: str, registered: Sequence[Any], key: bytes) -> int | None:
    """The slot whose registered G1 key belongs to the same secret as ``key``, if any."""
    from veristream.provers.bls import bls12381, bn254

    if scheme == "bls12381":
        try:
            evm = bls12381.pk_to_evm(bytes(key))
        except ValueError:
            return None
        return next((int(op.slot) for op in registered if bytes(op.pubkey) == evm), None)
    return next((int(op.slot) for op in registered if bn254.keys_match(bytes(op.pubkey), bytes(key))), None)


def start_operator(job: Any, key: Mapping[str, str], name: str, namespace: str, slot: int = 0) -> Any:
    """Start this operator's prover (the committee's ``Operator``) as a named, detached actor.

    Ray must already be connected (``ensure_ray``). ``key`` is an ``operator keygen`` file.
    """
    import ray

    scheme = key.get("scheme")
    if scheme != job.operators.scheme:
        raise ValueError(f"key is {scheme!r} but the job's operators use {job.operators.scheme!r}")
    try:
        secret = int(str(key["secret_key"]), 16)
    except (KeyError, ValueError):
        raise ValueError("key file has no hex secret_key: use one from `veristream operator keygen`") from None
    try:
        ray.get_actor(name, namespace=namespace)
    except ValueError:
        pass  # the name is free
    else:
        raise ValueError(f"an actor named {name!r} already runs in namespace {namespace!r}")
    actor = ray.remote(num_cpus=0, max_restarts=0)(Operator).options(
        name=name, namespace=namespace, lifetime="detached"
    )
    handle = actor.remote(slot, scheme, secret, job, None, None)
    ray.get(handle.ping.remote(), timeout=120)
    return handle


def _announce(line: str) -> None:
    print(line, flush=True)  # a supervisor reading the pipe waits for this line


def serve_operator(
    job: Any,
    key: Mapping[str, str],
    address: str,
    name: str,
    namespace: str,
    slot: int = 0,
    announce: Any = None,
    check_every_s: float = 5.0,
) -> None:
    """Run ``start_operator`` on the cluster at ``address`` and keep it serving until
    interrupted (Ctrl-C or SIGTERM), then remove the actor."""
    import json
    import signal
    import time

    import ray

    def _interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    ensure_ray(address)
    # after ray.init, which installs its own SIGTERM handler (exit without cleanup)
    signal.signal(signal.SIGTERM, _interrupt)
    handle = start_operator(job, key, name, namespace, slot)
    try:
        public_key = bytes(ray.get(handle.public_key.remote(), timeout=60))
        (announce or _announce)(
            json.dumps(
                {"name": name, "namespace": namespace, "slot": slot, "public_key": "0x" + public_key.hex()}
            )
        )
        while True:
            time.sleep(check_every_s)
            ray.get(handle.ping.remote(), timeout=60)  # a dead actor ends the serve with an error
    except KeyboardInterrupt:
        pass
    finally:
        with contextlib.suppress(Exception):
            ray.kill(handle, no_restart=True)

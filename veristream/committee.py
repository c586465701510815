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

Local Ray is started once per run (``ray.init`` costs seconds and much memory);
``address`` connects to a cluster instead.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any, Protocol

from veristream.operator import Operator
from veristream.pipeline.jobspec import JobSpec
from veristream.pipeline.registry import DeviceRegistryView
from veristream.pipeline.workers import ensure_ray
from veristream.provers.aggregation import Aggregate, Member, Proposal, Review, aggregate_reviews
from veristream.provers.epoch_result import epoch_result_digest
from veristream.provers.errors import InputRejected


class Committee(Protocol):
    """What the run and live loops need of a committee, wherever its operators run."""

    members: list[Member]

    def observe(self, raws: Sequence[bytes]) -> None:
        """Hand raw readings of still-open epochs to the operators to pre-verify."""
        ...

    def drain(self, timeout_s: float | None = None) -> None:
        """Wait until the operators have pre-verified what they were handed."""
        ...

    def sign(self, proposal: Proposal) -> Aggregate:
        """Ask every live operator, aggregate their signatures and check the quorum."""
        ...

    def stop_operator(self, slot: int) -> None:
        """Take one operator down."""
        ...

    def close(self) -> None:
        """Release the operators this committee started."""
        ...


class InProcessCommittee:
    """Every operator in this process, one after another: no Ray (tests, tiny demos)."""

    def __init__(
        self,
        job: JobSpec,
        members: Sequence[Member],
        registry: DeviceRegistryView | None = None,
        faults: Mapping[int, str] | None = None,
    ) -> None:
        if job.operators.remote or job.operators.set_id is not None:
            raise InputRejected(
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


def _serve_in_process(connection: Connection, operator: Operator) -> None:
    """An operator process's loop: answer ``(method, argument)`` calls until told to stop."""
    with connection:
        while True:
            try:
                method, argument = connection.recv()
            except (EOFError, OSError):
                return  # the committee is gone
            if method == "stop":
                return
            try:
                answer: Any = getattr(operator, method)(argument)
            except Exception as error:  # an operator that crashes is a refusal, with its reason
                answer = _Failure(f"{type(error).__name__}: {error}")
            connection.send(answer)


class _Failure:
    """What an operator process answers when its call raised (the error itself may not pickle)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class ProcessCommittee:
    """One local process per operator key: every operator re-executes every epoch on its own
    core, without a Ray cluster to start (a small job's committee; Ray's start costs more than
    such a job's whole work). The processes are forked, so they start with this process's
    modules already imported."""

    runtime = "local processes"

    def __init__(
        self,
        job: JobSpec,
        members: Sequence[Member],
        registry: DeviceRegistryView | None = None,
        faults: Mapping[int, str] | None = None,
        timeout_s: float = 300.0,
    ) -> None:
        if job.operators.remote or job.operators.set_id is not None:
            raise InputRejected(
                "operators.remote / operators.set_id name served Ray actors: run the committee on Ray"
            )
        faults = faults or {}
        self.members = list(members)
        self._quorum = (job.operators.quorum.numerator, job.operators.quorum.denominator)
        self._timeout_s = timeout_s
        context = multiprocessing.get_context("fork")
        self._connections: dict[int, Connection] = {}
        self._processes: dict[int, Any] = {}
        for m in members:
            operator = Operator(m.slot, m.scheme, m.secret_key, job, registry, faults.get(m.slot))
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_serve_in_process, args=(theirs, operator), name=f"operator-{m.slot}", daemon=True
            )
            process.start()
            theirs.close()
            self._connections[m.slot] = ours
            self._processes[m.slot] = process

    def _call(self, method: str, argument: Any) -> dict[int, Any]:
        """Send one call to every live operator, then collect the answers (None: no answer)."""
        sent = {}
        for slot, connection in self._connections.items():
            try:
                connection.send((method, argument))
                sent[slot] = connection
            except OSError:
                continue  # its process is gone: it does not answer
        answers: dict[int, Any] = {}
        for slot, connection in sent.items():
            try:
                answers[slot] = connection.recv() if connection.poll(self._timeout_s) else None
            except (EOFError, OSError):
                answers[slot] = None
        return answers

    def stop_operator(self, slot: int) -> None:
        """Take one operator down (its process ends)."""
        connection = self._connections.pop(slot, None)
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.send(("stop", None))
            connection.close()
        process = self._processes.pop(slot, None)
        if process is not None:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()

    def observe(self, raws: Sequence[bytes]) -> None:
        """Hand raw readings of still-open epochs to every live operator to pre-verify."""
        if raws:
            self._call("observe", list(raws))

    def drain(self, timeout_s: float | None = None) -> None:
        """Nothing to wait for: ``observe`` returns once every operator has taken the readings."""

    def sign(self, proposal: Proposal) -> Aggregate:
        """Ask every live operator at once, then aggregate and check the quorum."""
        digest = epoch_result_digest(proposal.result, proposal.chain_id, proposal.verifier)
        answers = self._call("review", proposal)
        reviews: dict[int, Review | None] = {}
        for m in self.members:
            answer = answers.get(m.slot)
            if isinstance(answer, _Failure):
                reviews[m.slot] = Review(m.slot, None, f"operator failed: {answer.reason}")
            else:
                reviews[m.slot] = answer
        return aggregate_reviews(self.members, reviews, digest, proposal.epoch, self._quorum)

    def close(self) -> None:
        """End every operator process."""
        for slot in list(self._connections):
            self.stop_operator(slot)


class RayCommittee:
    """One Ray actor per operator key; the aggregator runs in the caller."""

    def __init__(
        self,
        job: JobSpec,
        members: Sequence[Member],
        registry: DeviceRegistryView | None = None,
        faults: Mapping[int, str] | None = None,
        timeout_s: float = 300.0,
    ) -> None:
        import ray

        faults = faults or {}
        on_chain_set = job.operators.set_id is not None
        if on_chain_set and any(m.secret_key for m in members):
            raise InputRejected(
                "operators.set_id: the committee is the on-chain set, not demo keys "
                "(build it with veristream.run.committee_members)"
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
        raise InputRejected(
            f"no operator actor {name!r} in Ray namespace {namespace!r}: "
            "start it with `veristream operator serve`"
        ) from None
    served = bytes(ray.get(actor.public_key.remote(), timeout=timeout_s))
    if served != member.public_key:
        raise InputRejected(
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


def start_operator(job: JobSpec, key: Mapping[str, str], name: str, namespace: str, slot: int = 0) -> Any:
    """Start this operator's prover (the committee's ``Operator``) as a named, detached actor.

    Ray must already be connected (``ensure_ray``). ``key`` is an ``operator keygen`` file.
    """
    import ray

    scheme = key.get("scheme")
    if scheme != job.operators.scheme:
        raise InputRejected(f"key is {scheme!r} but the job's operators use {job.operators.scheme!r}")
    try:
        secret = int(str(key["secret_key"]), 16)
    except (KeyError, ValueError):
        raise InputRejected("key file has no hex secret_key: use one from `veristream operator keygen`") from None
    try:
        ray.get_actor(name, namespace=namespace)
    except ValueError:
        pass  # the name is free
    else:
        raise InputRejected(f"an actor named {name!r} already runs in namespace {namespace!r}")
    actor = ray.remote(num_cpus=0, max_restarts=0)(Operator).options(
        name=name, namespace=namespace, lifetime="detached"
    )
    handle: Any = actor.remote(slot, scheme, secret, job, None, None)
    ray.get(handle.ping.remote(), timeout=120)
    return handle


def _announce(line: str) -> None:
    print(line, flush=True)  # a supervisor reading the pipe waits for this line


def serve_operator(
    job: JobSpec,
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

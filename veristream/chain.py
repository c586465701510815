"""A job's chain: the one place that connects to it and owns the work directory's chain files.

``connect_job_chain`` is how every command reaches a job's chain (the JSON-RPC
node ``chain.rpc_url`` names, or the embedded EVM in ``WORK_DIR/chain``);
``open_chain`` deploys the contracts, registers the embedded committee and
creates the job on first use; ``ChainSession`` submits verified epochs,
``claim_for`` claims one account's rewards and ``claim_all`` every account's,
in batches. The work directory holds ``deployment.json``
(the contracts' addresses) and ``chain-setup.json`` (the job's operator set).

A job pays in ``rewards.token`` (an existing ERC-20) or the deployment's demo
RewardToken; ``fund_pool`` tops its pool up as ``rewards.funding`` says, after
reading what the pool holds and what claims already paid, so a restart never
funds twice; ``pool_status`` and ``claim_for`` say when the pool is short of
what is owed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veristream.contracts import (
    Deployment,
    claim,
    claim_many,
    claimable_root,
    claimed,
    connect,
    create_job,
    create_operator_set,
    deploy_all,
    epoch_info,
    fund_rewards,
    job_on_chain,
    load_deployment,
    operator_set_pending_until,
    operator_set_scheme,
    pool_balance,
    pool_token,
    register_operator,
    submission_window,
    submit_epoch,
    token_balance,
)
from veristream.contracts.chain import URL_SCHEMES, Chain, ChainConfig, Receipt
from veristream.contracts.committee import LocalCommittee
from veristream.contracts.deploy import DEPLOYMENT_FILE, checksum_address
from veristream.contracts.reward_distributor import claimed_total
from veristream.contracts.token import TokenInfo, read_token
from veristream.contracts.wallet import TxPolicy
from veristream.pipeline.commitments import reward_proof, reward_proofs
from veristream.pipeline.jobspec import JobSpec
from veristream.pipeline.state import Checkpoint
from veristream.provers.aggregation import Aggregate, Member, OperatorKey
from veristream.provers.encoding import keccak256
from veristream.provers.epoch_result import EpochResult, job_id_hash
from veristream.provers.errors import InputRejected
from veristream.provers.signers import DEVELOPMENT_CHAIN_IDS

CHAIN_DIR = "chain"
CHAIN_SETUP_FILE = "chain-setup.json"


def connect_job_chain(job: JobSpec, *, read_only: bool = False) -> Chain:
    """The job's chain: its JSON-RPC node, or the embedded EVM in its work directory
    (``read_only``: its saved state, nothing written or locked; ``NotFound`` before a run)."""
    if job.chain.mode == "rpc":
        chain = connect(ChainConfig(url=job.chain.rpc_url, signer=job.chain.signer, policy=_tx_policy(job)))
        if chain.chain_id != job.chain.chain_id:
            url = job.chain.rpc_url
            chain.close()
            raise InputRejected(f"{url} is chain {chain.chain_id}, but chain.chain_id is {job.chain.chain_id}")
        return chain
    return connect(ChainConfig(workdir=Path(job.work_dir) / CHAIN_DIR, read_only=read_only))


def _tx_policy(job: JobSpec) -> TxPolicy:
    """How the job's transactions are priced and awaited."""
    return TxPolicy(max_fee_gwei=job.chain.max_fee_gwei, confirmations=job.chain.confirmations)


def connect_target(target: str, signer: str | None = None) -> Chain:
    """A chain named on the command line: a JSON-RPC url (sending as ``signer``: env:NAME,
    keystore:PATH or node), or an embedded chain's directory."""
    if target.startswith(URL_SCHEMES):
        return connect(ChainConfig(url=target, signer=signer))
    if signer is not None:
        raise InputRejected("--signer applies to a JSON-RPC chain (--rpc-url): the embedded chain needs none")
    return connect(Path(target))


def job_deployment(job: JobSpec) -> Path:
    """Where the contracts of the job's operator set are recorded: ``chain.deployment`` for an
    existing set (``operators.set_id``), else the work directory's copy (a run deployed them)."""
    if job.operators.set_id is not None and job.chain.deployment is not None:
        return job.chain.deployment
    return Path(job.work_dir) / DEPLOYMENT_FILE


def job_operator_set_id(job: JobSpec) -> int | None:
    """The job's operator set: ``operators.set_id``, else the one its first run created."""
    if job.operators.set_id is not None:
        return job.operators.set_id
    return _saved_set_id(Path(job.work_dir))


def _saved_set_id(work_dir: Path) -> int | None:
    """The operator set the work directory's first run created or joined, if any."""
    setup = work_dir / CHAIN_SETUP_FILE
    return int(json.loads(setup.read_text())["set_id"]) if setup.exists() else None


@dataclass
class ChainSession:
    """The job's chain, its contracts, the operator set and the job registered on it."""

    chain: Chain
    deployment: Deployment
    set_id: int
    job_hash: bytes
    token: TokenInfo
    """The ERC-20 the job pays in (``rewards.token`` or the deployment's RewardToken)."""

    @property
    def chain_id(self) -> int:
        """The chain id the committee's digest is bound to."""
        return int(self.chain.chain_id)

    @property
    def verifier(self) -> str:
        """The EpochVerifier address."""
        return str(self.deployment.epoch_verifier)

    def verified_tx(self, epoch: int) -> str | None:
        """The transaction that verified ``epoch`` of the job, or None while it is not verified."""
        info = epoch_info(self.chain, self.deployment, self.job_hash, epoch)
        return None if info is None else info.tx_hash

    @property
    def job_owner(self) -> str:
        """The account that created the job on chain (its id is namespaced by it)."""
        return str(self.chain.sender)

    def submission_closed(self, epoch: int) -> int | None:
        """When ``epoch``'s submission window closed, or None while it can still be submitted.

        An epoch that has not ended by the chain's clock yet is waited for: a development
        chain's clock is moved to its end, a real chain's is waited out.
        """
        opens, closes = submission_window(self.chain, self.deployment, self.job_hash, epoch)
        now = self.chain.timestamp()
        if now > closes:
            return closes
        if now < opens:
            if self.chain.chain_id in DEVELOPMENT_CHAIN_IDS:
                _let_registrations_activate(self.chain, opens - now)
            else:
                time.sleep(opens - now + 1)
        return None

    def submit(self, result: EpochResult, aggregate: Aggregate) -> Receipt:
        """Submit an epoch result with the committee's aggregate signature; saves the chain."""
        receipt = submit_epoch(
            self.chain, self.deployment, result, aggregate.signer_bitmap, aggregate.signature_evm, aggregate.apk_g2
        )
        self.chain.save()
        return receipt


def open_chain(job: JobSpec, members: Sequence[Member], total_epochs_budget: int) -> ChainSession:
    """Connect, and on first use deploy the contracts, register the committee and create the job.

    With ``operators.set_id`` the contracts and the operator set already exist (``chain.
    deployment``): nothing is deployed or registered; the job is created on that set (and
    funded) unless it exists already, after the set's pending registrations take effect.
    """
    work_dir = Path(job.work_dir)
    chain = connect_job_chain(job)
    job_hash = job_id_hash(chain.sender, job.job_id)
    saved = _saved_set_id(work_dir)
    if saved is not None:
        if job.operators.set_id is not None and saved != job.operators.set_id:
            raise InputRejected(
                f"operators.set_id is {job.operators.set_id} but {work_dir} belongs to operator set "
                f"{saved}: use another work_dir"
            )
        dep = load_deployment(chain, work_dir / DEPLOYMENT_FILE)
        token = job_token(job, chain, dep)
        check_job_on_chain(job, chain, dep, job_hash, saved)
        session = ChainSession(chain, dep, saved, job_hash, token)
        fund_pool(session, job, total_epochs_budget)
        return session
    if job.operators.set_id is None:
        dep = deploy_all(chain, dev=chain.chain_id in DEVELOPMENT_CHAIN_IDS, save_to=work_dir / DEPLOYMENT_FILE)
        token = job_token(job, chain, dep)
        set_id = create_operator_set(chain, dep, job.operators.scheme)
        committee = LocalCommittee.deterministic(job.operators.scheme, job.operators.count, job.operators.key_seed)
        accounts = chain.accounts
        if len(accounts) < 1 + len(members):
            # a node without unlocked accounts: each demo operator is named by its key's hash
            accounts = [chain.sender, *("0x" + keccak256(key.pubkey)[12:].hex() for key in committee.keys)]
        committee.register(chain, dep, set_id, accounts[1 : 1 + len(members)], [m.weight for m in members])
        _let_registrations_activate(chain, dep.activation_delay + 1)
        job_set = None
    else:
        dep, set_id = _existing_operator_set(job, chain)
        token = job_token(job, chain, dep)
        job_set = set_id if check_job_on_chain(job, chain, dep, job_hash, set_id) else None
    if job_set is None:
        quorum = job.operators.quorum
        clock = job.epochs.clock()
        create_job(
            chain,
            dep,
            job.job_id,
            set_id,
            quorum=(quorum.numerator, quorum.denominator),
            genesis=clock.genesis_s,
            epoch_seconds=clock.epoch_seconds,
            max_submission_delay=job.chain.max_submission_delay_s,
            max_operator_weight_bps=job.operators.max_weight_bps,
            token=token.address,
        )
    session = ChainSession(chain, dep, set_id, job_hash, token)
    fund_pool(session, job, total_epochs_budget)
    chain.save()
    (work_dir / CHAIN_SETUP_FILE).write_text(json.dumps({"set_id": set_id}))
    return session


def job_token(job: JobSpec, chain: Chain, dep: Deployment) -> TokenInfo:
    """The ERC-20 the job pays in, read from the chain: ``rewards.token``, else the
    deployment's demo RewardToken."""
    address = job.rewards.token or dep.reward_token
    if address is None:
        raise InputRejected(
            "the deployment has no demo RewardToken: set rewards.token to the ERC-20 the job pays in"
        )
    try:
        return read_token(chain, address)
    except InputRejected as error:
        raise InputRejected(f"rewards.token: {error}") from None


@dataclass(frozen=True)
class PoolStatus:
    """A job's reward pool against what it owes: ``owed`` is what the pool must still hold,
    ``balance`` what it holds, ``funded`` what this call added."""

    owed: int
    balance: int
    funded: int = 0

    @property
    def short(self) -> int:
        """How much the pool lacks to pay everything owed (0 when it can)."""
        return max(0, self.owed - self.balance)

    def to_json(self, token: TokenInfo) -> dict[str, Any]:
        """The status as ``--json`` output shows it: raw integers and their display forms."""
        out: dict[str, Any] = {"token": token.to_json()}
        for name in ("owed", "balance", "funded", "short"):
            amount = int(getattr(self, name))
            out[name] = amount
            out[f"{name}_display"] = token.format(amount)
        return out


def fund_pool(session: ChainSession, job: JobSpec, budget: int) -> PoolStatus:
    """Top the job's pool up to ``budget`` (the reward budget of the epochs so far) less what
    claims already paid, as ``rewards.funding`` says: ``mint`` mints the demo token into it,
    ``transfer`` approves and moves it from the signer's balance, ``none`` sends nothing (the
    status says how short the pool is). The chain is read first: a restart never funds twice.
    """
    chain, dep, token = session.chain, session.deployment, session.token
    if budget <= 0:
        return PoolStatus(owed=0, balance=0)
    # READ what the pool holds against what it owes
    owed = max(0, budget - claimed_total(chain, dep, session.job_hash))
    balance = pool_balance(chain, dep, session.job_hash)
    missing = owed - balance
    if missing <= 0 or job.rewards.funding == "none":
        return PoolStatus(owed=owed, balance=balance)
    # CHECK the signer can pay what is missing
    if job.rewards.funding == "transfer":
        held = token_balance(chain, dep, chain.sender, token.address)
        if held < missing:
            raise InputRejected(
                f"rewards.funding 'transfer': the signer {chain.sender} holds {token.format(held)}, the pool of "
                f"job {job.job_id!r} needs {token.format(missing)} more (it holds {token.format(balance)} of "
                f"{token.format(owed)} owed): send the signer tokens, or fund the pool yourself with "
                "rewards.funding 'none'"
            )
    # FUND
    fund_rewards(chain, dep, session.job_hash, missing, mint=job.rewards.funding == "mint", token=token.address)
    chain.save()
    after = pool_balance(chain, dep, session.job_hash)
    return PoolStatus(owed=owed, balance=after, funded=after - balance)


def pool_status(session: ChainSession, checkpoint: Checkpoint) -> PoolStatus:
    """The job's pool against what its contributors can still claim up to the checkpoint's
    epoch: everything they earned (the cumulative reward tree) less what claims paid."""
    earned = sum(checkpoint.state.cumulative.values())
    owed = max(0, earned - claimed_total(session.chain, session.deployment, session.job_hash))
    return PoolStatus(owed=owed, balance=pool_balance(session.chain, session.deployment, session.job_hash))


def check_job_on_chain(job: JobSpec, chain: Chain, dep: Deployment, job_hash: bytes, set_id: int) -> bool:
    """Whether the job exists on chain; ``InputRejected`` naming the first field in which the
    chain's job differs from the job spec (a job is never adopted on trust)."""
    found = job_on_chain(chain, dep, job_hash)
    if found is None:
        return False
    quorum = job.operators.quorum
    clock = job.epochs.clock()
    expected = {
        "owner": (found.owner, checksum_address(chain.sender)),
        "operator set": (found.set_id, set_id),
        "quorum": (found.quorum, (quorum.numerator, quorum.denominator)),
        "genesis (s)": (found.genesis, clock.genesis_s),
        "epoch length (s)": (found.epoch_seconds, clock.epoch_seconds),
        "max submission delay (s)": (found.max_submission_delay, job.chain.max_submission_delay_s),
        "max operator weight (bps)": (found.max_operator_weight_bps, job.operators.max_weight_bps),
    }
    token = pool_token(chain, dep, job_hash)
    job_token_address = job.rewards.token or dep.reward_token
    if job_token_address is not None:
        expected["reward token"] = (token, checksum_address(job_token_address))
    for field, (on_chain, spec) in expected.items():
        if on_chain != spec:
            raise InputRejected(
                f"job {job.job_id!r} exists on chain ({'0x' + job_hash.hex()}) with {field} {on_chain}, "
                f"but the job spec gives {spec}: refusing to use it"
            )
    return True


def _existing_operator_set(job: JobSpec, chain: Chain) -> tuple[Deployment, int]:
    """The job's deployment and operator set on a chain where both exist, checked, and a copy of
    the deployment in the work directory (for ``verify`` and ``claim``); waits until the set's
    scheduled registrations are in force, so the job is created on them."""
    assert job.chain.deployment is not None and job.operators.set_id is not None  # the spec checks
    set_id = job.operators.set_id
    # CHECK
    dep = load_deployment(chain, job.chain.deployment)
    scheme = operator_set_scheme(chain, dep, set_id)
    if scheme != job.operators.scheme:
        raise InputRejected(f"operator set {set_id} holds {scheme} keys but operators.scheme is {job.operators.scheme!r}")
    pending = operator_set_pending_until(chain, dep, set_id)
    if pending == 0:
        raise InputRejected(
            f"operator set {set_id} has no operators yet: register them with `veristream operator register`"
        )
    # WAIT for registrations still scheduled
    now = chain.timestamp()
    if pending > now:
        _let_registrations_activate(chain, pending - now + 1)
    dep.save(Path(job.work_dir) / DEPLOYMENT_FILE)
    return dep, set_id


def _let_registrations_activate(chain: Chain, seconds: int) -> None:
    """Move the chain's clock past the registry's activation delay.

    The embedded EVM refuses to travel to a time before its pending block (which
    follows the wall clock when registering took a while); then waiting is enough.
    """
    try:
        chain.advance_time(seconds)
    except Exception:
        time.sleep(seconds)


def _shortfall(token: TokenInfo, due: int, balance: int) -> dict[str, Any]:
    """What a claim the pool cannot pay reports: what is due, what the pool holds, what it lacks."""
    return {
        "due": due,
        "due_display": token.format(due),
        "pool": balance,
        "pool_display": token.format(balance),
        "short": due - balance,
        "short_display": token.format(due - balance),
    }


def claim_for(
    session: ChainSession, checkpoint: Checkpoint, account: bytes | None = None
) -> dict[str, Any]:
    """Claim ``account``'s cumulative reward (default: the largest earner) up to the checkpoint's epoch.

    Amounts are in the token's smallest unit, each beside its display form (``amount_display``).
    A claim the pool cannot pay is not sent: the result says so (``short``: what the pool
    lacks, ``pool``: what it holds) with ``amount`` 0.
    """
    cumulative = checkpoint.state.cumulative
    if not cumulative:
        raise InputRejected("no rewards have been earned yet")
    if account is None:
        account = max(sorted(cumulative), key=lambda a: cumulative[a])
    amount, proof = reward_proof(cumulative, account)
    assert checkpoint.manifest is not None
    address = "0x" + account.hex()
    token = session.token
    before = claimed(session.chain, session.deployment, session.job_hash, address)
    if before >= amount:
        return {"account": address, "amount": 0, "tx_hash": None, "amount_display": token.format(0)}
    _check_claimable(session, checkpoint)
    due = amount - before
    balance = pool_balance(session.chain, session.deployment, session.job_hash)
    if due > balance:
        # the RewardDistributor would revert (InsufficientFunding): say so instead of sending it
        return {
            "account": address,
            "amount": 0,
            "tx_hash": None,
            "amount_display": token.format(0),
        } | _shortfall(token, due, balance)
    receipt = claim(session.chain, session.deployment, session.job_hash, address, amount, proof)
    session.chain.save()
    return {"account": address, "amount": due, "tx_hash": receipt.tx_hash, "amount_display": token.format(due)}


CLAIM_BATCH = 100


def claim_all(session: ChainSession, checkpoint: Checkpoint, batch: int = CLAIM_BATCH) -> dict[str, Any]:
    """Claim every account's unpaid cumulative reward up to the checkpoint's epoch with
    ``claimMany``, ``batch`` accounts a transaction (what a relayer or the job's owner runs
    after an epoch; tokens go to each account, the sender pays the gas).

    Like ``claim_for``, nothing is sent when the pool is short of what is due (``short``).
    """
    # CHECKS
    if batch < 1:
        raise InputRejected(f"batch must be at least 1, got {batch}")
    assert checkpoint.manifest is not None
    entries = reward_proofs(checkpoint.state.cumulative)
    if not entries:
        raise InputRejected("no rewards have been earned yet")
    token = session.token
    chain, dep, job = session.chain, session.deployment, session.job_hash
    unpaid = []
    due = 0
    for account, amount, proof in entries:
        paid = claimed(chain, dep, job, account)
        if amount > paid:
            unpaid.append((account, amount, proof))
            due += amount - paid
    result: dict[str, Any] = {
        "accounts": len(unpaid),
        "amount": 0,
        "amount_display": token.format(0),
        "tx_hashes": [],
        "gas_used": 0,
    }
    if not unpaid:
        return result
    _check_claimable(session, checkpoint)
    balance = pool_balance(chain, dep, job)
    if due > balance:
        # claimMany would revert (InsufficientFunding): say so instead of sending it
        return result | _shortfall(token, due, balance)
    # OPERATION
    for start in range(0, len(unpaid), batch):
        receipt = claim_many(chain, dep, job, unpaid[start : start + batch])
        result["tx_hashes"].append(receipt.tx_hash)
        result["gas_used"] += receipt.gas_used
        chain.save()
    return result | {"amount": due, "amount_display": token.format(due)}


def _check_claimable(session: ChainSession, checkpoint: Checkpoint) -> None:
    """Refuses a claim built on another epoch than the one claims pay against."""
    assert checkpoint.manifest is not None
    claimable = claimable_root(session.chain, session.deployment, session.job_hash)
    if claimable is None or claimable[0] != checkpoint.manifest.epoch:
        where = "no epoch" if claimable is None else f"epoch {claimable[0]}"
        raise InputRejected(
            f"claims of job {session.job_owner}/{checkpoint.manifest.job_id!r} pay against {where}, not epoch "
            f"{checkpoint.manifest.epoch}: claim with the highest verified epoch"
        )


def register_key(job: JobSpec, key: dict[str, str], account: str | None, weight: int) -> dict[str, Any]:
    """Register ``key`` (from ``keygen``) for ``account`` in the job's operator set on its chain,
    with a proof of possession made here from the key's secret for this chain, registry, set
    and account."""
    if key.get("scheme") != job.operators.scheme:
        raise InputRejected(f"key is {key.get('scheme')!r} but the job's operators use {job.operators.scheme!r}")
    set_id = job_operator_set_id(job)
    if set_id is None:
        raise InputRejected("the job has no operator set on chain yet: run it once (veristream run) first")
    chain = connect_job_chain(job)
    try:
        dep = load_deployment(chain, job_deployment(job))
        operator = account or chain.sender
        operator_key = OperatorKey.from_key_file(key)
        pop = operator_key.registration_pop(chain.chain_id, dep.operator_registry, set_id, operator)
        receipt = register_operator(
            chain, dep, set_id, operator, weight, operator_key.pubkey, pop, operator_key.pubkey_g2
        )
        chain.save()
    finally:
        chain.close()
    return {"operator": operator, "set_id": set_id, "tx_hash": receipt.tx_hash, "gas": receipt.gas_used}

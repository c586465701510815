"""The RewardDistributor and the reward token: funding a job's pool and claiming from it.

Every function takes the ``Chain`` and the ``Deployment``; reverts surface as
``ContractRevert`` carrying the Solidity custom error's name.

Claims come three ways: ``claim`` (anyone sends an account's claim), ``claim_for`` (a
relayer sends it with the account's EIP-712 ``ClaimAuthorization``, made by
``sign_claim_authorization``) and ``claim_many`` (one transaction pays many accounts).
"""

from __future__ import annotations

from collections.abc import Sequence

from veristream.contracts.chain import Chain, Receipt
from veristream.contracts.deploy import Deployment, checksum_address, contract
from veristream.provers.encoding import (
    address_word,
    check_uint,
    eip712_digest,
    eip712_domain_separator,
    eip712_type_hash,
    keccak256,
    parse_address,
    parse_bytes32,
    uint_word,
)
from veristream.provers.errors import InputRejected
from veristream.provers.readings import Domain
from veristream.provers.schemes import secp256k1

CLAIM_AUTHORIZATION_TYPE = (
    "ClaimAuthorization(bytes32 jobId,address account,uint256 cumulativeAmount,uint256 deadline)"
)
CLAIM_AUTHORIZATION_TYPE_HASH = eip712_type_hash(CLAIM_AUTHORIZATION_TYPE)


# CLAIM AUTHORIZATION


def distributor_domain(chain: Chain, dep: Deployment) -> Domain:
    """The EIP-712 domain claim authorizations are signed under: name "VeriStream", version
    "1", the chain's id and the deployment's RewardDistributor."""
    return Domain(chain_id=chain.chain_id, verifying_contract=checksum_address(dep.reward_distributor))


def claim_authorization_digest(
    domain: Domain, job_id: bytes, account: str, cumulative_amount: int, deadline: int
) -> bytes:
    """The EIP-712 digest of ``ClaimAuthorization(jobId, account, cumulativeAmount, deadline)``
    under the RewardDistributor's ``domain``: what ``account`` signs to let anyone relay its
    claim of ``cumulative_amount`` until ``deadline`` (unix seconds)."""
    # CHECKS
    job = parse_bytes32(job_id)
    check_uint(cumulative_amount, name="cumulative_amount")
    check_uint(deadline, name="deadline")
    # OPERATION
    struct_hash = keccak256(
        CLAIM_AUTHORIZATION_TYPE_HASH
        + job
        + address_word(parse_address(account))
        + uint_word(cumulative_amount)
        + uint_word(deadline)
    )
    separator = eip712_domain_separator(domain.name, domain.version, domain.chain_id, domain.verifying_contract)
    return eip712_digest(separator, struct_hash)


def sign_claim_authorization(
    private_key: bytes, domain: Domain, job_id: bytes, account: str, cumulative_amount: int, deadline: int
) -> bytes:
    """The 65-byte authorization (r||s||v) of ``claim_authorization_digest`` by the account's
    secp256k1 ``private_key``, for ``claim_for``. (A contract account signs however its
    ERC-1271 ``isValidSignature`` expects.)"""
    return secp256k1.sign(claim_authorization_digest(domain, job_id, account, cumulative_amount, deadline), private_key)


# TRANSACTIONS


def mint_reward_token(chain: Chain, dep: Deployment, to: str, amount: int) -> Receipt:
    """Mints the deployment's RewardToken (deployer only)."""
    if dep.reward_token is None:
        raise InputRejected("the deployment has no RewardToken")
    check_uint(amount, name="amount")
    token = contract(chain, "RewardToken", dep.reward_token)
    return chain.transact(token.functions.mint(checksum_address(to), amount))


def fund_rewards(
    chain: Chain, dep: Deployment, job_id: bytes, amount: int, *, mint: bool = False, token: str | None = None
) -> Receipt:
    """Moves ``amount`` of the job's token from the sender into the job's reward pool
    (approving it first; minting it first when ``mint`` and the token is the RewardToken)."""
    check_uint(amount, name="amount")
    token_address = token or dep.reward_token
    if token_address is None:
        raise InputRejected("no reward token: pass token=")
    if mint:
        mint_reward_token(chain, dep, chain.sender, amount)
    erc20 = contract(chain, "RewardToken", token_address)
    chain.transact(erc20.functions.approve(checksum_address(dep.reward_distributor), amount))
    distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
    return chain.transact(distributor.functions.fund(job_id, amount))


def claim(
    chain: Chain,
    dep: Deployment,
    job_id: bytes,
    account: str,
    cumulative_amount: int,
    proof: Sequence[bytes],
    *,
    sender: str | None = None,
) -> Receipt:
    """Claims ``account``'s cumulative reward against the job's claimable root (the highest
    verified epoch's): pays the unclaimed difference to ``account``, whoever sends it."""
    check_uint(cumulative_amount, name="cumulative_amount")
    distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
    return chain.transact(
        distributor.functions.claim(job_id, checksum_address(account), cumulative_amount, list(proof)),
        sender=sender,
    )


def claim_for(
    chain: Chain,
    dep: Deployment,
    job_id: bytes,
    account: str,
    cumulative_amount: int,
    proof: Sequence[bytes],
    deadline: int,
    signature: bytes,
    *,
    sender: str | None = None,
) -> Receipt:
    """Relays ``account``'s claim with its ``ClaimAuthorization`` ``signature``: pays the
    unclaimed difference to ``account`` (never to the sender) before ``deadline``."""
    check_uint(cumulative_amount, name="cumulative_amount")
    check_uint(deadline, name="deadline")
    distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
    return chain.transact(
        distributor.functions.claimFor(
            job_id, checksum_address(account), cumulative_amount, list(proof), deadline, bytes(signature)
        ),
        sender=sender,
    )


def claim_many(
    chain: Chain,
    dep: Deployment,
    job_id: bytes,
    claims: Sequence[tuple[str, int, Sequence[bytes]]],
    *,
    sender: str | None = None,
) -> Receipt:
    """Pays many accounts of ``job_id`` in one transaction: ``claims`` holds (account,
    cumulative amount, proof) under the job's claimable root. Accounts already paid their
    amount are skipped; any other bad entry reverts the batch (``InvalidProofAt``)."""
    if not claims:
        raise InputRejected("claim_many needs at least one claim")
    for _, amount, _ in claims:
        check_uint(amount, name="cumulative_amount")
    distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
    return chain.transact(
        distributor.functions.claimMany(
            job_id,
            [checksum_address(account) for account, _, _ in claims],
            [amount for _, amount, _ in claims],
            [list(proof) for _, _, proof in claims],
        ),
        sender=sender,
    )


def onchain_claim_authorization_digest(
    chain: Chain, dep: Deployment, job_id: bytes, account: str, cumulative_amount: int, deadline: int
) -> bytes:
    """The distributor's own ``claimAuthorizationDigest`` (a view), for cross-checks."""
    distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
    fn = distributor.functions.claimAuthorizationDigest(job_id, checksum_address(account), cumulative_amount, deadline)
    return bytes(chain.call(fn))


def jobs_paying_in(chain: Chain, dep: Deployment, token: str, *, from_block: int = 0) -> list[bytes]:
    """Every job whose pool is in ``token`` (its ``RewardTokenSet`` events), ascending: the list
    ``recover_unaccounted`` hands the contract."""
    distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
    logs = distributor.events.RewardTokenSet.get_logs(
        from_block=from_block, argument_filters={"token": checksum_address(token)}
    )
    return sorted({bytes(log["args"]["jobId"]) for log in logs})


def recover_unaccounted(chain: Chain, dep: Deployment, token: str, to: str, *, from_block: int = 0) -> Receipt:
    """Returns ``token`` sent to the distributor outside ``fund`` to ``to`` (distributor owner):
    the contract checks that the jobs named are all the jobs paying in ``token``."""
    distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
    jobs = jobs_paying_in(chain, dep, token, from_block=from_block)
    return chain.transact(
        distributor.functions.recoverUnaccounted(checksum_address(token), checksum_address(to), jobs)
    )


def announce_sweep(chain: Chain, dep: Deployment, job_id: bytes) -> Receipt:
    """Announces the sweep of a job's unclaimed pool once its claim window has passed (job owner)."""
    distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
    return chain.transact(distributor.functions.announceSweep(job_id))


def sweep(chain: Chain, dep: Deployment, job_id: bytes, to: str) -> Receipt:
    """Sends the job's unclaimed pool to ``to`` once the announced sweep is due (job owner)."""
    distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
    return chain.transact(distributor.functions.sweep(job_id, checksum_address(to)))


def withdraw_on_set_change(chain: Chain, dep: Deployment, job_id: bytes, to: str, amount: int) -> Receipt:
    """Withdraws from the job's pool while its operator set has a change the job did not accept
    (job owner)."""
    check_uint(amount, name="amount")
    distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
    return chain.transact(distributor.functions.withdrawOnSetChange(job_id, checksum_address(to), amount))


def claimed(chain: Chain, dep: Deployment, job_id: bytes, account: str) -> int:
    """The cumulative amount already paid to ``account`` for ``job_id``."""
    distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
    return int(chain.call(distributor.functions.claimed(job_id, checksum_address(account))))


def pool_token(chain: Chain, dep: Deployment, job_id: bytes) -> str | None:
    """The ERC-20 ``job_id`` pays in, or ``None`` before its owner set one."""
    distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
    token, _, _ = chain.call(distributor.functions.pools(job_id))
    return None if int(token, 16) == 0 else checksum_address(token)


def claimed_total(chain: Chain, dep: Deployment, job_id: bytes, *, from_block: int = 0) -> int:
    """Everything paid out by claims of ``job_id`` so far (its ``Claimed`` events; ``from_block``
    bounds the log search, as nodes limit log ranges)."""
    distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
    logs = distributor.events.Claimed.get_logs(from_block=from_block, argument_filters={"jobId": job_id})
    return sum(int(log["args"]["amount"]) for log in logs)


def pool_balance(chain: Chain, dep: Deployment, job_id: bytes) -> int:
    """Funded and not yet claimed rewards of ``job_id``."""
    distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
    _, _, balance = chain.call(distributor.functions.pools(job_id))
    return int(balance)


def token_balance(chain: Chain, dep: Deployment, account: str, token: str | None = None) -> int:
    """ERC-20 balance of ``account`` (the deployment's RewardToken unless ``token``)."""
    address = token or dep.reward_token
    if address is None:
        raise InputRejected("no token address")
    return int(chain.call(contract(chain, "RewardToken", address).functions.balanceOf(checksum_address(account))))

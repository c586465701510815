"""The RewardDistributor and the reward token: funding a job's pool and claiming from it.

Every function takes the ``Chain`` and the ``Deployment``; reverts surface as
``ContractRevert`` carrying the Solidity custom error's name.
"""

from __future__ import annotations

from collections.abc import Sequence

from veristream.contracts.chain import Chain, Receipt
from veristream.contracts.deploy import Deployment, checksum_address, contract
from veristream.provers.encoding import check_uint
from veristream.provers.errors import InputRejected


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

"""VeriStream's contracts: Solidity sources, compiled artifacts, and the Python side.

``connect`` a chain (embedded in-process EVM in a work directory, or a JSON-RPC url),
``deploy_all`` the set, then register operators, create jobs, submit epochs, fund and
claim rewards, and manage devices. See docs/contracts.md.
"""

from veristream.contracts.artifacts import ContractRevert, load_artifact
from veristream.contracts.chain import Chain, ChainConfig, Receipt, connect, connected
from veristream.contracts.deploy import Deployment, deploy_all, load_deployment
from veristream.contracts.device_registry import (
    DeviceChange,
    DeviceInfo,
    check_reading_signature,
    device_changes,
    device_info,
    reading_digest,
    register_device,
    revoke_device,
    rotate_device_key,
    set_device_owner,
)
from veristream.contracts.epoch_verifier import (
    EpochInfo,
    create_job,
    epoch_contains_reading,
    epoch_contains_reading_data,
    epoch_digest,
    epoch_info,
    job_operator_set,
    reference_time,
    submit_epoch,
)
from veristream.contracts.operator_registry import (
    SetOperator,
    create_operator_set,
    operator_set_at,
    operator_set_members,
    operator_set_pending_until,
    operator_set_scheme,
    operator_slot,
    register_operator,
    remove_operator,
    rotate_operator_key,
    set_operator_weight,
)
from veristream.contracts.reward_distributor import (
    claim,
    claimed,
    fund_rewards,
    mint_reward_token,
    pool_balance,
    token_balance,
)

__all__ = [
    "Chain",
    "ChainConfig",
    "ContractRevert",
    "Deployment",
    "DeviceChange",
    "DeviceInfo",
    "EpochInfo",
    "Receipt",
    "SetOperator",
    "check_reading_signature",
    "claim",
    "claimed",
    "connect",
    "connected",
    "create_job",
    "create_operator_set",
    "deploy_all",
    "device_changes",
    "device_info",
    "epoch_contains_reading",
    "epoch_contains_reading_data",
    "epoch_digest",
    "epoch_info",
    "fund_rewards",
    "job_operator_set",
    "load_artifact",
    "load_deployment",
    "mint_reward_token",
    "operator_set_at",
    "operator_set_members",
    "operator_set_pending_until",
    "operator_set_scheme",
    "operator_slot",
    "pool_balance",
    "reading_digest",
    "reference_time",
    "register_device",
    "register_operator",
    "remove_operator",
    "revoke_device",
    "rotate_device_key",
    "rotate_operator_key",
    "set_device_owner",
    "set_operator_weight",
    "submit_epoch",
    "token_balance",
]

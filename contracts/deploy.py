"""Deploying the contract set and finding it again: ``deploy_all``, ``load_deployment``, ``Deployment``.

Every function takes the ``Chain`` and the ``Deployment``; reverts surface as
``ContractRevert`` carrying the Solidity custom error's name.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from veristream.contracts.artifacts import load_artifact
from veristream.contracts.chain import Chain
from veristream.provers.encoding import parse_address
from veristream.provers.errors import InputRejected
from veristream.provers.signers import DEVELOPMENT_CHAIN_IDS

DEPLOYMENT_FILE = "deployment.json"
# OperatorRegistry.MIN_ACTIVATION_DELAY: the timelock of operator-set changes off development chains.
MIN_ACTIVATION_DELAY = 2 * 24 * 3600
# OperatorRegistry.isLocalDevelopmentChain: anvil/Hardhat, the usual dev id, the embedded eth-tester EVM.


@dataclass(frozen=True, slots=True)
class Deployment:
    """Addresses of one deployed set of contracts (JSON-able)."""

    chain_id: int
    operator_registry: str
    epoch_verifier: str
    reward_distributor: str
    device_registry: str
    reward_token: str | None
    activation_delay: int
    deployer: str
    # None for a deployment saved before the CredentialRegistry existed
    credential_registry: str | None = None

    def to_json(self) -> str:
        """The deployment as a JSON object."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        """A deployment from ``to_json``'s output; ``ValueError`` on missing fields."""
        data = json.loads(text)
        optional = {"credential_registry"}
        try:
            return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data or name not in optional})
        except KeyError as exc:
            raise InputRejected(f"deployment JSON lacks {exc.args[0]!r}") from None

    def save(self, path: Path) -> None:
        """Writes the deployment to ``path`` (a file) atomically."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.to_json() + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        """Reads a deployment saved by ``save``."""
        return cls.from_json(path.read_text())


def checksum_address(address: str | bytes) -> str:
    from eth_utils import to_checksum_address

    return str(to_checksum_address(parse_address(address)))


def contract(chain: Chain, name: str, address: str) -> Any:
    """A web3 contract object of artifact ``name`` at ``address``."""
    return chain.w3.eth.contract(address=checksum_address(address), abi=load_artifact(name)["abi"])


def deploy(chain: Chain, name: str, *args: Any) -> str:
    """Deploys artifact ``name`` with constructor ``args``; returns its checksum address."""
    artifact = load_artifact(name)
    factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = chain.transact(factory.constructor(*args))
    if receipt.contract_address is None:
        raise InputRejected(f"deploying {name} produced no contract address")
    return receipt.contract_address


def deploy_all(
    chain: Chain,
    *,
    activation_delay: int | None = None,
    dev: bool = False,
    token: str | None = None,
    token_name: str = "VeriStream Reward",
    token_symbol: str = "VSR",
    save_to: Path | None = None,
) -> Deployment:
    """Deploys OperatorRegistry, EpochVerifier, RewardDistributor, DeviceRegistry,
    CredentialRegistry (and a ``RewardToken`` unless ``token`` names an existing ERC-20), owned
    by the chain's sender.

    ``activation_delay`` (seconds from an operator-set change to its effect) defaults to
    ``MIN_ACTIVATION_DELAY``, or to 1 second with ``dev`` (a local development chain, where the
    registry accepts any delay); a shorter delay without ``dev`` is refused. The deployment is
    saved as ``deployment.json`` in the embedded chain's work directory, or to ``save_to``.
    """
    if activation_delay is None:
        activation_delay = 1 if dev else MIN_ACTIVATION_DELAY
    if activation_delay < 1:
        raise InputRejected("activation_delay must be at least 1 second")
    if activation_delay < MIN_ACTIVATION_DELAY and not dev:
        raise InputRejected(
            f"activation_delay {activation_delay} s is below the {MIN_ACTIVATION_DELAY} s floor of a production "
            "chain: operator-set changes would take effect before anyone can react; pass --dev (dev=True) "
            "on a local development chain"
        )
    if dev and chain.chain_id not in DEVELOPMENT_CHAIN_IDS and activation_delay < MIN_ACTIVATION_DELAY:
        raise InputRejected(
            f"chain {chain.chain_id} is not a development chain ({sorted(DEVELOPMENT_CHAIN_IDS)}): the "
            f"OperatorRegistry refuses an activation delay below {MIN_ACTIVATION_DELAY} s there"
        )
    owner = chain.sender
    registry = deploy(chain, "OperatorRegistry", owner, activation_delay)
    verifier = deploy(chain, "EpochVerifier", registry)
    distributor = deploy(chain, "RewardDistributor", verifier, owner)
    devices = deploy(chain, "DeviceRegistry", owner)
    credentials = deploy(chain, "CredentialRegistry", owner, devices)
    reward_token = checksum_address(token) if token else deploy(chain, "RewardToken", token_name, token_symbol, owner)
    dep = Deployment(
        chain_id=chain.chain_id,
        operator_registry=registry,
        epoch_verifier=verifier,
        reward_distributor=distributor,
        device_registry=devices,
        reward_token=reward_token,
        activation_delay=activation_delay,
        deployer=owner,
        credential_registry=credentials,
    )
    target = save_to or (chain.workdir / DEPLOYMENT_FILE if chain.workdir else None)
    if target is not None:
        dep.save(target)
    return dep


DEPLOYED_CONTRACTS = {
    "operator_registry": "OperatorRegistry",
    "epoch_verifier": "EpochVerifier",
    "reward_distributor": "RewardDistributor",
    "device_registry": "DeviceRegistry",
    "credential_registry": "CredentialRegistry",
}


def code_matches_artifact(code: bytes, name: str) -> bool:
    """Whether runtime ``code`` is artifact ``name``'s, its immutables (filled in by the
    constructor) masked on both sides."""
    artifact = load_artifact(name)
    expected = bytearray(bytes.fromhex(artifact["deployedBytecode"][2:]))
    actual = bytearray(code)
    if len(actual) != len(expected):
        return False
    for ranges in artifact.get("immutableReferences", {}).values():
        for span in ranges:
            start, length = int(span["start"]), int(span["length"])
            actual[start : start + length] = expected[start : start + length] = bytes(length)
    return actual == expected


def check_deployment(chain: Chain, dep: Deployment) -> None:
    """``InputRejected`` unless the node's chain id is the deployment's and the code at every
    address of the deployment is the code of the shipped artifacts."""
    if dep.chain_id != chain.chain_id:
        raise InputRejected(f"deployment is for chain {dep.chain_id}, connected to {chain.chain_id}")
    for field, name in DEPLOYED_CONTRACTS.items():
        address = getattr(dep, field)
        if address is None:
            continue
        code = bytes(chain.w3.eth.get_code(checksum_address(address)))
        if not code:
            raise InputRejected(f"no contract at {address} ({name} of the deployment) on chain {chain.chain_id}")
        if not code_matches_artifact(code, name):
            raise InputRejected(
                f"the code at {address} is not the {name} these artifacts build: refusing the deployment"
            )


def load_deployment(chain: Chain, path: Path | None = None) -> Deployment:
    """The deployment saved beside the embedded chain (or at ``path``); checks the chain id."""
    target = path or (chain.workdir / DEPLOYMENT_FILE if chain.workdir else None)
    if target is None or not target.is_file():
        raise InputRejected("no deployment.json found: deploy first (deploy_all)")
    dep = Deployment.load(target)
    check_deployment(chain, dep)
    return dep

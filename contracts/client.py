"""Deploy the VeriStream contracts and call them: a thin, typed layer over web3.py.

Every function takes the ``Chain`` (embedded EVM or JSON-RPC node) and the
``Deployment`` (the four addresses); reverts surface as ``ContractRevert`` carrying the
Solidity custom error's name. Byte arguments are raw ``bytes`` (32-byte roots and ids),
addresses are ``0x`` strings (any case; checksummed here).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from veristream.contracts.artifacts import ContractRevert, load_artifact
from veristream.contracts.chain import Chain, Receipt
from veristream.provers.encoding import check_uint, keccak256, parse_address, parse_bytes32
from veristream.provers.epoch_result import EpochResult
from veristream.provers.errors import InputRejected

DEPLOYMENT_FILE = "deployment.json"
SCHEMES = {"bn254": 1, "bls12381": 2}
DEVICE_SCHEMES = {"secp256k1": 1, "ed25519": 2, "p256": 3}


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

    def to_json(self) -> str:
        """The deployment as a JSON object."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        """A deployment from ``to_json``'s output; ``ValueError`` on missing fields."""
        data = json.loads(text)
        try:
            return cls(**{name: data[name] for name in cls.__dataclass_fields__})
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


@dataclass(frozen=True, slots=True)
class EpochInfo:
    """A verified epoch as the chain holds it."""

    job_id: bytes
    epoch: int
    data_root: bytes
    reward_root: bytes
    batch_cid_hash: bytes
    batch_cid: bytes | None
    signer_bitmap: int | None
    signed_weight: int | None
    total_weight: int | None
    tx_hash: str | None


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A device's record in the DeviceRegistry."""

    device: str
    owner: str
    scheme: str
    key_version: int
    revoked_from: int
    signer: str
    public_key: bytes


def _checksum(address: str | bytes) -> str:
    from eth_utils import to_checksum_address

    return str(to_checksum_address(parse_address(address)))


def contract(chain: Chain, name: str, address: str) -> Any:
    """A web3 contract object of artifact ``name`` at ``address``."""
    return chain.w3.eth.contract(address=_checksum(address), abi=load_artifact(name)["abi"])


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
    activation_delay: int = 1,
    token: str | None = None,
    token_name: str = "VeriStream Reward",
    token_symbol: str = "VSR",
    save_to: Path | None = None,
) -> Deployment:
    """Deploys OperatorRegistry, EpochVerifier, RewardDistributor, DeviceRegistry (and a
    ``RewardToken`` unless ``token`` names an existing ERC-20), owned by the chain's sender.

    The deployment is saved as ``deployment.json`` in the embedded chain's work directory,
    or to ``save_to`` when given.
    """
    if activation_delay < 1:
        raise InputRejected("activation_delay must be at least 1 second")
    owner = chain.sender
    registry = deploy(chain, "OperatorRegistry", owner, activation_delay)
    verifier = deploy(chain, "EpochVerifier", registry)
    distributor = deploy(chain, "RewardDistributor", verifier)
    devices = deploy(chain, "DeviceRegistry", owner)
    reward_token = _checksum(token) if token else deploy(chain, "RewardToken", token_name, token_symbol, owner)
    dep = Deployment(
        chain_id=chain.chain_id,
        operator_registry=registry,
        epoch_verifier=verifier,
        reward_distributor=distributor,
        device_registry=devices,
        reward_token=reward_token,
        activation_delay=activation_delay,
        deployer=owner,
    )
    target = save_to or (chain.workdir / DEPLOYMENT_FILE if chain.workdir else None)
    if target is not None:
        dep.save(target)
    return dep


def load_deployment(chain: Chain, path: Path | None = None) -> Deployment:
    """The deployment saved beside the embedded chain (or at ``path``); checks the chain id."""
    target = path or (chain.workdir / DEPLOYMENT_FILE if chain.workdir else None)
    if target is None or not target.is_file():
        raise InputRejected("no deployment.json found: deploy first (deploy_all)")
    dep = Deployment.load(target)
    if dep.chain_id != chain.chain_id:
        raise InputRejected(f"deployment is for chain {dep.chain_id}, connected to {chain.chain_id}")
    return dep


# ---------------------------------------------------------------- operators


def _scheme_id(scheme: str) -> int:
    try:
        return SCHEMES[scheme]
    except KeyError:
        raise InputRejected(f"scheme must be one of {sorted(SCHEMES)}, got {scheme!r}") from None


def create_operator_set(chain: Chain, dep: Deployment, scheme: str) -> int:
    """Creates an empty operator set for ``scheme`` ("bn254" or "bls12381"); returns its id."""
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    chain.transact(registry.functions.createOperatorSet(_scheme_id(scheme)))
    return int(chain.call(registry.functions.setCount()))


def register_operator(
    chain: Chain,
    dep: Deployment,
    set_id: int,
    operator: str,
    weight: int,
    pubkey: bytes,
    pop: bytes,
    pubkey_g2: bytes = b"",
) -> Receipt:
    """Adds an operator with its BLS key and proof of possession (owner only).

    bn254: ``pubkey`` = ``sk_to_pk_g1`` (64 bytes), ``pubkey_g2`` = ``sk_to_pk`` (128 bytes),
    ``pop`` = ``pop_prove`` (64 bytes). bls12381: ``pubkey`` = ``pk_to_evm`` (128 bytes),
    ``pop`` = ``signature_to_evm(pop_prove(sk))`` (256 bytes), no ``pubkey_g2``.
    """
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    return chain.transact(
        registry.functions.registerOperator(set_id, _checksum(operator), weight, pubkey, pubkey_g2, pop)
    )


def set_operator_weight(chain: Chain, dep: Deployment, set_id: int, operator: str, weight: int) -> Receipt:
    """Changes an operator's weight, effective after the activation delay (owner only)."""
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    return chain.transact(registry.functions.setOperatorWeight(set_id, _checksum(operator), weight))


def remove_operator(chain: Chain, dep: Deployment, set_id: int, operator: str) -> Receipt:
    """Removes an operator, effective after the activation delay (owner only)."""
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    return chain.transact(registry.functions.removeOperator(set_id, _checksum(operator)))


def rotate_operator_key(
    chain: Chain, dep: Deployment, set_id: int, operator: str, pubkey: bytes, pop: bytes, pubkey_g2: bytes = b""
) -> Receipt:
    """Replaces ``operator``'s key (sent by the operator itself), keeping slot and weight."""
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    return chain.transact(registry.functions.rotateKey(set_id, pubkey, pubkey_g2, pop), sender=_checksum(operator))


def operator_slot(chain: Chain, dep: Deployment, set_id: int, operator: str) -> int:
    """The slot (signer-bitmap bit) of an active operator; ``ValueError`` if it has none."""
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    active, slot = chain.call(registry.functions.operators(set_id, _checksum(operator)))
    if not active:
        raise InputRejected(f"{operator} is not an operator of set {set_id}")
    return int(slot)


def operator_set_at(chain: Chain, dep: Deployment, set_id: int, timestamp: int) -> tuple[int, int, int]:
    """The set in force at ``timestamp``: (members bitmap, operator count, total weight)."""
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    members, count, total, _ = chain.call(registry.functions.setAt(set_id, timestamp))
    return int(members), int(count), int(total)


@dataclass(frozen=True, slots=True)
class SetOperator:
    """One operator of a set as the registry holds it at some time."""

    slot: int  # the bit of the EpochVerifier's signer bitmap
    operator: str
    weight: int
    pubkey: bytes  # the G1 key the registry stores: 64 bytes (bn254) or 128 bytes EIP-2537 (bls12381)


def operator_set_scheme(chain: Chain, dep: Deployment, set_id: int) -> str:
    """The scheme of set ``set_id`` ("bn254" or "bls12381"); ``ValueError`` if there is no such set."""
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    scheme_id = int(chain.call(registry.functions.schemeOf(set_id)))
    names = {number: name for name, number in SCHEMES.items()}
    if scheme_id not in names:
        raise InputRejected(f"the OperatorRegistry at {dep.operator_registry} has no operator set {set_id}")
    return names[scheme_id]


def operator_set_members(chain: Chain, dep: Deployment, set_id: int, timestamp: int) -> list[SetOperator]:
    """The operators of ``set_id`` in force at ``timestamp``, by slot: keys, weights and order
    exactly as ``EpochVerifier`` checks a signer bitmap against them.

    ``ValueError`` when the set has no operator in force at ``timestamp``.
    """
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    try:
        members, _, _, _ = chain.call(registry.functions.setAt(set_id, timestamp))
    except ContractRevert as revert:
        raise InputRejected(f"operator set {set_id} has no operators in force at {timestamp} ({revert})") from None
    out = []
    for slot in range(int(members).bit_length()):
        if int(members) >> slot & 1:
            operator, weight, pubkey = chain.call(registry.functions.slotAt(set_id, slot, timestamp))
            out.append(SetOperator(slot, str(operator), int(weight), bytes(pubkey)))
    if not out:
        raise InputRejected(f"operator set {set_id} has no operators in force at {timestamp}")
    return out


def operator_set_pending_until(chain: Chain, dep: Deployment, set_id: int) -> int:
    """When the set's latest scheduled change takes effect (0 for a set nobody registered in yet)."""
    registry = contract(chain, "OperatorRegistry", dep.operator_registry)
    try:
        _, _, _, effective_from = chain.call(registry.functions.setAt(set_id, 2**64 - 1))
    except ContractRevert:
        return 0
    return int(effective_from)


# ---------------------------------------------------------------- jobs and epochs


def job_operator_set(chain: Chain, dep: Deployment, job_id: bytes) -> int | None:
    """The operator set that verifies ``job_id``, or ``None`` if the job does not exist."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    owner, set_id, *_ = chain.call(verifier.functions.jobs(parse_bytes32(job_id)))
    if int(owner, 16) == 0:
        return None
    return int(set_id)


def reference_time(chain: Chain, dep: Deployment, job_id: bytes, epoch: int) -> int:
    """The timestamp whose operator set verifies ``epoch`` of ``job_id`` (the job must exist)."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    return int(chain.call(verifier.functions.referenceTime(parse_bytes32(job_id), epoch)))


def create_job(
    chain: Chain,
    dep: Deployment,
    job_id: bytes,
    set_id: int,
    *,
    quorum_bps: int = 6667,
    quorum: tuple[int, int] | None = None,
    genesis: int = 0,
    epoch_seconds: int = 60,
    token: str | None = None,
) -> Receipt:
    """Creates a job verified by ``set_id`` and sets its reward token (``token``, else the
    deployment's RewardToken).

    The quorum is the exact fraction ``quorum`` = (numerator, denominator) of the set's
    weight, e.g. ``(2, 3)``; without it, ``quorum_bps`` / 10000. Epoch ``e`` starts at
    ``genesis + e * epoch_seconds``; epochs that started before the job use the set at creation.
    """
    parse_bytes32(job_id)
    numerator, denominator = quorum if quorum is not None else (quorum_bps, 10_000)
    if not 0 < check_uint(numerator, 16, "quorum numerator") <= check_uint(denominator, 16, "quorum denominator"):
        raise InputRejected(f"quorum must be a fraction in (0, 1] with terms below 65536, got {numerator}/{denominator}")
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    receipt = chain.transact(
        verifier.functions.createJob(job_id, set_id, numerator, denominator, genesis, epoch_seconds)
    )
    reward_token = token or dep.reward_token
    if reward_token:
        distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
        chain.transact(distributor.functions.setRewardToken(job_id, _checksum(reward_token)))
    return receipt


def submit_epoch(
    chain: Chain,
    dep: Deployment,
    result: EpochResult,
    signer_bitmap: int,
    signature: bytes,
    apk_g2: bytes = b"",
) -> Receipt:
    """Submits one epoch's result with the aggregated signature of the operators in
    ``signer_bitmap`` (bn254: 64-byte G1 signature and the signers' 128-byte G2 key;
    bls12381: 256-byte EIP-2537 G2 signature, no ``apk_g2``)."""
    check_uint(signer_bitmap, name="signer_bitmap")
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    return chain.transact(
        verifier.functions.submitEpoch(
            result.job_id,
            result.epoch,
            result.data_root,
            result.reward_root,
            result.batch_cid,
            signer_bitmap,
            signature,
            apk_g2,
        )
    )


def epoch_digest(chain: Chain, dep: Deployment, result: EpochResult) -> bytes:
    """The digest the contract expects the committee to sign (equals ``epoch_result_digest``)."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    digest = chain.call(
        verifier.functions.epochDigest(
            result.job_id, result.epoch, result.data_root, result.reward_root, keccak256(result.batch_cid)
        )
    )
    return bytes(digest)


def epoch_info(
    chain: Chain, dep: Deployment, job_id: bytes, epoch: int, *, from_block: int = 0
) -> EpochInfo | None:
    """The verified epoch (with its CID from the event log), or ``None`` if not verified.

    ``from_block`` bounds the log search (nodes limit log ranges; the deployment block is
    a good start on a long chain).
    """
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    verified, data_root, reward_root, cid_hash = chain.call(verifier.functions.epochResult(job_id, epoch))
    if not verified:
        return None
    logs = verifier.events.EpochVerified.get_logs(
        from_block=from_block, argument_filters={"jobId": job_id, "epoch": epoch}
    )
    event = logs[-1] if logs else None
    args = event["args"] if event else {}
    return EpochInfo(
        job_id=bytes(job_id),
        epoch=epoch,
        data_root=bytes(data_root),
        reward_root=bytes(reward_root),
        batch_cid_hash=bytes(cid_hash),
        batch_cid=bytes(args["batchCid"]) if event else None,
        signer_bitmap=int(args["signerBitmap"]) if event else None,
        signed_weight=int(args["signedWeight"]) if event else None,
        total_weight=int(args["totalWeight"]) if event else None,
        tx_hash="0x" + bytes(event["transactionHash"]).hex() if event else None,
    )


def verify_reading(
    chain: Chain, dep: Deployment, job_id: bytes, epoch: int, leaf: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether the StandardMerkleTree ``leaf`` hash is in the verified data root of the epoch."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    return bool(chain.call(verifier.functions.verifyReading(job_id, epoch, leaf, list(proof))))


def verify_reading_data(
    chain: Chain, dep: Deployment, job_id: bytes, epoch: int, encoded_leaf: bytes, proof: Sequence[bytes]
) -> bool:
    """Like ``verify_reading`` from the ABI-encoded leaf values (hashed on chain)."""
    verifier = contract(chain, "EpochVerifier", dep.epoch_verifier)
    return bool(chain.call(verifier.functions.verifyReadingData(job_id, epoch, encoded_leaf, list(proof))))


# ---------------------------------------------------------------- rewards


def mint_reward_token(chain: Chain, dep: Deployment, to: str, amount: int) -> Receipt:
    """Mints the deployment's RewardToken (deployer only)."""
    if dep.reward_token is None:
        raise InputRejected("the deployment has no RewardToken")
    check_uint(amount, name="amount")
    token = contract(chain, "RewardToken", dep.reward_token)
    return chain.transact(token.functions.mint(_checksum(to), amount))


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
    chain.transact(erc20.functions.approve(_checksum(dep.reward_distributor), amount))
    distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
    return chain.transact(distributor.functions.fund(job_id, amount))


def claim(
    chain: Chain,
    dep: Deployment,
    job_id: bytes,
    epoch: int,
    account: str,
    cumulative_amount: int,
    proof: Sequence[bytes],
    *,
    sender: str | None = None,
) -> Receipt:
    """Claims ``account``'s cumulative reward up to ``epoch`` (pays the unclaimed difference)."""
    check_uint(epoch, 64, "epoch")
    check_uint(cumulative_amount, name="cumulative_amount")
    distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
    return chain.transact(
        distributor.functions.claim(job_id, epoch, _checksum(account), cumulative_amount, list(proof)),
        sender=sender,
    )


def claimed(chain: Chain, dep: Deployment, job_id: bytes, account: str) -> int:
    """The cumulative amount already paid to ``account`` for ``job_id``."""
    distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
    return int(chain.call(distributor.functions.claimed(job_id, _checksum(account))))


def pool_balance(chain: Chain, dep: Deployment, job_id: bytes) -> int:
    """Funded and not yet claimed rewards of ``job_id``."""
    distributor = contract(chain, "RewardDistributor", dep.reward_distributor)
    _, balance = chain.call(distributor.functions.pools(job_id))
    return int(balance)


def token_balance(chain: Chain, dep: Deployment, account: str, token: str | None = None) -> int:
    """ERC-20 balance of ``account`` (the deployment's RewardToken unless ``token``)."""
    address = token or dep.reward_token
    if address is None:
        raise InputRejected("no token address")
    return int(chain.call(contract(chain, "RewardToken", address).functions.balanceOf(_checksum(account))))


# ---------------------------------------------------------------- devices


def _device_scheme(scheme: str) -> int:
    try:
        return DEVICE_SCHEMES[scheme]
    except KeyError:
        raise InputRejected(f"device scheme must be one of {sorted(DEVICE_SCHEMES)}, got {scheme!r}") from None


def register_device(
    chain: Chain, dep: Deployment, device: str, owner: str, scheme: str = "secp256k1", public_key: bytes = b""
) -> Receipt:
    """Registers a device id with its beneficiary and key (registry owner only)."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return chain.transact(
        registry.functions.registerDevice(_checksum(device), _checksum(owner), _device_scheme(scheme), public_key)
    )


def rotate_device_key(
    chain: Chain, dep: Deployment, device: str, scheme: str, public_key: bytes, *, sender: str | None = None
) -> Receipt:
    """Replaces a device's key, keeping its id (device owner or registry owner)."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return chain.transact(
        registry.functions.rotateKey(_checksum(device), _device_scheme(scheme), public_key), sender=sender
    )


def revoke_device(
    chain: Chain, dep: Deployment, device: str, revoked_from_ms: int, *, sender: str | None = None
) -> Receipt:
    """Revokes a device for readings stamped at or after ``revoked_from_ms``."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return chain.transact(registry.functions.revokeDevice(_checksum(device), revoked_from_ms), sender=sender)


def set_device_owner(
    chain: Chain, dep: Deployment, device: str, owner: str, *, sender: str | None = None
) -> Receipt:
    """Changes a device's beneficiary."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return chain.transact(registry.functions.setDeviceOwner(_checksum(device), _checksum(owner)), sender=sender)


def device_info(chain: Chain, dep: Deployment, device: str) -> DeviceInfo:
    """A device's record; ``ContractRevert("UnknownDevice")`` when it is not registered."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    owner, scheme, version, revoked, signer, key = chain.call(registry.functions.deviceOf(_checksum(device)))
    names = {v: k for k, v in DEVICE_SCHEMES.items()}
    return DeviceInfo(
        device=_checksum(device),
        owner=str(owner),
        scheme=names.get(int(scheme), str(scheme)),
        key_version=int(version),
        revoked_from=int(revoked),
        signer=str(signer),
        public_key=bytes(key),
    )


@dataclass(frozen=True, slots=True)
class DeviceChange:
    """One DeviceRegistry event, for a pipeline following the registry."""

    kind: str  # DeviceRegistered | DeviceKeyRotated | DeviceOwnerChanged | DeviceRevoked
    device: str
    block_number: int
    log_index: int
    args: dict[str, Any]


DEVICE_EVENTS = ("DeviceRegistered", "DeviceKeyRotated", "DeviceOwnerChanged", "DeviceRevoked")


def device_changes(
    chain: Chain, dep: Deployment, *, from_block: int = 0, to_block: int | str = "latest"
) -> list[DeviceChange]:
    """Every DeviceRegistry event in the block range, in chain order."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    changes: list[DeviceChange] = []
    for kind in DEVICE_EVENTS:
        for log in getattr(registry.events, kind).get_logs(from_block=from_block, to_block=to_block):
            args = {
                k: (bytes(v) if isinstance(v, bytes | bytearray) else v) for k, v in dict(log["args"]).items()
            }
            changes.append(
                DeviceChange(kind, str(args["device"]), int(log["blockNumber"]), int(log["logIndex"]), args)
            )
    changes.sort(key=lambda c: (c.block_number, c.log_index))
    return changes


def reading_digest(
    chain: Chain, dep: Deployment, device: str, seq: int, timestamp: int, payload_hash: bytes
) -> bytes:
    """The EIP-712 reading digest as the DeviceRegistry computes it."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return bytes(chain.call(registry.functions.readingDigest(_checksum(device), seq, timestamp, payload_hash)))


def check_reading_signature(
    chain: Chain,
    dep: Deployment,
    device: str,
    seq: int,
    timestamp: int,
    payload_hash: bytes,
    signature: bytes,
) -> bool:
    """Whether the registry accepts a secp256k1 reading signature (key, status, low s)."""
    registry = contract(chain, "DeviceRegistry", dep.device_registry)
    return bool(
        chain.call(
            registry.functions.verifyReadingSignature(_checksum(device), seq, timestamp, payload_hash, signature)
        )
    )

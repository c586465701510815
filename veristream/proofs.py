"""Merkle proofs of one verified epoch, made on demand from its tree dumps (``veristream proof``).

The chain says which manifest an epoch committed to (its CID hash, and the CID in the
``EpochVerified`` event); the manifest links the ``standard-v1`` dumps of the epoch's data,
aggregates and reward trees on IPFS. A proof is made from the dump after checking that the
dump's root is the root the chain holds, so what is printed is what the contracts accept:

- ``reading``: a data leaf ``[device, seq, timestamp, payloadHash]`` for
  ``EpochVerifier.verifyReadingData(jobId, epoch, encodedLeaf, proof)``;
- ``aggregate``: an aggregates leaf ``[device, field, count, min, max, sum, percents,
  quantiles]`` for ``EpochVerifier.verifyAggregate(jobId, epoch, encodedLeaf, proof)``;
- ``reward``: a reward leaf ``[account, cumulativeAmount]`` for ``RewardDistributor.claim(jobId,
  account, cumulativeAmount, proof)``, which pays against the job's highest verified (claimable)
  epoch only: that epoch is the default, and a proof of another epoch says it cannot be claimed.
"""

from __future__ import annotations

import json
from typing import Any

from veristream.connectors.ipfs.cid import cid_to_bytes, format_cid
from veristream.contracts import claimable_root
from veristream.contracts.epoch_verifier import EpochInfo
from veristream.inspect import ChainView, chain_view, checkpoints, read_store
from veristream.pipeline.commitments import (
    AGGREGATE_LEAF_ENCODING,
    DATA_LEAF_ENCODING,
    REWARD_LEAF_ENCODING,
)
from veristream.pipeline.jobspec import JobSpec
from veristream.pipeline.manifest import Manifest, manifest_from_json
from veristream.pipeline.registry import device_address
from veristream.provers.encoding import (
    AbiType,
    abi_encode,
    keccak256,
    parse_abi_type,
    parse_address,
)
from veristream.provers.errors import InputRejected, Mismatch, NotFound
from veristream.provers.merkle import StandardMerkleTree

PROOF_KINDS = ("reading", "aggregate", "reward")
_ENCODING = {"reading": DATA_LEAF_ENCODING, "aggregate": AGGREGATE_LEAF_ENCODING, "reward": REWARD_LEAF_ENCODING}
_TREE = {"reading": "data", "aggregate": "aggregates", "reward": "rewards"}
# how a contract takes each proof
CONTRACT_CALL = {
    "reading": "EpochVerifier.verifyReadingData(jobId, epoch, encodedLeaf, proof)",
    "aggregate": "EpochVerifier.verifyAggregate(jobId, epoch, encodedLeaf, proof)",
    "reward": "RewardDistributor.claim(jobId, account, cumulativeAmount, proof)",
}


def _typed(abi_type: AbiType, value: Any) -> Any:
    """A dump's leaf value (integers as decimal strings) with its integers as ints."""
    if abi_type.kind in ("uint", "int"):
        return int(value)
    if abi_type.kind == "array":
        return [_typed(abi_type.items[0], item) for item in value]
    return value


def _epoch_manifest(view: ChainView, job: JobSpec, epoch: int) -> tuple[str, Manifest, EpochInfo]:
    """The manifest the chain verified for ``epoch`` (its CID, the manifest, the chain's record);
    ``NotFound`` when the epoch is not verified, ``Mismatch`` when the manifest is not the chain's."""
    info = view.epoch(epoch)
    if info is None:
        raise NotFound(
            f"epoch {epoch} of job {job.job_id!r} is not verified on chain: proofs are of verified epochs "
            "(see `veristream epochs JOB`)"
        )
    store = read_store(job)
    if info.manifest_cid is not None:
        manifest_cid = format_cid(info.manifest_cid)
    else:
        # the event is beyond the node's log range: the work directory's checkpoint names it
        local = checkpoints(job).get(epoch)
        if local is None:
            raise NotFound(f"no EpochVerified event found for epoch {epoch}, and it was never computed here")
        manifest_cid = local.manifest_cid
    if keccak256(cid_to_bytes(manifest_cid)) != info.manifest_cid_hash:
        raise Mismatch(f"manifest {manifest_cid} is not the manifest the chain verified for epoch {epoch}")
    return manifest_cid, manifest_from_json(store.get(manifest_cid)), info


def _find(kind: str, tree: StandardMerkleTree, selector: dict[str, Any]) -> int:
    """The index of the selected leaf in a loaded tree; ``NotFound`` when it is not there."""
    if kind == "reward":
        key: tuple[Any, ...] = ("0x" + parse_address(selector["account"]).hex(),)
        what = f"account {key[0]} in the reward tree (it earned nothing up to this epoch)"
    elif kind == "reading":
        key = ("0x" + device_address(selector["device"]).hex(), str(selector["seq"]))
        what = f"reading seq {selector['seq']} of device {selector['device']} among the epoch's accepted readings"
    else:
        key = ("0x" + device_address(selector["device"]).hex(), selector["field"])
        what = f"aggregate of field {selector['field']!r} of device {selector['device']} in the epoch"
    # a dump's addresses are lower-case hex and its integers decimal strings (commitments.dump_json)
    for index, value in tree.entries():
        if tuple(value[: len(key)]) == key:
            return index
    raise NotFound(f"no {what}")


def epoch_proof(job: JobSpec, kind: str, epoch: int | None, **selector: Any) -> dict[str, Any]:
    """The proof of one leaf of a verified epoch's tree, checked against the chain's root.

    ``kind`` is ``reading`` (``device``, ``seq``), ``aggregate`` (``device``, ``field``) or
    ``reward`` (``account``; ``epoch`` None: the claimable epoch). ``leaf`` holds the leaf's
    values (integers as ints), ``encoded_leaf`` its ABI encoding (what ``verifyReadingData``
    and ``verifyAggregate`` take), ``proof`` the sibling hashes.
    """
    if kind not in PROOF_KINDS:
        raise InputRejected(f"a proof is of a {', '.join(PROOF_KINDS)}, not {kind!r}")
    if epoch is None and kind != "reward":
        raise InputRejected(f"a {kind} proof needs --epoch")
    encoding = _ENCODING[kind]
    with chain_view(job) as view:
        # CLAIMABLE EPOCH (rewards are paid against it alone)
        claimable = claimable_root(view.chain, view.deployment, view.job_hash) if kind == "reward" else None
        if epoch is None:
            if claimable is None:
                raise NotFound(f"job {job.job_id!r} has no claimable epoch yet: no epoch is verified on chain")
            epoch = claimable[0]
        # MANIFEST AND DUMP, AGAINST THE CHAIN
        manifest_cid, manifest, info = _epoch_manifest(view, job, epoch)
        chain_root = {"reading": info.data_root, "aggregate": info.aggregates_root, "reward": info.reward_root}[kind]
        job_hash = view.job_hash
    tree_cid = getattr(manifest.trees, _TREE[kind])
    if tree_cid is None:
        raise NotFound(f"epoch {epoch} of job {job.job_id!r} has an empty {_TREE[kind]} tree: nothing to prove")
    try:
        tree = StandardMerkleTree.load(json.loads(read_store(job).get(tree_cid)))
    except (ValueError, UnicodeDecodeError) as error:
        raise Mismatch(f"the {_TREE[kind]} tree dump {tree_cid} of epoch {epoch} does not load: {error}") from None
    if list(tree.leaf_encoding) != encoding:
        raise Mismatch(f"the {_TREE[kind]} tree dump {tree_cid} encodes leaves as {tree.leaf_encoding}, not {encoding}")
    if tree.root_bytes != chain_root:
        raise Mismatch(
            f"the {_TREE[kind]} tree dump {tree_cid} has root {tree.root}, the chain holds 0x{chain_root.hex()}"
        )
    # THE LEAF AND ITS PROOF
    index = _find(kind, tree, selector)
    types = [parse_abi_type(t) for t in encoding]
    leaf = [_typed(t, v) for t, v in zip(types, tree.at(index), strict=True)]
    out: dict[str, Any] = {
        "kind": kind,
        "job_id": "0x" + job_hash.hex(),
        "epoch": epoch,
        "root": tree.root,
        "leaf": leaf,
        "leaf_encoding": list(encoding),
        "encoded_leaf": "0x" + abi_encode(types, leaf).hex(),
        "leaf_hash": tree.leaf_hash(leaf),
        "proof": tree.get_proof(index),
        "manifest_cid": manifest_cid,
        "tree_cid": tree_cid,
        "contract_call": CONTRACT_CALL[kind],
    }
    if kind == "reward":
        out["claimable_epoch"] = claimable[0] if claimable else None
        out["claimable"] = claimable is not None and claimable[0] == epoch
    return out


def proof_lines(proof: dict[str, Any]) -> list[str]:
    """A proof for people: what it proves, the leaf, the proof and how a contract takes it."""
    kind, epoch = proof["kind"], proof["epoch"]
    lines = [
        f"{kind} proof, epoch {epoch} (verified on chain), job {proof['job_id']}",
        f"root           {proof['root']}",
        f"leaf           {json.dumps(proof['leaf'])}",
        f"leaf encoding  {','.join(proof['leaf_encoding'])}",
        f"encoded leaf   {proof['encoded_leaf']}",
        f"proof          {proof['proof'][0] if proof['proof'] else '[] (the only leaf)'}",
        *(f"               {node}" for node in proof["proof"][1:]),
        f"contract       {proof['contract_call']}",
    ]
    if kind == "reward":
        if proof["claimable"]:
            lines.append(f"claims pay against epoch {epoch}, the job's highest verified epoch: this proof claims")
        else:
            lines.append(
                f"claims pay against the job's highest verified epoch ({proof['claimable_epoch']}), not "
                f"epoch {epoch}: claim with a proof of epoch {proof['claimable_epoch']}"
            )
    return lines

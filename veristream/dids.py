"""``veristream did resolve``: a device's DID document, resolved from the chain.

A device's DID is ``did:ethr:0x<chain id>:<device address>`` (``veristream device show``
prints it); its document is folded from the DeviceRegistry's ERC-1056 events
(``veristream.provers.did_ethr``), read from the job's chain (``--job``: its RPC node or
embedded chain and its ``devices.address``) or from any chain and registry named on the
command line. ``--at`` resolves the document as of a past time: the events of the blocks up
to the last one stamped at or before it, with keys valid at that time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from veristream.chain import connect_job_chain, connect_target
from veristream.contracts.chain import URL_SCHEMES, Chain, ChainConfig, connect
from veristream.contracts.device_registry import did_events, registry_deployment
from veristream.pipeline.jobspec import JobSpec
from veristream.provers.did_ethr import (
    DidResolution,
    did_document,
    multikey_bytes,
    parse_did,
)
from veristream.provers.errors import InputRejected, NotFound

CONTENT_TYPE = "application/did+ld+json"
_CODEC_NAMES = {0xE7: "secp256k1", 0xED: "ed25519", 0x1200: "p256", 0xEC: "x25519"}


@dataclass(frozen=True, slots=True)
class ChainTarget:
    """Where to resolve: a job (its chain and ``devices.address``), or a chain (a JSON-RPC url or
    an embedded chain's directory) and the DeviceRegistry's address on it."""

    job: JobSpec | None = None
    chain: str | None = None
    registry: str | None = None


def parse_time(text: str) -> int:
    """``--at``: milliseconds since the epoch, or an ISO 8601 time with its zone
    (``2026-12-05T13:00:00Z``); ``InputRejected`` otherwise."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InputRejected(f"--at must be milliseconds since 1970 or an ISO 8601 time, got {text!r}") from None
    if moment.tzinfo is None:
        raise InputRejected(f"--at {text!r} has no time zone: add Z or an offset")
    return int(moment.timestamp() * 1000)


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _block_time(chain: Chain, block: int) -> int:
    return int(chain.w3.eth.get_block(block)["timestamp"])


def block_at(chain: Chain, seconds: int) -> int:
    """The last block stamped at or before ``seconds`` (-1 when even the first is later)."""
    low, high = 0, int(chain.w3.eth.block_number)
    if _block_time(chain, low) > seconds:
        return -1
    while low < high:
        middle = (low + high + 1) // 2
        if _block_time(chain, middle) <= seconds:
            low = middle
        else:
            high = middle - 1
    return low


def _open(target: ChainTarget) -> tuple[Chain, str]:
    """The chain and the registry address of ``target``."""
    if target.job is not None:
        if target.job.devices.address is None:
            raise InputRejected(
                f"job {target.job.job_id!r} reads its devices from a file (devices.file): device DIDs "
                "live in the DeviceRegistry a job names by devices.address"
            )
        return connect_job_chain(target.job, read_only=True), target.job.devices.address
    if target.chain is None or target.registry is None:
        raise InputRejected("name the registry: --job JOB, or --chain (a JSON-RPC url or chain directory) and --registry")
    if target.chain.startswith(URL_SCHEMES):
        return connect_target(target.chain), target.registry
    # an embedded chain is only read: its saved state, nothing written or locked
    return connect(ChainConfig(workdir=Path(target.chain), read_only=True)), target.registry


def resolve(did_text: str, target: ChainTarget, at_ms: int | None = None) -> dict[str, Any]:
    """The DID resolution result of a device's DID (``didDocument``, ``didDocumentMetadata``,
    ``didResolutionMetadata``) as of now, or as of ``at_ms``; ``NotFound`` when the DID names
    another chain or no device of the registry (then)."""
    # CHECKS
    did = parse_did(did_text)
    chain, registry = _open(target)
    try:
        dep = registry_deployment(chain, registry)
        if did.chain_id != int(chain.chain_id):
            raise NotFound(
                f"{did.text} names chain {did.chain_id}; the DeviceRegistry {dep.device_registry} is on "
                f"chain {chain.chain_id}"
            )
        # RESOLVE as of a block and a time: the head and now, or the last block at --at
        if at_ms is None:
            # now is never before the latest block: a chain whose clock runs ahead of this machine's
            # (a development chain advancing time per block) has already ended the keys rotated before it
            block = int(chain.w3.eth.block_number)
            now = max(int(time.time()), _block_time(chain, block))
        else:
            now = at_ms // 1000
            block = block_at(chain, now)
        events = did_events(chain, dep, did.address_hex)
        resolution = did_document(did, events, block=block, now=now)
        if resolution.version_id == 0:
            when = "" if at_ms is None else f" at {_iso(now)}"
            raise NotFound(f"{did.text} is not a device of the DeviceRegistry {dep.device_registry}{when}")
        metadata = _metadata(chain, resolution)
    finally:
        chain.close()
    return {
        "didDocument": resolution.document,
        "didDocumentMetadata": metadata,
        "didResolutionMetadata": {"contentType": CONTENT_TYPE, "registry": dep.device_registry, "block": block},
    }


def _metadata(chain: Chain, resolution: DidResolution) -> dict[str, Any]:
    """The document's versions, named by block as did:ethr resolvers name them."""
    metadata: dict[str, Any] = {}
    if resolution.deactivated:
        metadata["deactivated"] = True
    metadata["versionId"] = str(resolution.version_id)
    metadata["updated"] = _iso(_block_time(chain, resolution.version_id))
    if resolution.next_version_id is not None:
        metadata["nextVersionId"] = str(resolution.next_version_id)
        metadata["nextUpdate"] = _iso(_block_time(chain, resolution.next_version_id))
    return metadata


def render_resolution(result: dict[str, Any]) -> str:
    """A resolution result as lines for a terminal."""
    document, metadata = result["didDocument"], result["didDocumentMetadata"]
    lines = [f"did          {document['id']}"]
    lines.append(f"version      block {metadata['versionId']} ({metadata['updated']})")
    if "nextVersionId" in metadata:
        lines.append(f"next         block {metadata['nextVersionId']} ({metadata['nextUpdate']})")
    if metadata.get("deactivated"):
        lines.append("deactivated  yes")
    methods = {m["id"]: m for m in document.get("verificationMethod", [])}
    for relationship in ("assertionMethod", "authentication", "keyAgreement"):
        refs = document.get(relationship, [])
        if refs:
            lines.append(relationship)
        for ref in refs:
            lines.append("  " + _method_line(methods[ref]))
    if not methods:
        lines.append("no key is valid at this time")
    for service in document.get("service", []):
        lines.append(f"service      {service['type']} {service['serviceEndpoint']}")
    return "\n".join(lines)


def _method_line(method: dict[str, Any]) -> str:
    fragment = method["id"].rpartition("#")[2]
    if method["type"] == "Multikey":
        codec, _ = multikey_bytes(method)
        described = f"Multikey {_CODEC_NAMES.get(codec, hex(codec))} {method['publicKeyMultibase']}"
    else:
        described = f"{method['type']} {method.get('blockchainAccountId', '')}"
    expires = f" expires {method['expires']}" if "expires" in method else ""
    return f"#{fragment:12} {described}{expires}"

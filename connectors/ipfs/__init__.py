"""IPFS storage with kubo's CIDs: an embedded on-disk store and a client for an IPFS RPC node.

Both backends implement :class:`BlockStore`; ``put`` returns the CID that
``ipfs add --cid-version=1`` gives the same bytes, and ``get`` re-hashes every
block it receives, refusing anything that does not match (``CidMismatch``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from veristream.connectors.ipfs.cid import CidMismatch, cid_to_bytes, normalize_cid
from veristream.connectors.ipfs.embedded import EmbeddedStore
from veristream.connectors.ipfs.rpc import NodeUnavailable, RpcError, RpcStore
from veristream.connectors.ipfs.store import BlockNotFound, BlockStore
from veristream.connectors.ipfs.unixfs import cid_of
from veristream.provers.errors import SpecError

__all__ = [
    "BlockNotFound",
    "BlockStore",
    "CidMismatch",
    "EmbeddedStore",
    "NodeUnavailable",
    "RpcError",
    "RpcStore",
    "StoreSettings",
    "cid_of",
    "cid_to_bytes",
    "normalize_cid",
    "open_store",
]


class StoreSettings(Protocol):
    """Where a job keeps its content: ``mode`` "embedded" (in the work directory) or "rpc" at ``url``."""

    @property
    def mode(self) -> str: ...

    @property
    def url(self) -> str | None: ...


# How long a job's RPC store waits out a node that is down or restarting before an
# epoch being stored fails (it is then retried by the next run, never skipped).
JOB_RETRY_FOR_S = 120.0


def open_store(
    settings: StoreSettings,
    work_dir: str | os.PathLike[str],
    *,
    retry_for_s: float = JOB_RETRY_FOR_S,
    read_only: bool = False,
) -> EmbeddedStore | RpcStore:
    """The store a job's IPFS settings name: the RPC node at ``settings.url`` (each call
    waiting up to ``retry_for_s`` for a node that is down), or the embedded store in
    ``work_dir/ipfs`` (``read_only``: an existing one, opened without writing)."""
    if settings.mode == "rpc":
        if not settings.url:
            raise SpecError("ipfs.url: an rpc store needs the node's API url")
        return RpcStore(settings.url, retry_for_s=retry_for_s)
    return EmbeddedStore(Path(work_dir) / "ipfs", read_only=read_only)

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
from veristream.connectors.ipfs.rpc import RpcError, RpcStore
from veristream.connectors.ipfs.store import BlockNotFound, BlockStore
from veristream.connectors.ipfs.unixfs import cid_of
from veristream.provers.errors import SpecError

__all__ = [
    "BlockNotFound",
    "BlockStore",
    "CidMismatch",
    "EmbeddedStore",
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


def open_store(settings: StoreSettings, work_dir: str | os.PathLike[str]) -> EmbeddedStore | RpcStore:
    """The store a job's IPFS settings name: the RPC node at ``settings.url``, or the embedded
    store in ``work_dir/ipfs``."""
    if settings.mode == "rpc":
        if not settings.url:
            raise SpecError("ipfs.url: an rpc store needs the node's API url")
        return RpcStore(settings.url)
    return EmbeddedStore(Path(work_dir) / "ipfs")

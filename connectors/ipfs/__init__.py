"""IPFS storage with kubo's CIDs: an embedded on-disk store and a client for an IPFS RPC node.

Both backends implement :class:`BlockStore`; ``put`` returns the CID that
``ipfs add --cid-version=1`` gives the same bytes, and ``get`` re-hashes every
block it receives, refusing anything that does not match (``CidMismatch``).
"""

from __future__ import annotations

import os

from veristream.connectors.ipfs.cid import CidMismatch, cid_to_bytes, normalize_cid
from veristream.connectors.ipfs.embedded import EmbeddedStore
from veristream.connectors.ipfs.rpc import RpcError, RpcStore
from veristream.connectors.ipfs.store import BlockNotFound, BlockStore
from veristream.connectors.ipfs.unixfs import cid_of

__all__ = [
    "BlockNotFound",
    "BlockStore",
    "CidMismatch",
    "EmbeddedStore",
    "RpcError",
    "RpcStore",
    "cid_of",
    "cid_to_bytes",
    "normalize_cid",
    "open_store",
]


def open_store(location: str | os.PathLike[str]) -> EmbeddedStore | RpcStore:
    """The store a job's configuration names: an ``http(s)://`` RPC API url, else an embedded store directory."""
    text = os.fspath(location)
    if not text:
        raise ValueError("IPFS store location is empty")
    if text.startswith(("http://", "https://")):
        return RpcStore(text)
    return EmbeddedStore(text)

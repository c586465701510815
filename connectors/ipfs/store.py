"""The interface every IPFS backend offers the pipeline."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from veristream.provers.errors import StoreError


class BlockNotFound(StoreError, LookupError):
    """The store does not hold (all of) the DAG under a CID."""


@runtime_checkable
class BlockStore(Protocol):
    """Content-addressed storage of whole files, addressed by kubo-compatible CIDs."""

    def put(self, data: bytes) -> str:
        """Store ``data`` as a UnixFS file; returns its CIDv1 (base32), as ``ipfs add --cid-version=1``."""
        ...

    def get(self, cid: str) -> bytes:
        """The file under ``cid``, every block re-hashed (``CidMismatch`` if one does not match)."""
        ...

    def pin(self, cid: str) -> None:
        """Keep the DAG under ``cid`` from garbage collection."""
        ...

    def has(self, cid: str) -> bool:
        """Whether the store holds the DAG under ``cid``."""
        ...

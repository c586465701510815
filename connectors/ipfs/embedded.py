"""EmbeddedStore: a content-addressed block store in a directory, with kubo's CIDs.

Layout under ``path``::

    blocks/<xx>/<multihash in base32>   one file per block (``xx``: next-to-last two characters)
    pins/<cid>                         one empty file per pinned root
    tmp/                               writes in progress

Blocks are keyed by multihash, as kubo's flatfs does, so a CIDv0 and a CIDv1 of
the same dag-pb block find the same file. Every file is written to ``tmp/``,
fsynced and renamed into place, so a crash leaves either the whole block or
none of it; the directory entries are fsynced once per ``put``.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from veristream.connectors.ipfs.car import iter_blocks, read_header, write_car
from veristream.connectors.ipfs.cid import (
    RAW,
    ParsedCid,
    format_cid,
    normalize_cid,
    parse_cid,
    verify_block,
)
from veristream.connectors.ipfs.store import BlockNotFound
from veristream.connectors.ipfs.unixfs import Block, iter_file_blocks, links_of, read_file
from veristream.provers.durable import write_atomically
from veristream.provers.errors import InputRejected, NotFound, StoreError


class EmbeddedStore:
    """A local on-disk IPFS block store giving the CIDs ``ipfs add --cid-version=1`` gives."""

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = True, read_only: bool = False) -> None:
        """Open (creating if needed) the store in directory ``path``.

        ``durable`` fsyncs each block before it becomes visible; turn it off
        only for scratch stores whose loss on a crash does not matter.
        ``read_only`` opens an existing store without creating or writing anything
        (``NotFound`` when there is none): what read commands use.
        """
        self.path = Path(path)
        self.durable = durable
        self.read_only = read_only
        self._blocks = self.path / "blocks"
        self._pins = self.path / "pins"
        self._tmp = self.path / "tmp"
        if read_only:
            if not self._blocks.is_dir():
                raise NotFound(f"no IPFS store in {self.path}: run the job first, or name the store (--store)")
        else:
            for folder in (self._blocks, self._pins, self._tmp):
                folder.mkdir(parents=True, exist_ok=True)
        self._shards: set[Path] = set()  # shard folders known to exist: saves a mkdir per block

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.path)!r})"

    # --- the BlockStore interface ------------------------------------------

    def put(self, data: bytes, *, pin: bool = True) -> str:
        """Store ``data`` as a UnixFS file and return its CIDv1 (base32); pinned unless ``pin=False``."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InputRejected(f"put needs bytes, got {type(data).__name__}")
        root = b""
        touched: set[Path] = set()
        for block in iter_file_blocks(bytes(data)):
            if self._write_block(block):
                touched.add(self._block_path(block.cid).parent)
            root = block.cid
        self._sync_dirs(touched)
        cid = format_cid(root)
        if pin:
            self._write_pin(cid)
        return cid

    def get(self, cid: str) -> bytes:
        """The file under ``cid``; every block is re-hashed (``CidMismatch`` if the disk was tampered with)."""
        return read_file(cid, self._read_block)

    def pin(self, cid: str) -> None:
        """Pin the DAG under ``cid``; ``BlockNotFound`` unless the store holds all of it."""
        if not self.has(cid):
            raise BlockNotFound(f"cannot pin {cid}: the store does not hold its whole DAG")
        self._write_pin(normalize_cid(cid))

    def has(self, cid: str) -> bool:
        """Whether every block of the DAG under ``cid`` is on disk."""
        pending = [parse_cid(cid)]
        while pending:
            node = pending.pop()
            path = self._block_path(node.binary)
            if not path.exists():
                return False
            if node.codec != RAW:
                block = path.read_bytes()
                pending.extend(parse_cid(child) for child in links_of(node.binary, block))
        return True

    # --- pins ---------------------------------------------------------------

    def pins(self) -> list[str]:
        """The pinned root CIDs, sorted."""
        return sorted(
            entry.name for entry in self._pins.iterdir() if not entry.name.startswith(".")
        )

    def unpin(self, cid: str) -> None:
        """Remove the pin on ``cid`` (no error if it was not pinned)."""
        with contextlib.suppress(FileNotFoundError):
            (self._pins / normalize_cid(cid)).unlink()

    # --- CAR ------------------------------------------------------------------

    def export_car(self, cid: str, out: str | os.PathLike[str] | BinaryIO) -> int:
        """Write the DAG under ``cid`` as a CARv1 (root first, depth-first, as ``ipfs dag export``); returns its size."""
        root = parse_cid(cid)
        if not self.has(cid):
            raise BlockNotFound(f"cannot export {cid}: the store does not hold its whole DAG")
        if isinstance(out, str | os.PathLike):
            sizes: list[int] = []
            write_atomically(
                Path(out),
                lambda handle: sizes.append(write_car([root.binary], self._walk(root), handle)),
                sync_directory=False,
            )
            return sizes[0]
        return write_car([root.binary], self._walk(root), out)

    def import_car(self, source: str | os.PathLike[str] | BinaryIO) -> list[str]:
        """Import a CARv1, verifying every block; pins and returns its roots (as ``ipfs dag import``).

        A root whose DAG the CAR does not complete raises ``BlockNotFound``
        (the blocks that did arrive stay stored, unpinned).
        """
        if isinstance(source, str | os.PathLike):
            with open(source, "rb") as stream:
                return self.import_car(stream)
        roots = read_header(source)
        touched: set[Path] = set()
        for block in iter_blocks(source):
            if self._write_block(block):
                touched.add(self._block_path(block.cid).parent)
        self._sync_dirs(touched)
        names = [format_cid(root) for root in roots]
        missing = [name for name in names if not self.has(name)]
        if missing:
            raise BlockNotFound(f"CAR does not hold the whole DAG of root(s) {', '.join(missing)}")
        for name in names:
            self._write_pin(name)
        return names

    # --- internals -----------------------------------------------------------

    def _walk(self, root: ParsedCid) -> Iterator[Block]:
        """Blocks of the DAG under ``root`` in depth-first pre-order, each once, verified."""
        seen: set[bytes] = set()
        stack = [root]
        while stack:
            node = stack.pop()
            if node.digest in seen:
                continue
            seen.add(node.digest)
            data = self._read_block(node.binary)
            verify_block(node, data)
            yield Block(node.binary, data)
            children = links_of(node.binary, data) if node.codec != RAW else []
            stack.extend(parse_cid(child) for child in reversed(children))

    def _block_path(self, cid: bytes) -> Path:
        parsed = parse_cid(cid)
        multihash = parsed.binary if parsed.version == 0 else _multihash_of(parsed)
        name = base64.b32encode(multihash).decode("ascii").rstrip("=").lower()
        return self._blocks / name[-3:-1] / name

    def _read_block(self, cid: bytes) -> bytes:
        try:
            return self._block_path(cid).read_bytes()
        except FileNotFoundError:
            raise BlockNotFound(f"block {format_cid(cid)} is not in {self.path}") from None

    def _write_block(self, block: Block) -> bool:
        """Store one block unless present; returns whether a file was written."""
        if self.read_only:
            raise StoreError(f"the IPFS store in {self.path} is open read-only")
        path = self._block_path(block.cid)
        try:
            # A block of the right size is the block (content addressing); a
            # wrong size can only be a file torn by a crash in non-durable mode.
            if path.stat().st_size == len(block.data):
                return False
        except FileNotFoundError:
            pass
        if path.parent not in self._shards:
            path.parent.mkdir(exist_ok=True)
            self._shards.add(path.parent)
        self._atomic_write(path, block.data)
        return True

    def _write_pin(self, cid: str) -> None:
        if self.read_only:
            raise StoreError(f"the IPFS store in {self.path} is open read-only")
        path = self._pins / cid
        if not path.exists():
            self._atomic_write(path, b"")
            self._sync_dirs({self._pins})

    def _atomic_write(self, path: Path, data: bytes) -> None:
        # directories are fsynced once per put (_sync_dirs)
        write_atomically(path, data, durable=self.durable, tmp_dir=self._tmp, sync_directory=False)

    def _sync_dirs(self, folders: set[Path]) -> None:
        """fsync directory entries so renamed blocks survive a power loss."""
        if not self.durable:
            return
        for folder in folders:
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _multihash_of(cid: ParsedCid) -> bytes:
    """The multihash inside a CIDv1's binary form (after version and codec varints)."""
    pos = 0
    for _ in range(2):
        while cid.binary[pos] & 0x80:
            pos += 1
        pos += 1
    return cid.binary[pos:]

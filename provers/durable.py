"""Files replaced whole: after a crash a reader finds the old bytes or the new, never a mix.

The one way VeriStream rewrites a file in place (checkpoints, the ingest log's
small state files, the embedded chain's state, blocks of the embedded IPFS
store, exported CARs): write a temporary file beside the target (or in
``tmp_dir`` on the same filesystem), fsync it, rename it over the target,
then fsync the directory so the rename itself survives a power loss.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

# mkstemp creates files 0600; a replaced file gets the mode a plain open() would give it
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


def fsync_directory(directory: Path) -> None:
    """Make a file's creation or rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(
    path: Path | str,
    data: bytes | Callable[[BinaryIO], object],
    *,
    durable: bool = True,
    tmp_dir: Path | None = None,
    sync_directory: bool = True,
) -> None:
    """Replace ``path`` with ``data`` (bytes, or a function writing to the open file) atomically.

    ``durable=False`` skips the fsyncs (the rename stays atomic, not crash-proof);
    ``sync_directory=False`` leaves the directory fsync to a caller batching renames.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir or target.parent, prefix=f".{target.name}.")
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable and sync_directory:
        fsync_directory(target.parent)

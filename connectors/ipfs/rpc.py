"""RpcStore: a client of the IPFS HTTP RPC API (``/api/v0``) that kubo serves.

Written on httpx rather than ``ipfshttpclient``, which has been unmaintained
since 2021 and refuses to talk to current kubo versions.

Retries: httpx's transport retries failed connects; on top, every call is
retried with exponential backoff (from ``backoff``, capped at ``max_backoff_s``)
on transport errors (a node that is down or restarting refuses or drops the
connection) and on 502/503/504, and on a 500 that is not an IPFS error reply
(kubo answers 500 with a JSON ``{"Message", "Type": "error"}`` for permanent
errors such as a malformed CID; those are raised at once). A call keeps trying
for ``retry_for_s`` seconds (and at least ``retries`` times), so an epoch being
stored waits out a node restart; after that it fails with ``NodeUnavailable``
naming the node, the time waited and the last error. All calls are idempotent
(content addressing), so a retried ``add`` is harmless.

Nothing the node returns is trusted: ``put`` checks the CID the node reports
against :func:`cid_of` of the same bytes, and ``get`` fetches the raw blocks
and re-hashes each before reassembling the file.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

import httpx

from veristream.connectors.ipfs.car import iter_blocks, read_header
from veristream.connectors.ipfs.cid import RAW, CidMismatch, format_cid, normalize_cid, parse_cid
from veristream.connectors.ipfs.store import BlockNotFound
from veristream.connectors.ipfs.unixfs import cid_of, links_of, read_file
from veristream.provers.durable import write_atomically
from veristream.provers.errors import InputRejected, StoreError

UPLOAD_PIECE = 1024 * 1024

# What `ipfs add --cid-version=1` does by default, spelled out so that a node
# with other defaults (or an older one) still lays the file out as we do.
ADD_PARAMS = {
    "cid-version": "1",
    "raw-leaves": "true",
    "chunker": "size-262144",
    "hash": "sha2-256",
    "trickle": "false",
    "cid-base": "base32",
    "progress": "false",
}


class RpcError(StoreError, RuntimeError):
    """The IPFS node answered with an error, or did not answer within the retries."""


class NodeUnavailable(RpcError):
    """The IPFS node did not answer (or answered 5xx) for the whole retry window."""


class RpcStore:
    """The BlockStore interface over an IPFS node's HTTP RPC API (kubo, or js-ipfs in tests)."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:5001",
        *,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.2,
        retry_for_s: float = 0.0,
        max_backoff_s: float = 2.0,
        probe_timeout: float = 2.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Connect to the node whose RPC API listens at ``url`` (without ``/api/v0``).

        ``timeout`` bounds every call (the node is told too, so a block it must
        look for answers "not found" instead of hanging); ``probe_timeout``
        bounds how long ``has`` lets the node look for a block it lacks.
        ``retry_for_s`` is how long a call waits for a node that is down or
        restarting (retrying at most every ``max_backoff_s``) before it fails
        with ``NodeUnavailable``; 0 leaves only the ``retries`` attempts.
        """
        if not url.startswith(("http://", "https://")):
            raise InputRejected(f"RPC url must be http(s)://host:port, got {url!r}")
        if retries < 0 or backoff < 0 or timeout <= 0 or probe_timeout <= 0:
            raise InputRejected("retries and backoff must be >= 0, timeouts > 0")
        if retry_for_s < 0 or max_backoff_s <= 0:
            raise InputRejected("retry_for_s must be >= 0 and max_backoff_s > 0")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.retry_for_s = retry_for_s
        self.max_backoff_s = max_backoff_s
        self.probe_timeout = probe_timeout
        self._client = httpx.Client(
            base_url=f"{self.url}/api/v0",
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport or httpx.HTTPTransport(retries=retries),
        )

    def __repr__(self) -> str:
        return f"RpcStore({self.url!r})"

    def __enter__(self) -> RpcStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    # --- the BlockStore interface ------------------------------------------

    def put(self, data: bytes, *, pin: bool = True) -> str:
        """Add ``data`` to the node (streamed) and return its CIDv1, checked against :func:`cid_of`."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InputRejected(f"put needs bytes, got {type(data).__name__}")
        payload = bytes(data)
        params = {**ADD_PARAMS, "pin": "true" if pin else "false"}
        reply = self._call("add", params, upload=lambda: _pieces(payload))
        added = _last_json_line(reply.content, "Hash")
        expected = cid_of(payload)
        got = normalize_cid(str(added["Hash"]))
        if got != expected:
            raise CidMismatch(
                f"node at {self.url} added the bytes as {got}, expected {expected}: "
                "it does not lay files out as kubo's defaults do"
            )
        return got

    def get(self, cid: str) -> bytes:
        """The file under ``cid``, rebuilt from raw blocks (``/block/get``), each re-hashed."""
        return read_file(cid, self._block_get)

    def pin(self, cid: str) -> None:
        """Pin the DAG under ``cid`` on the node (recursively)."""
        self._call("pin/add", {"arg": normalize_cid(cid), "recursive": "true"})

    def has(self, cid: str) -> bool:
        """Whether the node holds every block of the DAG under ``cid`` locally (it is not asked to fetch)."""
        pending = [parse_cid(cid).binary]
        while pending:
            binary = pending.pop()
            if not self._block_local(binary):
                return False
            if parse_cid(binary).codec != RAW:
                pending.extend(links_of(binary, self._block_get(binary)))
        return True

    # --- more of the API -----------------------------------------------------

    def cat(self, cid: str) -> bytes:
        """``/cat``: the node's own reassembly of the file, verified by recomputing ``cid_of``.

        Only for files added with kubo's default layout (as ``put`` adds them):
        other DAGs would not reproduce their CID; use ``get`` for those.
        """
        name = normalize_cid(cid)
        data = self._call("cat", {"arg": name}).content
        got = cid_of(data)
        if got != name:
            raise CidMismatch(f"/cat of {name} returned bytes whose CID is {got}")
        return data

    def version(self) -> dict[str, Any]:
        """The node's ``/version`` reply (``Version``, ``Commit``, ...)."""
        reply = self._call("version", {})
        try:
            answer = json.loads(reply.content)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or "Version" not in answer:
            raise RpcError(f"unexpected /version reply from {self.url}: {reply.text[:200]!r}")
        return answer

    def import_car(self, source: str | os.PathLike[str] | BinaryIO | bytes) -> list[str]:
        """``/dag/import`` a CARv1 (streamed); returns the roots the node reports, pinned."""
        upload: Callable[[], Iterable[bytes]]
        if isinstance(source, bytes):
            content = source
            upload = lambda: _pieces(content)  # noqa: E731
        elif isinstance(source, str | os.PathLike):
            path = os.fspath(source)
            upload = lambda: _file_pieces(path)  # noqa: E731
        else:
            content = source.read()
            upload = lambda: _pieces(content)  # noqa: E731
        reply = self._call("dag/import", {"pin-roots": "true"}, upload=upload, filename="batch.car")
        roots: list[str] = []
        for line in reply.content.splitlines():
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                raise RpcError(f"dag/import replied with non-JSON line {line[:200]!r}") from None
            root = entry.get("Root") if isinstance(entry, dict) else None
            if not isinstance(root, dict):
                continue
            if root.get("PinErrorMsg"):
                raise RpcError(f"dag/import could not pin {root.get('Cid')}: {root['PinErrorMsg']}")
            cid = root.get("Cid")
            roots.append(normalize_cid(cid["/"] if isinstance(cid, dict) else str(cid)))
        return roots

    def export_car(self, cid: str, out: str | os.PathLike[str] | BinaryIO) -> int:
        """``/dag/export`` the DAG under ``cid`` as a CARv1, every block verified before it is written.

        Returns the CAR's size. For a path, the file appears only once complete.
        """
        name = normalize_cid(cid)
        params = {"arg": name, "timeout": _duration(self.timeout * 0.9)}
        car = self._call("dag/export", params).content
        stream = io.BytesIO(car)
        roots = [format_cid(root) for root in read_header(stream)]
        if roots != [name]:
            raise CidMismatch(f"dag/export of {name} returned a CAR rooted at {roots}")
        blocks = {block.cid: block.data for block in iter_blocks(stream)}  # each re-hashed
        pending = [parse_cid(name).binary]
        while pending:
            binary = pending.pop()
            if binary not in blocks:
                raise BlockNotFound(f"dag/export of {name} lacks block {format_cid(binary)}")
            pending.extend(links_of(binary, blocks[binary]))
        if isinstance(out, str | os.PathLike):
            write_atomically(os.fspath(out), car)
        else:
            out.write(car)
        return len(car)

    # --- internals -----------------------------------------------------------

    def _block_get(self, binary: bytes) -> bytes:
        # The node-side timeout turns "nobody has this block" into an error
        # reply before our read timeout fires (js-ipfs waits forever otherwise).
        params = {"arg": format_cid(binary), "timeout": _duration(self.timeout * 0.9)}
        return self._call("block/get", params).content

    def _block_local(self, binary: bytes) -> bool:
        # `offline` makes kubo answer at once for a block it lacks; js-ipfs
        # ignores it and keeps looking, so the short node-side timeout ends that.
        params = {
            "arg": format_cid(binary),
            "offline": "true",
            "timeout": _duration(self.probe_timeout),
        }
        try:
            self._call("block/stat", params, timeout=self.probe_timeout + 5.0)
        except BlockNotFound:
            return False
        return True

    def _call(
        self,
        command: str,
        params: dict[str, str],
        *,
        upload: Callable[[], Iterable[bytes]] | None = None,
        filename: str = "data",
        timeout: float | None = None,
    ) -> httpx.Response:
        """POST one RPC command with bounded retries; raises ``RpcError`` / ``BlockNotFound``.

        Transient failures are retried until ``retry_for_s`` has passed and at
        least ``retries`` retries were made; then ``NodeUnavailable``.
        """
        last: str = ""
        started = time.monotonic()
        attempt = 0
        while True:
            if attempt:
                waited = time.monotonic() - started
                if attempt > self.retries and waited >= self.retry_for_s:
                    raise NodeUnavailable(
                        f"{command} on {self.url} failed after {attempt} attempts in "
                        f"{waited:.1f} s: the IPFS node is down or failing (last: {last}); "
                        "retry once it is back, or wait longer (retry_for_s)"
                    )
                delay = min(self.backoff * 2 ** min(attempt - 1, 30), self.max_backoff_s)
                if attempt > self.retries:
                    delay = min(delay, max(0.0, self.retry_for_s - waited))
                time.sleep(delay)
            attempt += 1
            headers: dict[str, str] = {}
            content: Iterator[bytes] | None = None
            if upload is not None:
                boundary = secrets.token_hex(16)
                headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
                content = _multipart(boundary, filename, upload())
            try:
                reply = self._client.post(
                    f"/{command}",
                    params=params,
                    content=content,
                    headers=headers,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TimeoutException as exc:
                # Waiting again as long would rarely help; a slow node is the caller's call.
                raise RpcError(
                    f"{command} on {self.url} timed out ({type(exc).__name__})"
                ) from None
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if reply.status_code < 400:
                return reply
            message = _error_message(reply)
            if message is not None and reply.status_code in (400, 404, 500):
                if command in _LOOKUPS and _means_missing(message):
                    raise BlockNotFound(f"{command} {params.get('arg', '')}: {message}")
                raise RpcError(f"{command} failed on {self.url}: {message}")
            if reply.status_code >= 500:
                last = f"HTTP {reply.status_code}: {reply.text[:200]}"
                continue
            raise RpcError(
                f"{command} failed on {self.url}: HTTP {reply.status_code} {reply.text[:200]}"
            )


_LOOKUPS = frozenset({"block/get", "block/stat", "cat", "pin/add", "dag/export"})


def _duration(seconds: float) -> str:
    """A Go-style duration for the node's ``timeout`` option."""
    return f"{max(1, round(seconds * 1000))}ms"


def _pieces(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), UPLOAD_PIECE):
        yield bytes(view[start : start + UPLOAD_PIECE])


def _file_pieces(path: str) -> Iterator[bytes]:
    with open(path, "rb") as stream:
        while piece := stream.read(UPLOAD_PIECE):
            yield piece


def _multipart(boundary: str, filename: str, body: Iterable[bytes]) -> Iterator[bytes]:
    """A streamed multipart/form-data body holding one file part."""
    yield (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    yield from body
    yield f"\r\n--{boundary}--\r\n".encode()


def _error_message(reply: httpx.Response) -> str | None:
    """The ``Message`` of an IPFS error reply, or ``None`` if the body is not one."""
    try:
        body = json.loads(reply.content)
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("Message"), str):
        return str(body["Message"])
    return None


def _means_missing(message: str) -> bool:
    lowered = message.lower()
    return any(
        phrase in lowered for phrase in ("not found", "offline", "could not find", "timed out")
    )


def _last_json_line(content: bytes, key: str) -> dict[str, Any]:
    """The last NDJSON object in a streamed reply that has ``key``."""
    found: dict[str, Any] | None = None
    for line in content.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise RpcError(f"node replied with non-JSON line {line[:200]!r}") from None
        if isinstance(entry, dict) and key in entry:
            found = entry
    if found is None:
        raise RpcError(f"node reply has no {key!r}: {content[:200]!r}")
    return found

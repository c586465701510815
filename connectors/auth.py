"""Who may send to a listening source: bearer tokens and client certificates.

Tokens are never stored: the tokens file holds the SHA-256 hex digest of each
token, one a line (``#`` starts a comment), and is read again whenever it
changes (its size, modification time or inode), so tokens are issued and
revoked without a restart. A file that cannot be read or holds a line that is
not a digest admits nobody until it is fixed: revoking by editing must never
fail open.

Under mutual TLS the handshake already refused clients without a certificate
from the configured CA; ``PeerSubjects`` remembers, per client socket, the
subject of the certificate it presented, so a source can record it with each
message (ASGI servers do not pass the certificate to the application).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from veristream.provers.errors import InputRejected

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def token_digest(token: str) -> str:
    """The line a tokens file holds for ``token``: its SHA-256, lower-case hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _read_digests(path: Path) -> frozenset[str]:
    digests: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip().lower()
        if not text:
            continue
        if not _DIGEST.match(text):
            raise InputRejected(f"{path}:{number}: not a SHA-256 hex digest")
        digests.add(text)
    return frozenset(digests)


class TokenFile:
    """The set of accepted bearer tokens, as digests in a file, reloaded on change; thread-safe."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.last_error = ""
        self._lock = threading.Lock()
        try:
            self._stamp = self._stat()
            self._digests = _read_digests(self.path)
        except OSError as error:
            raise InputRejected(f"tokens file {self.path}: {error.strerror}") from None

    def _stat(self) -> tuple[int, int, int]:
        st = os.stat(self.path)
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _current(self) -> frozenset[str]:
        with self._lock:
            try:
                stamp = self._stat()
            except OSError as error:
                self.last_error = f"tokens file {self.path}: {error.strerror}"
                self._stamp, self._digests = (0, 0, 0), frozenset()
                return self._digests
            if stamp != self._stamp:
                try:
                    self._digests = _read_digests(self.path)
                    self.last_error = ""
                except (OSError, UnicodeDecodeError, InputRejected) as error:
                    self.last_error = str(error)
                    self._digests = frozenset()
                self._stamp = stamp
            return self._digests

    def __len__(self) -> int:
        return len(self._current())

    def allows(self, token: str | None) -> bool:
        """Whether ``token`` is one of the file's tokens now."""
        if not token:
            return False
        return token_digest(token) in self._current()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def subject_of(peercert: dict[str, Any] | None) -> str:
    """A certificate's subject as ``CN=...,O=...`` (``ssl.SSLSocket.getpeercert()`` form); '' if none."""
    if not peercert:
        return ""
    parts = [
        f"{_SHORT.get(name, name)}={value}"
        for rdn in peercert.get("subject", ())
        for name, value in rdn
    ]
    return ",".join(parts)


_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
}


class PeerSubjects:
    """Client socket ``(host, port)`` -> subject of its TLS client certificate; bounded, thread-safe.

    ``protocol(base)`` wraps an asyncio protocol class (uvicorn's HTTP
    protocol) so every new connection records its peer's subject before the
    first request is read. A new connection from the same address and port
    overwrites the entry; entries of closed connections are dropped when the
    protocol hears of the close, and the oldest are forgotten beyond
    ``max_entries``.
    """

    def __init__(self, max_entries: int = 65_536) -> None:
        self.max_entries = max_entries
        self._subjects: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, host: str, port: int) -> str:
        """The subject recorded for that client socket ('' without a client certificate)."""
        with self._lock:
            return self._subjects.get((host, port), "")

    def record(self, transport: asyncio.BaseTransport) -> None:
        """Remember the subject of the certificate the peer of ``transport`` presented."""
        peer = transport.get_extra_info("peername")
        if not peer:
            return
        subject = subject_of(transport.get_extra_info("peercert"))
        with self._lock:
            self._subjects[(str(peer[0]), int(peer[1]))] = subject
            self._subjects.move_to_end((str(peer[0]), int(peer[1])))
            while len(self._subjects) > self.max_entries:
                self._subjects.popitem(last=False)

    def forget(self, transport: asyncio.BaseTransport) -> None:
        """Drop the entry of a closed connection."""
        peer = transport.get_extra_info("peername")
        if peer:
            with self._lock:
                self._subjects.pop((str(peer[0]), int(peer[1])), None)

    def protocol(self, base: type[Any]) -> type[Any]:
        """A subclass of the protocol class ``base`` that records each connection's subject."""
        subjects = self

        class RecordingProtocol(base):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                subjects.record(transport)
                self._veristream_transport = transport
                super().connection_made(transport)

            def connection_lost(self, exc: Exception | None) -> None:
                subjects.forget(self._veristream_transport)
                super().connection_lost(exc)

        RecordingProtocol.__name__ = f"Recording{base.__name__}"
        return RecordingProtocol

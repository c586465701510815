"""W3C Bitstring Status List v1.0: revocation of credentials by one bit each.

An issuer keeps a list of bits, at least ``MIN_BITS`` (131,072) long; the
credential it issues with index ``i`` is revoked when bit ``i`` is set. Bit 0
is the left-most (most significant) bit of the first byte. The list travels as
``encodedList``: multibase base64url without padding (``u...``) of the GZIP of
the bits; gzip here is written with mtime 0, so the same bits always encode to
the same string (and a published list to the same CID).

The list itself is the ``credentialSubject`` of a ``BitstringStatusListCredential``
(``status_list_credential`` builds one unsecured: ``credentials.issue`` secures
it). A credential points at its bit with a ``credentialStatus`` entry
(``status_entry``): ``BitstringStatusListEntry``, ``statusPurpose``,
``statusListIndex`` (a decimal string) and ``statusListCredential`` (the list
credential's URL).

Only ``statusPurpose`` ``revocation`` with ``statusSize`` 1 is issued; reading
accepts any purpose and refuses a ``statusSize`` other than 1.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from veristream.provers.credentials import CredentialRejected, StatusCheck
from veristream.provers.errors import InputRejected
from veristream.provers.jsonld import CREDENTIALS_V2
from veristream.provers.reasons import CredentialFault

MIN_BITS = 131_072
"""The spec's minimum list length (16 KiB): a short list would tell who was issued what."""
MAX_BITS = 1 << 26
"""The longest list read (8 MiB of bits): a gzip bomb stops here."""
REVOCATION = "revocation"
BASE64URL_PREFIX = "u"
STATUS_LIST_CREDENTIAL = "BitstringStatusListCredential"
STATUS_LIST = "BitstringStatusList"
STATUS_LIST_ENTRY = "BitstringStatusListEntry"
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_INDEX = re.compile(r"0|[1-9][0-9]*")


class StatusListRejected(InputRejected):
    """A status list, list credential or status entry that is not what the spec allows."""


@dataclass(frozen=True, slots=True)
class StatusList:
    """A bitstring of ``length`` bits (``bits``: ``length / 8`` bytes, bit 0 the left-most)."""

    bits: bytes

    @property
    def length(self) -> int:
        """The number of bits."""
        return len(self.bits) * 8

    @classmethod
    def empty(cls, length: int = MIN_BITS) -> StatusList:
        """A list of ``length`` bits, all clear (``length``: a multiple of 8, at least ``MIN_BITS``)."""
        if length < MIN_BITS or length % 8 or length > MAX_BITS:
            raise StatusListRejected(
                f"a status list has a multiple of 8 bits between {MIN_BITS} and {MAX_BITS}, not {length}"
            )
        return cls(bytes(length // 8))

    def _position(self, index: int) -> tuple[int, int]:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.length:
            raise StatusListRejected(f"status list index {index!r} is outside 0..{self.length - 1}")
        return index // 8, 0x80 >> (index % 8)

    def get(self, index: int) -> bool:
        """Whether bit ``index`` is set."""
        byte, mask = self._position(index)
        return bool(self.bits[byte] & mask)

    def set(self, index: int, value: bool = True) -> StatusList:
        """This list with bit ``index`` set to ``value``."""
        byte, mask = self._position(index)
        bits = bytearray(self.bits)
        bits[byte] = bits[byte] | mask if value else bits[byte] & ~mask
        return StatusList(bytes(bits))

    def set_indices(self) -> list[int]:
        """The indices of the set bits, ascending."""
        return [
            byte * 8 + bit
            for byte, value in enumerate(self.bits)
            if value
            for bit in range(8)
            if value & (0x80 >> bit)
        ]

    def encode(self) -> str:
        """The list as an ``encodedList``: ``u`` + base64url (no padding) of its GZIP."""
        compressed = gzip.compress(self.bits, compresslevel=9, mtime=0)
        return BASE64URL_PREFIX + base64.urlsafe_b64encode(compressed).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, encoded: Any) -> StatusList:
        """The list an ``encodedList`` holds; ``StatusListRejected`` when it is not one or is
        shorter than ``MIN_BITS``."""
        # MULTIBASE
        if not isinstance(encoded, str) or not encoded.startswith(BASE64URL_PREFIX):
            raise StatusListRejected("encodedList must be a multibase base64url string (starting with 'u')")
        body = encoded[1:]
        if not _BASE64URL.fullmatch(body):
            raise StatusListRejected("encodedList is not base64url (A-Z, a-z, 0-9, '-', '_', no padding)")
        try:
            compressed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise StatusListRejected("encodedList is not base64url") from None
        # GZIP, bounded
        try:
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            bits = inflater.decompress(compressed, MAX_BITS // 8 + 1)
        except zlib.error as exc:
            raise StatusListRejected(f"encodedList is not GZIP data: {exc}") from None
        if len(bits) > MAX_BITS // 8:
            raise StatusListRejected(f"the status list is longer than {MAX_BITS} bits")
        if not inflater.eof:
            raise StatusListRejected("encodedList is truncated GZIP data")
        # LENGTH
        if len(bits) * 8 < MIN_BITS:
            raise StatusListRejected(f"the status list has {len(bits) * 8} bits, fewer than the minimum {MIN_BITS}")
        return cls(bits)


@dataclass(frozen=True, slots=True)
class StatusEntry:
    """A credential's ``BitstringStatusListEntry``: bit ``index`` of the list at ``list_url``."""

    list_url: str
    index: int
    purpose: str = REVOCATION


def status_entry(list_url: str, index: int, purpose: str = REVOCATION) -> dict[str, Any]:
    """The ``credentialStatus`` of a credential that bit ``index`` of ``list_url`` governs."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise StatusListRejected(f"statusListIndex must be a non-negative integer, got {index!r}")
    return {
        "id": f"{list_url}#{index}",
        "type": STATUS_LIST_ENTRY,
        "statusPurpose": purpose,
        "statusListIndex": str(index),
        "statusListCredential": list_url,
    }


def entry_of(credential: Mapping[str, Any], purpose: str = REVOCATION) -> StatusEntry | None:
    """The credential's ``BitstringStatusListEntry`` for ``purpose`` (None: it has none);
    ``StatusListRejected`` when the entry is malformed or there are several."""
    raw = credential.get("credentialStatus")
    entries = raw if isinstance(raw, list) else [] if raw is None else [raw]
    found = [e for e in entries if isinstance(e, Mapping) and e.get("type") == STATUS_LIST_ENTRY]
    found = [e for e in found if e.get("statusPurpose") == purpose]
    if not found:
        return None
    if len(found) > 1:
        raise StatusListRejected(f"the credential has {len(found)} {purpose} status entries; one is read")
    entry = found[0]
    # FIELDS
    url = entry.get("statusListCredential")
    if not isinstance(url, str) or not url:
        raise StatusListRejected("credentialStatus.statusListCredential must be a URL")
    index = entry.get("statusListIndex")
    if not isinstance(index, str) or not _INDEX.fullmatch(index):
        raise StatusListRejected(f"credentialStatus.statusListIndex must be a decimal string, got {index!r}")
    if entry.get("id") is not None and entry.get("id") == url:
        raise StatusListRejected("credentialStatus.id must not be its statusListCredential")
    if entry.get("statusSize", 1) != 1:
        raise StatusListRejected(f"statusSize {entry.get('statusSize')!r} is not supported (1 is)")
    return StatusEntry(url, int(index), purpose)


def status_list_credential(
    *,
    list_url: str,
    issuer: str,
    status_list: StatusList,
    valid_from: str,
    purpose: str = REVOCATION,
) -> dict[str, Any]:
    """An unsecured ``BitstringStatusListCredential`` at ``list_url`` publishing ``status_list``.

    ``valid_from`` is required: readers refuse a list whose ``validFrom`` is not later than the
    one they hold, so an older list cannot be replayed over a newer one.
    """
    return {
        "@context": [CREDENTIALS_V2],
        "id": list_url,
        "type": ["VerifiableCredential", STATUS_LIST_CREDENTIAL],
        "issuer": issuer,
        "validFrom": valid_from,
        "credentialSubject": {
            "id": f"{list_url}#list",
            "type": STATUS_LIST,
            "statusPurpose": purpose,
            "encodedList": status_list.encode(),
        },
    }


@dataclass(frozen=True, slots=True)
class PublishedList:
    """What a ``BitstringStatusListCredential`` says (its proof not checked here)."""

    list_url: str
    issuer: str
    purpose: str
    valid_from: str | None
    status_list: StatusList


def read_status_list_credential(credential: Any) -> PublishedList:
    """The list a ``BitstringStatusListCredential`` publishes; ``StatusListRejected`` when it is
    not one. Verify its proof with ``credentials.verify`` as for any credential."""
    # SHAPE
    if not isinstance(credential, Mapping):
        raise StatusListRejected("a status list credential must be a JSON object")
    types = credential.get("type")
    if not isinstance(types, list) or STATUS_LIST_CREDENTIAL not in types:
        raise StatusListRejected(f"type must include {STATUS_LIST_CREDENTIAL!r}")
    url = credential.get("id")
    if not isinstance(url, str) or not url:
        raise StatusListRejected("a status list credential has an id (the URL its entries name)")
    issuer = credential.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, Mapping) else issuer
    if not isinstance(issuer_id, str):
        raise StatusListRejected("a status list credential has one issuer")
    valid_from = credential.get("validFrom")
    if valid_from is not None and not isinstance(valid_from, str):
        raise StatusListRejected("validFrom must be a dateTimeStamp string")
    # SUBJECT
    subject = credential.get("credentialSubject")
    if not isinstance(subject, Mapping) or subject.get("type") != STATUS_LIST:
        raise StatusListRejected(f"credentialSubject must be one {STATUS_LIST}")
    purpose = subject.get("statusPurpose")
    if not isinstance(purpose, str) or not purpose:
        raise StatusListRejected("credentialSubject.statusPurpose must be a string")
    return PublishedList(url, issuer_id, purpose, valid_from, StatusList.decode(subject.get("encodedList")))


def status_of(credential: Mapping[str, Any], published: PublishedList) -> bool:
    """Whether ``published`` has the credential's bit set (True: revoked for ``revocation``);
    ``StatusListRejected`` when the credential has no entry for that list, or the list's issuer
    or purpose is not the credential's."""
    entry = entry_of(credential, published.purpose)
    if entry is None:
        raise StatusListRejected(f"the credential has no {published.purpose} entry")
    if entry.list_url != published.list_url:
        raise StatusListRejected(f"the credential's status list is {entry.list_url}, not {published.list_url}")
    issuer = credential.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, Mapping) else issuer
    if issuer_id != published.issuer:
        raise StatusListRejected(
            f"the status list's issuer {published.issuer} did not issue the credential ({issuer_id})"
        )
    return published.status_list.get(entry.index)


def revoked_spans(versions: Sequence[tuple[int, StatusList]], index: int) -> tuple[tuple[int, int | None], ...]:
    """The times bit ``index`` is set, from a list's versions ``(from_ms, list)`` in the order they
    took effect (each in force until the next): ``[from_ms, until_ms)`` spans, ``until_ms`` None
    for the last version; adjacent spans merged."""
    # VALIDATE
    starts = [start for start, _ in versions]
    if starts != sorted(starts) or len(set(starts)) != len(starts):
        raise StatusListRejected("status list versions must take effect at increasing times")
    # SPANS
    spans: list[tuple[int, int | None]] = []
    for position, (start, status) in enumerate(versions):
        if not status.get(index):
            continue
        until = versions[position + 1][0] if position + 1 < len(versions) else None
        if spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], until)
        else:
            spans.append((start, until))
    return tuple(spans)


def status_check(lists: Mapping[str, PublishedList]) -> StatusCheck:
    """A ``credentials.verify`` status check against ``lists`` (list URL -> the list as
    published, its proof already verified): ``CredentialRejected`` ``revoked`` when the
    credential's bit is set, ``unchecked_status`` when its list is not among them or its entry
    is malformed."""

    def check(credential: Mapping[str, Any]) -> None:
        try:
            entry = entry_of(credential)
        except StatusListRejected as exc:
            raise CredentialRejected(CredentialFault.UNCHECKED_STATUS, str(exc)) from None
        if entry is None:
            raise CredentialRejected(
                CredentialFault.UNCHECKED_STATUS, f"the credential has no {STATUS_LIST_ENTRY} for {REVOCATION}"
            )
        published = lists.get(entry.list_url)
        if published is None:
            raise CredentialRejected(CredentialFault.UNCHECKED_STATUS, f"status list {entry.list_url} is not at hand")
        try:
            revoked = status_of(credential, published)
        except StatusListRejected as exc:
            raise CredentialRejected(CredentialFault.UNCHECKED_STATUS, str(exc)) from None
        if revoked:
            raise CredentialRejected(
                CredentialFault.REVOKED, f"revoked: bit {entry.index} of {entry.list_url} is set"
            )

    return check

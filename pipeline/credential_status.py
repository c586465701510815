"""Device credentials and their revocation, as one epoch pins them.

For a job with ``devices.credentials``, each epoch's manifest pins
(``credential_status``) the CID of every device's credential and every
version of the status lists those credentials point at that was in force
during the epoch: the list credential's CID, issuer, URL, ``validFrom`` and
the time (ms) it took effect. Whoever re-executes the epoch fetches the same
documents by CID and reaches the same decision, with no chain and no clock:

- a pinned status list must verify (Data Integrity, issuer resolved offline),
  come from a trusted issuer, carry the pinned URL and ``validFrom``, and the
  versions of one list must have increasing ``validFrom``s: an older list is
  never in force after a newer one (a rollback);
- a device whose credential does not verify, is not from a trusted issuer or
  not of an allowed type, or (with ``required``) has none, has no credential
  that counts at any time;
- otherwise its readings stamped while its bit is set in the version in force
  are ``credential_revoked``.

Where the pins come from is the application's business (``CredentialSource``):
the CredentialRegistry's anchors, or a file the simulator writes (``file_source``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from veristream.connectors.ipfs import BlockStore
from veristream.pipeline.jobspec import CredentialsSpec
from veristream.pipeline.registry import DeviceInfo, DeviceRegistryView
from veristream.provers import credentials
from veristream.provers.encoding import canonical_json
from veristream.provers.errors import InputRejected, Mismatch
from veristream.provers.status_list import (
    StatusList,
    StatusListRejected,
    entry_of,
    read_status_list_credential,
    revoked_spans,
)

Fetch = Callable[[str], bytes]
ALWAYS: tuple[tuple[int, int | None], ...] = ((0, None),)


@dataclass(frozen=True, slots=True)
class PinnedList:
    """One version of a status list: in force from ``from_ms`` until the next version of the
    same list (``issuer``, ``list_url``); its credential is ``cid`` with ``validFrom``
    ``valid_from`` (unix seconds)."""

    issuer: str
    list_url: str
    cid: str
    valid_from: int
    from_ms: int


@dataclass(frozen=True, slots=True)
class CredentialPins:
    """What an epoch's credential decisions rest on: device id -> credential CID, and the status
    list versions."""

    credentials: Mapping[str, str]
    lists: tuple[PinnedList, ...]

    def to_json(self) -> dict[str, Any]:
        """The manifest's ``credential_status`` (canonical order: devices by id, lists by URL
        and time)."""
        lists = sorted(self.lists, key=lambda p: (p.issuer, p.list_url, p.from_ms))
        return {
            "credentials": dict(sorted(self.credentials.items())),
            "lists": [
                {"issuer": p.issuer, "list_url": p.list_url, "cid": p.cid, "valid_from": p.valid_from, "from_ms": p.from_ms}
                for p in lists
            ],
        }

    @classmethod
    def from_json(cls, raw: Any) -> CredentialPins:
        """Pins back from a manifest's ``credential_status``; ``InputRejected`` when malformed."""
        try:
            creds = raw["credentials"]
            if not isinstance(creds, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in creds.items()):
                raise TypeError("credentials must map device ids to CIDs")
            lists = []
            for item in raw["lists"]:
                pinned = PinnedList(**item)
                if not all(isinstance(getattr(pinned, f), str) for f in ("issuer", "list_url", "cid")):
                    raise TypeError("issuer, list_url and cid are strings")
                if not all(type(getattr(pinned, f)) is int for f in ("valid_from", "from_ms")):
                    raise TypeError("valid_from and from_ms are integers")
                lists.append(pinned)
        except (TypeError, KeyError) as exc:
            raise InputRejected(f"manifest credential_status is malformed: {exc}") from None
        return cls(dict(creds), tuple(lists))


class CredentialSource(Protocol):
    """Gives an epoch its pins: the credentials of the devices and the status-list versions in
    force between ``start_ms`` and ``end_ms``; every pinned document is in ``store``."""

    def __call__(self, start_ms: int, end_ms: int, store: BlockStore) -> CredentialPins: ...


def in_force(versions: Iterable[PinnedList], start_ms: int, end_ms: int) -> tuple[PinnedList, ...]:
    """Of each list's versions, those in force at some time in ``[start_ms, end_ms)``: the last
    one taking effect at or before ``start_ms`` and every one taking effect later, before
    ``end_ms``."""
    by_list: dict[tuple[str, str], list[PinnedList]] = {}
    for version in versions:
        by_list.setdefault((version.issuer, version.list_url), []).append(version)
    kept: list[PinnedList] = []
    for group in by_list.values():
        # versions taking effect at the same time (one block, or one second): the latest wins
        latest: dict[int, PinnedList] = {}
        for version in sorted(group, key=lambda v: (v.from_ms, v.valid_from)):
            latest[version.from_ms] = version
        group = sorted(latest.values(), key=lambda v: v.from_ms)
        before = [v for v in group if v.from_ms <= start_ms]
        kept += before[-1:] + [v for v in group if start_ms < v.from_ms < end_ms]
    return tuple(kept)


def seconds_of(timestamp: str) -> int:
    """A ``dateTimeStamp`` as unix seconds."""
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise InputRejected(f"{timestamp!r} has no time zone")
    return int(moment.timestamp())


def _document(fetch: Fetch, cid: str, what: str) -> Any:
    try:
        return json.loads(fetch(cid))
    except (ValueError, UnicodeDecodeError):
        raise InputRejected(f"{what} {cid} is not JSON") from None


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


# A CID names its bytes, so a proof verified once under a CID verifies for good: epochs and
# operators in one process check each document's proof once. Dates are judged per use.
_PROOFS: dict[str, credentials.VerificationResult] = {}


def _within_validity(document: Any) -> datetime:
    """A moment the document's own dates allow (its proof is judged apart from them)."""
    for field in ("validFrom", "validUntil"):
        value = document.get(field) if isinstance(document, Mapping) else None
        if isinstance(value, str):
            try:
                return _moment(seconds_of(value) * 1000)
            except (InputRejected, ValueError):
                break
    return _moment(0)


def _judged_per_reading(credential: Mapping[str, Any]) -> None:
    """No status verdict here: ``credential_revocations`` reads the pinned lists by time."""


def verified(document: Any, cid: str, at_ms: int) -> credentials.VerificationResult:
    """``credentials.verify`` of the document stored under ``cid``, valid at ``at_ms``."""
    proof = _PROOFS.get(cid)
    if proof is None:
        # status is judged per reading, from the versions in force at its timestamp
        proof = _PROOFS[cid] = credentials.verify(
            document, now=_within_validity(document), status_check=_judged_per_reading
        )
    if not proof.verified:
        return proof
    try:
        credentials.check_validity(document, _moment(at_ms))
    except credentials.CredentialRejected as exc:
        return replace(proof, verified=False, reason=exc.fault, detail=str(exc))
    return proof


def check_list_version(document: Any, pinned: PinnedList, spec: CredentialsSpec) -> StatusList:
    """The list of one pinned version, after checking it is what the pin says and verifies;
    ``Mismatch`` otherwise."""
    # WHAT IT SAYS
    try:
        published = read_status_list_credential(document)
    except StatusListRejected as exc:
        raise Mismatch(f"pinned status list {pinned.cid}: {exc}") from None
    if (published.issuer, published.list_url) != (pinned.issuer, pinned.list_url):
        raise Mismatch(
            f"pinned status list {pinned.cid} is {published.list_url} of {published.issuer}, "
            f"not {pinned.list_url} of {pinned.issuer}"
        )
    if pinned.issuer not in spec.trusted_issuers:
        raise Mismatch(f"pinned status list {pinned.cid} is from {pinned.issuer}, not a trusted issuer")
    if published.valid_from is None or seconds_of(published.valid_from) != pinned.valid_from:
        raise Mismatch(f"pinned status list {pinned.cid} has validFrom {published.valid_from}, not the anchored {pinned.valid_from}")
    # ITS PROOF, judged when it took effect (not the wall clock: every operator decides alike)
    verdict = verified(document, pinned.cid, pinned.from_ms)
    if not verdict.verified:
        raise Mismatch(f"pinned status list {pinned.cid} does not verify: {verdict.detail}")
    return published.status_list


def credential_revocations(
    pins: CredentialPins, fetch: Fetch, spec: CredentialsSpec, at_ms: int
) -> dict[str, tuple[tuple[int, int | None], ...]]:
    """Device id -> the spans in which its credential does not count, for every pinned device
    (a device with none: no span). Credentials are judged valid at ``at_ms`` (the epoch's start).
    ``Mismatch`` when a pinned list is not what its pin says (the pins are then not honest)."""
    # LISTS
    versions: dict[tuple[str, str], list[tuple[int, int, StatusList]]] = {}
    for pinned in sorted(pins.lists, key=lambda p: p.from_ms):
        status = check_list_version(_document(fetch, pinned.cid, "status list"), pinned, spec)
        history = versions.setdefault((pinned.issuer, pinned.list_url), [])
        if history and pinned.valid_from <= history[-1][1]:
            raise Mismatch(
                f"status list {pinned.list_url} rolls back: validFrom {pinned.valid_from} after {history[-1][1]}"
            )
        if history and history[-1][0] == pinned.from_ms:
            history.pop()  # the same moment: the later version is the one in force
        history.append((pinned.from_ms, pinned.valid_from, status))
    # DEVICES
    spans: dict[str, tuple[tuple[int, int | None], ...]] = {}
    for device_id, cid in sorted(pins.credentials.items()):
        document = _document(fetch, cid, "credential")
        verdict = verified(document, cid, at_ms)
        if not verdict.verified or verdict.issuer not in spec.trusted_issuers:
            spans[device_id] = ALWAYS
            continue
        if not set(verdict.types) & set(spec.types):
            spans[device_id] = ALWAYS
            continue
        try:
            entry = entry_of(document)
        except StatusListRejected:
            spans[device_id] = ALWAYS
            continue
        history = versions.get((verdict.issuer, entry.list_url), []) if entry is not None else []
        if entry is None or not history:
            # not revocable, or its list never published: nothing revokes it
            spans[device_id] = ()
            continue
        try:
            spans[device_id] = revoked_spans([(start, status) for start, _, status in history], entry.index)
        except StatusListRejected:
            spans[device_id] = ALWAYS
    return spans


def pins_disagree(pinned: CredentialPins, expected: CredentialPins, fetch: Fetch) -> str | None:
    """Why ``pinned`` (a manifest's) is not what the source gives (``expected``, read again by an
    operator), None when they agree: every pinned device's credential is the one anchored for it,
    and for every list those credentials name the pinned versions are exactly the versions in
    force. A submitter who leaves a revoking version out is caught here. Devices anchored since
    the epoch was run are not compared."""
    # CREDENTIALS
    for device, cid in sorted(pinned.credentials.items()):
        anchored = expected.credentials.get(device)
        if anchored is not None and anchored != cid:
            return f"device {device}'s pinned credential {cid} is not the anchored {anchored}"
    # THE LISTS THEY NAME
    named: set[tuple[str, str]] = set()
    for cid in pinned.credentials.values():
        document = _document(fetch, cid, "credential")
        try:
            entry = entry_of(document) if isinstance(document, Mapping) else None
            issuer = credentials.issuer_of(document) if entry is not None else None
        except (StatusListRejected, credentials.CredentialRejected):
            continue
        if entry is not None and issuer is not None:
            named.add((issuer, entry.list_url))
    def versions(pins: CredentialPins) -> list[PinnedList]:
        return sorted((v for v in pins.lists if (v.issuer, v.list_url) in named), key=lambda v: (v.issuer, v.list_url, v.from_ms))

    if versions(pinned) != versions(expected):
        missing = [v.cid for v in versions(expected) if v not in versions(pinned)]
        extra = [v.cid for v in versions(pinned) if v not in versions(expected)]
        return f"the pinned status lists are not the ones in force (missing {missing}, not anchored {extra})"
    return None


def with_revocations(
    registry: DeviceRegistryView, spans: Mapping[str, tuple[tuple[int, int | None], ...]], spec: CredentialsSpec
) -> DeviceRegistryView:
    """``registry`` with each device's credential spans; with ``spec.required`` a device with no
    pinned credential has none that counts."""
    devices: dict[str, DeviceInfo] = {}
    for device_id, info in registry.devices.items():
        found = spans.get(device_id)
        if found is None:
            found = ALWAYS if spec.required else ()
        devices[device_id] = replace(info, credential_revoked=found) if found else info
    return DeviceRegistryView(devices)


@dataclass(frozen=True, slots=True)
class FileSource:
    """Pins from a credentials file (the simulator writes one): ``{"credentials": {device id:
    credential}, "status_lists": [{"from_ms": t, "credential": list credential}]}``; each
    document is stored (its CID is the pin) when an epoch asks."""

    path: Path

    def __call__(self, start_ms: int, end_ms: int, store: BlockStore) -> CredentialPins:
        # READ
        try:
            raw = json.loads(self.path.read_text())
            documents = raw["credentials"]
            versions = raw["status_lists"]
            if not isinstance(documents, dict) or not isinstance(versions, list):
                raise TypeError("credentials is an object and status_lists a list")
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise InputRejected(f"credentials file {self.path}: {exc}") from None
        # STORE AND PIN
        cids = {device_id: store.put(canonical_json(doc)) for device_id, doc in documents.items()}
        pinned = []
        for item in versions:
            published = read_status_list_credential(item["credential"])
            if published.valid_from is None:
                raise InputRejected(f"credentials file {self.path}: status list {published.list_url} has no validFrom")
            pinned.append(
                PinnedList(
                    published.issuer,
                    published.list_url,
                    store.put(canonical_json(item["credential"])),
                    seconds_of(published.valid_from),
                    int(item["from_ms"]),
                )
            )
        return CredentialPins(cids, in_force(pinned, start_ms, end_ms))

"""A DeviceRegistry on chain as the pipeline sees it: its events, cached in the work directory,
folded into a ``DeviceRegistryView`` as of any block.

A job with ``devices.address`` reads its devices from the DeviceRegistry's events
(``DeviceRegistered``, ``DeviceKeyRotated``, ``DeviceOwnerChanged``, ``DeviceRevoked``) from
the block the registry was deployed in. The events are kept in
``WORK_DIR/device-registry/ADDRESS.json`` with the block they were read up to (and its hash),
and the next read asks the chain only for the blocks after it. The view as of block ``b`` folds
the events of blocks ``<= b``; each epoch's manifest names ``b``, so every operator and auditor
rebuilds the same keys, windows, beneficiaries and revocations the submitter checked with.

The chain itself is reached through a ``RegistryReader`` the application layer supplies (this
layer does not talk to nodes). A cache whose last block no longer has the hash it was read at
(a chain reset or reorganised) is read again from the start.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from veristream.pipeline.registry import DeviceInfo, DeviceRegistryView, KeyWindow
from veristream.provers.durable import write_atomically
from veristream.provers.encoding import parse_address
from veristream.provers.errors import InputRejected

CACHE_DIR = "device-registry"
CACHE_VERSION = 1
REGISTERED, ROTATED, OWNER_CHANGED, REVOKED = (
    "DeviceRegistered",
    "DeviceKeyRotated",
    "DeviceOwnerChanged",
    "DeviceRevoked",
)
EVENT_KINDS = (REGISTERED, ROTATED, OWNER_CHANGED, REVOKED)


@dataclass(frozen=True, slots=True)
class RegistryEvent:
    """One DeviceRegistry event about a device, as the view needs it.

    ``device`` is the lower-case ``0x`` address (the readings' device id). Registered and
    rotated events carry ``scheme`` and ``public_key``; rotated ones ``effective_from_ms`` (the
    new key signs from then, the previous key's window ends there); owner changes ``owner``
    (20 bytes); revocations ``revoked_from_ms``.
    """

    kind: str
    device: str
    block: int
    log_index: int
    scheme: str | None = None
    public_key: bytes | None = None
    owner: bytes | None = None
    effective_from_ms: int | None = None
    revoked_from_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON object (bytes as ``0x`` hex, absent fields left out)."""
        out: dict[str, Any] = {"kind": self.kind, "device": self.device, "block": self.block, "log_index": self.log_index}
        for name in ("scheme", "effective_from_ms", "revoked_from_ms"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        for name in ("public_key", "owner"):
            value = getattr(self, name)
            if value is not None:
                out[name] = "0x" + value.hex()
        return out

    @classmethod
    def from_json(cls, data: Any) -> RegistryEvent:
        """An event back from ``to_json``; ``InputRejected`` when it is not one."""
        if not isinstance(data, dict) or data.get("kind") not in EVENT_KINDS:
            raise InputRejected(f"not a device registry event: {data!r}")
        try:
            return cls(
                kind=data["kind"],
                device=str(data["device"]),
                block=int(data["block"]),
                log_index=int(data["log_index"]),
                scheme=data.get("scheme"),
                public_key=_bytes(data.get("public_key")),
                owner=_bytes(data.get("owner")),
                effective_from_ms=data.get("effective_from_ms"),
                revoked_from_ms=data.get("revoked_from_ms"),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InputRejected(f"malformed device registry event {data!r}: {error}") from None


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes.fromhex(str(value).removeprefix("0x"))


# THE FOLD


def fold(events: Iterable[RegistryEvent]) -> DeviceRegistryView:
    """The registry after ``events`` (in chain order): each device's keys with their windows,
    scheme, beneficiary and revocation, as the DeviceRegistry holds them."""
    devices: dict[str, DeviceInfo] = {}
    for event in events:
        info = devices.get(event.device)
        if event.kind == REGISTERED:
            assert event.scheme is not None and event.public_key is not None and event.owner is not None
            devices[event.device] = DeviceInfo(event.device, event.scheme, event.public_key, event.owner)
        elif info is None:
            continue  # the registry emits nothing else for a device it has not registered
        elif event.kind == ROTATED:
            assert event.scheme is not None and event.public_key is not None and event.effective_from_ms is not None
            start = event.effective_from_ms
            history = info.key_history or (KeyWindow(info.public_key),)
            ended = replace(history[-1], effective_until_ms=start)
            devices[event.device] = replace(
                info,
                scheme=event.scheme,
                public_key=event.public_key,
                key_history=(*history[:-1], ended, KeyWindow(event.public_key, start)),
            )
        elif event.kind == OWNER_CHANGED:
            assert event.owner is not None
            devices[event.device] = replace(info, beneficiary=event.owner)
        elif event.kind == REVOKED:
            devices[event.device] = replace(info, revoked_at_ms=event.revoked_from_ms)
    return DeviceRegistryView(devices)


# THE CACHE


@dataclass(frozen=True, slots=True)
class EventCache:
    """A registry's events read so far: blocks ``from_block`` through ``synced_block`` (whose hash
    was ``synced_hash`` when read); ``synced_block`` is ``from_block - 1`` before the first read."""

    chain_id: int
    address: str
    from_block: int
    synced_block: int
    synced_hash: bytes | None
    events: tuple[RegistryEvent, ...] = ()

    def view_at(self, block: int) -> DeviceRegistryView:
        """The registry as of the end of ``block`` (which must be read already)."""
        if block > self.synced_block:
            raise InputRejected(f"the device registry cache is read up to block {self.synced_block}, not {block}")
        return fold(e for e in self.events if e.block <= block)

    def to_json(self) -> bytes:
        """The cache as a JSON document."""
        document = {
            "version": CACHE_VERSION,
            "chain_id": self.chain_id,
            "address": self.address,
            "from_block": self.from_block,
            "synced_block": self.synced_block,
            "synced_hash": None if self.synced_hash is None else "0x" + self.synced_hash.hex(),
            "events": [e.to_json() for e in self.events],
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> EventCache:
        """A cache back from ``to_json``; ``InputRejected`` when it is not one."""
        try:
            raw = json.loads(data)
            if raw.get("version") != CACHE_VERSION:
                raise InputRejected(f"device registry cache version {raw.get('version')!r} is not {CACHE_VERSION}")
            return cls(
                chain_id=int(raw["chain_id"]),
                address=str(raw["address"]),
                from_block=int(raw["from_block"]),
                synced_block=int(raw["synced_block"]),
                synced_hash=_bytes(raw["synced_hash"]),
                events=tuple(RegistryEvent.from_json(e) for e in raw["events"]),
            )
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, KeyError, TypeError, ValueError) as error:
            raise InputRejected(f"device registry cache is unreadable: {error}") from None


def cache_path(work_dir: Path, address: str) -> Path:
    """Where a work directory keeps the events of the DeviceRegistry at ``address``."""
    return Path(work_dir) / CACHE_DIR / f"{address.lower()}.json"


# READING THE CHAIN


class RegistryReader(Protocol):
    """What the view needs of a chain holding the DeviceRegistry (supplied by the application)."""

    @property
    def chain_id(self) -> int:
        """The chain's id."""
        ...

    def head(self) -> int:
        """The latest block's number."""
        ...

    def block_hash(self, number: int) -> bytes:
        """The hash of block ``number``."""
        ...

    def first_block(self) -> int:
        """The block the registry was deployed in (0 when unknown)."""
        ...

    def events(self, from_block: int, to_block: int) -> Sequence[RegistryEvent]:
        """The registry's device events of blocks ``from_block..to_block``, in chain order."""
        ...


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one read of the chain did: the blocks it asked for (None: none) and the events found."""

    from_block: int | None
    to_block: int
    events: int


READ_CHUNK_BLOCKS = 5_000
"""Blocks per event query: JSON-RPC nodes refuse (or time out on) log queries over long ranges."""


def sync(reader: RegistryReader, path: Path, address: str, to_block: int | None = None) -> tuple[EventCache, SyncReport]:
    """Extend the cache at ``path`` with the registry's events up to ``to_block`` (default: the
    chain's head), reading only the blocks after those already cached, and save it."""
    # CHECKS
    head = reader.head()
    target = head if to_block is None else to_block
    if target > head:
        raise InputRejected(f"device registry block {target} is not on chain {reader.chain_id} yet (head {head})")
    cache = _load(path)
    if cache is not None and not _still_valid(cache, reader, address):
        cache = None  # a reset or reorganised chain: read it again from the start
    if cache is None:
        first = reader.first_block()
        cache = EventCache(reader.chain_id, address.lower(), first, first - 1, None)
    if target <= cache.synced_block:
        return cache, SyncReport(None, cache.synced_block, 0)

    # READ the blocks not cached yet, in chunks
    start = cache.synced_block + 1
    found: list[RegistryEvent] = []
    for low in range(start, target + 1, READ_CHUNK_BLOCKS):
        found += reader.events(low, min(low + READ_CHUNK_BLOCKS - 1, target))
    extended = replace(cache, synced_block=target, synced_hash=reader.block_hash(target), events=cache.events + tuple(found))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, extended.to_json())
    return extended, SyncReport(start, target, len(found))


def _load(path: Path) -> EventCache | None:
    try:
        return EventCache.from_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except InputRejected:
        return None  # a damaged cache is only a slower start: it is read again from the chain


def _still_valid(cache: EventCache, reader: RegistryReader, address: str) -> bool:
    if cache.chain_id != reader.chain_id or cache.address != address.lower():
        return False
    if cache.synced_hash is None:
        return cache.synced_block < cache.from_block
    return cache.synced_block <= reader.head() and reader.block_hash(cache.synced_block) == cache.synced_hash


class ChainDevices:
    """A job's DeviceRegistry on chain: views as of the latest block or of a manifest's block,
    from the work directory's cache, reaching the chain (``connect``) only for blocks not cached.

    ``connect`` opens a ``RegistryReader`` as a context manager (the caller decides whether that
    opens a connection or lends one already open).
    """

    def __init__(
        self, address: str, work_dir: Path, connect: Callable[[], AbstractContextManager[RegistryReader]]
    ) -> None:
        self.address = "0x" + parse_address(address).hex()
        self.path = cache_path(work_dir, address)
        self._connect = connect
        self._views: dict[int, DeviceRegistryView] = {}
        self.last_sync: SyncReport | None = None

    def latest(self) -> tuple[DeviceRegistryView, int]:
        """The registry as of the chain's latest block, and that block's number."""
        with self._connect() as reader:
            cache, self.last_sync = sync(reader, self.path, self.address)
        return self._view(cache, cache.synced_block), cache.synced_block

    def at(self, block: int) -> DeviceRegistryView:
        """The registry as of the end of ``block`` (a manifest's ``device_registry_block``)."""
        if block in self._views:
            return self._views[block]
        cache = _load(self.path)
        if cache is None or cache.synced_block < block or cache.address != self.address:
            with self._connect() as reader:
                cache, self.last_sync = sync(reader, self.path, self.address, block)
        return self._view(cache, block)

    def _view(self, cache: EventCache, block: int) -> DeviceRegistryView:
        view = self._views.get(block)
        if view is None:
            view = self._views[block] = cache.view_at(block)
        return view

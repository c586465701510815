"""The device registry as the pipeline sees it: keys with their windows, schemes, beneficiaries,
revocations.

Embedded mode reads a JSON file (the simulator writes one); at scale the same
view is read from the on-chain DeviceRegistry. Each device has a 20-byte
address: for secp256k1 devices it is the device id itself (the signer's
Ethereum address); other ids map to ``keccak256(utf8(device_id))[12:]`` so the
data root's ``address`` leaf field is defined for every scheme.

A device whose key was rotated has a key history: each key signs the readings
stamped in its window ``[effective_from_ms, effective_until_ms)``, as in the
DeviceRegistry, and ``verify_in_force`` checks each reading against the key in
force at its timestamp. Devices that only ever had one key (the common case)
are checked by one ``verify_many`` call exactly as without histories.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veristream.provers.encoding import keccak256, parse_address
from veristream.provers.errors import InputRejected
from veristream.provers.readings import Domain, Reading
from veristream.provers.reasons import SignatureFault
from veristream.provers.signing import Verdict, VerdictMemo, verify_many


def device_address(device_id: str) -> bytes:
    """The 20-byte address standing for ``device_id`` in the data root."""
    try:
        return parse_address(device_id)
    except ValueError:
        return keccak256(device_id.encode())[12:]


@dataclass(frozen=True, slots=True)
class KeyWindow:
    """One key of a device and the reading timestamps (ms) it signs for:
    ``[effective_from_ms, effective_until_ms)``, ``effective_until_ms`` None while it is current."""

    public_key: bytes
    effective_from_ms: int = 0
    effective_until_ms: int | None = None

    def covers(self, timestamp_ms: int) -> bool:
        """Whether this key is in force for a reading stamped ``timestamp_ms``."""
        return self.effective_from_ms <= timestamp_ms and (
            self.effective_until_ms is None or timestamp_ms < self.effective_until_ms
        )


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One registered device.

    ``public_key`` is its current key. ``key_history`` lists every key with its window,
    oldest first, for a device whose key was rotated (or whose key is in force only from
    some time on); it is empty when ``public_key`` signs for every timestamp.
    """

    device_id: str
    scheme: str
    public_key: bytes
    beneficiary: bytes
    revoked_at_ms: int | None = None
    key_history: tuple[KeyWindow, ...] = ()
    # [from_ms, until_ms) spans in which the device's credential does not count (revoked in its
    # status list, or not valid): set per epoch from the pinned lists, never read from a file
    credential_revoked: tuple[tuple[int, int | None], ...] = ()

    def revoked_at(self, timestamp_ms: int) -> bool:
        """Whether a reading stamped ``timestamp_ms`` comes after the device's revocation."""
        return self.revoked_at_ms is not None and timestamp_ms >= self.revoked_at_ms

    def credential_revoked_at(self, timestamp_ms: int) -> int | None:
        """When the span of credential revocation covering ``timestamp_ms`` began (None: the
        device's credential counts then)."""
        for start, until in self.credential_revoked:
            if start <= timestamp_ms and (until is None or timestamp_ms < until):
                return start
        return None

    def key_at(self, timestamp_ms: int) -> bytes | None:
        """The key in force for a reading stamped ``timestamp_ms``, None when none is."""
        if not self.key_history:
            return self.public_key
        window = _window_at(self.key_history, timestamp_ms)
        return None if window is None else self.key_history[window].public_key


class DeviceKeys(dict[str, bytes]):
    """Keys by lower-case device id as ``verify_many`` takes them (each device's current key),
    plus the key histories of the devices that have one (``windows``), which
    ``verify_in_force`` checks readings against. Pickles with its histories."""

    windows: dict[str, tuple[KeyWindow, ...]]

    def __init__(
        self, keys: Mapping[str, bytes] | None = None, windows: Mapping[str, tuple[KeyWindow, ...]] | None = None
    ) -> None:
        super().__init__(keys or {})
        self.windows = dict(windows or {})


def device_keys(keys: Mapping[str, bytes]) -> DeviceKeys:
    """``keys`` as a ``DeviceKeys`` (itself when it is one: its histories are kept)."""
    return keys if isinstance(keys, DeviceKeys) else DeviceKeys(keys)


@dataclass(frozen=True, slots=True)
class DeviceRegistryView:
    """All devices of a job, by id."""

    devices: Mapping[str, DeviceInfo]

    def keys(self) -> DeviceKeys:
        """Current public keys by device id, as ``verify_many`` takes them, with the key
        histories of rotated devices for ``verify_in_force``."""
        return DeviceKeys(
            {d: info.public_key for d, info in self.devices.items()},
            {d: info.key_history for d, info in self.devices.items() if info.key_history},
        )

    def get(self, device_id: str) -> DeviceInfo | None:
        """The device, or None when it is not registered."""
        return self.devices.get(device_id)


# VERIFICATION


_NO_KEY_IN_FORCE = Verdict(False, SignatureFault.BAD_SIGNATURE)


def _window_at(history: Sequence[KeyWindow], timestamp_ms: int) -> int | None:
    """The index of the key in force at ``timestamp_ms`` in a history sorted by start, or None."""
    # histories are short and readings mostly recent: scan from the newest key
    for index in range(len(history) - 1, -1, -1):
        window = history[index]
        if window.effective_from_ms <= timestamp_ms:
            return index if window.covers(timestamp_ms) else None
    return None


def verify_in_force(
    readings: Sequence[Reading], domain: Domain, keys: Mapping[str, bytes], *, memo: VerdictMemo | None = None
) -> list[Verdict]:
    """One verdict per reading, in order: ``verify_many``'s, with each reading of a device that
    has a key history (``DeviceKeys.windows``) checked against the key in force at its
    timestamp. A reading stamped when none of its device's keys was in force fails with
    ``bad_signature``. Without histories this is one ``verify_many`` call and nothing more.
    """
    windows = keys.windows if isinstance(keys, DeviceKeys) else None
    if not windows:
        return verify_many(readings, domain, keys, memo=memo)

    # ROUTING: readings of devices without a history keep the current keys; the others are
    # grouped by the position of their key in force, one verify_many call per position
    verdicts: list[Verdict] = [_NO_KEY_IN_FORCE] * len(readings)
    plain: list[int] = []
    by_position: dict[int, list[int]] = {}
    for index, reading in enumerate(readings):
        device_id, timestamp_ms = reading.device_id, reading.timestamp_ms
        history = windows.get(device_id.lower()) if isinstance(device_id, str) else None
        if history is None or type(timestamp_ms) is not int:
            plain.append(index)  # verify_many gives a malformed reading its own reason
            continue
        position = _window_at(history, timestamp_ms)
        if position is not None:
            by_position.setdefault(position, []).append(index)

    # CHECKS
    groups: list[tuple[list[int], Mapping[str, bytes]]] = [(plain, keys)]
    for position, indexes in sorted(by_position.items()):
        in_force = {d: h[position].public_key for d, h in windows.items() if position < len(h)}
        groups.append((indexes, in_force))
    for indexes, group_keys in groups:
        if indexes:
            checked = verify_many([readings[i] for i in indexes], domain, group_keys, memo=memo)
            for index, verdict in zip(indexes, checked, strict=True):
                verdicts[index] = verdict
    return verdicts


# THE JSON FORM


def _hex(value: Any, field: str) -> bytes:
    if not isinstance(value, str):
        raise InputRejected(f"{field} must be a hex string")
    text = value[2:] if value.startswith(("0x", "0X")) else value
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise InputRejected(f"{field} is not hex: {value!r}") from None


def _time_ms(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 64:
        raise InputRejected(f"{field} must be an integer in [0, 2**64)")
    return value


def parse_key_history(entries: Any, where: str) -> tuple[KeyWindow, ...]:
    """A device's ``key_history``: ``[{"public_key", "effective_from_ms", "effective_until_ms"}]``
    oldest first, windows non-empty and not overlapping, only the last one open (until null)."""
    if not isinstance(entries, list) or not entries:
        raise InputRejected(f"{where} must be a non-empty list of keys")
    history: list[KeyWindow] = []
    for index, entry in enumerate(entries):
        field = f"{where}[{index}]"
        if not isinstance(entry, Mapping):
            raise InputRejected(f"{field} must be an object")
        start = _time_ms(entry.get("effective_from_ms", 0), f"{field}.effective_from_ms")
        until_value = entry.get("effective_until_ms")
        until = None if until_value is None else _time_ms(until_value, f"{field}.effective_until_ms")
        if until is not None and until <= start:
            raise InputRejected(f"{field}: effective_until_ms must be after effective_from_ms")
        if history:
            previous = history[-1].effective_until_ms
            if previous is None or start < previous:
                raise InputRejected(f"{field} starts before the previous key's window ends")
        history.append(KeyWindow(_hex(entry.get("public_key"), f"{field}.public_key"), start, until))
    return tuple(history)


def parse_device(entry: Mapping[str, Any], index: int) -> DeviceInfo:
    """One registry entry; ``InputRejected`` naming the entry and field otherwise.

    ``key_history`` is optional; with it, ``public_key`` may be left out (it is the last
    key's) and must otherwise be the last key.
    """
    where = f"devices[{index}]"
    if not isinstance(entry, Mapping):
        raise InputRejected(f"{where} must be an object")
    device_id = entry.get("device_id")
    if not isinstance(device_id, str) or not device_id:
        raise InputRejected(f"{where}.device_id must be a non-empty string")
    # verify_many looks keys up by lower-case id; one spelling everywhere keeps sorting stable
    device_id = device_id.lower()
    scheme = entry.get("scheme", "secp256k1")
    if not isinstance(scheme, str):
        raise InputRejected(f"{where}.scheme must be a string")
    history: tuple[KeyWindow, ...] = ()
    if entry.get("key_history") is not None:
        history = parse_key_history(entry["key_history"], f"{where}.key_history")
    if history and entry.get("public_key") is None:
        public_key = history[-1].public_key
    else:
        public_key = _hex(entry.get("public_key"), f"{where}.public_key")
    if history and public_key != history[-1].public_key:
        raise InputRejected(f"{where}.public_key must be the last key of its key_history")
    if history == (KeyWindow(public_key),):
        history = ()  # one key for all time: the plain form, checked without routing
    beneficiary_text = entry.get("beneficiary") or entry.get("owner")
    beneficiary = (
        parse_address(beneficiary_text) if beneficiary_text else device_address(device_id)
    )
    revoked = entry.get("revoked_at_ms")
    if revoked is not None and (isinstance(revoked, bool) or not isinstance(revoked, int) or revoked < 0):
        raise InputRejected(f"{where}.revoked_at_ms must be a non-negative integer")
    return DeviceInfo(device_id, scheme, public_key, beneficiary, revoked, history)


def parse_registry(data: Any) -> DeviceRegistryView:
    """A registry from its JSON form: ``{"devices": [...]}`` or a bare list of entries."""
    entries = data.get("devices") if isinstance(data, Mapping) else data
    if not isinstance(entries, list):
        raise InputRejected("a device registry is a list of devices or {'devices': [...]}")
    devices: dict[str, DeviceInfo] = {}
    for index, entry in enumerate(entries):
        info = parse_device(entry, index)
        if info.device_id in devices:
            raise InputRejected(f"devices[{index}].device_id {info.device_id!r} is registered twice")
        devices[info.device_id] = info
    return DeviceRegistryView(devices)


def load_registry(path: str | Path) -> DeviceRegistryView:
    """Read a registry file (JSON); ``InputRejected`` with the problem otherwise."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise InputRejected(f"cannot read device registry {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise InputRejected(f"device registry {path} is not JSON: {error}") from None
    return parse_registry(data)

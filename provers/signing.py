"""Device readings and their signatures: the canonical digest and the verifier.

Every scheme signs one 32-byte digest, the EIP-712 hash of

    Reading(address device,uint64 seq,uint64 timestamp,bytes32 payloadHash)

with ``payloadHash = keccak256(payload)``, under the domain ``{name, version,
chainId, verifyingContract}`` whose contract is the DeviceRegistry. Wallets sign
it with ``eth_signTypedData_v4``; the DeviceRegistry computes the same digest.

``verify_many`` is the pipeline's per-reading hot path: it builds the digest from
a cached domain prefix and three keccaks, and calls the native libraries
(libsecp256k1, libsodium, OpenSSL) directly with parsed keys cached across
calls. A bad reading never raises there: it gets a failed ``Verdict`` whose
reason is a ``SignatureFault`` (see docs/device-signatures.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any, NamedTuple

from veristream.provers.encoding import (
    eip712_digest,
    eip712_domain_separator,
    eip712_type_hash,
    keccak256,
)
from veristream.provers.errors import InputRejected
from veristream.provers.readings import SCHEMES, Domain, Reading
from veristream.provers.reasons import SignatureFault
from veristream.provers.schemes import (
    ed25519,
    p256,
    secp256k1,
)

__all__ = [
    "READING_TYPE",
    "READING_TYPE_HASH",
    "Verdict",
    "VerdictMemo",
    "device_id_from_public_key",
    "public_key_of",
    "reading_digest",
    "reading_struct_hash",
    "reading_typed_data",
    "sign_reading",
    "verify_many",
    "verify_reading",
]

READING_TYPE = "Reading(address device,uint64 seq,uint64 timestamp,bytes32 payloadHash)"
READING_TYPE_HASH = eip712_type_hash(READING_TYPE)
# How many parsed registry keys stay cached across verify_many calls
KEY_CACHE_SIZE = 1 << 16
# verify_many settles its queued signature checks every WINDOW readings (bounded memory)
WINDOW = 2048
# How many outcomes one VerdictMemo keeps unless told otherwise (~100 bytes each)
MEMO_ENTRIES = 4_000_000

_SCHEME_MODULES: dict[str, ModuleType] = {
    "secp256k1": secp256k1,
    "ed25519": ed25519,
    "p256": p256,
}
_ZERO_12 = b"\x00" * 12
# first byte of a memo key: which check the rest of the key describes
_MEMO_TAGS = {"secp256k1": b"\x01", "ed25519": b"\x02", "p256": b"\x03"}
_UINT64_MAX = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of checking one reading: ``reason`` is None exactly when ``ok``."""

    ok: bool
    reason: str | None

    def __post_init__(self) -> None:
        if self.ok != (self.reason is None):
            raise InputRejected("a verdict has a reason exactly when it is not ok")


_OK = Verdict(True, None)
_FAILED = {reason: Verdict(False, reason) for reason in SignatureFault}


class _PreparedKey(NamedTuple):
    """A registry key parsed once: the address it derives and the native verifier object.

    Only secp256k1 uses ``address`` (the signer recovery must reach); it is not
    compared with the device id, which a key rotation keeps while the key changes.
    ``canonical`` is the key's canonical encoding: what a ``VerdictMemo`` key
    names for Ed25519 and P-256.
    """

    address: bytes
    native: Any
    canonical: bytes = b""


# DOMAIN AND DIGEST


@lru_cache(maxsize=64)
def _digest_prefix(domain: Domain) -> bytes:
    """``0x1901 || domainSeparator``: everything of the final hash input but the struct hash."""
    separator = eip712_domain_separator(
        domain.name, domain.version, domain.chain_id, domain.verifying_contract
    )
    return b"\x19\x01" + separator


def _device_address(device_id: object) -> bytes:
    """The 20 bytes of a ``0x``-hex device id (any case); ``ValueError`` otherwise."""
    # Same rule as encoding.parse_address, inlined: this runs once per reading and
    # the general helper costs ~1 us of a ~50 us budget.
    if type(device_id) is not str or len(device_id) != 42 or device_id[:2] not in ("0x", "0X"):
        raise InputRejected(f"device id must be 0x followed by 40 hex digits, got {device_id!r}")
    try:
        address = bytes.fromhex(device_id[2:])
    except ValueError:
        raise InputRejected(f"device id is not hex: {device_id!r}") from None
    if len(address) != 20:  # fromhex skips whitespace
        raise InputRejected(f"device id is not 20 bytes of hex: {device_id!r}")
    return address


def _checked_fields(seq: object, timestamp_ms: object, payload: object) -> tuple[int, int, bytes]:
    """The signed fields once ``seq`` and ``timestamp_ms`` are uint64s and ``payload`` is
    bytes (a copy of a bytearray); ``ValueError`` otherwise."""
    # uint64 words without encoding.uint_word's generality (bool is refused: type is int)
    if type(seq) is not int or not 0 <= seq <= _UINT64_MAX:
        raise InputRejected(f"seq must be a uint64, got {seq!r}")
    if type(timestamp_ms) is not int or not 0 <= timestamp_ms <= _UINT64_MAX:
        raise InputRejected(f"timestamp_ms must be a uint64, got {timestamp_ms!r}")
    if type(payload) is not bytes:
        if not isinstance(payload, bytes | bytearray):
            raise InputRejected(f"payload must be bytes, got {type(payload).__name__}")
        payload = bytes(payload)
    return seq, timestamp_ms, payload


def _struct_hash(address: bytes, seq: object, timestamp_ms: object, payload: object) -> bytes:
    """``hashStruct(Reading)``; ``ValueError`` for a field out of its type's range."""
    seq, timestamp_ms, payload = _checked_fields(seq, timestamp_ms, payload)
    return keccak256(
        READING_TYPE_HASH
        + _ZERO_12
        + address
        + seq.to_bytes(32, "big")
        + timestamp_ms.to_bytes(32, "big")
        + keccak256(payload)
    )


def reading_struct_hash(reading: Reading) -> bytes:
    """``hashStruct(Reading)`` of a reading; ``ValueError`` if a field is malformed."""
    address = _device_address(reading.device_id)
    return _struct_hash(address, reading.seq, reading.timestamp_ms, reading.payload)


def reading_digest(reading: Reading, domain: Domain) -> bytes:
    """The 32-byte EIP-712 digest every scheme signs; ``ValueError`` if a field is malformed.

    The signature and scheme do not enter it.
    """
    return eip712_digest(_digest_prefix(domain)[2:], reading_struct_hash(reading))


def reading_typed_data(reading: Reading, domain: Domain) -> dict[str, Any]:
    """The full EIP-712 typed data of a reading, as ``eth_signTypedData_v4`` and eth-account take it."""
    reading_struct_hash(reading)  # the same field checks as the digest
    payload_hash = keccak256(bytes(reading.payload))
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Reading": [
                {"name": "device", "type": "address"},
                {"name": "seq", "type": "uint64"},
                {"name": "timestamp", "type": "uint64"},
                {"name": "payloadHash", "type": "bytes32"},
            ],
        },
        "primaryType": "Reading",
        "domain": {
            "name": domain.name,
            "version": domain.version,
            "chainId": domain.chain_id,
            "verifyingContract": domain.verifying_contract,
        },
        "message": {
            "device": "0x" + _device_address(reading.device_id).hex(),
            "seq": reading.seq,
            "timestamp": reading.timestamp_ms,
            "payloadHash": "0x" + payload_hash.hex(),
        },
    }


# KEYS


def _scheme_module(scheme: str) -> ModuleType:
    module = _SCHEME_MODULES.get(scheme) if isinstance(scheme, str) else None
    if module is None:
        raise InputRejected(f"unsupported scheme {scheme!r}; expected one of {SCHEMES}")
    return module


def device_id_from_public_key(scheme: str, public_key: bytes) -> str:
    """The device id (lowercase ``0x`` hex) of a public key: ``keccak256(key)[12:]``.

    ``key`` is the 64-byte ``x || y`` for secp256k1 (the Ethereum address) and
    P-256, the 32-byte key for Ed25519. ``ValueError`` for a malformed key.
    """
    canonical = _scheme_module(scheme).canonical_public_key(public_key)
    return "0x" + keccak256(canonical)[12:].hex()


def public_key_of(scheme: str, private_key: bytes) -> bytes:
    """The public key of a 32-byte private key (secp256k1 secret, Ed25519 seed, P-256 scalar).

    secp256k1 and P-256 give 64-byte ``x || y``; Ed25519 the 32-byte key.
    """
    key: bytes = _scheme_module(scheme).public_key_of(private_key)
    return key


@lru_cache(maxsize=KEY_CACHE_SIZE)
def _prepared_key(scheme: str, public_key: bytes) -> _PreparedKey | None:
    """A registry key parsed for verification, or None if it is malformed (cached either way)."""
    try:
        if scheme == "p256":
            native: Any = p256.load_public_key(public_key)
            canonical = p256.canonical_public_key(public_key)
        else:
            canonical = _SCHEME_MODULES[scheme].canonical_public_key(public_key)
            native = canonical
    except ValueError:
        return None
    return _PreparedKey(keccak256(canonical)[12:], native, canonical)


def _registered_key(
    keys: Mapping[str, bytes], scheme: str, device_id: str, address: bytes
) -> _PreparedKey | str:
    """The device's parsed registry key, or the reason it has none usable.

    The registry is authoritative: its key is used whatever id it would derive,
    because the DeviceRegistry's ``rotateKey`` replaces a device's key and keeps
    its id (the derivation names a device at first registration only).
    """
    key = keys.get(device_id.lower())
    if key is None:
        key = keys.get(device_id)
        if key is None:
            return SignatureFault.UNKNOWN_DEVICE
    if isinstance(key, bytearray):
        key = bytes(key)
    elif not isinstance(key, bytes):
        return SignatureFault.MALFORMED_KEY
    if not key and scheme == "secp256k1":
        # as in the DeviceRegistry: no key registered means the device id is the signer
        return _PreparedKey(address, None)
    prepared = _prepared_key(scheme, key)
    if prepared is None:
        return SignatureFault.MALFORMED_KEY
    return prepared


# SIGNING


def sign_reading(reading: Reading, domain: Domain, private_key: bytes) -> Reading:
    """A copy of ``reading`` signed with ``private_key`` under its own scheme.

    The device id is not checked against the key (tests sign with wrong keys on
    purpose); ``ValueError`` for a malformed reading, scheme or key.
    """
    module = _scheme_module(reading.scheme)
    signature: bytes = module.sign(reading_digest(reading, domain), private_key)
    return reading._replace(signature=signature)


# VERIFICATION


class VerdictMemo:
    """Outcomes of signature checks already done, so a later ``verify_many`` can skip the math.

    A check of reading R against key K is a pure function of the scheme, K,
    R's EIP-712 digest (which commits to the domain, device, seq, timestamp and
    payload) and R's signature. Its outcome is remembered under
    ``keccak256(scheme tag || K || 0x1901 || domainSeparator || device || seq ||
    timestamp || signature || payload)``: everything the digest commits to, with
    the payload itself in place of its hash (so a hit costs one keccak instead
    of four; every part but the payload has a fixed length once the scheme is
    known, so the encoding is unambiguous). K is what the check compares with:
    the expected signer address for secp256k1, the canonical key for Ed25519
    and P-256. A rotated key, another domain, another payload or another
    signature is therefore another memo key: an entry can only ever answer the
    very check that produced it, so a memo changes how fast ``verify_many``
    answers, never what it answers. Everything checked before the math (fields,
    registry, encodings, low-s, v) runs on every call.

    At most ``max_entries`` outcomes are kept (~100 bytes each); past that,
    new outcomes are not remembered and simply get checked again later.
    """

    __slots__ = ("_bad", "_good", "max_entries")

    def __init__(self, max_entries: int = MEMO_ENTRIES) -> None:
        if type(max_entries) is not int or max_entries < 0:
            raise InputRejected(f"max_entries must be a non-negative int, got {max_entries!r}")
        self.max_entries = max_entries
        self._good: set[bytes] = set()
        self._bad: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._good) + len(self._bad)

    def lookup(self, key: bytes) -> bool | None:
        """The remembered outcome of the check behind ``key``, or None if unknown."""
        if key in self._good:
            return True
        if key in self._bad:
            return False
        return None

    def record(self, key: bytes, ok: bool) -> None:
        """Remember one check's outcome (dropped when the memo is full)."""
        if len(self._good) + len(self._bad) < self.max_entries:
            (self._good if ok else self._bad).add(key)

    def merge(self, other: VerdictMemo) -> None:
        """Adopt the outcomes ``other`` holds (checked elsewhere, e.g. in a worker process)."""
        room = self.max_entries - len(self)
        if len(other) <= room:
            self._good |= other._good
            self._bad |= other._bad
            return
        for key in other._good:
            self.record(key, True)
        for key in other._bad:
            self.record(key, False)

    def clear(self) -> None:
        """Forget every outcome."""
        self._good.clear()
        self._bad.clear()


class _Batch:
    """One ``verify_many`` call, in two passes.

    ``admit`` does the Python work per reading (fields, digest, registry,
    encodings) and queues the signature math; ``settle`` then runs the queued
    math scheme by scheme in tight loops. Keeping Python work out of those loops
    keeps the libraries' precomputed tables in cache: interleaved, verify_many on
    P-256 ran 3-5% slower.

    Devices send many readings per batch, so each device id is parsed and looked
    up in ``keys`` once per window (``keys`` may differ between calls; the parsed
    keys behind the lookups are cached across calls by ``_prepared_key``).

    With a ``memo``, a check whose outcome it remembers is answered from it
    instead of being queued, and the outcomes of queued checks are recorded
    when they settle (``_memo_keys`` runs parallel to each queue).
    """

    __slots__ = (
        "_addresses",
        "_ed25519",
        "_keys",
        "_memo",
        "_memo_keys",
        "_p256",
        "_prefix",
        "_registered",
        "_secp256k1",
    )

    def __init__(
        self, domain: Domain, keys: Mapping[str, bytes] | None, memo: VerdictMemo | None = None
    ) -> None:
        self._prefix = _digest_prefix(domain)
        self._keys = keys
        self._memo = memo
        self._memo_keys: dict[str, list[bytes]] = {s: [] for s in SCHEMES}
        self._addresses: dict[str, bytes] = {}
        self._registered: dict[str, dict[str, _PreparedKey | str]] = {s: {} for s in SCHEMES}
        # queued signature checks: (index, digest, signature, expected address or parsed key)
        self._secp256k1: list[tuple[int, bytes, bytes, bytes]] = []
        self._ed25519: list[tuple[int, bytes, bytes, bytes]] = []
        self._p256: list[tuple[int, bytes, bytes, Any]] = []

    def _lookup(
        self, keys: Mapping[str, bytes], scheme: str, device_id: str, address: bytes
    ) -> _PreparedKey | str:
        memo = self._registered[scheme]
        found = memo.get(device_id)
        if found is None:
            found = memo[device_id] = _registered_key(keys, scheme, device_id, address)
        return found

    def admit(self, index: int, reading: Reading) -> str | None:
        """Why ``reading`` fails before any signature math, or None once its check is queued."""
        # FIELDS
        try:
            scheme = reading.scheme
            signature = reading.signature
            device_id = reading.device_id
            address = self._addresses.get(device_id)
            if address is None:
                address = self._addresses[device_id] = _device_address(device_id)
            if self._memo is None:
                fields: tuple[bytes, int, int, bytes] | None = None
                struct_hash = _struct_hash(address, reading.seq, reading.timestamp_ms, reading.payload)
            else:
                # the digest waits for a memo miss (_remembered)
                fields = (address, *_checked_fields(reading.seq, reading.timestamp_ms, reading.payload))
        except (AttributeError, TypeError, ValueError):
            # TypeError: an unhashable device id
            return SignatureFault.MALFORMED_READING
        if not isinstance(signature, bytes):
            if not isinstance(signature, bytearray):
                return SignatureFault.MALFORMED_READING
            signature = bytes(signature)
        if scheme not in SCHEMES:
            return SignatureFault.UNSUPPORTED_SCHEME
        digest = b"" if fields is not None else keccak256(self._prefix + struct_hash)
        keys = self._keys

        # SECP256K1: the recovered signer must be the registered key's address
        # (the device id itself without a registry or with an empty key)
        if scheme == "secp256k1":
            if keys is not None:
                registered = self._lookup(keys, scheme, device_id, address)
                if isinstance(registered, str):
                    return registered
                address = registered.address
            problem = secp256k1.signature_problem(signature)
            if problem is not None:
                return problem
            if fields is not None:
                return self._remembered(scheme, address, fields, signature, index, address)
            self._secp256k1.append((index, digest, signature, address))
            return None

        # ED25519 AND P256: the key must come from the registry
        if keys is None:
            return SignatureFault.UNKNOWN_DEVICE
        registered = self._lookup(keys, scheme, device_id, address)
        if isinstance(registered, str):
            return registered
        if scheme == "p256":
            problem = p256.signature_problem(signature)
            if problem is not None:
                return problem
            if fields is not None:
                return self._remembered(
                    scheme, registered.canonical, fields, signature, index, registered.native
                )
            self._p256.append((index, digest, p256.der_signature(signature), registered.native))
            return None
        problem = ed25519.signature_problem(signature)
        if problem is not None:
            return problem
        if fields is not None:
            return self._remembered(
                scheme, registered.canonical, fields, signature, index, registered.native
            )
        self._ed25519.append((index, digest, signature, registered.native))
        return None

    def _remembered(
        self,
        scheme: str,
        identity: bytes,
        fields: tuple[bytes, int, int, bytes],
        signature: bytes,
        index: int,
        key: Any,
    ) -> str | None:
        """The memo's outcome for this check, or None once the check is queued (and its memo key).

        ``fields`` are the device address, seq, timestamp and payload, checked.
        """
        assert self._memo is not None
        device, seq, timestamp_ms, payload = fields
        # the tag fixes the lengths of identity (20/32/64) and signature (65/64/64), and the
        # prefix, device, seq and timestamp have fixed lengths: only the payload, last, varies
        memo_key = keccak256(
            _MEMO_TAGS[scheme]
            + identity
            + self._prefix
            + device
            + seq.to_bytes(8, "big")
            + timestamp_ms.to_bytes(8, "big")
            + signature
            + payload
        )
        known = self._memo.lookup(memo_key)
        if known is not None:
            return None if known else SignatureFault.BAD_SIGNATURE
        self._memo_keys[scheme].append(memo_key)
        digest = keccak256(self._prefix + _struct_hash(device, seq, timestamp_ms, payload))
        if scheme == "secp256k1":
            self._secp256k1.append((index, digest, signature, key))
        elif scheme == "p256":
            self._p256.append((index, digest, p256.der_signature(signature), key))
        else:
            self._ed25519.append((index, digest, signature, key))
        return None

    def settle(self, verdicts: list[Verdict]) -> None:
        """Runs the queued signature checks, failing the verdicts of those that do not verify.

        Empties the queues and the per-device memos, so memory stays bounded by
        one window of readings however long the call.
        """
        bad = _FAILED[SignatureFault.BAD_SIGNATURE]
        if self._secp256k1:
            recover = secp256k1.Recoverer().address
            for index, digest, signature, address in self._secp256k1:
                if recover(digest, signature) != address:
                    verdicts[index] = bad
        if self._ed25519:
            verify = ed25519.Verifier().verify
            for index, digest, signature, key in self._ed25519:
                if not verify(digest, signature, key):
                    verdicts[index] = bad
        verify_der = p256.verify_der
        for index, digest, der, point in self._p256:
            if not verify_der(digest, der, point):
                verdicts[index] = bad
        if self._memo is not None:
            record = self._memo.record
            for queue, scheme in (
                (self._secp256k1, "secp256k1"),
                (self._ed25519, "ed25519"),
                (self._p256, "p256"),
            ):
                memo_keys = self._memo_keys[scheme]
                for item, memo_key in zip(queue, memo_keys, strict=True):
                    record(memo_key, verdicts[item[0]] is not bad)
                memo_keys.clear()
        self._secp256k1.clear()
        self._ed25519.clear()
        self._p256.clear()
        self._addresses.clear()
        for memo in self._registered.values():
            memo.clear()


def verify_many(
    readings: Iterable[Reading],
    domain: Domain,
    keys: Mapping[str, bytes] | None = None,
    *,
    memo: VerdictMemo | None = None,
) -> list[Verdict]:
    """One verdict per reading, in order.

    ``keys`` maps lowercase device ids to registered public keys and is
    authoritative: a signature is checked against the registered key whatever
    id that key would derive (a rotated key keeps its device's id). Ed25519 and
    P-256 readings need their key there (``unknown_device`` otherwise). When
    ``keys`` is given, a secp256k1 device must be in it too and must recover to
    its registered key's address (to the device id for an empty key); when it
    is None, secp256k1 readings must recover to the device id. Never raises for
    a bad reading.

    ``memo`` (optional) answers checks it already knows the outcome of and
    learns the outcomes of the others; the verdicts are the same with or
    without it (see ``VerdictMemo``).
    """
    batch = _Batch(domain, keys, memo)
    admit = batch.admit
    verdicts: list[Verdict] = []
    append = verdicts.append
    for index, reading in enumerate(readings):
        reason = admit(index, reading)
        append(_OK if reason is None else _FAILED[reason])
        if index % WINDOW == WINDOW - 1:
            batch.settle(verdicts)
    batch.settle(verdicts)
    return verdicts


def verify_reading(
    reading: Reading, domain: Domain, keys: Mapping[str, bytes] | None = None
) -> Verdict:
    """The verdict for one reading; the same rules as ``verify_many``."""
    return verify_many((reading,), domain, keys)[0]


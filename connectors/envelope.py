"""The wire envelope every connector carries: one JSON object with hex fields.

    {"device_id": "0x<40 hex>", "seq": 7, "timestamp_ms": 1767225600000,
     "payload": "0x<hex>", "signature": "0x<hex>", "scheme": "secp256k1"}

Parsing checks the shape only (types, hex, ranges, sizes); whether the
signature verifies is the pipeline's question. Every problem raises an
``EnvelopeError`` naming the field and a short reason code, so a connector can
answer the sender precisely and file the message as a dead letter. The layout is
documented in ``docs/wire-envelope.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from veristream.provers.encoding import canonical_json
from veristream.provers.errors import InputRejected
from veristream.provers.readings import Reading

if TYPE_CHECKING:
    from veristream.provers.readings import Reading

_fast_loads: Callable[[bytes], Any]
try:
    # ~4x faster than json.loads on an envelope; the fast path only (see parse_reading_fast)
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is in the beam and ingest extras
    _fast_loads = json.loads

SCHEMES = ("secp256k1", "ed25519", "p256")
FIELDS = ("device_id", "seq", "timestamp_ms", "payload", "signature", "scheme")
REQUIRED = ("device_id", "seq", "timestamp_ms", "payload", "signature")
_FIELD_SET = frozenset(FIELDS)
UINT64_MAX = 2**64 - 1
DEFAULT_MAX_PAYLOAD_BYTES = 4096
MAX_SIGNATURE_BYTES = 256
# JSON overhead of the fixed fields, generously: hex doubles the payload and the signature.
_ENVELOPE_OVERHEAD = 1024

# reason codes of EnvelopeError
MISSING = "missing"
NOT_HEX = "not_hex"
OUT_OF_RANGE = "out_of_range"
TOO_LARGE = "too_large"
NOT_JSON = "not_json"
WRONG_TYPE = "wrong_type"
UNKNOWN_SCHEME = "unknown_scheme"
UNEXPECTED = "unexpected"
EMPTY = "empty"


class EnvelopeError(InputRejected):
    """A message that is not a valid envelope: ``field`` names where, ``reason`` is a short code."""

    def __init__(self, field: str, reason: str, message: str = "") -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" + (f" ({message})" if message else ""))

    def to_dict(self) -> dict[str, str]:
        """The JSON body a connector sends back: ``{"field": ..., "reason": ..., "message": ...}``."""
        return {"field": self.field, "reason": self.reason, "message": str(self)}


def max_envelope_bytes(max_payload_bytes: int) -> int:
    """The largest serialized envelope worth parsing for a payload limit."""
    return 2 * (max_payload_bytes + MAX_SIGNATURE_BYTES) + _ENVELOPE_OVERHEAD


def _uint(obj: dict[str, Any], field: str) -> int:
    value = obj[field]
    if isinstance(value, bool) or not isinstance(value, int):
        raise EnvelopeError(field, WRONG_TYPE, f"expected an integer, got {type(value).__name__}")
    if not 0 <= value <= UINT64_MAX:
        raise EnvelopeError(field, OUT_OF_RANGE, "must be a uint64")
    return value


def _hex(obj: dict[str, Any], field: str, max_bytes: int) -> bytes:
    value = obj[field]
    if not isinstance(value, str):
        raise EnvelopeError(
            field, WRONG_TYPE, f"expected a 0x-hex string, got {type(value).__name__}"
        )
    if not value.startswith(("0x", "0X")):
        raise EnvelopeError(field, NOT_HEX, "must start with 0x")
    text = value[2:]
    # Check the length before decoding so a huge field costs nothing.
    if len(text) > 2 * max_bytes:
        raise EnvelopeError(field, TOO_LARGE, f"more than {max_bytes} bytes")
    if len(text) % 2:
        raise EnvelopeError(field, NOT_HEX, "odd number of hex digits")
    try:
        out = bytes.fromhex(text)
    except ValueError:
        raise EnvelopeError(field, NOT_HEX, "not hexadecimal") from None
    # bytes.fromhex skips whitespace: a short result means the text was not plain hex.
    if 2 * len(out) != len(text):
        raise EnvelopeError(field, NOT_HEX, "not hexadecimal")
    return out


def _device_id(obj: dict[str, Any]) -> str:
    value = obj["device_id"]
    if not isinstance(value, str):
        raise EnvelopeError("device_id", WRONG_TYPE, "expected a 0x-hex string")
    if not value.startswith(("0x", "0X")) or len(value) != 42:
        raise EnvelopeError("device_id", NOT_HEX, "must be 0x followed by 40 hex digits")
    try:
        plain = len(bytes.fromhex(value[2:])) == 20
    except ValueError:
        plain = False
    if not plain:  # not hex, or hex with whitespace that bytes.fromhex skipped
        raise EnvelopeError("device_id", NOT_HEX, "not hexadecimal")
    return "0x" + value[2:].lower()


def _load(raw: bytes | str | dict[str, Any], max_payload_bytes: int) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, bytes | bytearray | memoryview):
        data = bytes(raw)
    elif isinstance(raw, str):
        data = raw.encode("utf-8", "surrogatepass")
    else:
        raise EnvelopeError("envelope", WRONG_TYPE, f"cannot parse {type(raw).__name__}")
    limit = max_envelope_bytes(max_payload_bytes)
    if len(data) > limit:
        raise EnvelopeError("envelope", TOO_LARGE, f"{len(data)} bytes, limit {limit}")
    if not data or data.isspace():
        raise EnvelopeError("envelope", EMPTY, "no bytes")
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise EnvelopeError("envelope", NOT_JSON, str(error)[:120]) from None
    if not isinstance(obj, dict):
        raise EnvelopeError("envelope", WRONG_TYPE, "must be a JSON object")
    return obj


_HEX_PREFIXES = ("0x", "0X")
_REQUIRED_SET = frozenset(REQUIRED)


def parse_reading_fast(raw: bytes, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> Reading | None:
    """The reading of a well-formed envelope, or None when anything about it is unusual
    (then ``parse_reading`` says what).

    The pipeline's hot path: one parse (orjson when installed) and the same
    checks as ``parse_reading`` in straight-line code, so a valid envelope
    gives exactly what ``parse_reading`` gives, and every invalid one is left
    to it (its error messages stay the only ones). Where orjson and ``json``
    differ, orjson refuses (lone surrogates, NaN, a BOM) or yields a float (an
    integer past 64 bits), and both fall back to the careful parser.
    """
    # '{"' first: the careful parser takes every other start (whitespace, a BOM, UTF-16)
    if type(raw) is not bytes or len(raw) > max_envelope_bytes(max_payload_bytes) or raw[:2] != b'{"':
        return None
    try:
        obj = _fast_loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if type(obj) is not dict:
        return None
    keys = obj.keys()
    if keys != _FIELD_SET and keys != _REQUIRED_SET:
        return None
    device_id = obj["device_id"]
    seq = obj["seq"]
    timestamp_ms = obj["timestamp_ms"]
    payload_hex = obj["payload"]
    signature_hex = obj["signature"]
    scheme = obj.get("scheme", "secp256k1")
    if (
        type(device_id) is not str
        or len(device_id) != 42
        or not device_id.startswith(_HEX_PREFIXES)
        or type(seq) is not int
        or not 0 <= seq <= UINT64_MAX
        or type(timestamp_ms) is not int
        or not 0 <= timestamp_ms <= UINT64_MAX
        or type(payload_hex) is not str
        or not payload_hex.startswith(_HEX_PREFIXES)
        or len(payload_hex) > 2 * max_payload_bytes + 2
        or type(signature_hex) is not str
        or not signature_hex.startswith(_HEX_PREFIXES)
        or not 4 <= len(signature_hex) <= 2 * MAX_SIGNATURE_BYTES + 2
        or type(scheme) is not str
        or scheme not in SCHEMES
    ):
        return None
    try:
        address = bytes.fromhex(device_id[2:])
        payload = bytes.fromhex(payload_hex[2:])
        signature = bytes.fromhex(signature_hex[2:])
    except ValueError:
        return None
    # fromhex skips whitespace and accepts nothing odd-length: lengths must match exactly
    if (
        len(address) != 20
        or 2 * len(payload) != len(payload_hex) - 2
        or 2 * len(signature) != len(signature_hex) - 2
    ):
        return None
    return Reading("0x" + device_id[2:].lower(), seq, timestamp_ms, payload, signature, scheme)


def parse_reading(
    raw: bytes | str | dict[str, Any], *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> Reading:
    """The reading one envelope carries; ``EnvelopeError`` naming the first bad field otherwise.

    Fields are checked in a fixed order (``FIELDS``) so the same bad message
    always reports the same field.
    """
    if type(raw) is bytes:
        reading = parse_reading_fast(raw, max_payload_bytes)
        if reading is not None:
            return reading
    obj = _load(raw, max_payload_bytes)
    for field in REQUIRED:
        if field not in obj:
            raise EnvelopeError(field, MISSING)
    if not obj.keys() <= _FIELD_SET:
        unexpected = sorted((k for k in obj if k not in _FIELD_SET), key=str)[0]
        raise EnvelopeError(str(unexpected)[:64], UNEXPECTED, "not an envelope field")
    device_id = _device_id(obj)
    seq = _uint(obj, "seq")
    timestamp_ms = _uint(obj, "timestamp_ms")
    payload = _hex(obj, "payload", max_payload_bytes)
    signature = _hex(obj, "signature", MAX_SIGNATURE_BYTES)
    if not signature:
        raise EnvelopeError("signature", EMPTY)
    scheme = obj.get("scheme", "secp256k1")
    if not isinstance(scheme, str):
        raise EnvelopeError("scheme", WRONG_TYPE, "expected a string")
    if scheme not in SCHEMES:
        raise EnvelopeError("scheme", UNKNOWN_SCHEME, f"one of {', '.join(SCHEMES)}")
    return Reading(device_id, seq, timestamp_ms, payload, signature, scheme)


def reading_to_envelope(reading: Reading) -> dict[str, Any]:
    """The envelope object of a reading (anything with ``Reading``'s attributes)."""
    return {
        "device_id": "0x" + str(reading.device_id)[2:].lower(),
        "payload": "0x" + bytes(reading.payload).hex(),
        "scheme": str(reading.scheme),
        "seq": int(reading.seq),
        "signature": "0x" + bytes(reading.signature).hex(),
        "timestamp_ms": int(reading.timestamp_ms),
    }


def encode_reading(reading: Reading) -> bytes:
    """The canonical wire bytes of a reading (what the simulator sends)."""
    return canonical_json(reading_to_envelope(reading))

"""Multibase base58btc and multicodec prefixes: the text forms of keys, DIDs and proof values.

A Multikey's ``publicKeyMultibase``, a ``did:key`` identifier and a Data
Integrity ``proofValue`` are all ``"z" + base58btc(bytes)``; keys carry a
multicodec prefix (an unsigned LEB128 varint) naming what the bytes are. Only
base58btc is produced; decoding also only accepts it, so one value has one
spelling.
"""

from __future__ import annotations

from veristream.provers.errors import InputRejected

BASE58BTC_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
BASE58BTC_PREFIX = "z"
_BASE58_INDEX = {char: index for index, char in enumerate(BASE58BTC_ALPHABET)}
# A varint of a multicodec code fits in 9 bytes by the multiformats spec
_MAX_VARINT_BYTES = 9


def base58btc_encode(data: bytes) -> str:
    """Bitcoin's base58 of ``data``: each leading zero byte becomes a ``1``."""
    zeros = len(data) - len(data.lstrip(b"\x00"))
    number = int.from_bytes(data, "big")
    digits: list[str] = []
    while number:
        number, remainder = divmod(number, 58)
        digits.append(BASE58BTC_ALPHABET[remainder])
    return "1" * zeros + "".join(reversed(digits))


def base58btc_decode(text: str) -> bytes:
    """The bytes of a base58btc string; ``InputRejected`` for a character outside the alphabet."""
    if not isinstance(text, str):
        raise InputRejected(f"base58btc must be a string, got {type(text).__name__}")
    number = 0
    for char in text:
        digit = _BASE58_INDEX.get(char)
        if digit is None:
            raise InputRejected(f"not base58btc: character {char!r} is outside the alphabet")
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\x00" * zeros + body


def multibase_encode(data: bytes) -> str:
    """``data`` as multibase base58btc: ``"z"`` then its base58btc."""
    return BASE58BTC_PREFIX + base58btc_encode(data)


def multibase_decode(text: str, what: str = "value") -> bytes:
    """The bytes of a multibase base58btc string (``z...``); ``InputRejected`` naming ``what``
    for any other base or a malformed body."""
    if not isinstance(text, str) or not text.startswith(BASE58BTC_PREFIX) or len(text) < 2:
        raise InputRejected(f"{what} must be multibase base58btc ('z...'), got {text!r}")
    try:
        return base58btc_decode(text[1:])
    except InputRejected as exc:
        raise InputRejected(f"{what}: {exc}") from None


def varint_encode(value: int) -> bytes:
    """The unsigned LEB128 varint of ``value`` (multicodec's prefix encoding)."""
    if value < 0:
        raise InputRejected(f"a varint is unsigned, got {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint_decode(data: bytes) -> tuple[int, int]:
    """``(value, length)`` of the minimal unsigned varint at the start of ``data``."""
    value = 0
    for index, byte in enumerate(data[:_MAX_VARINT_BYTES]):
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if byte == 0 and index > 0:
                raise InputRejected("multicodec varint is not minimal")
            return value, index + 1
    raise InputRejected("multicodec varint is truncated or too long")


def multicodec_wrap(code: int, body: bytes) -> bytes:
    """``body`` tagged with the multicodec ``code``."""
    return varint_encode(code) + body


def multicodec_unwrap(data: bytes) -> tuple[int, bytes]:
    """``(code, body)`` of multicodec-tagged bytes."""
    code, length = varint_decode(data)
    return code, data[length:]

"""Byte encodings shared by every part of VeriStream: keccak, ABI words, EIP-712.

One module owns these so Python and Solidity agree in one place. Hot paths call
``keccak256`` directly (tiny-keccak); eth-hash's default backend (pycryptodome)
is several times slower and is never used here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tiny_keccak import keccak256 as _keccak256

from veristream.provers.errors import InputRejected

ADDRESS_LENGTH = 20
WORD = 32
ZERO_ADDRESS = "0x" + "00" * ADDRESS_LENGTH


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (Ethereum's ``keccak256``, not NIST SHA3-256) of ``data``."""
    digest: bytes = _keccak256(data)
    return digest


def parse_address(value: str | bytes) -> bytes:
    """A 20-byte address from ``0x``-hex (any case) or raw bytes; ``ValueError`` otherwise."""
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
    elif isinstance(value, str):
        text = value[2:] if value[:2] in ("0x", "0X") else value
        if len(text) != 2 * ADDRESS_LENGTH:
            raise InputRejected(f"address must be 20 bytes of hex, got {value!r}")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise InputRejected(f"address is not hex: {value!r}") from None
    else:
        raise InputRejected(f"address must be str or bytes, got {type(value).__name__}")
    if len(raw) != ADDRESS_LENGTH:
        raise InputRejected(f"address must be 20 bytes, got {len(raw)}")
    return raw


def parse_bytes32(value: str | bytes) -> bytes:
    """A 32-byte word from ``0x``-hex or raw bytes; ``ValueError`` otherwise."""
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
    elif isinstance(value, str):
        text = value[2:] if value[:2] in ("0x", "0X") else value
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise InputRejected(f"bytes32 is not hex: {value!r}") from None
    else:
        raise InputRejected(f"bytes32 must be str or bytes, got {type(value).__name__}")
    if len(raw) != WORD:
        raise InputRejected(f"bytes32 must be 32 bytes, got {len(raw)}")
    return raw


def check_uint(value: int, bits: int = 256, name: str | None = None) -> int:
    """``value`` when it is an int (not a bool) in ``0 .. 2**bits - 1``: an amount, count or
    id that goes on chain as a ``uint<bits>``; ``ValueError`` naming ``name`` otherwise."""
    what = name or f"uint{bits}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputRejected(f"{what} must be an int, got {type(value).__name__}")
    if value < 0:
        raise InputRejected(f"{what} must not be negative, got {value}")
    if value >> bits:
        raise InputRejected(f"{what} {value} does not fit uint{bits}")
    return value


def uint_word(value: int, bits: int = 256) -> bytes:
    """ABI word of an unsigned integer of ``bits`` bits; ``ValueError`` when out of range."""
    return check_uint(value, bits).to_bytes(WORD, "big")


def address_word(address: bytes) -> bytes:
    """ABI word of a 20-byte address (left-padded)."""
    return b"\x00" * 12 + address


def eip712_type_hash(encoded_type: str) -> bytes:
    """``typeHash`` of EIP-712: keccak256 of the encoded type string."""
    return keccak256(encoded_type.encode())


DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
DOMAIN_TYPE_HASH = eip712_type_hash(DOMAIN_TYPE)


def eip712_domain_separator(
    name: str, version: str, chain_id: int, verifying_contract: str | bytes
) -> bytes:
    """``hashStruct(EIP712Domain)`` for a domain with name, version, chainId, verifyingContract."""
    return keccak256(
        DOMAIN_TYPE_HASH
        + keccak256(name.encode())
        + keccak256(version.encode())
        + uint_word(chain_id)
        + address_word(parse_address(verifying_contract))
    )


def eip712_digest(domain_separator: bytes, struct_hash: bytes) -> bytes:
    """The EIP-712 signing digest ``keccak256(0x1901 || domainSeparator || hashStruct)``."""
    return keccak256(b"\x19\x01" + domain_separator + struct_hash)


# --- ABI value encoding (``abi.encode``) ------------------------------------
#
# Values arrive as OpenZeppelin's JSON has them: addresses and byte strings as
# 0x-hex, integers as ints or decimal / 0x-hex strings, booleans as bools or
# "true" / "false". Rows of static types (address, bool, uintN, intN, bytesN)
# are hand-assembled word by word; anything else (string, bytes, arrays,
# tuples) is normalised to eth-abi's Python values and encoded by eth-abi.


def _parse_int_value(value: Any) -> int:
    """An integer from an int or a decimal / ``0x``-hex string (no bools, no floats)."""
    if isinstance(value, bool):
        raise InputRejected(f"expected an integer, got the bool {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value[1:] if value[:1] == "-" else value
        sign = -1 if text is not value else 1
        if text[:2] in ("0x", "0X") and len(text) > 2 and all(c in _HEX_DIGITS for c in text[2:]):
            return sign * int(text[2:], 16)
        if text.isascii() and text.isdigit():
            return sign * int(text, 10)
        raise InputRejected(f"expected a decimal or 0x-hex integer string, got {value!r}")
    raise InputRejected(f"expected an integer, got {type(value).__name__}")


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _parse_hex_bytes(value: Any, what: str) -> bytes:
    """Raw bytes from ``bytes`` or a ``0x``-hex string."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        if value[:2] not in ("0x", "0X"):
            raise InputRejected(f"{what} must be 0x-hex, got {value!r}")
        text = value[2:]
        if len(text) % 2 or not all(c in _HEX_DIGITS for c in text):
            raise InputRejected(f"{what} is not whole bytes of hex: {value!r}")
        return bytes.fromhex(text)
    raise InputRejected(f"{what} must be a 0x-hex string or bytes, got {type(value).__name__}")


def _parse_bool_value(value: Any) -> bool:
    if value is True or value == "true":
        return True
    if value is False or value == "false":
        return False
    raise InputRejected(f'bool must be true/false or "true"/"false", got {value!r}')


def _int_in_range(value: int, bits: int, signed: bool) -> int:
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= value <= high:
        raise InputRejected(f"{value} does not fit {'int' if signed else 'uint'}{bits}")
    return value


@dataclass(frozen=True, slots=True)
class AbiType:
    """A parsed Solidity ABI type: ``kind`` is address, bool, uint, int, bytesN, bytes,
    string, array or tuple; ``size`` the bit width (uint/int), byte width (bytesN) or
    fixed array length (None for ``T[]``); ``items`` the element or component types."""

    kind: str
    size: int | None = None
    items: tuple[AbiType, ...] = ()

    @property
    def is_static_word(self) -> bool:
        """True for the types encoded as exactly one 32-byte word."""
        return self.kind in ("address", "bool", "uint", "int", "bytesN")

    @property
    def canonical(self) -> str:
        """The canonical type string (``uint`` -> ``uint256``), as eth-abi and Solidity spell it."""
        if self.kind in ("uint", "int"):
            return f"{self.kind}{self.size}"
        if self.kind == "bytesN":
            return f"bytes{self.size}"
        if self.kind == "array":
            return f"{self.items[0].canonical}[{'' if self.size is None else self.size}]"
        if self.kind == "tuple":
            return "(" + ",".join(item.canonical for item in self.items) + ")"
        return self.kind


def parse_abi_type(type_str: str) -> AbiType:
    """Parse a Solidity ABI type string; ``ValueError`` for anything ``abi.encode`` rejects."""
    from eth_abi.exceptions import ABITypeError, ParseError
    from eth_abi.grammar import BasicType, TupleType, normalize, parse

    if not isinstance(type_str, str):
        raise InputRejected(f"ABI type must be a string, got {type(type_str).__name__}")
    try:
        node = parse(normalize(type_str))
        node.validate()
    except (ABITypeError, ParseError) as exc:
        raise InputRejected(f"invalid ABI type {type_str!r}: {exc}") from None

    def convert(node: Any, arrlist: tuple[tuple[int, ...], ...] | None) -> AbiType:
        dims = arrlist if arrlist is not None else (node.arrlist or ())
        if dims:
            *inner, last = dims
            return AbiType("array", last[0] if last else None, (convert(node, tuple(inner)),))
        if isinstance(node, TupleType):
            return AbiType("tuple", None, tuple(convert(c, None) for c in node.components))
        assert isinstance(node, BasicType)
        if node.base in ("uint", "int"):
            return AbiType(node.base, int(node.sub))
        if node.base == "bytes" and node.sub is not None:
            return AbiType("bytesN", int(node.sub))
        if node.base in ("address", "bool", "bytes", "string"):
            return AbiType(node.base)
        raise InputRejected(f"unsupported ABI type {type_str!r}")

    return convert(node, None)


def abi_word(abi_type: AbiType, value: Any) -> bytes:
    """The 32-byte ABI word of a value of a one-word static type."""
    kind = abi_type.kind
    if kind == "address":
        return address_word(parse_address(value))
    if kind == "uint":
        bits = abi_type.size or 256
        return _int_in_range(_parse_int_value(value), bits, False).to_bytes(WORD, "big")
    if kind == "int":
        bits = abi_type.size or 256
        number = _int_in_range(_parse_int_value(value), bits, True)
        return number.to_bytes(WORD, "big", signed=True)
    if kind == "bool":
        return b"\x00" * 31 + (b"\x01" if _parse_bool_value(value) else b"\x00")
    if kind == "bytesN":
        size = abi_type.size or WORD
        raw = _parse_hex_bytes(value, f"bytes{size}")
        if len(raw) != size:
            raise InputRejected(f"bytes{size} must be {size} bytes, got {len(raw)}")
        return raw + b"\x00" * (WORD - size)
    raise InputRejected(f"{abi_type.canonical} is not a one-word static type")


def abi_python_value(abi_type: AbiType, value: Any) -> Any:
    """``value`` (JSON style) as the Python value eth-abi encodes for ``abi_type``."""
    kind = abi_type.kind
    if kind == "address":
        return parse_address(value)
    if kind in ("uint", "int"):
        return _int_in_range(_parse_int_value(value), abi_type.size or 256, kind == "int")
    if kind == "bool":
        return _parse_bool_value(value)
    if kind == "bytesN":
        raw = _parse_hex_bytes(value, abi_type.canonical)
        if len(raw) != abi_type.size:
            raise InputRejected(f"{abi_type.canonical} must be {abi_type.size} bytes, got {len(raw)}")
        return raw
    if kind == "bytes":
        return _parse_hex_bytes(value, "bytes")
    if kind == "string":
        if not isinstance(value, str):
            raise InputRejected(f"string must be a str, got {type(value).__name__}")
        return value
    if isinstance(value, str | bytes | bytearray) or not isinstance(value, Sequence):
        raise InputRejected(f"{abi_type.canonical} needs a list, got {type(value).__name__}")
    if kind == "array":
        if abi_type.size is not None and len(value) != abi_type.size:
            raise InputRejected(f"{abi_type.canonical} needs {abi_type.size} items, got {len(value)}")
        return [abi_python_value(abi_type.items[0], item) for item in value]
    if len(value) != len(abi_type.items):
        raise InputRejected(f"{abi_type.canonical} needs {len(abi_type.items)} items, got {len(value)}")
    return tuple(abi_python_value(t, item) for t, item in zip(abi_type.items, value, strict=True))


def abi_encode(types: Sequence[AbiType], values: Sequence[Any]) -> bytes:
    """``abi.encode(values...)`` for parsed ``types``.

    One-word static types are assembled by hand; the rest goes through eth-abi.
    ``ValueError`` names the column of a value that does not fit its type.
    """
    # VALIDATE
    if isinstance(values, str | bytes | bytearray) or not isinstance(values, Sequence):
        raise InputRejected(f"a row must be a list of {len(types)} values, got {type(values).__name__}")
    if len(values) != len(types):
        raise InputRejected(f"a row must have {len(types)} values, got {len(values)}")
    # STATIC FAST PATH
    if all(t.is_static_word for t in types):
        words = []
        for column, (abi_type, value) in enumerate(zip(types, values, strict=True)):
            try:
                words.append(abi_word(abi_type, value))
            except ValueError as exc:
                raise InputRejected(f"column {column} ({abi_type.canonical}): {exc}") from None
        return b"".join(words)
    # GENERAL PATH
    import eth_abi

    python_values = []
    for column, (abi_type, value) in enumerate(zip(types, values, strict=True)):
        try:
            python_values.append(abi_python_value(abi_type, value))
        except ValueError as exc:
            raise InputRejected(f"column {column} ({abi_type.canonical}): {exc}") from None
    encoded: bytes = eth_abi.encode([t.canonical for t in types], python_values)
    return encoded


# CANONICAL JSON


def canonical_json(value: Any, *, integers_only: bool = False) -> bytes:
    """``value`` as canonical JSON bytes: sorted keys, no spaces, ASCII only (non-ASCII escaped).

    ``integers_only`` (manifests, states: anything hashed or committed) refuses floats and
    non-string keys with ``InputRejected`` instead of encoding them.
    """
    if integers_only:
        _reject_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _reject_floats(value: Any) -> None:
    if isinstance(value, float):
        raise InputRejected("canonical JSON carries integers only, got a float")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InputRejected(f"canonical JSON keys must be strings, got {key!r}")
            _reject_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_floats(item)

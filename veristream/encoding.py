"""Byte encodings shared by every part of VeriStream: keccak, ABI words, EIP-712.

One module owns these so Python and Solidity agree in one place. Hot paths call
``keccak256`` directly (tiny-keccak, ~1 us for 64 bytes); eth-hash's default
backend (pycryptodome) is ~5x slower and is never used here.
"""

from __future__ import annotations

from tiny_keccak import keccak256 as _keccak256

ADDRESS_LENGTH = 20
WORD = 32


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
            raise ValueError(f"address must be 20 bytes of hex, got {value!r}")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise ValueError(f"address is not hex: {value!r}") from None
    else:
        raise ValueError(f"address must be str or bytes, got {type(value).__name__}")
    if len(raw) != ADDRESS_LENGTH:
        raise ValueError(f"address must be 20 bytes, got {len(raw)}")
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
            raise ValueError(f"bytes32 is not hex: {value!r}") from None
    else:
        raise ValueError(f"bytes32 must be str or bytes, got {type(value).__name__}")
    if len(raw) != WORD:
        raise ValueError(f"bytes32 must be 32 bytes, got {len(raw)}")
    return raw


def uint_word(value: int, bits: int = 256) -> bytes:
    """ABI word of an unsigned integer of ``bits`` bits; ``ValueError`` when out of range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"uint{bits} must be an int, got {type(value).__name__}")
    if value < 0 or value >> bits:
        raise ValueError(f"{value} does not fit uint{bits}")
    return value.to_bytes(WORD, "big")


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

"""The one reading type, from the wire decoder to the batch writer, and the domain it is signed under.

A ``Reading`` is what a device signs and sends: its id (an Ethereum-style
address derived from its key), a per-device sequence number, its own
timestamp, an opaque payload and the signature over the EIP-712 digest of
those fields under a ``Domain`` (``veristream.provers.signing``). It is never
validated on construction: a malformed reading must reach the signature check
and get a verdict. It is a named tuple because Beam and Ray pickle readings
between processes by the million, and a tuple pickles several times faster
than a class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from veristream.provers.encoding import ZERO_ADDRESS, parse_address, uint_word
from veristream.provers.errors import InputRejected

SCHEMES = ("secp256k1", "ed25519", "p256")


class Reading(NamedTuple):
    """One signed reading as a device sends it."""

    device_id: str
    seq: int
    timestamp_ms: int
    payload: bytes
    signature: bytes
    scheme: str = "secp256k1"


@dataclass(frozen=True, slots=True)
class Domain:
    """The EIP-712 domain readings are signed under; ``verifying_contract`` is the DeviceRegistry."""

    name: str = "VeriStream"
    version: str = "1"
    chain_id: int = 1
    verifying_contract: str = ZERO_ADDRESS

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not isinstance(self.version, str):
            raise InputRejected("domain name and version must be strings")
        uint_word(self.chain_id)
        if not isinstance(self.verifying_contract, str):
            raise InputRejected("verifying_contract must be a 0x-hex address string")
        parse_address(self.verifying_contract)

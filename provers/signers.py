"""Who may sign on a chain: the development chains' ids and the accepted forms of a signer.

A signer is named, never written out: ``env:NAME`` (a hex key in an environment
variable), ``keystore:PATH`` (an encrypted JSON keystore) or ``node`` (a development
node's unlocked account). ``contracts.wallet`` loads the key a signer names.
"""

from __future__ import annotations

from veristream.provers.errors import InputRejected

# anvil and Hardhat (31337), geth --dev and Ganache (1337), eth-tester's embedded EVM
DEVELOPMENT_CHAIN_IDS = frozenset({31337, 1337, 131277322940537})

SIGNER_FORMS = "env:NAME (a hex key in that environment variable), keystore:PATH (an encrypted JSON keystore) or node"


def is_private_key(text: str) -> bool:
    """Whether ``text`` looks like a raw secp256k1 private key (64 hex digits, with or without 0x)."""
    body = text[2:] if text.startswith(("0x", "0X")) else text
    return len(body) == 64 and all(c in "0123456789abcdefABCDEF" for c in body)


def check_signer_spec(signer: str) -> str:
    """``signer`` if it is one of the accepted forms; ``InputRejected`` otherwise (a raw key
    written where a reference to one belongs is refused without echoing it)."""
    if is_private_key(signer):
        raise InputRejected(
            f"a private key must not be written into a job file or a command line: give the signer as {SIGNER_FORMS}"
        )
    if signer == "node" or (signer.startswith("env:") and len(signer) > 4) or (
        signer.startswith("keystore:") and len(signer) > 9
    ):
        return signer
    raise InputRejected(f"signer must be {SIGNER_FORMS}, got {signer!r}")

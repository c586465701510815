"""An ERC-20 as people read its amounts: its symbol and decimals, read from the chain.

Rewards are integers in the token's smallest unit everywhere (specs, trees,
claims); ``TokenInfo.format`` is the one place they become whole tokens for
display, with integer arithmetic only, so ``518711459`` of a 6-decimal ``USDC``
shows as ``518.711459 USDC``.
"""

from __future__ import annotations

from dataclasses import dataclass

from web3.exceptions import Web3Exception

from veristream.contracts.chain import Chain
from veristream.contracts.deploy import checksum_address, contract
from veristream.provers.errors import InputRejected, VeriStreamError

MAX_DECIMALS = 77
"""Above this, 10**decimals exceeds uint256: no amount could have a whole part."""


def format_units(amount: int, decimals: int) -> str:
    """``amount`` smallest units as whole tokens of ``decimals`` decimals, exactly (integer
    arithmetic; the fraction's trailing zeros dropped): ``format_units(518711459, 6)`` is
    ``"518.711459"``, ``format_units(5 * 10**18, 18)`` is ``"5"``."""
    if not 0 <= decimals <= MAX_DECIMALS:
        raise InputRejected(f"decimals must be 0..{MAX_DECIMALS}, got {decimals}")
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**decimals)
    if fraction == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{str(fraction).rjust(decimals, '0').rstrip('0')}"


@dataclass(frozen=True)
class TokenInfo:
    """An ERC-20's address, symbol and decimals."""

    address: str
    symbol: str
    decimals: int

    def format(self, amount: int) -> str:
        """``amount`` (smallest units) for people, e.g. ``518.711459 USDC``."""
        return f"{format_units(amount, self.decimals)} {self.symbol}"

    def to_json(self) -> dict[str, object]:
        """The token as ``--json`` output shows it."""
        return {"address": self.address, "symbol": self.symbol, "decimals": self.decimals}


def read_token(chain: Chain, address: str) -> TokenInfo:
    """The ERC-20 at ``address``: its ``symbol()`` and ``decimals()``; ``InputRejected`` when
    no contract is there or it does not answer them as an ERC-20 does."""
    checksummed = checksum_address(address)
    # CHECK: a contract, not an empty account (a call to one returns nothing, not an error)
    if not chain.w3.eth.get_code(checksummed):
        raise InputRejected(f"no contract at {checksummed} on chain {chain.chain_id}: not an ERC-20 token")
    # READ
    erc20 = contract(chain, "RewardToken", checksummed)
    try:
        symbol = str(chain.call(erc20.functions.symbol()))
        decimals = int(chain.call(erc20.functions.decimals()))
    except (VeriStreamError, Web3Exception, ValueError, OverflowError) as error:
        raise InputRejected(
            f"the contract at {checksummed} does not answer symbol() and decimals() as an ERC-20: {error}"
        ) from None
    if not 0 <= decimals <= MAX_DECIMALS:
        raise InputRejected(f"the token at {checksummed} claims {decimals} decimals")
    return TokenInfo(checksummed, symbol, decimals)

"""Signing and sending transactions as a careful wallet does, on any JSON-RPC node.

A ``Wallet`` holds one locally kept key (``env:NAME`` or ``keystore:PATH``) and signs every
transaction itself; the node only ever sees raw signed transactions. It keeps one nonce
sequence per signer (concurrent senders never collide), prices transactions with EIP-1559
fees read from the node (capped), waits for receipts with a timeout, re-sends a transaction
the node dropped, replaces one stuck in the pool with a higher fee (same nonce), and waits
``confirmations`` blocks before reporting it mined. ``node`` signers (a development node's
unlocked account) send with ``eth_sendTransaction`` instead.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veristream.provers.errors import ChainError, InputRejected
from veristream.provers.signers import check_signer_spec, is_private_key

KEYSTORE_PASSWORD_ENV = "VERISTREAM_KEYSTORE_PASSWORD"
GWEI = 10**9


def load_account(signer: str, *, password: str | None = None) -> Any | None:
    """The ``eth_account`` account ``signer`` names, or ``None`` for ``node``.

    ``keystore:PATH`` is decrypted with ``password``, else ``$VERISTREAM_KEYSTORE_PASSWORD``,
    else a prompt when standard input is a terminal.
    """
    from eth_account import Account

    check_signer_spec(signer)
    if signer == "node":
        return None
    if signer.startswith("env:"):
        name = signer[4:]
        value = os.environ.get(name)
        if not value:
            raise InputRejected(f"signer {signer}: environment variable {name} is not set")
        if not is_private_key(value.strip()):
            raise InputRejected(f"signer {signer}: {name} does not hold a 32-byte hex private key")
        return Account.from_key(value.strip())
    path = Path(signer[len("keystore:") :]).expanduser()
    try:
        keystore = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputRejected(f"signer {signer}: cannot read the keystore ({exc})") from None
    secret = password if password is not None else os.environ.get(KEYSTORE_PASSWORD_ENV)
    if secret is None:
        if not sys.stdin.isatty():
            raise InputRejected(f"signer {signer}: set {KEYSTORE_PASSWORD_ENV} (no terminal to ask for the password)")
        secret = getpass.getpass(f"password for {path}: ")
    try:
        key = Account.decrypt(keystore, secret)
    except ValueError:
        raise InputRejected(f"signer {signer}: wrong keystore password (nothing was sent)") from None
    return Account.from_key(key)


@dataclass(frozen=True, slots=True)
class TxPolicy:
    """How transactions are priced and awaited."""

    max_fee_gwei: int | None = None  # cap of maxFeePerGas; None: no cap
    receipt_timeout_s: float = 60.0  # then the transaction is re-sent or replaced
    max_replacements: int = 3
    fee_bump_percent: int = 25  # nodes require at least 10% more to replace
    confirmations: int = 0
    poll_s: float = 0.2


class NonceManager:
    """One nonce sequence per (chain, signer) in this process: concurrent senders never reuse a
    nonce. With nothing of ours in flight the sequence follows the node's pending count, so it
    resyncs after a node restart or when another process sent with the same key."""

    _lock = threading.Lock()
    _next: dict[tuple[int, str], int] = {}  # noqa: RUF012 - shared by design
    _in_flight: dict[tuple[int, str], int] = {}  # noqa: RUF012

    @classmethod
    def take(cls, w3: Any, chain_id: int, address: str) -> int:
        """The next nonce for ``address``, reserved until ``done``."""
        with cls._lock:
            key = (chain_id, address)
            pending = int(w3.eth.get_transaction_count(address, "pending"))
            nonce = pending if not cls._in_flight.get(key) else max(pending, cls._next.get(key, 0))
            cls._next[key] = nonce + 1
            cls._in_flight[key] = cls._in_flight.get(key, 0) + 1
            return nonce

    @classmethod
    def done(cls, chain_id: int, address: str) -> None:
        """The transaction that took a nonce was mined, or never sent."""
        with cls._lock:
            key = (chain_id, address)
            cls._in_flight[key] = max(0, cls._in_flight.get(key, 0) - 1)


@dataclass
class Sent:
    """A transaction sent and mined, with what it took."""

    receipt: dict[str, Any]
    resends: int = 0
    replacements: int = 0


def eip1559_fees(w3: Any, policy: TxPolicy, bump_percent: int = 0) -> tuple[int, int]:
    """(maxFeePerGas, maxPriorityFeePerGas) from the node's base fee and tip, bumped by
    ``bump_percent`` and capped by ``policy.max_fee_gwei``."""
    base = int(w3.eth.get_block("latest").get("baseFeePerGas", 0))
    try:
        tip = int(w3.eth.max_priority_fee)
    except Exception:  # nodes without eth_maxPriorityFeePerGas
        tip = GWEI
    tip = tip * (100 + bump_percent) // 100
    max_fee = (2 * base + tip) * (100 + bump_percent) // 100
    if policy.max_fee_gwei is not None:
        cap = policy.max_fee_gwei * GWEI
        if base > cap:
            raise ChainError(f"the base fee {base / GWEI:.3f} gwei is above chain.max_fee_gwei {policy.max_fee_gwei}")
        max_fee = min(max_fee, cap)
        tip = min(tip, max_fee)
    return max_fee, tip


def send_signed(w3: Any, account: Any, tx: dict[str, Any], policy: TxPolicy) -> Sent:
    """Signs ``tx`` (a built transaction without nonce or fees) with ``account``, sends it raw
    and waits for it, re-sending a dropped transaction and replacing a stuck one."""
    chain_id = int(tx.get("chainId") or w3.eth.chain_id)
    address = account.address
    nonce = NonceManager.take(w3, chain_id, address)
    try:
        sent = Sent(receipt={})
        bump = 0
        hashes: list[bytes] = []
        while True:
            max_fee, tip = eip1559_fees(w3, policy, bump)
            signed = account.sign_transaction(
                {**tx, "nonce": nonce, "chainId": chain_id, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip, "type": 2}
            )
            raw = signed.raw_transaction
            try:
                hashes.append(bytes(w3.eth.send_raw_transaction(raw)))
            except Exception as exc:
                text = str(exc).lower()
                if "already known" in text or "already imported" in text:
                    hashes.append(bytes(signed.hash))
                elif "nonce too low" in text and (hashes or sent.resends):
                    hashes.append(bytes(signed.hash))  # a version was mined meanwhile: found below
                elif "underpriced" in text and sent.replacements < policy.max_replacements:
                    sent.replacements += 1  # an older version waits in the pool: outbid it
                    bump += policy.fee_bump_percent
                    continue
                else:
                    raise
            receipt = _await_any(w3, hashes, policy)
            if receipt is not None:
                if _confirmed(w3, receipt, policy):
                    sent.receipt = receipt
                    break
                # reorganised away before it had its confirmations: send the same transaction again
                sent.resends += 1
                hashes = []
                continue
            if sent.replacements >= policy.max_replacements:
                raise ChainError(
                    f"transaction {nonce} of {address} was not mined after {policy.max_replacements} fee bumps"
                )
            if _in_pool(w3, hashes[-1]):
                sent.replacements += 1
                bump += policy.fee_bump_percent
            else:
                sent.resends += 1  # dropped by the node: send again, same nonce
    finally:
        NonceManager.done(chain_id, address)
    return sent


def _in_pool(w3: Any, tx_hash: bytes) -> bool:
    try:
        return w3.eth.get_transaction(tx_hash) is not None
    except Exception:
        return False


def _await_any(w3: Any, hashes: list[bytes], policy: TxPolicy) -> dict[str, Any] | None:
    """The receipt of whichever of ``hashes`` (versions of one nonce) is mined within the
    timeout, else None."""
    deadline = time.monotonic() + policy.receipt_timeout_s
    while time.monotonic() < deadline:
        for tx_hash in reversed(hashes):
            try:
                receipt = w3.eth.get_transaction_receipt(tx_hash)
            except Exception:
                receipt = None
            if receipt is not None:
                return dict(receipt)
        time.sleep(policy.poll_s)
    return None


def _confirmed(w3: Any, receipt: dict[str, Any], policy: TxPolicy) -> bool:
    """Waits until ``receipt``'s block has ``policy.confirmations`` blocks on top; False when
    the transaction left the chain meanwhile (a reorganisation)."""
    if policy.confirmations <= 0:
        return True
    block = int(receipt["blockNumber"])
    deadline = time.monotonic() + max(60.0, policy.receipt_timeout_s * policy.confirmations)
    while True:
        try:
            current = w3.eth.get_transaction_receipt(receipt["transactionHash"])
        except Exception:
            current = None
        if current is None or current["blockHash"] != receipt["blockHash"]:
            return False
        if int(w3.eth.block_number) - block + 1 >= policy.confirmations:
            return True
        if time.monotonic() > deadline:
            raise ChainError(f"block {block} did not reach {policy.confirmations} confirmations")
        time.sleep(policy.poll_s)

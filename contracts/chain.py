"""One chain behind one configuration: the embedded in-process EVM or any JSON-RPC node.

The embedded chain is eth-tester's py-evm backend (Prague). Its state lives in a
key-value store in memory; ``Chain.save`` journals that store (every trie node, block
and receipt; see ``statefile``) to ``<workdir>/chain.db`` and ``connect(workdir)``
loads it back, so a later process continues the very same chain (same head, same
state root) instead of replaying transactions (which would re-run pure-Python
pairings). Saves happen after every transaction sent through ``Chain.transact``; one
process at a time holds a work directory (an exclusive lock file guards it).
"""

from __future__ import annotations

import contextlib
import fcntl
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from veristream.contracts.artifacts import ContractRevert, decode_revert
from veristream.contracts.statefile import StateJournal
from veristream.contracts.wallet import TxPolicy, load_account, send_signed
from veristream.provers.errors import ChainError, InputRejected, NotFound

STATE_FILE = "chain.db"
LOCK_FILE = "chain.lock"
# Gas for embedded transactions: sent without estimation (estimating re-runs a transaction
# many times, and a pure-Python pairing costs ~1 s), well below the block's 30M.
EMBEDDED_TX_GAS = 15_000_000
RPC_TX_GAS_CAP = 16_000_000


@dataclass(frozen=True, slots=True)
class ChainConfig:
    """Where the chain is: ``url`` (``http(s)://`` or ``ipc://PATH``) for a JSON-RPC node, else
    the embedded EVM in ``workdir``.

    ``private_key`` (hex) signs transactions locally for nodes without unlocked accounts;
    without it the node's first account sends. ``workdir=None`` with no url is an
    embedded chain kept in memory only. ``gas_limit`` skips per-transaction estimation on
    a node (a dev node such as anvil: estimation re-executes each transaction many times).
    """

    url: str | None = None
    workdir: Path | None = None
    private_key: str | None = None
    gas_limit: int | None = None  # JSON-RPC: send with this gas instead of estimating each tx
    signer: str | None = None  # env:NAME, keystore:PATH or node (see contracts.wallet)
    policy: TxPolicy = field(default_factory=TxPolicy)
    rpc_retries: int = 6
    read_only: bool = False  # embedded: load an existing chain's state, write and lock nothing


@dataclass(frozen=True, slots=True)
class Receipt:
    """The outcome of a mined transaction."""

    tx_hash: str
    gas_used: int
    block_number: int
    contract_address: str | None = None


class Chain:
    """A web3 connection plus the sender and, for the embedded EVM, its persistence."""

    def __init__(
        self,
        w3: Any,
        sender: str,
        *,
        tester: Any = None,
        workdir: Path | None = None,
        gas_limit: int | None = None,
        account: Any = None,
        policy: TxPolicy | None = None,
        url: str | None = None,
    ) -> None:
        self.w3 = w3
        self.sender = sender
        self.url = url
        self._account = account  # signs locally and sends raw; None: the node's unlocked account
        self.policy = policy or TxPolicy()
        self.stats = {"sent": 0, "resends": 0, "replacements": 0}
        self.gas_limit = EMBEDDED_TX_GAS if tester is not None else gas_limit
        self.chain_id: int = int(w3.eth.chain_id)
        self._tester = tester
        self.workdir = workdir
        self._lock: Any = None
        self._journal: StateJournal | None = None

    @property
    def embedded(self) -> bool:
        """True for the in-process EVM."""
        return self._tester is not None

    @property
    def accounts(self) -> list[str]:
        """The accounts the node (or eth-tester) can send from."""
        return list(self.w3.eth.accounts)

    def transact(self, fn: Any, sender: str | None = None, value: int = 0) -> Receipt:
        """Sends a contract call (or constructor) and waits for it; a revert raises ``ContractRevert``."""
        tx: dict[str, Any] = {"from": sender or self.sender}
        if value:
            tx["value"] = value
        local = self._account is not None and tx["from"] == self._account.address
        try:
            if self.gas_limit is not None:
                tx["gas"] = self.gas_limit
            else:
                # The estimate runs against the current block; mined in a later one a change
                # may start a new checkpoint instead of editing one (~130k more): add headroom.
                tx["gas"] = min(int(fn.estimate_gas(tx)) * 5 // 4 + 200_000, RPC_TX_GAS_CAP)
            if local:
                built = fn.build_transaction({**tx, "nonce": 0, "maxFeePerGas": 1, "maxPriorityFeePerGas": 1})
                unsigned = {k: built[k] for k in ("to", "data", "value", "gas", "chainId") if k in built}
                sent = send_signed(self.w3, self._account, unsigned, self.policy)
                self.stats["sent"] += 1
                self.stats["resends"] += sent.resends
                self.stats["replacements"] += sent.replacements
                receipt = sent.receipt
            else:
                tx_hash = fn.transact(tx)
        except ChainError:
            raise
        except Exception as exc:
            raise decode_revert(exc) from exc
        if not local:
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            # Only the failure path pays a second execution, to recover the revert data.
            self._raise_revert(fn, tx, receipt["blockNumber"])
        self.save()
        address = receipt.get("contractAddress")
        return Receipt(
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
            gas_used=int(receipt["gasUsed"]),
            block_number=int(receipt["blockNumber"]),
            contract_address=str(address) if address else None,
        )

    def _raise_revert(self, fn: Any, tx: dict[str, Any], block_number: int) -> None:
        try:
            if hasattr(fn, "call"):
                fn.call(tx, block_identifier=block_number - 1)
            else:
                self.w3.eth.call({**tx, "data": fn.data_in_transaction}, block_number - 1)
        except Exception as exc:
            raise decode_revert(exc) from exc
        raise ContractRevert("UnknownRevert", ())

    def call(self, fn: Any) -> Any:
        """Calls a view; a revert raises ``ContractRevert``."""
        try:
            return fn.call({"from": self.sender})
        except Exception as exc:
            raise decode_revert(exc) from exc

    def timestamp(self) -> int:
        """The latest block's timestamp."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def advance_time(self, seconds: int) -> None:
        """Moves the chain's clock forward (embedded EVM and anvil only), mining one block."""
        if seconds <= 0:
            raise InputRejected("seconds must be positive")
        if self.embedded:
            pending = int(self._tester.get_block_by_number("pending")["timestamp"])
            # the pending block may already be ahead of the latest one (wall clock)
            self._tester.time_travel(max(self.timestamp(), pending, int(time.time())) + seconds)
            self.save()
        else:
            self.w3.provider.make_request("evm_increaseTime", [seconds])
            self.w3.provider.make_request("evm_mine", [])

    def save(self) -> None:
        """Persists the embedded chain's store to the work directory (appends what changed)."""
        if not self.embedded or self._journal is None:
            return
        self._journal.save(self._tester.backend.chain.chaindb.db.wrapped_db.kv_store)

    def close(self) -> None:
        """Saves (embedded) and releases the work directory's lock."""
        self.save()
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


def _embedded(workdir: Path | None) -> Chain:
    from eth.db.atomic import AtomicDB
    from eth.db.backends.memory import MemoryDB
    from eth_tester import EthereumTester, PyEVMBackend
    from web3 import EthereumTesterProvider, Web3

    from veristream.contracts.native_precompiles import install_native_precompiles

    install_native_precompiles()  # BLS12-381 pairing and map to G2 on blst, not pure Python
    backend = PyEVMBackend()
    lock = None
    journal: StateJournal | None = None
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        lock = open(workdir / LOCK_FILE, "a+")  # noqa: SIM115 - held for the Chain's lifetime
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise InputRejected(f"the embedded chain in {workdir} is open in another process") from None
        journal = StateJournal(workdir / STATE_FILE)
        store = journal.load()
        if store:
            # The head block and every trie are in the store; the chain resumes from its head.
            backend.chain = type(backend.chain)(AtomicDB(MemoryDB(store)))
    tester = EthereumTester(backend)
    w3 = Web3(EthereumTesterProvider(tester))
    chain = Chain(w3, w3.eth.accounts[0], tester=tester, workdir=workdir)
    chain._lock = lock
    chain._journal = journal
    chain.save()
    return chain


def _embedded_read_only(workdir: Path | None) -> Chain:
    """An embedded chain's saved state for reading: nothing is created, locked or saved (what a
    read command opens, even beside a running writer); ``NotFound`` when there is no chain."""
    from eth.db.atomic import AtomicDB
    from eth.db.backends.memory import MemoryDB
    from eth_tester import EthereumTester, PyEVMBackend
    from web3 import EthereumTesterProvider, Web3

    if workdir is None or not (workdir / STATE_FILE).is_file():
        raise NotFound(f"no embedded chain in {workdir}: run the job first (veristream run JOB)")
    from veristream.contracts.native_precompiles import install_native_precompiles

    install_native_precompiles()
    backend = PyEVMBackend()
    backend.chain = type(backend.chain)(AtomicDB(MemoryDB(StateJournal(workdir / STATE_FILE).load(truncate=False))))
    tester = EthereumTester(backend)
    w3 = Web3(EthereumTesterProvider(tester))
    return Chain(w3, w3.eth.accounts[0], tester=tester)


class _RetryingHTTPProvider:
    """Builds an HTTP provider whose requests are retried on connection errors, timeouts, 5xx
    and 429 with exponential backoff and jitter; after the last try a one-line ``ChainError``
    names the node and the call."""

    @staticmethod
    def build(url: str, retries: int) -> Any:
        import requests
        from web3 import HTTPProvider

        class Provider(HTTPProvider):
            def make_request(self, method: Any, params: Any) -> Any:
                for attempt in range(retries + 1):
                    try:
                        return super().make_request(method, params)
                    except (requests.ConnectionError, requests.Timeout, requests.HTTPError) as exc:
                        status = getattr(getattr(exc, "response", None), "status_code", None)
                        if isinstance(exc, requests.HTTPError) and status is not None and status < 500 and status != 429:
                            raise
                        if attempt == retries:
                            raise ChainError(
                                f"{url} did not answer {method} after {retries + 1} tries: {type(exc).__name__}"
                            ) from None
                        time.sleep(min(8.0, 0.1 * 2**attempt) * random.uniform(0.5, 1.5))
                raise AssertionError("unreachable")

        return Provider(url, request_kwargs={"timeout": 120}, exception_retry_configuration=None)


def _rpc(config: ChainConfig) -> Chain:
    from web3 import IPCProvider, Web3

    url = config.url or ""
    if url.startswith("ipc://"):
        w3 = Web3(IPCProvider(url[len("ipc://") :], timeout=120))
    elif url.startswith(("http://", "https://")):
        w3 = Web3(_RetryingHTTPProvider.build(url, config.rpc_retries))
    else:
        raise InputRejected(f"chain url must be http(s):// or ipc://PATH, got {url!r}")
    account = None
    if config.signer is not None:
        account = load_account(config.signer)
    elif config.private_key:
        from eth_account import Account

        account = Account.from_key(config.private_key)
    if account is not None:
        sender = account.address
    else:
        try:
            accounts = w3.eth.accounts
        except ChainError:
            raise
        except Exception as exc:
            raise ChainError(f"{url} cannot be reached: {type(exc).__name__}") from None
        if not accounts:
            raise InputRejected(f"{url} has no unlocked accounts: give a signer (env:NAME or keystore:PATH)")
        sender = accounts[0]
    return Chain(w3, sender, gas_limit=config.gas_limit, account=account, policy=config.policy, url=url)


URL_SCHEMES = ("http://", "https://", "ipc://")


def connect(target: ChainConfig | str | Path | None = None) -> Chain:
    """A ``Chain`` for a config, a JSON-RPC url, or an embedded chain's work directory.

    ``None`` is an embedded chain in memory only (nothing saved).
    """
    if isinstance(target, ChainConfig):
        if target.url:
            return _rpc(target)
        if target.read_only:
            return _embedded_read_only(target.workdir)
        return _embedded(target.workdir)
    if isinstance(target, str):
        if target.startswith(URL_SCHEMES):
            return _rpc(ChainConfig(url=target))
        return _embedded(Path(target))
    if isinstance(target, Path):
        return _embedded(target)
    if target is None:
        return _embedded(None)
    raise InputRejected(f"cannot connect to {target!r}")


@contextlib.contextmanager
def connected(target: ChainConfig | str | Path | None = None) -> Iterator[Chain]:
    """``connect`` as a context manager that closes (and saves) the chain."""
    chain = connect(target)
    try:
        yield chain
    finally:
        chain.close()

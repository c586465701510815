"""The compiled contracts shipped with the package, and the decoding of their reverts.

``contracts/artifacts/<Name>.json`` (ABI and bytecode) are produced by
``node infra/compile_contracts.mjs`` from ``contracts/src`` and committed, so users
need no compiler; a test fails when they differ from a fresh compile.
"""

from __future__ import annotations

import ast
import contextlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode

from veristream.provers.encoding import keccak256
from veristream.provers.errors import ChainError, InputRejected

ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts"
SOURCE_DIR = Path(__file__).resolve().parent / "src"


class ContractRevert(ChainError):
    """A transaction or call reverted; ``error`` is the Solidity custom error's name."""

    def __init__(self, error: str, args: tuple[Any, ...]) -> None:
        super().__init__(f"{error}{args!r}" if args else error)
        self.error = error
        self.error_args = args


@cache
def load_artifact(name: str) -> dict[str, Any]:
    """The artifact of contract ``name``: ``abi``, ``bytecode``, ``deployedBytecode``."""
    path = ARTIFACT_DIR / f"{name}.json"
    if not path.is_file():
        raise InputRejected(f"no compiled artifact for contract {name!r} in {ARTIFACT_DIR}")
    artifact: dict[str, Any] = json.loads(path.read_text())
    return artifact


def artifact_names() -> list[str]:
    """Names of every shipped contract artifact."""
    return sorted(p.stem for p in ARTIFACT_DIR.glob("*.json"))


def _signature(item: dict[str, Any]) -> str:
    def kind(inp: dict[str, Any]) -> str:
        t: str = inp["type"]
        if t.startswith("tuple"):
            return "(" + ",".join(kind(c) for c in inp["components"]) + ")" + t[5:]
        return t

    return f"{item['name']}(" + ",".join(kind(i) for i in item["inputs"]) + ")"


@cache
def error_table() -> dict[bytes, tuple[str, list[str]]]:
    """Selector -> (error name, ABI types) for every custom error of every artifact."""
    table: dict[bytes, tuple[str, list[str]]] = {
        bytes.fromhex("08c379a0"): ("Error", ["string"]),
        bytes.fromhex("4e487b71"): ("Panic", ["uint256"]),
    }
    for name in artifact_names():
        for item in load_artifact(name)["abi"]:
            if item["type"] == "error":
                sig = _signature(item)
                types = sig[sig.index("(") + 1 : -1]
                table[keccak256(sig.encode())[:4]] = (item["name"], _split_types(types))
    return table


def _split_types(types: str) -> list[str]:
    out: list[str] = []
    depth = 0
    current = ""
    for ch in types:
        if ch == "," and depth == 0:
            out.append(current)
            current = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        current += ch
    if current:
        out.append(current)
    return out


def decode_error_data(data: bytes) -> ContractRevert:
    """The ``ContractRevert`` of raw revert data (selector + ABI-encoded arguments)."""
    if len(data) < 4:
        return ContractRevert("EmptyRevert", ())
    entry = error_table().get(data[:4])
    if entry is None:
        return ContractRevert("UnknownError", (data.hex(),))
    name, types = entry
    try:
        args = tuple(abi_decode(types, data[4:]))
    except Exception:
        args = (data[4:].hex(),)
    return ContractRevert(name, args)


def _revert_data(exc: BaseException) -> bytes | None:
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    for arg in exc.args:
        if isinstance(arg, bytes | bytearray):
            return bytes(arg)
        if isinstance(arg, BaseException):
            found = _revert_data(arg)
            if found is not None:
                return found
        if isinstance(arg, str) and ("b'" in arg or 'b"' in arg):
            # eth-tester formats raw revert bytes into its message as a Python literal
            start = arg.find("b'") if "b'" in arg else arg.find('b"')
            with contextlib.suppress(ValueError, SyntaxError):
                value = ast.literal_eval(arg[start:])
                if isinstance(value, bytes):
                    return value
    return None


def decode_revert(exc: BaseException) -> ContractRevert | BaseException:
    """The ``ContractRevert`` behind a web3 / eth-tester exception, or ``exc`` itself."""
    if isinstance(exc, ContractRevert):
        return exc
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        data = _revert_data(current)
        if data is not None:
            return decode_error_data(data)
        current = current.__cause__ or current.__context__
    text = str(exc)
    if "revert" in text.lower():
        return ContractRevert("Revert", (text,))
    return exc

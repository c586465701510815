"""Start and stop Hardhat's node (Prague) for tests: a second, independent EVM node beside anvil.

Hardhat ships as the npm package ``hardhat`` (installed by ``infra/setup.sh``); its node
runs with ``infra/hardhat/hardhat.config.cjs`` (Prague, chain id 31337).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from veristream.contracts.anvil import wait_listening

REPO = Path(__file__).resolve().parent.parent
HARDHAT = REPO / "node_modules" / ".bin" / "hardhat"
CONFIG = REPO / "infra" / "hardhat" / "hardhat.config.cjs"


@dataclass(frozen=True, slots=True)
class HardhatNode:
    """A running Hardhat node: its HTTP url."""

    url: str


@contextmanager
def hardhat_node(port: int, *, timeout: float = 60.0) -> Iterator[HardhatNode]:
    """Runs ``hardhat node`` on loopback ``port``; stops it (and its children) on exit."""
    if not HARDHAT.is_file():
        raise FileNotFoundError("hardhat not found: run infra/setup.sh (npm ci installs it)")
    proc = subprocess.Popen(
        [str(HARDHAT), "--config", str(CONFIG), "node", "--hostname", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"},
    )
    try:
        wait_listening(port, proc, timeout, "hardhat")
        yield HardhatNode(url=f"http://127.0.0.1:{port}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

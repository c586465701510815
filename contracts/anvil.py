"""Start and stop a local anvil node (Prague) for tests, benchmarks and ``infra/anvil_deploy.py``.

anvil ships inside the npm package ``@foundry-rs/anvil`` (installed by ``infra/setup.sh``);
the native binary is started directly so stopping it leaves no child behind.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_CANDIDATES = (
    REPO / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil",
    REPO / "node_modules" / "@foundry-rs" / "anvil-linux-arm64" / "bin" / "anvil",
    REPO / "node_modules" / "@foundry-rs" / "anvil-darwin-arm64" / "bin" / "anvil",
)


def anvil_binary() -> str:
    """Path of the anvil executable: ``$VERISTREAM_ANVIL``, node_modules, or ``PATH``."""
    env = os.environ.get("VERISTREAM_ANVIL")
    if env:
        return env
    for candidate in _CANDIDATES:
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("anvil")
    if found is None:
        raise FileNotFoundError("anvil not found: run infra/setup.sh (npm ci installs @foundry-rs/anvil)")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float, name: str = "anvil") -> None:
    """Waits until ``proc`` listens on loopback ``port``; its exit or the timeout raise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{name} did not listen on port {port} within {timeout} s")


@dataclass(frozen=True, slots=True)
class AnvilNode:
    """A running anvil: its HTTP url and its IPC endpoint (``ipc://PATH``).

    IPC answers much faster than HTTP, where small writes meet delayed ACKs: that
    dominates scripts that send hundreds of transactions.
    """

    url: str
    ipc: str


@contextmanager
def anvil(port: int | None = None, *, timeout: float = 20.0, extra_args: tuple[str, ...] = ()) -> Iterator[AnvilNode]:
    """Runs ``anvil --hardfork prague`` on loopback (and a private IPC socket); stops it on exit."""
    port = port or _free_port()
    with tempfile.TemporaryDirectory(prefix="veristream-anvil-") as tmp:
        ipc_path = str(Path(tmp) / "anvil.ipc")
        args = [
            anvil_binary(),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--hardfork", "prague",
            "--gas-limit", "30000000",
            "--ipc", ipc_path,
            "--silent",
            *extra_args,
        ]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_listening(port, proc, timeout)
            deadline = time.monotonic() + timeout
            while not Path(ipc_path).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            yield AnvilNode(url=f"http://127.0.0.1:{port}", ipc=f"ipc://{ipc_path}")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

"""A real IPFS node for tests and benchmarks: js-ipfs 0.66 (offline, loopback RPC API).

kubo cannot be installed on these machines (see docs/ipfs.md); js-ipfs serves
the same ``/api/v0`` commands VeriStream uses. ``infra/setup.sh`` installs it
into ``infra/jsipfs/node_modules``; ``infra/jsipfs/start.sh`` starts it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import REPO, free_port

START_SCRIPT = REPO / "infra" / "jsipfs" / "start.sh"
JSIPFS = REPO / "infra" / "jsipfs" / "node_modules" / ".bin" / "jsipfs"


def wait_for_api(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll ``/api/v0/version`` until it answers; fail with the node's log if it dies or stalls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"js-ipfs exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            reply = httpx.post(f"{url}/api/v0/version", timeout=2.0)
            if reply.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"js-ipfs did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


@contextmanager
def jsipfs_node(timeout: float = 90.0) -> Iterator[str]:
    """Start an offline js-ipfs node on a free loopback port; yields its RPC url and stops it after."""
    if not JSIPFS.exists():
        raise RuntimeError("js-ipfs is not installed: run infra/setup.sh (npm ci in infra/jsipfs)")
    with tempfile.TemporaryDirectory(prefix="veristream-jsipfs-") as tmp:
        port = free_port()
        log = Path(tmp) / "node.log"
        with open(log, "wb") as log_file:
            process = subprocess.Popen(
                ["bash", str(START_SCRIPT), str(Path(tmp) / "repo"), str(port)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_api(url, process, log, timeout)
            yield url
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the node's process group (the daemon and any child), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
    except ProcessLookupError:
        pass

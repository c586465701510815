"""Shared fixtures: paths of the repository and its installed tools."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO / "node_modules"


def free_port() -> int:
    """A free TCP port on loopback (the OS picks it; the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process_group(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """Stop a service started with ``start_new_session=True`` and everything it spawned:
    SIGTERM to its process group, SIGKILL if it has not exited within ``timeout_s``."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """Local Ray sessions of this module run without token auth, shut down after it.

    One auth mode for every Ray session a test process opens: a process that first ran
    a token-auth local cluster cannot start actors on a later no-auth head.
    """
    import ray

    previous = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    yield
    if ray.is_initialized():
        ray.shutdown()
    if previous is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = previous


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def node() -> str:
    """The node executable; the JS cross-checks need it and ``infra/setup.sh`` installs their packages."""
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is required for the JS cross-checks (infra/setup.sh installs their packages)")
    return path

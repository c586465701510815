"""Shared fixtures: paths of the repository and its installed tools."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO / "node_modules"


def free_port() -> int:
    """A free TCP port on loopback (the OS picks it; the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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

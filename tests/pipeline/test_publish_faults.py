"""Storing an epoch while the IPFS RPC node (js-ipfs) is killed and restarted.

The epoch waits for the node and retries with a bounded backoff; it is stored
with the same CIDs as without the fault. A node that stays away past the
retry window fails the store with a clear ``NodeUnavailable``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.ipfs_node import JSIPFS, START_SCRIPT, wait_for_api
from tests.pipeline_fleet import fleet, honest_epoch, make_job
from veristream.connectors.ipfs import EmbeddedStore, NodeUnavailable, RpcStore
from veristream.pipeline.compute import EpochComputation, EpochContext, compute_epoch, job_context
from veristream.pipeline.publish import store_epoch
from veristream.pipeline.state import JobState
from veristream.provers.errors import StoreError

pytestmark = pytest.mark.services


class Node:
    """A js-ipfs node with a fixed repository and port, so it can be killed and started again."""

    def __init__(self, directory: Path) -> None:
        self.repo = directory / "repo"
        self.log = directory / "node.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                ["bash", str(START_SCRIPT), str(self.repo), str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_for_api(self.url, self.process, self.log, 90.0)

    def kill(self) -> None:
        """SIGKILL the node's process group: no clean shutdown."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        # js-ipfs keeps a repo lock file; a killed node leaves it behind, as a crash would
        shutil.rmtree(self.repo / "repo.lock", ignore_errors=True)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    if not JSIPFS.exists():
        pytest.fail("js-ipfs is not installed: run infra/setup.sh (npm ci in infra/jsipfs)")
    running = Node(tmp_path)
    running.start()
    try:
        yield running
    finally:
        running.kill()


@pytest.fixture
def epoch(tmp_path: Path) -> tuple[EpochContext, EpochComputation]:
    devices = fleet(4)
    ctx = job_context(make_job(tmp_path, devices))
    return ctx, compute_epoch(ctx, 0, honest_epoch(devices, 0, per_device=6), JobState())


def cids_of(outcome: Any) -> dict[str, str]:
    m = outcome.manifest
    return {
        "batch": m.batch_cid,
        "dead": m.dead_letter_cid,
        "aggregates": m.aggregates_cid,
        "state": m.state_cid,
        "manifest": outcome.manifest_cid,
    }


class KilledAfterFirstPut:
    """The node's store; right after the epoch's first ``put`` the node is killed, restarted later."""

    def __init__(self, store: RpcStore, node: Node, down_s: float) -> None:
        self.store = store
        self.node = node
        self.down_s = down_s
        self.puts = 0
        self.restarter: threading.Thread | None = None

    def put(self, data: bytes) -> str:
        cid = self.store.put(data)
        self.puts += 1
        if self.puts == 1:
            self.node.kill()

            def restart() -> None:
                time.sleep(self.down_s)
                self.node.start()

            self.restarter = threading.Thread(target=restart)
            self.restarter.start()
        return cid

    def get(self, cid: str) -> bytes:
        return self.store.get(cid)

    def pin(self, cid: str) -> None:
        self.store.pin(cid)

    def has(self, cid: str) -> bool:
        return self.store.has(cid)


def test_an_epoch_stored_while_the_ipfs_node_is_killed_gets_the_same_cids(
    node: Node, epoch: tuple[EpochContext, EpochComputation], tmp_path: Path
) -> None:
    ctx, computation = epoch
    expected = cids_of(store_epoch(ctx, computation, JobState(), EmbeddedStore(tmp_path / "emb")))
    with RpcStore(node.url, retry_for_s=60.0, max_backoff_s=0.5) as rpc:
        store = KilledAfterFirstPut(rpc, node, down_s=0.5)
        started = time.monotonic()
        outcome = store_epoch(ctx, computation, JobState(), store)
        assert store.restarter is not None
        store.restarter.join()
        assert time.monotonic() - started > 0.5, "the store did not wait for the node"
        assert cids_of(outcome) == expected
        # Every part is on the restarted node, pinned, and reads back.
        for cid in expected.values():
            assert rpc.has(cid)
        assert rpc.get(expected["batch"]) == outcome.artifacts["batch"]


def test_a_node_that_stays_away_fails_the_store_clearly(
    epoch: tuple[EpochContext, EpochComputation],
) -> None:
    ctx, computation = epoch
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: a node that is gone
    with RpcStore(url, retries=0, retry_for_s=1.0, max_backoff_s=0.2) as rpc:
        started = time.monotonic()
        with pytest.raises(StoreError) as raised:
            store_epoch(ctx, computation, JobState(), rpc)
        waited = time.monotonic() - started
    assert isinstance(raised.value, NodeUnavailable)
    assert url in str(raised.value) and "retry_for_s" in str(raised.value)
    # the window, plus at most one attempt's own connect retries (httpx backs off too)
    assert 1.0 <= waited < 15.0

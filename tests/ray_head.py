"""A throwaway Ray head for tests: `ray start --head --block` on free ports in its own process
group, stopped by that group on exit (never `ray stop`, which would stop every Ray on the
machine).

Ray binds its head to the machine's own address even when asked for 127.0.0.1 (it resolves
loopback to a "remotely reachable" IP), so the address is read from the head's log. Token
authentication is off: the drivers and `veristream` processes of a test hold no token.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port, stop_process_group

RAY = Path(sys.executable).parent / "ray"
# what every process talking to a test head needs in its environment
RAY_ENV = {"RAY_DISABLE_IMPORT_WARNING": "1", "RAY_AUTH_MODE": "disabled"}


@dataclass(frozen=True, slots=True)
class RayHead:
    """A running head: its GCS address (``HOST:PORT``) and, with a dashboard, its job API url."""

    address: str
    jobs: str | None = None


@contextmanager
def ray_head(*, dashboard: bool = False, num_cpus: int = 2, timeout_s: float = 120.0) -> Iterator[RayHead]:
    """Start a Ray head (with the dashboard's job API on loopback when ``dashboard``); stop it on exit."""
    port = free_port()
    dashboard_port = free_port()
    with tempfile.TemporaryDirectory(prefix="veristream-ray-") as tmp:
        log_path = Path(tmp) / "ray.log"
        args = [
            str(RAY), "start", "--head", "--block", f"--port={port}", f"--num-cpus={num_cpus}",
            "--disable-usage-stats", f"--temp-dir={tmp}",
            # every agent port free, not Ray's fixed defaults: a head left over from an earlier
            # test holding 52365 leaves a new head with "No available agent to submit job"
            f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}",
        ]
        if dashboard:
            args += ["--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}"]
        else:
            args += ["--include-dashboard=false"]
        with open(log_path, "wb") as log:
            head = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **RAY_ENV}
            )
            try:
                deadline = time.monotonic() + timeout_s
                address = ""
                while time.monotonic() < deadline and not address:
                    if head.poll() is not None:
                        raise RuntimeError(f"ray head exited: {log_path.read_text(errors='replace')[-2000:]}")
                    found = re.search(r"--address='([0-9.]+:\d+)'", log_path.read_text(errors="replace"))
                    address = found.group(1) if found else ""
                    time.sleep(0.5)
                if not address.endswith(f":{port}"):
                    raise RuntimeError(f"the Ray head did not start: {log_path.read_text(errors='replace')[-2000:]}")
                yield RayHead(address, f"http://127.0.0.1:{dashboard_port}" if dashboard else None)
            finally:
                stop_process_group(head, timeout_s=60)

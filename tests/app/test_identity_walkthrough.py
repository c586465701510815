"""docs/identity.md's walkthrough, run as written: one device provisioned, issued a credential,
refused without it and registered with it, rotated, its credential revoked through the
issuer's status list, and a revoked credential refused. The script is taken from the doc, so
the doc cannot drift from what the commands do."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO

HEADING = "### One device: provision, credential, register, rotate, revoke"


def walkthrough_script() -> str:
    """The bash block under the walkthrough's heading in docs/identity.md."""
    doc = (REPO / "docs" / "identity.md").read_text()
    section = doc.split(HEADING, 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match is not None, "the walkthrough has no bash block"
    return match.group(1)


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    script = tmp_path / "walkthrough.sh"
    script.write_text(walkthrough_script())
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    out = done.stdout
    # the job file names what a fresh embedded chain deployed
    deployment = json.loads((tmp_path / "deployment.json").read_text())
    job = yaml.safe_load((tmp_path / "job.yaml").read_text())
    assert job["devices"]["address"] == deployment["device_registry"]
    assert job["devices"]["credentials"]["registry"] == deployment["credential_registry"]
    assert hex(deployment["chain_id"]) == "0x776562337079"
    # each step said what the doc says, in order
    steps = [
        "DeviceCredential for did:ethr:0x776562337079:0x71e23f04c1bfb8cfb49391538f76409b30ba7356",
        "exit 2",
        '"credential_cid": "bafkrei',
        '"key_version": 2',
        '"did": "did:ethr:0x776562337079:0x71e23f04c1bfb8cfb49391538f76409b30ba7356"',
        "not revoked: bit 42 of https://maker.example/status/1 (version 0, None)",
        '"revoked": true',
        "revoked: bit 42 of https://maker.example/status/1 (version 1, bafkrei",
        "exit 1",
        "exit 2",
    ]
    position = 0
    for step in steps:
        found = out.find(step, position)
        assert found >= 0, f"{step!r} not printed after position {position}:\n{out}"
        position = found + len(step)
    assert "requires a credential (devices.credentials.required)" in done.stderr
    assert "the credential does not verify (revoked)" in done.stderr
    assert "Traceback" not in done.stderr

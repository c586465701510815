"""The shipped examples give the same epochs, byte for byte, as recorded.

``data/examples_golden.json`` holds what ``veristream run EXAMPLE --json`` printed
and each epoch's checkpoint (manifest and its CID: batch CID, data and reward
roots, dead-letter counts, state CID) for both shipped examples. A change that
moves code without changing behaviour leaves all of it identical; one that does
change an output must say so by updating the recording.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

GOLDEN = json.loads((Path(__file__).parent / "data" / "examples_golden.json").read_text())
EXAMPLES = {"weather": "weather.yaml", "air-quality": "air-quality.yaml"}


def _work_dir(spec: Path) -> Path:
    for line in spec.read_text().splitlines():
        if line.startswith("work_dir:"):
            return spec.parent / line.split(":", 1)[1].strip()
    raise AssertionError(f"{spec} names no work_dir")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_outputs_are_unchanged(name: str, tmp_path: Path) -> None:
    spec = tmp_path / EXAMPLES[name]
    shutil.copy(REPO / "examples" / EXAMPLES[name], spec)
    proc = subprocess.run(
        [sys.executable, "-m", "veristream", "run", str(spec), "--json", "--no-ray"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = GOLDEN[name]
    summary: dict[str, Any] = json.loads(proc.stdout)
    assert summary == expected["summary"]

    epochs = {
        path.stem: json.loads(path.read_text())
        for path in sorted((_work_dir(spec) / "epochs").glob("*.json"))
    }
    assert sorted(epochs) == sorted(expected["epochs"])
    for stem, recorded in expected["epochs"].items():
        assert epochs[stem]["manifest"] == recorded["manifest"], stem
        assert epochs[stem]["manifest_cid"] == recorded["manifest_cid"], stem

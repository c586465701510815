"""ruff and mypy stay clean: the test command runs both over the whole project."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

PYTHON_TREES = ["veristream", "pipeline", "provers", "connectors", "contracts", "benchmarks", "tests"]


def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", *PYTHON_TREES], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    trees = ["veristream", "pipeline", "provers", "connectors", "contracts"]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", *trees], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr

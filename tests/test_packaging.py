"""The distribution installs both ways: editable (source tree) and as a wheel elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO
from veristream.provers.jsonld import SHIPPED_CONTEXTS

SUBPACKAGES = (
    "veristream.pipeline",
    "veristream.provers",
    "veristream.connectors",
    "veristream.contracts",
)


def test_editable_install_maps_root_folders_into_the_namespace() -> None:
    import importlib

    for name in SUBPACKAGES:
        module = importlib.import_module(name)
        folder = name.split(".")[1]
        assert Path(module.__file__).resolve().parent == REPO / folder


def test_wheel_works_outside_the_source_tree(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = dist.glob("veristream-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"veristream/provers/epoch_result.py", "veristream/contracts/epoch_verifier.py"} <= set(names)
    # the JSON-LD contexts credentials are canonicalised over (nothing is fetched)
    contexts = {n for n in names if n.startswith("veristream/provers/contexts/")}
    assert {f"veristream/provers/contexts/{name}" for name in SHIPPED_CONTEXTS.values()} == contexts
    assert not any(n.startswith(("pipeline/", "provers/", "tests/")) for n in names)

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    probe = (
        "import importlib, veristream;"
        f"mods = [importlib.import_module(n) for n in {SUBPACKAGES!r}];"
        "print(veristream.__file__);"
        "[print(m.__file__) for m in mods];"
        "from veristream.provers.jsonld import canonize;"
        "assert canonize({'@context': 'https://www.w3.org/ns/credentials/v2', 'name': 'x'})"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path, env=env
    ).stdout.split()
    assert len(out) == 1 + len(SUBPACKAGES)
    for path in out:
        assert Path(path).resolve().is_relative_to(target.resolve()), path
    help_out = subprocess.run(
        [sys.executable, "-m", "veristream", "--help"], check=True, capture_output=True, text=True,
        cwd=tmp_path, env=env,
    ).stdout
    assert "Usage" in help_out

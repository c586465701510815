"""docs/dapps.md shows the dApp example's code as it is tested, the example's ABI fragments are
the compiled contracts', and the example type-checks.

A code block in the guide preceded by ``<!-- region: PATH#NAME -->`` must equal the lines between
``// #region NAME`` and ``// #endregion NAME`` of PATH (repository-relative). After changing the
example, rewrite the guide's blocks with ``python -m tests.app.test_dapp_docs --write``.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

GUIDE = REPO / "docs" / "dapps.md"
DAPP = REPO / "examples" / "dapp"
TSX = DAPP / "node_modules" / ".bin" / "tsx"
# a marker, then a fenced block: the block's body is group "body"
INCLUDED = re.compile(r"<!-- region: (?P<path>[^#\s]+)#(?P<name>[\w-]+) -->\n```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)


def region(path: str, name: str) -> str:
    """The lines strictly between ``// #region NAME`` and ``// #endregion NAME`` of ``path``."""
    lines = (REPO / path).read_text().splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == f"// #region {name}"]
    ends = [i for i, line in enumerate(lines) if line.strip() == f"// #endregion {name}"]
    if len(starts) != 1 or len(ends) != 1 or ends[0] <= starts[0]:
        raise ValueError(f"{path} has no single region {name!r}")
    return "".join(lines[starts[0] + 1 : ends[0]])


def synced(text: str) -> str:
    """The guide with every marked block replaced by its region."""
    return INCLUDED.sub(
        lambda m: f"<!-- region: {m['path']}#{m['name']} -->\n```{m['lang']}\n{region(m['path'], m['name'])}```", text
    )


def test_the_guide_shows_the_tested_code() -> None:
    text = GUIDE.read_text()
    blocks = list(INCLUDED.finditer(text))
    assert len(blocks) >= 6, "docs/dapps.md includes the example's steps"
    for block in blocks:
        expected = region(block["path"], block["name"])
        assert block["body"] == expected, (
            f"docs/dapps.md's block {block['path']}#{block['name']} differs from the code: "
            "run python -m tests.app.test_dapp_docs --write"
        )
    # every region of the example is shown
    shown = {(b["path"], b["name"]) for b in blocks}
    for source in sorted((DAPP / "src").glob("*.ts")):
        rel = str(source.relative_to(REPO))
        for name in re.findall(r"^// #region ([\w-]+)$", source.read_text(), re.M):
            assert (rel, name) in shown, f"docs/dapps.md does not show {rel}#{name}"


def test_the_examples_abi_is_the_contracts() -> None:
    if not TSX.exists():
        pytest.fail("examples/dapp is not installed: run infra/setup.sh (npm ci in examples/dapp)")
    done = subprocess.run([str(TSX), "src/check-abi.ts"], cwd=DAPP, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_example_type_checks() -> None:
    # tsx runs TypeScript without checking types: the compiler does (strict, no output)
    tsc = DAPP / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        pytest.fail("examples/dapp is not installed: run infra/setup.sh (npm ci in examples/dapp)")
    done = subprocess.run([str(tsc), "--noEmit", "-p", "."], cwd=DAPP, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.app.test_dapp_docs --write")
    GUIDE.write_text(synced(GUIDE.read_text()))

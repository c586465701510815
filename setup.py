"""Maps the repository's top-level folders into the ``veristream`` namespace.

DESIGN.md keeps ``pipeline/ provers/ connectors/ contracts/`` at the root while
their code imports as ``veristream.<folder>``; pyproject cannot express a
discovered package list under a renamed directory, so it is computed here.
"""

from pathlib import Path

from setuptools import Extension, setup

ROOT = Path(__file__).parent
FOLDERS = {
    "veristream": "veristream",
    "veristream.pipeline": "pipeline",
    "veristream.provers": "provers",
    "veristream.connectors": "connectors",
    "veristream.contracts": "contracts",
}


def _packages() -> tuple[list[str], dict[str, str]]:
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for name, folder in FOLDERS.items():
        base = ROOT / folder
        for init in sorted(base.rglob("__init__.py")):
            if "node_modules" in init.parts:
                continue
            rel = init.parent.relative_to(base)
            dotted = ".".join((name, *rel.parts)) if rel.parts else name
            packages.append(dotted)
            package_dir[dotted] = str(Path(folder, *rel.parts))
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()
# The Merkle tree's hot path (keccak over flat buffers); optional: without a C
# compiler the install still succeeds and merkle_core uses its pure-Python path.
MERKLE_NATIVE = Extension(
    "veristream.provers._merkle_native",
    sources=["provers/_merkle_native.c"],
    extra_compile_args=["-O3"],
    optional=True,
)
setup(packages=PACKAGES, package_dir=PACKAGE_DIR, ext_modules=[MERKLE_NATIVE])

"""The ``veristream`` command line.

Each command lives in the module that owns its work and is imported only when
it runs, so ``--help`` and the proof-core commands never load Beam, Ray or web3.
"""

from __future__ import annotations

from typing import Any

import typer

from veristream import __version__

app = typer.Typer(
    name="veristream",
    help="Verifiable off-chain compute for DePIN data streams.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """Verifiable off-chain compute for DePIN data streams."""


@app.command()
def version() -> None:
    """Print VeriStream's version."""
    typer.echo(__version__)


ipfs_app = typer.Typer(
    help="IPFS storage: CIDs as kubo computes them, an embedded store, an RPC node, CAR files.",
    no_args_is_help=True,
)
app.add_typer(ipfs_app, name="ipfs")

_IPFS_STORE = typer.Option(
    None, "--store", help="Embedded store directory (default: .veristream/ipfs)."
)
_IPFS_API = typer.Option(None, "--api", help="IPFS RPC API url, e.g. http://127.0.0.1:5001 (kubo).")


def _ipfs_backend(store: str | None, api: str | None) -> Any:
    from veristream.connectors.ipfs import EmbeddedStore, RpcStore

    if store and api:
        raise typer.BadParameter("give --store or --api, not both")
    return RpcStore(api) if api else EmbeddedStore(store or ".veristream/ipfs")


@ipfs_app.command("cid")
def ipfs_cid(path: str = typer.Argument(..., help="File to hash.")) -> None:
    """Print the CID `ipfs add --cid-version=1` would give FILE, storing nothing."""
    from pathlib import Path

    from veristream.connectors.ipfs import cid_of

    typer.echo(cid_of(Path(path).read_bytes()))


@ipfs_app.command("put")
def ipfs_put(
    path: str = typer.Argument(..., help="File to store."),
    store: str | None = _IPFS_STORE,
    api: str | None = _IPFS_API,
) -> None:
    """Store FILE (pinned) in the embedded store or on an RPC node; print its CID."""
    from pathlib import Path

    typer.echo(_ipfs_backend(store, api).put(Path(path).read_bytes()))


@ipfs_app.command("get")
def ipfs_get(
    cid: str = typer.Argument(..., help="CID of the file."),
    out: str = typer.Option("-", "--out", "-o", help="Output file ('-' for stdout)."),
    store: str | None = _IPFS_STORE,
    api: str | None = _IPFS_API,
) -> None:
    """Fetch a file by CID, re-hashing every block, and write it out."""
    import sys
    from pathlib import Path

    data = _ipfs_backend(store, api).get(cid)
    if out == "-":
        sys.stdout.buffer.write(data)
    else:
        Path(out).write_bytes(data)


@ipfs_app.command("export-car")
def ipfs_export_car(
    cid: str = typer.Argument(..., help="Root CID."),
    out: str = typer.Argument(..., help="CAR file to write."),
    store: str | None = _IPFS_STORE,
) -> None:
    """Export the DAG under CID from the embedded store as a CARv1 (for `ipfs dag import`)."""
    from veristream.connectors.ipfs import EmbeddedStore

    EmbeddedStore(store or ".veristream/ipfs").export_car(cid, out)


@ipfs_app.command("import-car")
def ipfs_import_car(
    path: str = typer.Argument(..., help="CARv1 file."),
    store: str | None = _IPFS_STORE,
    api: str | None = _IPFS_API,
) -> None:
    """Import a CARv1 (every block verified) into the embedded store or an RPC node; print its roots."""
    for root in _ipfs_backend(store, api).import_car(path):
        typer.echo(root)


if __name__ == "__main__":  # pragma: no cover
    app()

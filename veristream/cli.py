"""The ``veristream`` command line.

Each command lives in the module that owns its work and is imported only when
it runs, so ``--help`` and the proof-core commands never load Beam, Ray or web3.
"""

from __future__ import annotations

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


if __name__ == "__main__":  # pragma: no cover
    app()

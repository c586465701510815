"""Every command of the ``veristream`` CLI answers ``--help`` and ``-h`` and has an example in
``docs/cli.md``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer.main
from typer.testing import CliRunner

from veristream import __version__
from veristream.cli import app


def _command_paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            paths.extend(_command_paths(sub, (*prefix, name)))
    return paths


def test_every_command_has_help() -> None:
    root = typer.main.get_command(app)
    runner = CliRunner()
    paths = _command_paths(root)
    assert len(paths) >= 2
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_every_command_has_short_help_and_an_example_in_docs_cli_md() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    runner = CliRunner()
    for path in _command_paths(typer.main.get_command(app))[1:]:
        assert f"veristream {' '.join(path)} " in docs or f"veristream {' '.join(path)}\n" in docs, path
        assert "Usage" in runner.invoke(app, [*path, "-h"]).output, path
    assert runner.invoke(app, ["--version"]).output.strip() == __version__

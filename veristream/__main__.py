"""``python -m veristream`` runs the command line."""

from veristream.cli import entry

entry()

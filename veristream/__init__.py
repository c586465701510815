"""VeriStream: verifiable off-chain compute for DePIN data streams."""

__version__ = "0.1.0"

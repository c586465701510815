"""BLS signatures on two curves, the same functions on each, bytes in and out.

- ``veristream.provers.bls.bls12381``: Ethereum's proof-of-possession ciphersuite
  (EIP-2537 precompiles on chain), blst underneath.
- ``veristream.provers.bls.bn254``: BLS over alt_bn128 for the ecAdd/ecMul/
  ecPairing precompiles every EVM chain has (EigenLayer-style checker).

Import the submodule you need; neither is imported here, so importing one never
loads the other's backend. ``docs/bls.md`` is the normative description.
"""

__all__ = ["bls12381", "bn254"]

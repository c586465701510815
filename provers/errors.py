"""The errors VeriStream raises on purpose, as one hierarchy.

A caller catches what it means: ``SpecError`` for a job spec or setting that
cannot work, ``InputRejected`` for data that fails a check (a reading, a key, a
proof, a message), ``StoreError`` for a content-addressed store that cannot
give or keep what was asked, ``ChainError`` for a chain that refuses or cannot
be reached. Anything else is a bug and keeps its traceback.

``SpecError`` and ``InputRejected`` are also ``ValueError``s, so code written
against ``ValueError`` keeps working.
"""

from __future__ import annotations


class VeriStreamError(Exception):
    """Base of every error VeriStream raises on purpose."""


class SpecError(VeriStreamError, ValueError):
    """A job spec, option or setting that cannot work; the message names the field."""


class InputRejected(VeriStreamError, ValueError):
    """Input that fails a check: a reading, key, signature, proof, message or file."""


class StoreError(VeriStreamError):
    """A content-addressed store that cannot give or keep what was asked."""


class ChainError(VeriStreamError):
    """A chain that refuses a transaction or a call, or cannot be reached."""


class NotFound(VeriStreamError, LookupError):
    """What was asked for does not exist yet: an epoch not verified, a work directory never run,
    a CID not in the store, a device without readings."""


class Mismatch(VeriStreamError):
    """A verification that ran and found the data disagreeing with its commitment."""


class ServiceUnreachable(VeriStreamError, ConnectionError):
    """A service named on the command line or in a job spec (an ingest server, a broker) that
    does not answer."""

"""The pipeline layer: job spec, Beam stages, rewards, commitments, batches, manifests, state.

Importing Apache Beam announces, on stderr, optional clients this project never uses
(Google Cloud Storage, BigQuery) that are absent or half-installed. Those two notices
are dropped at their loggers before any module here imports Beam; every other
warning of Beam's passes as before.
"""

from __future__ import annotations

import logging

_ABSENT_OPTIONAL_CLIENTS = (
    "Failed to import GCSFileSystem",  # apache_beam.io.filesystems
    "apitools not found",  # apache_beam.io.gcp.internal.clients.bigquery, on the root logger
)


class _AbsentOptionalClients(logging.Filter):
    """Drops Beam's import-time notices about optional cloud clients."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_ABSENT_OPTIONAL_CLIENTS)


logging.getLogger("apache_beam.io.filesystems").addFilter(_AbsentOptionalClients())
logging.getLogger().addFilter(_AbsentOptionalClients())

"""Ingest observers: a process-wide hook through which sources report what they appended.

Connectors do not know how (or whether) anything is counted: the application
registers an observer (``veristream.metrics`` counts messages by source and
reason) and an exposition (the text a ``/metrics`` route serves). With nothing
registered, ``notify`` does nothing and the HTTP source's ``/metrics`` answers 404.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from veristream.connectors.ingest_log import AppendResult

IngestObserver = Callable[[str, Sequence[AppendResult]], None]
"""Called with a source name and the log's answer for each message it appended."""

Exposition = Callable[[], tuple[bytes, str]]
"""Returns a metrics page and its content type."""

_lock = threading.Lock()
_observers: list[IngestObserver] = []
_exposition: list[Exposition] = []


def add_observer(observer: IngestObserver) -> None:
    """Have ``observer`` told of every append a source reports from now on."""
    with _lock:
        _observers.append(observer)


def remove_observer(observer: IngestObserver) -> None:
    """Stop telling ``observer`` (no error if it was not registered)."""
    with _lock:
        if observer in _observers:
            _observers.remove(observer)


def notify(source: str, results: Sequence[AppendResult]) -> None:
    """Tell every registered observer that ``source`` appended messages with these ``results``."""
    with _lock:
        observers = list(_observers)
    for observer in observers:
        observer(source, results)


def set_exposition(exposition: Exposition | None) -> None:
    """The page a ``/metrics`` route serves (``None``: no metrics in this process)."""
    with _lock:
        _exposition.clear()
        if exposition is not None:
            _exposition.append(exposition)


def exposition() -> Exposition | None:
    """The registered metrics page, if any."""
    with _lock:
        return _exposition[0] if _exposition else None

"""JSON-LD for credentials: the contexts VeriStream ships, and RDFC-1.0 canonical N-Quads.

Only the contexts shipped in ``contexts/`` load; any other URL is refused with
``UnknownContext`` ("unknown context URL"), so canonicalising never touches the
network and a credential's meaning cannot change with a server's answer. The
shipped documents are the published ones (copied from the reference libraries'
bundles), plus VeriStream's own device-credential context.

``canonize`` runs RDFC-1.0 (URDNA2015 in pyld) in the reference libraries'
*safe mode*: a property no context defines, or an ``id`` or ``type`` that is not
an absolute IRI, would silently vanish from the N-Quads (so could be added to a
signed credential without breaking its signature); here it is an error instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from typing import Any

from pyld import jsonld as _pyld

from veristream.provers.errors import InputRejected

CREDENTIALS_V2 = "https://www.w3.org/ns/credentials/v2"
DATA_INTEGRITY_V2 = "https://w3id.org/security/data-integrity/v2"
MULTIKEY_V1 = "https://w3id.org/security/multikey/v1"
DID_V1 = "https://www.w3.org/ns/did/v1"
STATUS_LIST_V1 = "https://www.w3.org/ns/credentials/status/v1"
DEVICE_V1 = "https://veristream.dev/credentials/device/v1"

SHIPPED_CONTEXTS: Mapping[str, str] = {
    CREDENTIALS_V2: "credentials-v2.jsonld",
    DATA_INTEGRITY_V2: "data-integrity-v2.jsonld",
    MULTIKEY_V1: "multikey-v1.jsonld",
    DID_V1: "did-v1.jsonld",
    STATUS_LIST_V1: "credentials-status-v1.jsonld",
    DEVICE_V1: "device-v1.jsonld",
}
"""Context URL -> file in ``veristream/provers/contexts``."""

_OPTIONS = {
    "processingMode": "json-ld-1.1",
    "rdfDirection": "i18n-datatype",
    # no document base: a relative IRI stays relative and is caught below
    "base": None,
}


class UnknownContext(InputRejected):
    """A document names a JSON-LD context that is not shipped with VeriStream."""

    def __init__(self, url: str) -> None:
        super().__init__(f"unknown context URL {url!r}: only {', '.join(SHIPPED_CONTEXTS)} are known")
        self.url = url


class UndefinedTerm(InputRejected):
    """A property, ``id`` or ``type`` that no context maps to an absolute IRI."""


def context_document(url: str) -> dict[str, Any]:
    """The shipped JSON document of context ``url`` (a fresh copy); ``UnknownContext`` for any
    other URL."""
    document: dict[str, Any] = json.loads(_context_text(url))
    return document


@cache
def _context_text(url: str) -> str:
    name = SHIPPED_CONTEXTS.get(url)
    if name is None:
        raise UnknownContext(url)
    return resources.files("veristream.provers").joinpath("contexts", name).read_text("utf-8")


def document_loader(url: str, options: Any = None) -> dict[str, Any]:
    """A pyld document loader over the shipped contexts only."""
    return {"contextUrl": None, "documentUrl": url, "document": context_document(url)}


def context_urls(document: Mapping[str, Any]) -> list[str]:
    """The context URLs a document's top-level ``@context`` names (inline contexts skipped)."""
    context = document.get("@context")
    items = context if isinstance(context, list) else [context]
    return [item for item in items if isinstance(item, str)]


def _recording_loader(unknown: list[str]) -> Callable[[str, Any], dict[str, Any]]:
    """``document_loader`` that also notes a refused URL: pyld wraps a loader's error in its own."""

    def load(url: str, options: Any = None) -> dict[str, Any]:
        try:
            return document_loader(url, options)
        except UnknownContext:
            unknown.append(url)
            raise

    return load


def _check_iris(node: Any) -> None:
    """Every ``@id`` and ``@type`` of an expanded document is absolute or a blank node."""
    if isinstance(node, list):
        for item in node:
            _check_iris(item)
        return
    if not isinstance(node, Mapping):
        return
    if "@value" in node:
        return
    node_id = node.get("@id")
    if node_id is not None and not _is_absolute_or_blank(node_id):
        raise UndefinedTerm(f"id {node_id!r} is not an absolute IRI (a relative reference is not signed)")
    for node_type in node.get("@type", []):
        if not _is_absolute_or_blank(node_type):
            raise UndefinedTerm(f"type {node_type!r} is not defined by any context")
    for key, value in node.items():
        if key not in ("@id", "@type"):
            _check_iris(value)


def _is_absolute_or_blank(iri: Any) -> bool:
    return isinstance(iri, str) and (iri.startswith("_:") or ":" in iri)


def expand(document: Mapping[str, Any]) -> list[Any]:
    """``document`` expanded over the shipped contexts, in safe mode (see the module)."""
    # VALIDATE
    if not isinstance(document, Mapping):
        raise InputRejected(f"a JSON-LD document must be an object, got {type(document).__name__}")
    for url in context_urls(document):
        context_document(url)
    # EXPAND
    dropped: list[Any] = []
    unknown: list[str] = []
    processor = _pyld.JsonLdProcessor(on_property_dropped=dropped.append)
    try:
        expanded: list[Any] = processor.expand(
            dict(document), {**_OPTIONS, "documentLoader": _recording_loader(unknown)}
        )
    except _pyld.JsonLdError as exc:
        if unknown:
            raise UnknownContext(unknown[0]) from None
        raise InputRejected(f"not valid JSON-LD: {_jsonld_message(exc)}") from None
    # SAFE MODE
    if dropped:
        raise UndefinedTerm(f"property {dropped[0]!r} is not defined by any context (it would not be signed)")
    _check_iris(expanded)
    return expanded


def canonize(document: Mapping[str, Any]) -> str:
    """The RDFC-1.0 canonical N-Quads of ``document`` (safe mode, shipped contexts only)."""
    expanded = expand(document)
    processor = _pyld.JsonLdProcessor()
    options = {
        **_OPTIONS,
        "documentLoader": document_loader,
        "algorithm": "URDNA2015",
        "format": "application/n-quads",
    }
    try:
        nquads: str = processor.normalize(expanded, options)
    except _pyld.JsonLdError as exc:
        raise InputRejected(f"cannot canonicalise: {_jsonld_message(exc)}") from None
    return nquads


def _jsonld_message(exc: BaseException) -> str:
    """The innermost message of pyld's chained errors (its own ``str`` is a tuple dump)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc.args[0]) if exc.args else type(exc).__name__

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
import re
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


# What canonical N-Quads escape (RDFC-1.0, as rdf-canonize writes them) and pyld's writer
# does not: such values are refused, so every implementation signs the same bytes.
_UNESCAPED_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_IRI_ESCAPED = re.compile('[\x00-\x20<>"{}|^`\\\\]')
# JavaScript writes such doubles in exponent form, which its JSON-LD library then takes for an
# integer ("1e-7" -> "0"): their N-Quads differ between implementations
_TINY_DOUBLE = 1e-6
# JSON numbers of JavaScript (IEEE doubles) hold every integer up to 2**53 exactly, not beyond
_JSON_SAFE_INTEGER = 2**53


class NotCanonical(InputRejected):
    """A value whose canonical N-Quads differ between implementations: refused, not signed."""


def _check_iri(iri: Any, what: str) -> None:
    if not isinstance(iri, str) or not (iri.startswith("_:") or ":" in iri):
        raise UndefinedTerm(f"{what} {iri!r} is not an absolute IRI (a relative reference is not signed)")
    if _IRI_ESCAPED.search(iri):
        raise NotCanonical(f"{what} {iri!r} holds a character an IRI cannot (space, control, <>\"{{}}|^`\\)")


def _check_value(node: Mapping[str, Any]) -> None:
    value = node["@value"]
    if "@direction" in node:
        raise NotCanonical("a literal with @direction has no agreed canonical form: refused")
    if isinstance(value, str) and _UNESCAPED_CONTROLS.search(value):
        raise NotCanonical(f"the literal {value!r} holds a control character other than tab, newline or return")
    if isinstance(value, float) and 0 < abs(value) < _TINY_DOUBLE:
        raise NotCanonical(f"the number {value!r} is below 1e-6: implementations canonicalise it differently")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _JSON_SAFE_INTEGER:
        raise NotCanonical(f"the integer {value} is beyond 2**53: JSON parsers round it differently")
    if "@type" in node and node["@type"] != "@json":
        _check_iri(node["@type"], "datatype")


def _check_safe(node: Any) -> None:
    """Safe mode over an expanded document: every ``@id`` and ``@type`` absolute (or a blank
    node), every value with one canonical form."""
    if isinstance(node, list):
        for item in node:
            _check_safe(item)
        return
    if not isinstance(node, Mapping):
        return
    if "@value" in node:
        _check_value(node)
        return
    if "@id" in node:
        _check_iri(node["@id"], "id")
    for node_type in node.get("@type", []):
        if not isinstance(node_type, str) or not (node_type.startswith("_:") or ":" in node_type):
            raise UndefinedTerm(f"type {node_type!r} is not defined by any context")
        _check_iri(node_type, "type")
    for key, value in node.items():
        if key not in ("@id", "@type"):
            _check_safe(value)


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
    _check_safe(expanded)
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

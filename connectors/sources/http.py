"""HTTP ingest: ``POST /v1/readings`` (ASGI, Starlette, served by uvicorn).

A body is one envelope (JSON object), a batch (JSON array), or NDJSON (one
envelope a line, ``Content-Type: application/x-ndjson``). Each envelope is
appended to the ingest log durably before the answer:

- ``202 {"accepted": n, "rejected": [{"index": i, "reason": ..., "field": ..., "code": ...}]}``
  for a batch, and for a single envelope that was taken (even if ``late``);
- ``400`` body is not JSON, ``413`` a single envelope over the size limit,
  ``422`` a single envelope of the wrong shape: each with
  ``{"error": {"field": ..., "reason": ..., "message": ...}}``. These messages
  were read, so they are also in the dead-letter store: accepted + rejected
  equals what arrived.
- Refused before any envelope is read (the sender still owns the data and
  should retry or split, nothing is logged): ``401`` without a valid bearer
  token when ``auth.tokens_file`` is set (counted as ``unauthenticated``);
  ``429`` with ``Retry-After`` when the address, the connection or (checked on
  the parsed envelopes, all or none) a device is over its ``limits`` (counted
  as ``rate_limited``); ``413`` body over ``max_body_bytes``
  or more than ``max_batch`` envelopes, ``415`` unknown content type, and
  ``429`` with ``Retry-After`` when the committer's queue or the number of
  requests in flight is at its bound, instead of buffering without bound;
  ``503`` with ``Retry-After`` while the server drains before stopping.

``GET /openapi.json`` describes the API; ``GET /healthz`` reports the log's counts;
``GET /metrics`` serves the process's Prometheus metrics when the application
registered them (``connectors.observe``; ``veristream ingest`` does), 404 otherwise.
The app also serves the WebSocket stream at ``/v1/stream`` (see websocket.py).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute

from veristream.connectors import observe
from veristream.connectors.envelope import (
    FIELDS,
    NOT_JSON,
    SCHEMES,
    TOO_LARGE,
    max_envelope_bytes,
)
from veristream.connectors.ingest_log import AppendResult, Backpressure, GroupCommitter
from veristream.connectors.sources.config import HttpSourceConfig
from veristream.connectors.sources.gate import (
    UNAUTHENTICATED,
    Gate,
    retry_after_s,
    uvicorn_tls_options,
)
from veristream.connectors.sources.websocket import stream_endpoint
from veristream.provers.encoding import canonical_json
from veristream.provers.errors import InputRejected, StoreError
from veristream.provers.reasons import Reason

NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/ndjson")
JSON_TYPES = ("application/json", "text/json", "")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _error(status: int, field: str, reason: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"error": {"field": field, "reason": reason, "message": message}, **extra}, status
    )


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) as soon as it passes ``limit`` bytes, declared or streamed."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _Refused(_error(413, "body", TOO_LARGE, f"body of {declared} bytes exceeds {limit}"))
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _Refused(_error(413, "body", TOO_LARGE, f"body exceeds {limit} bytes"))
            chunks.append(chunk)
    except ClientDisconnect:
        # the sender left mid-body: nothing arrived, nothing is logged, nobody is answered
        raise _Refused(Response(status_code=499)) from None
    return b"".join(chunks)


def _split(
    body: bytes, content_type: str, max_batch: int
) -> tuple[list[bytes], bool] | AppendResult:
    """The raw envelopes of a body and whether it was a batch; an ``AppendResult`` when the body is not JSON."""
    if content_type in NDJSON_TYPES:
        lines = [line for line in body.split(b"\n") if line.strip()]
        if len(lines) > max_batch:
            raise _Refused(
                _error(413, "body", "too_many", f"{len(lines)} lines, at most {max_batch}")
            )
        return lines, True
    stripped = body.lstrip()
    if not stripped.startswith(b"["):
        return [body], False
    try:
        items = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        return AppendResult(
            False, reason=Reason.MALFORMED, field="body", detail=str(error)[:120], code=NOT_JSON
        )
    if len(items) > max_batch:
        raise _Refused(
            _error(413, "body", "too_many", f"{len(items)} envelopes, at most {max_batch}")
        )
    # An element keeps its meaning, not its spacing: the signature covers fields, not JSON bytes.
    return [canonical_json(item) for item in items], True


def create_app(committer: GroupCommitter, config: HttpSourceConfig) -> Starlette:
    """The ingest ASGI app over a running group committer.

    The log parses envelopes, so its payload limit is the one that applies; a
    different limit in ``config`` would make the OpenAPI description lie.
    """
    if config.max_payload_bytes != committer.log.max_payload_bytes:
        raise InputRejected(
            f"max_payload_bytes {config.max_payload_bytes} differs from the ingest log's "
            f"{committer.log.max_payload_bytes}"
        )
    in_flight = 0
    lock = threading.Lock()
    retry = {"Retry-After": str(config.retry_after_s)}
    body_limit = config.max_body_bytes
    # One gate for both routes: a device or an address has one budget, however it sends.
    gate = Gate(("http", "ws"), config.auth, config.limits)
    gate.bind(committer.log)

    def rate_limited(wait_ns: int, detail: str) -> Response:
        body = {"error": {"field": "body", "reason": Reason.RATE_LIMITED, "message": detail}}
        return JSONResponse(body, 429, headers={"Retry-After": str(retry_after_s(wait_ns))})

    def log_unavailable(error: Exception) -> Response:
        # The log could not write (disk full, I/O error): nothing was acknowledged,
        # the log is as it was, and the sender retries once space is back.
        problem = {"error": {"field": "body", "reason": "log_unavailable", "message": str(error)}}
        return JSONResponse(problem, 503, headers=retry)

    def too_busy(detail: str) -> Response:
        body = {"error": {"field": "body", "reason": "busy", "message": detail}}
        return JSONResponse(body, 429, headers=retry)

    async def post_readings(request: Request) -> Response:
        nonlocal in_flight
        if request.app.state.draining:
            # stopping: nothing of this request is read or logged, the sender retries later
            body = {"error": {"field": "body", "reason": "draining", "message": "the server is stopping"}}
            return JSONResponse(body, 503, headers=retry)
        # CHECKS before reading anything: who sends, at what rate, then bounded work.
        if not gate.authenticate(request.headers.get("authorization")):
            body = {"error": {"field": "authorization", "reason": UNAUTHENTICATED, "message": "a valid bearer token is required"}}
            return JSONResponse(body, 401, headers={"WWW-Authenticate": "Bearer"})
        peer = request.client
        if peer is not None:
            wait = gate.admit_arrival(peer.host, peer.port)
            if wait:
                return rate_limited(wait, f"{peer.host} is over its request rate")
        with lock:
            if in_flight >= config.max_in_flight_requests:
                return too_busy(f"{in_flight} requests in flight")
            if committer.pending >= config.max_pending:
                return too_busy(f"{committer.pending} readings waiting for the log")
            in_flight += 1
        try:
            return await _handle(request)
        except _Refused as refused:
            return refused.response
        finally:
            with lock:
                in_flight -= 1

    async def _handle(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in NDJSON_TYPES and content_type not in JSON_TYPES:
            return _error(
                415, "content-type", "unsupported", f"use application/json or {NDJSON_TYPES[0]}"
            )
        body = await _read_body(request, body_limit)
        peer = request.client
        source = gate.source_name("http", peer.host, peer.port, with_port=False) if peer else "http"
        received = _now_ms()
        split = _split(body, content_type, config.max_batch)
        # Not JSON at all: one arrival, filed as a dead letter through the group commit like any
        # other (a flood of junk shares its fsyncs instead of paying one each), answered 400.
        not_json = isinstance(split, AppendResult)
        raws, batch = ([body], False) if isinstance(split, AppendResult) else split
        if not raws:
            return _error(422, "body", "empty", "no envelopes in the body")
        wait = gate.admit_devices(raws)
        if wait:
            return rate_limited(wait, "a device in the body is over its rate; nothing was logged")
        try:
            future = committer.submit([(raw, source, received) for raw in raws])
        except Backpressure as busy:
            return too_busy(str(busy))
        try:
            results = await asyncio.wrap_future(future)
        except (OSError, StoreError) as error:
            return log_unavailable(error)
        observe.notify(source, results)
        accepted = sum(1 for r in results if r.accepted)
        rejected = [{"index": i, **r.to_dict()} for i, r in enumerate(results) if not r.accepted]
        if not_json and not accepted:
            assert isinstance(split, AppendResult)
            return _error(400, "body", NOT_JSON, split.detail, accepted=0, rejected=rejected)
        if batch or accepted or results[0].code == "closed":
            return JSONResponse({"accepted": accepted, "rejected": rejected}, 202)
        only = results[0]
        status = 413 if only.code == TOO_LARGE else 400 if only.code == NOT_JSON else 422
        return _error(
            status,
            only.field or "envelope",
            only.code or "invalid",
            only.detail,
            accepted=0,
            rejected=rejected,
        )

    async def openapi(_: Request) -> Response:
        return JSONResponse(openapi_document(config))

    async def healthz(_: Request) -> Response:
        counts = await asyncio.to_thread(committer.log.counts)
        return JSONResponse({"status": "ok", "pending": committer.pending, "log": counts})

    async def metrics(_: Request) -> Response:
        page = observe.exposition()
        if page is None:
            return PlainTextResponse("no metrics in this process\n", 404)
        body, content_type = await asyncio.to_thread(page)
        return Response(body, media_type=content_type)

    app = Starlette(
        routes=[
            Route("/v1/readings", post_readings, methods=["POST"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            WebSocketRoute("/v1/stream", stream_endpoint(committer, gate=gate)),
        ]
    )
    app.state.gate = gate
    # UvicornThread.stop sets ``draining`` and waits for ``in_flight()`` to reach 0
    app.state.draining = False
    app.state.in_flight = lambda: in_flight
    return app


def openapi_document(config: HttpSourceConfig) -> dict[str, Any]:
    """The OpenAPI 3.1 description of the ingest API."""
    hex_string = {"type": "string", "pattern": "^0[xX]([0-9a-fA-F]{2})*$"}
    envelope = {
        "type": "object",
        "additionalProperties": False,
        "required": [f for f in FIELDS if f != "scheme"],
        "properties": {
            "device_id": {"type": "string", "pattern": "^0[xX][0-9a-fA-F]{40}$"},
            "seq": {"type": "integer", "minimum": 0, "maximum": 2**64 - 1},
            "timestamp_ms": {"type": "integer", "minimum": 0, "maximum": 2**64 - 1},
            "payload": {**hex_string, "maxLength": 2 + 2 * config.max_payload_bytes},
            "signature": hex_string,
            "scheme": {"type": "string", "enum": list(SCHEMES), "default": "secp256k1"},
        },
    }
    error = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "reason": {"type": "string"},
                    "message": {"type": "string"},
                },
            }
        },
    }
    result = {
        "type": "object",
        "properties": {
            "accepted": {"type": "integer"},
            "rejected": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "reason": {"type": "string"},
                        "field": {"type": "string"},
                        "code": {"type": "string"},
                        "detail": {"type": "string"},
                    },
                },
            },
        },
    }
    errors = {
        "400": "the body is not JSON (filed as a dead letter `malformed`)",
        "413": f"the body exceeds {config.max_body_bytes} bytes or {config.max_batch} envelopes, or a single envelope's payload exceeds {config.max_payload_bytes} bytes",
        "415": "unsupported content type",
        "422": "a single envelope has the wrong shape; `error.field` names the field",
        "503": "the ingest log could not write, or the server is stopping; nothing in this request was acknowledged, retry",
    }
    responses: dict[str, Any] = {
        "202": {
            "description": "every envelope is durably in the ingest log or in the dead-letter store",
            "content": {"application/json": {"schema": result}},
        },
        "401": {
            "description": "a bearer token is required (`Authorization: Bearer <token>`) and none valid was given",
            "content": {"application/json": {"schema": error}},
        },
        "429": {
            "description": "too many readings waiting for the log, or the address, connection or a device is over its rate limit (`rate_limited`); nothing was logged, retry after `Retry-After` seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            "content": {"application/json": {"schema": error}},
        },
    }
    for code, text in errors.items():
        responses[code] = {"description": text, "content": {"application/json": {"schema": error}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "VeriStream ingest", "version": "1"},
        "paths": {
            "/v1/readings": {
                "post": {
                    "summary": "Submit signed device readings",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        envelope,
                                        {
                                            "type": "array",
                                            "items": envelope,
                                            "maxItems": config.max_batch,
                                        },
                                    ]
                                }
                            },
                            "application/x-ndjson": {
                                "schema": {"type": "string", "description": "one envelope per line"}
                            },
                        },
                    },
                    "responses": responses,
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness and ingest counts",
                    "responses": {"200": {"description": "ok"}},
                }
            },
        },
        "components": {"schemas": {"Envelope": envelope, "IngestResult": result, "Error": error}},
    }


class UvicornThread:
    """An ASGI app served by uvicorn in a background thread (tests, embedded runs)."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ws_max_size: int = 1 << 20,
        **options: Any,
    ) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            ws_max_size=ws_max_size,
            access_log=False,
            **options,
        )
        self.tls = "ssl_certfile" in options
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.host = host
        self.port = port

    def start(self, timeout_s: float = 10.0) -> UvicornThread:
        """Start serving; returns once the socket is listening."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        sockets = self.server.servers[0].sockets
        self.port = int(sockets[0].getsockname()[1])
        return self

    @property
    def url(self) -> str:
        """``http://host:port`` (``https`` when serving TLS)."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Drain (an app with ``state.draining`` answers new requests 503), finish in-flight requests, join."""
        state = getattr(self.server.config.app, "state", None)
        if state is not None and hasattr(state, "draining"):
            state.draining = True
            deadline = time.monotonic() + drain_timeout_s
            while state.in_flight() and time.monotonic() < deadline:
                time.sleep(0.01)
        self.server.should_exit = True
        self._thread.join(timeout=10)


def serve(committer: GroupCommitter, config: HttpSourceConfig) -> UvicornThread:
    """Start the HTTP (and WebSocket) ingest server in a thread."""
    limit = max_envelope_bytes(config.max_payload_bytes) * 2
    app = create_app(committer, config)
    return UvicornThread(
        app,
        config.host,
        config.port,
        ws_max_size=limit,
        **uvicorn_tls_options(config.tls, app.state.gate.subjects),
    ).start()


def _chunks(raws: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for raw in raws:
        chunk.append(raw)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def post_messages(
    url: str,
    raws: Iterable[bytes],
    *,
    batch_size: int = 1,
    max_attempts: int = 200,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Post raw messages (one per request, or NDJSON batches), retrying 429s after Retry-After.

    Returns the status counts, the number of readings accepted and every rejection.
    """
    import httpx

    statuses: dict[int, int] = {}
    accepted = 0
    rejected: list[dict[str, Any]] = []
    retries = 0
    start = 0
    with httpx.Client(timeout=timeout_s) as client:
        for chunk in _chunks(raws, batch_size):
            if batch_size == 1:
                body, headers = chunk[0], {"content-type": "application/json"}
            else:
                body = b"\n".join(r.replace(b"\n", b" ") for r in chunk) + b"\n"
                headers = {"content-type": NDJSON_TYPES[0]}
            for _ in range(max_attempts):
                response = client.post(f"{url}/v1/readings", content=body, headers=headers)
                if response.status_code != 429:
                    break
                retries += 1
                # Retry-After is in whole seconds; a local sender can try again sooner.
                time.sleep(min(float(response.headers.get("retry-after", "1")), 1.0) / 20)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            data = response.json()
            accepted += int(data.get("accepted", 0))
            for item in data.get("rejected", []):
                rejected.append({**item, "index": start + int(item.get("index", 0))})
            start += len(chunk)
    return {
        "statuses": statuses,
        "accepted": accepted,
        "rejected": rejected,
        "retries_429": retries,
    }

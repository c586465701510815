"""WebSocket stream of readings: one envelope per message, one ack per message after the durable append.

The server reads messages as fast as the client sends them (pipelining), hands
each to the ingest log's group committer, and answers in order with
``{"n": <1-based message number>, "accepted": true, "epoch": ...}`` or
``{"n": ..., "accepted": false, "reason": "malformed", "field": "seq", "code": "wrong_type", ...}``.
At most ``max_in_flight`` messages of a connection wait for their ack; beyond
that the server stops reading, and TCP pushes back on the sender.

With a ``Gate`` (the source's ``auth`` and ``limits``): the upgrade request
needs ``Authorization: Bearer <token>`` when a tokens file is set (else the
handshake is answered 401), an address holds at most
``max_connections_per_address`` connections (else 429), and a message over its
address, connection or device rate is answered, in order, with
``{"n": ..., "accepted": false, "reason": "rate_limited", "retry_after_s": ...}``
without being logged: the client sends it again later.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from veristream.connectors import observe
from veristream.connectors.ingest_log import AppendResult, Backpressure, GroupCommitter
from veristream.connectors.sources.config import WebSocketSourceConfig
from veristream.connectors.sources.gate import UNAUTHENTICATED, Gate, retry_after_s
from veristream.provers.errors import StoreError
from veristream.provers.reasons import Reason

_BACKOFF_S = 0.005


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _submit(
    committer: GroupCommitter, item: tuple[bytes, str, int]
) -> asyncio.Future[list[AppendResult]]:
    """Submit, waiting (not failing) while the committer is full: the socket is not read meanwhile."""
    while True:
        try:
            return asyncio.wrap_future(committer.submit([item]))
        except Backpressure:
            await asyncio.sleep(_BACKOFF_S)


def _refusal(seconds: int) -> asyncio.Future[list[AppendResult]]:
    """An ack, already settled, for a message refused by a rate limit (not logged)."""
    future: asyncio.Future[list[AppendResult]] = asyncio.get_running_loop().create_future()
    future.set_result(
        [AppendResult(False, reason=Reason.RATE_LIMITED, detail=f"retry after {seconds} s")]
    )
    return future


async def _admit(websocket: WebSocket, gate: Gate, host: str) -> bool:
    """Answer the handshake: 401 without a valid token, 429 over the address's connections."""
    if not gate.authenticate(websocket.headers.get("authorization")):
        body = {"error": {"field": "authorization", "reason": UNAUTHENTICATED, "message": "a valid bearer token is required"}}
        await websocket.send_denial_response(
            JSONResponse(body, 401, headers={"WWW-Authenticate": "Bearer"})
        )
        return False
    if not gate.open_connection(host):
        body = {"error": {"field": "connection", "reason": Reason.RATE_LIMITED, "message": f"too many connections from {host}"}}
        await websocket.send_denial_response(JSONResponse(body, 429, headers={"Retry-After": "1"}))
        return False
    return True


def stream_endpoint(
    committer: GroupCommitter, max_in_flight: int = 1000, *, gate: Gate | None = None
) -> Any:
    """An ASGI WebSocket endpoint appending each message to the log and acknowledging it."""

    async def endpoint(websocket: WebSocket) -> None:
        peer = websocket.client
        host, port = (peer.host, peer.port) if peer else ("", 0)
        if gate is not None and not await _admit(websocket, gate, host):
            return
        try:
            await _serve(websocket, host, port)
        finally:
            if gate is not None:
                gate.close_connection(host)

    async def _serve(websocket: WebSocket, host: str, port: int) -> None:
        await websocket.accept()
        if gate is not None:
            source = gate.source_name("ws", host, port, with_port=True)
        else:
            source = f"ws:{host}:{port}" if host else "ws"
        # (message number, its append, seconds to wait when a rate limit refused it)
        acks: asyncio.Queue[tuple[int, asyncio.Future[list[AppendResult]], int] | None] = (
            asyncio.Queue(maxsize=max_in_flight)
        )

        async def send_acks() -> None:
            while True:
                item = await acks.get()
                if item is None:
                    return
                n, future, retry_after = item
                try:
                    result = (await future)[0]
                except StoreError as exc:
                    # the log cannot take it (a full disk): this message and the ones after it
                    # are not acknowledged; the peer is told and sends them again later
                    await websocket.send_text(json.dumps(
                        {"n": n, "accepted": False, "error": "log_unavailable", "detail": str(exc),
                         "retry_after_s": 1}
                    ))
                    await websocket.close(code=1013, reason="log unavailable: try again later")
                    return
                if not retry_after:  # refused by a limit before the log: nothing was appended
                    observe.notify(source, [result])
                ack = {"n": n, **result.to_dict()}
                if retry_after:
                    ack["retry_after_s"] = retry_after
                await websocket.send_text(json.dumps(ack))

        sender = asyncio.create_task(send_acks())
        n = 0
        try:
            while not sender.done():  # done early: the log refused and the socket is closing
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes")
                if data is None:
                    data = (message.get("text") or "").encode("utf-8", "surrogatepass")
                n += 1
                if gate is not None:
                    wait = gate.admit_arrival(host, port) or gate.admit_devices([data])
                    if wait:
                        seconds = retry_after_s(wait)
                        await acks.put((n, _refusal(seconds), seconds))
                        continue
                future = await _submit(committer, (data, source, _now_ms()))
                await acks.put((n, future, 0))
            if not sender.done():
                await acks.put(None)
            await sender
        except WebSocketDisconnect:
            pass
        finally:
            if not sender.done():
                # The peer is gone: the appends still complete (they are durable); only the acks are lost.
                sender.cancel()

    return endpoint


def create_app(committer: GroupCommitter, config: WebSocketSourceConfig) -> Starlette:
    """A stand-alone ASGI app serving the stream at ``config.path`` (its gate in ``app.state.gate``)."""
    gate = Gate(("ws",), config.auth, config.limits)
    gate.bind(committer.log)
    app = Starlette(
        routes=[
            WebSocketRoute(config.path, stream_endpoint(committer, config.max_in_flight, gate=gate))
        ]
    )
    app.state.gate = gate
    return app


def send_messages(
    url: str, raws: Sequence[bytes], *, window: int = 500, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """Send raw messages over one WebSocket, up to ``window`` unacknowledged; return the acks in order."""
    from websockets.sync.client import connect

    acks: list[dict[str, Any]] = []
    with connect(url, max_size=None, open_timeout=timeout_s) as ws:
        sent = 0
        while len(acks) < len(raws):
            while sent < len(raws) and sent - len(acks) < window:
                raw = raws[sent]
                try:
                    ws.send(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    ws.send(raw)
                sent += 1
            reply = ws.recv(timeout=timeout_s)
            acks.append(json.loads(reply))
    return acks

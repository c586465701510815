"""WebSocket stream of readings: one envelope per message, one ack per message after the durable append.

The server reads messages as fast as the client sends them (pipelining), hands
each to the ingest log's group committer, and answers in order with
``{"n": <1-based message number>, "accepted": true, "epoch": ...}`` or
``{"n": ..., "accepted": false, "reason": "malformed", "field": "seq", "code": "wrong_type", ...}``.
At most ``max_in_flight`` messages of a connection wait for their ack; beyond
that the server stops reading, and TCP pushes back on the sender.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from veristream.connectors.ingest_log import AppendResult, Backpressure, GroupCommitter
from veristream.connectors.sources.config import WebSocketSourceConfig

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


def stream_endpoint(committer: GroupCommitter, max_in_flight: int = 1000) -> Any:
    """An ASGI WebSocket endpoint appending each message to the log and acknowledging it."""

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        peer = websocket.client
        source = f"ws:{peer.host}:{peer.port}" if peer else "ws"
        acks: asyncio.Queue[tuple[int, asyncio.Future[list[AppendResult]]] | None] = asyncio.Queue(
            maxsize=max_in_flight
        )

        async def send_acks() -> None:
            while True:
                item = await acks.get()
                if item is None:
                    return
                n, future = item
                result = (await future)[0]
                await websocket.send_text(json.dumps({"n": n, **result.to_dict()}))

        sender = asyncio.create_task(send_acks())
        n = 0
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes")
                if data is None:
                    data = (message.get("text") or "").encode("utf-8", "surrogatepass")
                n += 1
                future = await _submit(committer, (data, source, _now_ms()))
                await acks.put((n, future))
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
    """A stand-alone ASGI app serving the stream at ``config.path``."""
    return Starlette(
        routes=[WebSocketRoute(config.path, stream_endpoint(committer, config.max_in_flight))]
    )


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

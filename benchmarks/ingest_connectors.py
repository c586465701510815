"""Ingest connectors on loopback: readings/s durably accepted by MQTT, HTTP and WebSocket, and bytes per reading.

Each rate is measured with the load generator in a second process (as devices
would be), beside a baseline on the same transport that skips the ingest log
(no parse, no write, no fsync): the ratio is what durability and validation
cost. Readings come from the simulator (no faults). Bytes per reading compare
the JSON wire envelope with the same readings in Parquet (zstd).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import comparison

REPO = Path(__file__).resolve().parent.parent

MQTT_PUBLISHER = r"""
import sys, json
from pathlib import Path
from veristream.connectors.sources.config import MqttSourceConfig
from veristream.connectors.sources.mqtt import publish_messages
port, path = int(sys.argv[1]), Path(sys.argv[2])
raws = path.read_bytes().splitlines()
config = MqttSourceConfig(port=port)
print("start", flush=True)
publish_messages(config, ((f"veristream/readings/d{i % 16}", r) for i, r in enumerate(raws)), client_id="bench-pub")
print("done", flush=True)
"""

HTTP_LOADER = r"""
import sys, threading, time, httpx
from pathlib import Path
url, path, batch, clients = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
raws = path.read_bytes().splitlines()
chunks = [raws[i:i + batch] for i in range(0, len(raws), batch)]
accepted = [0] * clients
def run(c):
    with httpx.Client(timeout=60) as client:
        for chunk in chunks[c::clients]:
            while True:
                if batch == 1:
                    r = client.post(url, content=chunk[0], headers={"content-type": "application/json"})
                else:
                    r = client.post(url, content=b"\n".join(chunk), headers={"content-type": "application/x-ndjson"})
                if r.status_code != 429:
                    break
                time.sleep(0.01)
            assert r.status_code == 202, r.text
            accepted[c] += r.json()["accepted"]
threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
start = time.perf_counter()
[t.start() for t in threads]; [t.join() for t in threads]
print(sum(accepted), time.perf_counter() - start)
"""

WS_LOADER = r"""
import sys, time
from pathlib import Path
from veristream.connectors.sources.websocket import send_messages
url, path = sys.argv[1], Path(sys.argv[2])
raws = path.read_bytes().splitlines()
start = time.perf_counter()
acks = send_messages(url, raws, window=1000)
print(sum(1 for a in acks if a.get("accepted", True)), time.perf_counter() - start)
"""


def _messages(count: int, directory: Path) -> tuple[Path, list[bytes]]:
    from veristream.connectors.simulator import simulate, write_jsonl
    from veristream.connectors.sources.config import SimulatorSourceConfig

    sim = simulate(
        SimulatorSourceConfig(seed=1, count=count, rate=5000.0),
        start_ms=time.time_ns() // 1_000_000,
    )
    path = directory / "readings.jsonl"
    write_jsonl(sim.messages, path)
    return path, [m.raw for m in sim.messages]


def _python(script: str, *args: str, timeout: float = 600) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return done.stdout


def _mqtt_rate(port: int, path: Path, n: int, acked: Any) -> float:
    publisher = subprocess.Popen(
        [sys.executable, "-c", MQTT_PUBLISHER, str(port), str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert publisher.stdout is not None
    publisher.stdout.readline()
    start = time.perf_counter()
    deadline = start + 300
    while acked() < n and time.perf_counter() < deadline:
        time.sleep(0.002)
    elapsed = time.perf_counter() - start
    publisher.wait(timeout=60)
    if acked() < n:
        raise RuntimeError(f"MQTT benchmark: only {acked()} of {n} readings arrived")
    return n / elapsed


def bench_mqtt(path: Path, n: int, work: Path) -> dict[str, Any]:
    """Readings/s through mosquitto into the log (manual PUBACK after fsync) vs a subscriber that only counts."""
    import paho.mqtt.client as mqtt

    from tests.mosquitto import Mosquitto
    from veristream.connectors.ingest_log import GroupCommitter, IngestLog
    from veristream.connectors.sources.config import MqttSourceConfig
    from veristream.connectors.sources.mqtt import MqttSource

    with Mosquitto(work / "broker") as broker:
        # Baseline: the plain paho subscriber, automatic acks, nothing stored.
        counter = {"n": 0}
        plain = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="bench-plain", clean_session=True
        )
        subscribed = {"ok": False}
        plain.on_connect = lambda c, *_: c.subscribe("veristream/readings/#", qos=1)
        plain.on_subscribe = lambda *_: subscribed.update(ok=True)
        plain.on_message = lambda *_: counter.update(n=counter["n"] + 1)
        plain.connect("127.0.0.1", broker.port)
        plain.loop_start()
        while not subscribed["ok"]:
            time.sleep(0.01)
        baseline = _mqtt_rate(broker.port, path, n, lambda: counter["n"])
        plain.disconnect()
        plain.loop_stop()

        log = IngestLog(work / "mqtt-log", 60_000, 60_000)
        committer = GroupCommitter(log)
        source = MqttSource(
            MqttSourceConfig(port=broker.port, client_id="bench-ingest"), committer
        ).start()
        ours = _mqtt_rate(broker.port, path, n, lambda: source.stats.acked)
        source.stop()
        committer.close()
        assert log.counts()["appended"] == n
    return comparison(
        f"MQTT QoS 1 -> log ({n} readings)", ours, baseline, "readings/s", "paho subscriber, no log"
    )


def _null_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def accept(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"accepted": body.count(b"\n") + 1, "rejected": []}, 202)

    return Starlette(routes=[Route("/v1/readings", accept, methods=["POST"])])


def bench_http(path: Path, n: int, work: Path, batch: int, clients: int) -> dict[str, Any]:
    """Readings/s answered 202 after the durable append vs an endpoint that only reads the body."""
    from veristream.connectors.ingest_log import GroupCommitter, IngestLog
    from veristream.connectors.sources.config import HttpSourceConfig
    from veristream.connectors.sources.http import UvicornThread, create_app

    rates = []
    for real in (False, True):
        log = IngestLog(work / f"http-log-{batch}-{real}", 60_000, 60_000)
        committer = GroupCommitter(log)
        app = create_app(committer, HttpSourceConfig()) if real else _null_app()
        server = UvicornThread(app).start()
        try:
            out = _python(
                HTTP_LOADER, f"{server.url}/v1/readings", str(path), str(batch), str(clients)
            )
        finally:
            server.stop()
            committer.close()
        accepted, seconds = out.split()
        if real:
            assert log.counts()["appended"] == n == int(accepted)
        rates.append(int(accepted) / float(seconds))
    label = "1 reading/request" if batch == 1 else f"NDJSON {batch}/request"
    return comparison(
        f"HTTP {label}, {clients} clients -> log",
        rates[1],
        rates[0],
        "readings/s",
        "same server, no log",
    )


def bench_websocket(path: Path, n: int, work: Path) -> dict[str, Any]:
    """Readings/s acknowledged over one pipelined WebSocket vs the same socket acking without the log."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    from veristream.connectors.ingest_log import GroupCommitter, IngestLog
    from veristream.connectors.sources.config import WebSocketSourceConfig
    from veristream.connectors.sources.http import UvicornThread
    from veristream.connectors.sources.websocket import create_app

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        count = 0
        async for _ in websocket.iter_text():
            count += 1
            await websocket.send_text(f'{{"n":{count},"accepted":true}}')

    rates = []
    for real in (False, True):
        log = IngestLog(work / f"ws-log-{real}", 60_000, 60_000)
        committer = GroupCommitter(log)
        config = WebSocketSourceConfig()
        app = (
            create_app(committer, config)
            if real
            else Starlette(routes=[WebSocketRoute(config.path, echo)])
        )
        server = UvicornThread(app).start()
        try:
            out = _python(WS_LOADER, f"ws://127.0.0.1:{server.port}{config.path}", str(path))
        finally:
            server.stop()
            committer.close()
        accepted, seconds = out.split()
        if real:
            assert log.counts()["appended"] == n == int(accepted)
        rates.append(int(accepted) / float(seconds))
    return comparison(
        "WebSocket, per-message acks -> log",
        rates[1],
        rates[0],
        "readings/s",
        "same socket, no log",
    )


def bench_log(raws: list[bytes], work: Path, batch: int = 500) -> dict[str, Any]:
    """Readings/s appended by the log itself (parse, epoch, frame, write, fsync per batch)
    vs writing the same bytes to one file with one fsync per batch."""
    import os

    from veristream.connectors.ingest_log import IngestLog

    now = time.time_ns() // 1_000_000
    chunks = [raws[i : i + batch] for i in range(0, len(raws), batch)]
    log = IngestLog(work / "bench-log", 60_000, 60_000)
    start = time.perf_counter()
    for chunk in chunks:
        log.append_many(chunk, "bench", now)
    ours = len(raws) / (time.perf_counter() - start)
    log.close()
    fd = os.open(work / "bench-raw.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    start = time.perf_counter()
    for chunk in chunks:
        os.write(fd, b"\n".join(chunk))
        os.fsync(fd)
    baseline = len(raws) / (time.perf_counter() - start)
    os.close(fd)
    return comparison(
        f"IngestLog.append_many ({batch}/batch)",
        ours,
        baseline,
        "readings/s",
        "write + fsync, no parse",
    )


def bytes_per_reading(raws: list[bytes], work: Path) -> dict[str, Any]:
    """Average bytes of a reading as a JSON envelope and in Parquet (zstd), same readings."""
    from veristream.connectors.sources.replay import write_parquet

    path = work / "readings.parquet"
    write_parquet((json.loads(r) for r in raws), path)
    json_bytes = sum(len(r) for r in raws) / len(raws)
    parquet_bytes = path.stat().st_size / len(raws)
    row = comparison(
        "bytes per reading: Parquet zstd vs JSON",
        parquet_bytes,
        json_bytes,
        "bytes",
        "JSON envelope",
    )
    row["readings"] = len(raws)
    return row


def run(quick: bool = False) -> list[dict[str, Any]]:
    """All connector measurements as comparison rows."""
    n = 2_000 if quick else 20_000
    with tempfile.TemporaryDirectory(prefix="vs-bench-ingest-") as tmp:
        work = Path(tmp)
        path, raws = _messages(n, work)
        # One request per reading is slow by nature: a tenth of the readings is enough.
        single = work / "single.jsonl"
        single.write_bytes(b"\n".join(raws[: n // 10]) + b"\n")
        return [
            bench_mqtt(path, n, work),
            bench_http(path, n, work, batch=100, clients=4),
            bench_http(single, n // 10, work, batch=1, clients=4),
            bench_websocket(path, n, work),
            bench_log(raws, work),
            bytes_per_reading(raws, work),
        ]

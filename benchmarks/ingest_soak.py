"""HTTP ingest soak: a fixed offered rate for minutes, then the same under a junk flood.

The load comes from a second process on loopback (as devices would send):
single-envelope requests at ``rate`` a second, open loop (each request has a
scheduled send time and its acknowledgement latency is measured from it, so
a server that falls behind shows it instead of slowing the sender down). A
429 is retried after a short pause, as a device would; the latency then
includes the wait. The server runs here, so its resident memory is sampled
every second (``VmRSS``).

Phases, each ``duration_s`` long and measured in the same run:

- ``baseline``: the same load against the same server stack with no ingest log
  (the body is read and answered; nothing parsed, written or fsynced);
- ``soak``: the real ingest app over a durable ingest log;
- ``flood``: the soak again while a second process floods junk (bodies that
  are not envelopes) from another loopback address (127.0.0.2) as fast as
  it is answered; the legitimate fleet keeps offering its rate. The server uses
  per-address limits, as an operator expecting junk would: each address may
  send a little above one fleet address's share (``PER_ADDRESS_HEADROOM``
  times it, with a second of the share as burst), so the junk address is held
  to that rate and everything above it is answered 429 before the log.

The fleet is spread over several loopback addresses (``FLEET_ADDRESSES``, each
sender's client bound to its own, as the junk sender binds 127.0.0.2), each
sending an equal share of the schedule, as devices behind several gateways
would; the same fleet runs in every phase.

Rows compare the soak with the baseline, the flood with the soak, and the junk
requests refused (429) and logged with the junk requests sent; the per-second
series, the junk sender's counts and the memory samples go in the JSON
written to ``out`` beside a PNG of them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.ingest_connectors import _null_app
from benchmarks.measure import comparison

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "out" / "bench"
JUNK_ADDRESS = "127.0.0.2"
FLEET_ADDRESSES = ("127.0.0.1", "127.0.0.3", "127.0.0.4", "127.0.0.5")
"""Loopback source addresses of the legitimate fleet; each takes an equal share of the rate."""
PER_ADDRESS_HEADROOM = 1.5
"""``per_address_per_s`` in the flood phase: this many times one fleet address's share."""
FLEET_SENDERS = 64
"""Senders (bounded work in flight) of the whole fleet, split evenly over its addresses."""

FLEET = r"""
import asyncio, contextlib, json, sys, time
import httpx
url, rate, duration = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
addresses, senders = sys.argv[4].split(","), int(sys.argv[5])
total = int(rate * duration)
devices = ["0x%040x" % (0xD0 + d) for d in range(100)]

def envelope(i):
    return json.dumps({
        "device_id": devices[i % 100], "seq": i // 100, "timestamp_ms": time.time_ns() // 1_000_000,
        "payload": "0x" + b'{"temp_c_x100":2150}'.hex(), "signature": "0x" + "11" * 65,
    }, separators=(",", ":")).encode()

async def main():
    seconds = int(duration) + 1
    accepted = [0] * seconds
    latencies = [[] for _ in range(seconds)]
    by_address = {address: 0 for address in addresses}
    statuses = {}
    retries = 0
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    async with contextlib.AsyncExitStack() as stack:
        # one client per source address, bound to it as a device behind that address would be
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(
                transport=httpx.AsyncHTTPTransport(local_address=address, limits=limits), timeout=60))
            for address in addresses
        ]
        start = time.perf_counter()

        async def send(a, i, scheduled):
            nonlocal retries
            while True:
                try:
                    r = await clients[a].post(url, content=envelope(i), headers={"content-type": "application/json"})
                except httpx.TransportError as error:  # a reset connection: the device sends again
                    key = type(error).__name__
                    statuses[key] = statuses.get(key, 0) + 1
                    retries += 1
                    await asyncio.sleep(0.05)
                    continue
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code not in (429, 503):
                    break
                retries += 1
                await asyncio.sleep(0.05)
            done = time.perf_counter()
            slot = min(int(scheduled - start), seconds - 1)
            if r.status_code == 202:
                accepted[slot] += r.json()["accepted"]
                by_address[addresses[a]] += r.json()["accepted"]
            latencies[slot].append(done - scheduled)

        # Request i goes out from address i % len(addresses): each address offers an even
        # share. A fixed pool of senders per address takes its schedule in order: bounded
        # work in flight, and a request sent late still counts its latency from its
        # scheduled time.
        schedules = [iter(range(a, total, len(addresses))) for a in range(len(addresses))]

        async def sender(a):
            for i in schedules[a]:
                scheduled = start + i / rate
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await send(a, i, scheduled)

        per_address = max(1, senders // len(addresses))
        await asyncio.gather(*(sender(a) for a in range(len(addresses)) for _ in range(per_address)))
        elapsed = time.perf_counter() - start
    print(json.dumps({"sent": total, "elapsed": elapsed, "accepted": accepted,
                      "accepted_by_address": by_address, "latencies": latencies,
                      "statuses": statuses, "retries": retries}))

asyncio.run(main())
"""

JUNK = r"""
import asyncio, json, os, sys, time
import httpx
url, address, duration, concurrency = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])

async def main():
    statuses = {}
    refused = {}
    sent = 0
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(transport=transport, timeout=60) as client:
        stop = time.perf_counter() + duration

        async def worker(k):
            nonlocal sent
            n = 0
            while time.perf_counter() < stop:
                n += 1
                body = (b"junk %d %d " % (k, n)) + os.urandom(48).hex().encode()
                if n % 2:
                    body = b'{"device_id": "nope", "seq": -1}'
                try:
                    r = await client.post(url, content=body, headers={"content-type": "application/json"})
                except httpx.TransportError as error:
                    key = type(error).__name__
                    statuses[key] = statuses.get(key, 0) + 1
                    continue
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                sent += 1
                if r.status_code == 429:
                    reason = r.json()["error"]["reason"]
                    refused[reason] = refused.get(reason, 0) + 1
                    await asyncio.sleep(0.01)

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    print(json.dumps({"sent": sent, "statuses": statuses, "refused_429_by_reason": refused}))

asyncio.run(main())
"""


def _rss_mb() -> float:
    """This process's resident memory (``VmRSS``), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class _MemorySampler:
    """Samples ``_rss_mb`` every ``interval_s`` in a thread: ``[(seconds since start, MB)]``."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = time.perf_counter()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((round(time.perf_counter() - self._start, 2), round(_rss_mb(), 1)))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> _MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def _collect(process: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    out, err = process.communicate(timeout=timeout_s)
    if process.returncode != 0:
        raise RuntimeError(f"load generator failed: {err[-2000:]}")
    result: dict[str, Any] = json.loads(out)
    return result


def flood_limits(rate: float, addresses: int = len(FLEET_ADDRESSES)) -> dict[str, Any]:
    """The flood phase's ``limits``: per address a little above one fleet address's share of ``rate``.

    The junk address is held to the same rate as any fleet address; above it the
    server answers 429 before reading the body, so nothing more reaches the log.
    """
    share = rate / addresses
    return {
        "per_address_per_s": share * PER_ADDRESS_HEADROOM,
        "per_address_burst": max(1, int(share)),
        "junk_bodies_per_epoch": 1000,
    }


def _junk_summary(junk: dict[str, Any], counts: dict[str, Any], duration_s: float) -> dict[str, Any]:
    """The junk sender's answers split into refused (429, nothing read) and logged (400/422, filed)."""
    statuses: dict[str, int] = junk["statuses"]
    refused = statuses.get("429", 0)
    logged = sum(n for status, n in statuses.items() if status in ("400", "413", "422"))
    return {
        **junk,
        "refused_429": refused,
        "logged": logged,
        "refused_429_per_s": refused / duration_s,
        "logged_per_s": logged / duration_s,
        "sent_per_s": junk["sent"] / duration_s,
        # cross-check: what the log holds as rejected (the fleet's readings are all appended)
        "log_rejected": counts["rejected"],
    }


def _phase(
    name: str, work: Path, rate: float, duration_s: float, *, real: bool, flood: bool
) -> dict[str, Any]:
    """One phase: the fleet (and the junk flood) against a fresh server; per-second figures."""
    from veristream.connectors.ingest_log import GroupCommitter, IngestLog
    from veristream.connectors.sources.config import HttpSourceConfig
    from veristream.connectors.sources.http import UvicornThread, create_app

    log = IngestLog(work / f"log-{name}", 60_000, 60_000)
    committer = GroupCommitter(log)
    limits: dict[str, Any] = flood_limits(rate) if flood else {}
    config = HttpSourceConfig.model_validate({"limits": limits} if limits else {})
    app = create_app(committer, config) if real else _null_app()
    server = UvicornThread(app).start()
    url = f"{server.url}/v1/readings"
    try:
        with _MemorySampler() as memory:
            junk = _spawn(JUNK, url, JUNK_ADDRESS, str(duration_s), "16") if flood else None
            fleet_args = (url, str(rate), str(duration_s), ",".join(FLEET_ADDRESSES), str(FLEET_SENDERS))
            fleet = _collect(_spawn(FLEET, *fleet_args), duration_s + 300)
            junk_result = _collect(junk, 300) if junk is not None else None
    finally:
        server.stop()
        committer.close()
    counts = log.counts()
    log.close()
    every = [x for second in fleet["latencies"] for x in second]
    # the last second is partial (the schedule ends inside it): leave it out of the rate
    full = fleet["accepted"][: int(duration_s)]
    return {
        "phase": name,
        "offered_per_s": rate,
        "fleet_addresses": list(FLEET_ADDRESSES),
        "limits": limits,
        "sent": fleet["sent"],
        "accepted": sum(fleet["accepted"]),
        "accepted_per_s": sum(fleet["accepted"]) / fleet["elapsed"],
        "p50_ms": 1000 * _percentile(every, 50),
        "p99_ms": 1000 * _percentile(every, 99),
        "per_second": {
            "accepted": full,
            "p99_ms": [round(1000 * _percentile(s, 99), 2) for s in fleet["latencies"][: len(full)]],
        },
        "statuses": fleet["statuses"],
        "retries": fleet["retries"],
        "accepted_by_address": fleet["accepted_by_address"],
        "rss_mb": memory.samples,
        "log": counts if real else None,
        "junk": _junk_summary(junk_result, counts, duration_s) if junk_result else None,
    }


def _plot(phases: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    for phase in phases:
        label = phase["phase"]
        seconds = range(len(phase["per_second"]["accepted"]))
        axes[0].plot(seconds, phase["per_second"]["accepted"], label=label)
        axes[1].plot(seconds, phase["per_second"]["p99_ms"], label=label)
        times, mb = zip(*phase["rss_mb"], strict=True) if phase["rss_mb"] else ((), ())
        axes[2].plot(times, mb, label=label)
    axes[0].set_ylabel("accepted readings/s")
    axes[1].set_ylabel("p99 ack latency (ms)")
    axes[1].set_yscale("log")
    axes[2].set_ylabel("server RSS (MB)")
    axes[2].set_xlabel("seconds")
    for axis in axes:
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.suptitle(f"HTTP ingest soak, {phases[0]['offered_per_s']:.0f} readings/s offered")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def run(
    quick: bool = False,
    *,
    duration_s: float | None = None,
    rate: float = 200.0,
    out: Path | None = None,
) -> dict[str, Any]:
    """The three phases, the comparison rows, and the JSON + PNG written to ``out``."""
    duration = duration_s if duration_s is not None else (5.0 if quick else 180.0)
    out_dir = out or DEFAULT_OUT
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vs-soak-") as tmp:
        work = Path(tmp)
        baseline = _phase("baseline", work, rate, duration, real=False, flood=False)
        soak = _phase("soak", work, rate, duration, real=True, flood=False)
        flood = _phase("flood", work, rate, duration, real=True, flood=True)
    label = f"HTTP soak {rate:.0f}/s offered, {duration:.0f} s"
    rss_soak = max(mb for _, mb in soak["rss_mb"])
    rss_base = max(mb for _, mb in baseline["rss_mb"])
    rss_flood = max(mb for _, mb in flood["rss_mb"])
    junk = flood["junk"]
    limit = flood["limits"]["per_address_per_s"]
    rows = [
        comparison(f"{label}: accepted", soak["accepted_per_s"], baseline["accepted_per_s"],
                   "readings/s", "same server, no log"),
        comparison(f"{label}: p50 ack latency", soak["p50_ms"], baseline["p50_ms"], "ms",
                   "same server, no log"),
        comparison(f"{label}: p99 ack latency", soak["p99_ms"], baseline["p99_ms"], "ms",
                   "same server, no log"),
        comparison(f"{label}: server peak RSS", rss_soak, rss_base, "MB", "same server, no log"),
        comparison(f"{label} + junk flood: accepted", flood["accepted_per_s"],
                   soak["accepted_per_s"], "readings/s", "soak without the flood"),
        comparison(f"{label} + junk flood: p50 ack latency", flood["p50_ms"], soak["p50_ms"],
                   "ms", "soak without the flood"),
        comparison(f"{label} + junk flood: p99 ack latency", flood["p99_ms"], soak["p99_ms"],
                   "ms", "soak without the flood"),
        comparison(f"{label} + junk flood: server peak RSS", rss_flood, rss_soak, "MB",
                   "soak without the flood"),
        comparison("junk flood: junk refused 429", junk["refused_429_per_s"], junk["sent_per_s"],
                   "requests/s", "junk requests sent"),
        comparison(f"junk flood: junk logged (limit {limit:.0f}/s)", junk["logged_per_s"],
                   junk["sent_per_s"], "requests/s", "junk requests sent"),
    ]
    junk_counts = {
        key: junk[key] for key in ("sent", "refused_429", "logged", "log_rejected", "refused_429_by_reason")
    }
    result = {"soak": rows, "soak_junk": junk_counts, "soak_phases": [baseline, soak, flood]}
    json_path = out_dir / "ingest-soak.json"
    png_path = out_dir / "ingest-soak.png"
    json_path.write_text(json.dumps(result, indent=1, sort_keys=True))
    _plot([baseline, soak, flood], png_path)
    return {
        "soak": rows,
        "soak_junk": junk_counts,
        "soak_files": {"json": str(json_path), "png": str(png_path)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="HTTP ingest soak (see the module docstring)")
    parser.add_argument("--duration-s", type=float, default=None, help="seconds per phase")
    parser.add_argument("--rate", type=float, default=200.0, help="readings/s offered")
    parser.add_argument("--quick", action="store_true", help="5 s per phase")
    parser.add_argument("--out", type=Path, default=None, help=f"directory (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    result = run(args.quick, duration_s=args.duration_s, rate=args.rate, out=args.out)
    from benchmarks.report import render

    print(render("ingest soak", {"soak": result["soak"], "flood phase junk requests": result["soak_junk"]}))
    print(json.dumps(result["soak_files"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

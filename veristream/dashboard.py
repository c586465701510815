"""``veristream dashboard JOB``: a local web page over what a job's work directory and chain hold.

Pages (Starlette, served by uvicorn like the HTTP source; every asset ships in
the package, nothing is fetched from elsewhere):

- ``/``: the epochs table (status, readings, accepted, rejected, gas, tx; each
  epoch links to its detail), dead letters by reason across epochs, and the
  per-device aggregates plotted across epochs, one chart per aggregated field;
- ``/epoch/N``: one epoch in full (``veristream.inspect.epoch_detail``) and its
  dead letters by reason;
- ``/device/D``: one device's history: readings accepted and rejected by
  reason in each epoch, its aggregates, and what its beneficiary earned;
- ``/api/epochs``: the epochs table as JSON (what ``veristream epochs --json`` prints).

Charts are SVG drawn here, on the server. Everything is read without writing:
the store, the dead letters and the chain are opened read-only on each request,
so the page follows a run that is still going.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from veristream import inspect
from veristream.connectors.sources.http import UvicornThread
from veristream.pipeline.batch import aggregates_schema, read_parquet
from veristream.pipeline.jobspec import JobSpec
from veristream.pipeline.registry import load_registry
from veristream.pipeline.state import Checkpoint
from veristream.provers.errors import NotFound

ASSETS = "dashboard_assets"
STYLESHEET = "dashboard.css"
# A fixed palette: one colour per series, in order (reasons, devices).
PALETTE = (
    "#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777",
    "#65a30d", "#ea580c", "#4b5563", "#0d9488", "#9333ea",
)
CHART_W, CHART_H, MARGIN = 420, 200, 36


# READING THE JOB


def aggregates_by_epoch(job: JobSpec, found: Mapping[int, Checkpoint]) -> dict[int, list[dict[str, Any]]]:
    """Each epoch's per-device aggregate rows (device_id, field, count, min, max, mean, quantiles)."""
    if not found:
        return {}
    store = inspect.read_store(job)
    schema = aggregates_schema(job.aggregation.quantiles)
    out: dict[int, list[dict[str, Any]]] = {}
    for epoch, checkpoint in sorted(found.items()):
        manifest = checkpoint.manifest
        assert manifest is not None
        out[epoch] = read_parquet(store.get(manifest.aggregates_cid), schema).to_pylist()
    return out


def aggregate_series(aggregates: Mapping[int, Sequence[dict[str, Any]]]) -> dict[str, dict[str, dict[int, int]]]:
    """field -> device -> epoch -> mean, from ``aggregates_by_epoch``."""
    series: dict[str, dict[str, dict[int, int]]] = {}
    for epoch, rows in aggregates.items():
        for row in rows:
            series.setdefault(row["field"], {}).setdefault(row["device_id"], {})[epoch] = int(row["mean"])
    return series


def device_history(job: JobSpec, device: str) -> dict[str, Any]:
    """One device across the job's epochs: readings accepted (its largest per-field count) and
    rejected by reason, its aggregates, and what its beneficiary earned in each epoch."""
    found = inspect.checkpoints(job)
    aggregates = aggregates_by_epoch(job, found)
    rejected: dict[int | None, Counter[str]] = {}
    for letter in inspect.list_dead_letters(job, device=device):
        rejected.setdefault(letter["epoch"], Counter())[letter["reason"]] += 1
    beneficiary = _beneficiary(job, device)
    epochs = []
    previous: Checkpoint | None = None
    for epoch in sorted(found):
        mine = [row for row in aggregates.get(epoch, []) if row["device_id"] == device]
        earned = cumulative = None
        if beneficiary is not None:
            before = previous.state.cumulative.get(beneficiary, 0) if previous is not None else 0
            cumulative = found[epoch].state.cumulative.get(beneficiary, 0)
            earned = cumulative - before
        epochs.append(
            {
                "epoch": epoch,
                "accepted": max((int(row["count"]) for row in mine), default=0),
                "rejected_by_reason": dict(sorted(rejected.get(epoch, Counter()).items())),
                "aggregates": {row["field"]: {"count": int(row["count"]), "mean": int(row["mean"])} for row in mine},
                "earned": None if earned is None else str(earned),
                "cumulative": None if cumulative is None else str(cumulative),
            }
        )
        previous = found[epoch]
    return {
        "device": device,
        "beneficiary": None if beneficiary is None else "0x" + beneficiary.hex(),
        "accepted": sum(e["accepted"] for e in epochs),
        "rejected_by_reason": dict(sorted(sum((c for c in rejected.values()), Counter()).items())),
        "epochs": epochs,
    }


def _beneficiary(job: JobSpec, device: str) -> bytes | None:
    """The device's beneficiary as the registry file says (None without a file or the device)."""
    registry = job.devices.file
    if registry is None or not Path(registry).is_file():
        return None
    info = load_registry(registry).devices.get(device)
    return None if info is None else info.beneficiary


# CHARTS (SVG, drawn here)


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def stacked_bars(epochs: Sequence[int], series: Mapping[str, Mapping[int, int]], title: str) -> str:
    """One bar per epoch, stacked by series (e.g. dead letters by reason), as an SVG figure."""
    names = sorted(series)
    totals = [sum(series[name].get(epoch, 0) for name in names) for epoch in epochs]
    top = max(totals, default=0) or 1
    plot_w, plot_h = CHART_W - 2 * MARGIN, CHART_H - 2 * MARGIN
    step = plot_w / max(1, len(epochs))
    parts = [_axes(top)]
    for i, epoch in enumerate(epochs):
        x, y = MARGIN + i * step, float(CHART_H - MARGIN)
        for k, name in enumerate(names):
            n = series[name].get(epoch, 0)
            if n:
                h = n / top * plot_h
                y -= h
                parts.append(
                    f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(1.0, step - 2):.1f}" height="{h:.1f}" '
                    f'fill="{_colour(k)}"><title>epoch {epoch}: {n} {html.escape(name)}</title></rect>'
                )
        parts.append(f'<text x="{x + step / 2:.1f}" y="{CHART_H - MARGIN + 12}" text-anchor="middle">{epoch}</text>')
    return _figure(parts, title, names)


def lines(epochs: Sequence[int], series: Mapping[str, Mapping[int, int]], title: str) -> str:
    """One polyline per series across epochs (e.g. a field's per-device mean), as an SVG figure."""
    names = sorted(series)
    values = [v for s in series.values() for v in s.values()]
    low, high = min(values, default=0), max(values, default=1)
    span = (high - low) or 1
    plot_w, plot_h = CHART_W - 2 * MARGIN, CHART_H - 2 * MARGIN
    step = plot_w / max(1, len(epochs) - 1)
    parts = [_axes(high, low)]
    for k, name in enumerate(names):
        points = [
            f"{MARGIN + i * step:.1f},{CHART_H - MARGIN - (series[name][epoch] - low) / span * plot_h:.1f}"
            for i, epoch in enumerate(epochs)
            if epoch in series[name]
        ]
        parts.append(
            f'<polyline fill="none" stroke="{_colour(k)}" stroke-width="1.5" points="{" ".join(points)}">'
            f"<title>{html.escape(name)}</title></polyline>"
        )
    for i, epoch in enumerate(epochs):
        parts.append(f'<text x="{MARGIN + i * step:.1f}" y="{CHART_H - MARGIN + 12}" text-anchor="middle">{epoch}</text>')
    return _figure(parts, title, names)


def _axes(top: int, bottom: int = 0) -> str:
    x0, y0, y1 = MARGIN, CHART_H - MARGIN, MARGIN
    return (
        f'<line x1="{x0}" y1="{y0}" x2="{CHART_W - MARGIN}" y2="{y0}" stroke="#9ca3af"/>'
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#9ca3af"/>'
        f'<text x="{x0 - 4}" y="{y1 + 4}" text-anchor="end">{top}</text>'
        f'<text x="{x0 - 4}" y="{y0}" text-anchor="end">{bottom}</text>'
    )


def _figure(parts: Sequence[str], title: str, names: Sequence[str]) -> str:
    legend = "".join(
        f'<span><i style="background:{_colour(k)}"></i>{html.escape(_short(name))}</span>' for k, name in enumerate(names)
    )
    return (
        f'<figure><svg xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{CHART_H}" '
        f'viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-label="{html.escape(title)}">{"".join(parts)}</svg>'
        f'<figcaption>{html.escape(title)}</figcaption><div class="legend">{legend}</div></figure>'
    )


def _short(name: str) -> str:
    """A device id shortened for a legend (``0x1234…abcd``); other names as they are."""
    return f"{name[:6]}…{name[-4:]}" if len(name) > 14 else name


# PAGES


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><link rel=\"stylesheet\" href=\"/assets/{STYLESHEET}\"></head>"
        f'<body><nav><a href="/">epochs</a></nav><h1>{html.escape(title)}</h1>{body}</body></html>'
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], table_id: str = "", text_cols: int = 0) -> str:
    """An HTML table; cells are already escaped HTML, the first ``text_cols`` columns left-aligned."""
    def cls(i: int) -> str:
        return ' class="text"' if i < text_cols else ""

    head = "".join(f"<th{cls(i)}>{html.escape(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{cell}</td>" for i, cell in enumerate(row)) + "</tr>" for row in rows
    )
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _esc(value: Any) -> str:
    return "" if value is None else html.escape(str(value))


def _reasons(counts: Mapping[str, int]) -> str:
    return html.escape(", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))) or "—"


def index_page(job: JobSpec) -> HTMLResponse:
    """Epochs table, dead letters by reason over time, per-device aggregates across epochs."""
    rows = inspect.list_epochs(job)
    epochs = [row["epoch"] for row in rows]
    table = _table(
        ["epoch", "status", "readings in", "accepted", "rejected", "rejected by reason", "gas", "tx"],
        [
            [
                f'<a href="/epoch/{row["epoch"]}">{row["epoch"]}</a>',
                f'<span class="status-{_esc(row["status"])}">{_esc(row["status"])}</span>',
                _esc(row["readings_in"]),
                _esc(row["accepted"]),
                _esc(row["rejected"]),
                _reasons(row["rejected_by_reason"]),
                _esc(row["gas"]),
                f"<code>{_esc((row['tx_hash'] or '')[:18])}</code>",
            ]
            for row in rows
        ],
        "epochs",
        text_cols=0,
    )
    by_reason: dict[str, dict[int, int]] = {}
    for row in rows:
        for reason, n in row["rejected_by_reason"].items():
            by_reason.setdefault(reason, {})[row["epoch"]] = n
    charts = [stacked_bars(epochs, by_reason, "dead letters by reason, per epoch")]
    series = aggregate_series(aggregates_by_epoch(job, inspect.checkpoints(job)))
    with_data = [e for e in epochs if any(e in s for f in series.values() for s in f.values())]
    for field in sorted(series):
        charts.append(lines(with_data, series[field], f"{field}: mean per device, per epoch"))
    devices = sorted({d for f in series.values() for d in f})
    device_links = " ".join(f'<a href="/device/{html.escape(d)}"><code>{html.escape(_short(d))}</code></a>' for d in devices)
    body = (
        f'<p class="muted">job <code>{html.escape(job.job_id)}</code>, work directory '
        f"<code>{html.escape(str(job.work_dir))}</code></p>"
        f"<h2>Epochs</h2>{table}<h2>Dead letters and aggregates</h2><div class=\"charts\">{''.join(charts)}</div>"
        f"<h2>Devices</h2><p>{device_links or 'none yet'}</p>"
    )
    return _page(f"VeriStream: {job.job_id}", body)


def epoch_page(job: JobSpec, epoch: int) -> HTMLResponse:
    """One epoch in full: every field of ``inspect.epoch_detail`` and its dead letters by reason."""
    detail = inspect.epoch_detail(job, epoch)
    rewards = detail.pop("rewards")
    by_reason = detail.pop("rejected_by_reason")
    fields = _table(["field", "value"], [[html.escape(k), f"<code>{_esc(v)}</code>"] for k, v in detail.items()], "epoch", 1)
    reasons = _table(["reason", "dead letters"], [[html.escape(r), str(n)] for r, n in sorted(by_reason.items())], "reasons", 1)
    money = _table(["reward", "value"], [[html.escape(k), _esc(v)] for k, v in rewards.items()], "rewards", 1)
    body = f"{fields}<h2>Dead letters by reason</h2>{reasons}<h2>Rewards</h2>{money}"
    return _page(f"{job.job_id}: epoch {epoch} ({detail['status']})", body)


def device_page(job: JobSpec, device: str) -> HTMLResponse:
    """Why a device earned what it earned: accepted and rejected by reason per epoch, reward per epoch."""
    history = device_history(job, device)
    rows = [
        [
            f'<a href="/epoch/{e["epoch"]}">{e["epoch"]}</a>',
            str(e["accepted"]),
            _reasons(e["rejected_by_reason"]),
            _esc(e["earned"]),
            _esc(e["cumulative"]),
        ]
        for e in history["epochs"]
    ]
    table = _table(["epoch", "accepted", "rejected by reason", "beneficiary earned", "cumulative"], rows, "device")
    epochs = [e["epoch"] for e in history["epochs"] if e["aggregates"]]
    fields = sorted({f for e in history["epochs"] for f in e["aggregates"]})
    charts = [
        lines(epochs, {"mean": {e["epoch"]: e["aggregates"][f]["mean"] for e in history["epochs"] if f in e["aggregates"]}}, f"{f}: mean per epoch")
        for f in fields
    ]
    body = (
        f"<p>beneficiary <code>{_esc(history['beneficiary'] or 'unknown')}</code>; "
        f"{history['accepted']} readings accepted, rejected: {_reasons(history['rejected_by_reason'])}</p>"
        f"{table}<div class=\"charts\">{''.join(charts)}</div>"
    )
    return _page(f"{job.job_id}: device {device}", body)


def create_app(job: JobSpec) -> Starlette:
    """The dashboard's ASGI app over one job."""
    stylesheet = resources.files("veristream").joinpath(ASSETS, STYLESHEET).read_bytes()

    async def index(_: Request) -> Response:
        return index_page(job)

    async def epoch(request: Request) -> Response:
        return epoch_page(job, int(request.path_params["n"]))

    async def device(request: Request) -> Response:
        return device_page(job, str(request.path_params["device"]))

    async def api_epochs(_: Request) -> Response:
        return JSONResponse(inspect.list_epochs(job))

    async def asset(_: Request) -> Response:
        return Response(stylesheet, media_type="text/css")

    async def not_found(_: Request, exc: Exception) -> Response:
        page = _page("not found", f"<p>{html.escape(str(exc))}</p>")
        page.status_code = 404
        return page

    return Starlette(
        routes=[
            Route("/", index),
            Route("/epoch/{n:int}", epoch),
            Route("/device/{device}", device),
            Route("/api/epochs", api_epochs),
            Route(f"/assets/{STYLESHEET}", asset),
        ],
        exception_handlers={NotFound: not_found},
    )


def serve(job: JobSpec, port: int = 8050, host: str = "127.0.0.1") -> UvicornThread:
    """Serve the dashboard in a background thread; ``.url`` is where to point a browser."""
    return UvicornThread(create_app(job), host, port).start()

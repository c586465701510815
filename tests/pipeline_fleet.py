"""A small signed device fleet for the pipeline, committee and CLI tests (deterministic keys)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veristream.connectors.envelope import encode_reading
from veristream.pipeline.jobspec import JobSpec, parse_job
from veristream.pipeline.registry import DeviceRegistryView, parse_registry
from veristream.provers.readings import Domain, Reading
from veristream.provers.signing import device_id_from_public_key, public_key_of, sign_reading

DOMAIN = Domain(name="VeriStream", version="1", chain_id=31337)
EPOCH_MS = 60_000


@dataclass(frozen=True)
class Device:
    device_id: str
    private_key: bytes
    public_key: bytes


def fleet(n: int, offset: int = 1) -> list[Device]:
    devices = []
    for i in range(n):
        sk = (offset + i).to_bytes(32, "big")
        pk = public_key_of("secp256k1", sk)
        devices.append(Device(device_id_from_public_key("secp256k1", pk), sk, pk))
    return devices


def registry_entries(devices: list[Device], revoked: dict[str, int] | None = None) -> list[dict[str, Any]]:
    revoked = revoked or {}
    return [
        {
            "device_id": d.device_id,
            "public_key": "0x" + d.public_key.hex(),
            "scheme": "secp256k1",
            **({"revoked_at_ms": revoked[d.device_id]} if d.device_id in revoked else {}),
        }
        for d in devices
    ]


def registry(devices: list[Device], revoked: dict[str, int] | None = None) -> DeviceRegistryView:
    return parse_registry(registry_entries(devices, revoked))


def job_dict(registry_file: str = "devices.json", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "job_id": "test-job",
        "devices": {"file": registry_file},
        "epochs": {"length_ms": EPOCH_MS, "allowed_lateness_ms": 1000},
        "validation": {
            "fields": {"temp": {"min": -500, "max": 500}, "hum": {"min": 0, "max": 100, "required": False}},
            "max_clock_skew_ms": 5000,
            "max_payload_bytes": 256,
        },
        "aggregation": {"fields": ["temp", "hum"], "quantiles": [50, 90]},
        "rewards": {"tokens_per_epoch": 1_000_000, "max_per_device": 400_000},
        "operators": {"count": 4, "scheme": "bls12381"},
    }
    data.update(overrides)
    return data


def make_job(tmp: Path, devices: list[Device], revoked: dict[str, int] | None = None, **overrides: Any) -> JobSpec:
    (tmp / "devices.json").write_text(json.dumps({"devices": registry_entries(devices, revoked)}))
    return parse_job(job_dict(**overrides), base=tmp)


def reading(device: Device, seq: int, ts: int, payload: dict[str, Any] | bytes) -> Reading:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return sign_reading(Reading(device.device_id, seq, ts, body, b""), DOMAIN, device.private_key)


def record(device: Device, seq: int, ts: int, payload: dict[str, Any] | bytes, received: int | None = None) -> tuple[int, bytes]:
    return (ts + 10 if received is None else received, encode_reading(reading(device, seq, ts, payload)))


def honest_epoch(devices: list[Device], epoch: int, per_device: int, seq_start: int = 0) -> list[tuple[int, bytes]]:
    """``per_device`` good readings from each device inside ``epoch`` (interleaved by device)."""
    out = []
    base = epoch * EPOCH_MS
    for k in range(per_device):
        for i, d in enumerate(devices):
            ts = base + 1 + k * 10 + i
            out.append(record(d, seq_start + k, ts, {"temp": (k * 7 + i) % 400 - 100, "hum": (k + i) % 100}))
    return out

"""The HTTP soak benchmark runs briefly and writes its JSON beside its PNG (speed is not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import ingest_soak
from benchmarks.report import render


def test_the_flood_limit_is_a_little_above_one_fleet_address_share() -> None:
    limits = ingest_soak.flood_limits(200.0, addresses=4)
    assert limits["per_address_per_s"] == pytest.approx(75.0)
    assert limits["per_address_burst"] == 50
    assert limits["junk_bodies_per_epoch"] == 1000


@pytest.mark.slow
def test_a_short_soak_reports_rows_and_writes_json_and_png(tmp_path: Path) -> None:
    result = ingest_soak.run(duration_s=1.0, rate=50.0, out=tmp_path)
    rows = result["soak"]
    assert [row["unit"] for row in rows] == [
        "readings/s", "ms", "ms", "MB", "readings/s", "ms", "ms", "MB", "requests/s", "requests/s"
    ]
    assert all(row["ours"] > 0 and row["baseline"] > 0 for row in rows)
    saved = json.loads((tmp_path / "ingest-soak.json").read_text())
    phases = {p["phase"]: p for p in saved["soak_phases"]}
    assert set(phases) == {"baseline", "soak", "flood"}
    assert phases["soak"]["log"]["appended"] == phases["soak"]["accepted"] == 50
    # the fleet sends from every one of its addresses
    assert set(phases["soak"]["accepted_by_address"]) == set(ingest_soak.FLEET_ADDRESSES)
    assert all(n > 0 for n in phases["soak"]["accepted_by_address"].values())
    junk = phases["flood"]["junk"]
    assert junk["sent"] == junk["refused_429"] + junk["logged"]
    assert junk["refused_429"] > 0 and junk["logged"] == junk["log_rejected"]
    assert result["soak_junk"]["refused_429"] == junk["refused_429"]
    assert (tmp_path / "ingest-soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "junk flood" in render("ingest", {"soak": rows})

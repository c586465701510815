"""The HTTP soak benchmark runs briefly and writes its JSON beside its PNG (speed is not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import ingest_soak
from benchmarks.report import render


@pytest.mark.slow
def test_a_short_soak_reports_rows_and_writes_json_and_png(tmp_path: Path) -> None:
    result = ingest_soak.run(duration_s=1.0, rate=50.0, out=tmp_path)
    rows = result["soak"]
    assert [row["unit"] for row in rows] == ["readings/s", "ms", "ms", "MB", "readings/s", "ms"]
    assert all(row["ours"] > 0 and row["baseline"] > 0 for row in rows)
    saved = json.loads((tmp_path / "ingest-soak.json").read_text())
    phases = {p["phase"]: p for p in saved["soak_phases"]}
    assert set(phases) == {"baseline", "soak", "flood"}
    assert phases["soak"]["log"]["appended"] == phases["soak"]["accepted"] == 50
    assert phases["flood"]["junk"]["sent"] > 0
    assert (tmp_path / "ingest-soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "junk flood" in render("ingest", {"soak": rows})

"""A job whose source caps junk treats readings of devices its registry does not know as junk
at ingest: rejected ``unknown_device`` there, their bodies kept only up to the cap, and the
counts still add up (accepted + rejected == arrived)."""

from __future__ import annotations

from pathlib import Path

from tests.pipeline_fleet import fleet, make_job, record
from veristream.run import open_ingest_log


def test_unknown_devices_are_bounded_junk_when_a_source_caps_it(tmp_path: Path) -> None:
    known, strangers = fleet(2), fleet(30, offset=100)
    source = {"type": "http", "port": 0, "limits": {"junk_bodies_per_epoch": 5}}
    job = make_job(tmp_path, known, sources=[source], work_dir=str(tmp_path / "work"))
    log = open_ingest_log(job)
    try:
        log.bound_junk("http", 5)
        items = [(raw, "http:127.0.0.1", ts) for ts, raw in
                 [record(d, 1, 1_000 + i, {"temp": 20}) for i, d in enumerate(known + strangers)]]
        results = log.append_batch(items)
        counts = log.counts()
        assert counts["arrived"] == 32
        assert counts["rejected_by_reason"].get("unknown_device") == 30
        assert counts["arrived"] == counts["appended"] + sum(counts["rejected_by_reason"].values())
        assert sum(1 for r in results if r.accepted) == 2
        # only five stranger bodies are kept as dead letters; the rest are tallied
        tallies = log.junk_tallies(0)
        assert (tallies["http"]["kept"], tallies["http"]["tallied"]) == (5, 25)
    finally:
        log.close()
    # without a cap the pipeline judges unknown devices, as before
    plain = make_job(tmp_path, known, work_dir=str(tmp_path / "plain"))
    log = open_ingest_log(plain)
    assert log.known_device is None
    log.close()

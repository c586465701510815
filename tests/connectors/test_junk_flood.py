"""A junk flood cannot fill the disk: bodies beyond ``limits.junk_bodies_per_epoch`` leave a tally only.

The flood drives the log's append path in-process (what the HTTP source hands
its committer), not over HTTP, so a million messages take seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from veristream.connectors.ingest_log import GroupCommitter, IngestLog
from veristream.connectors.sources.config import HttpSourceConfig
from veristream.connectors.sources.http import create_app

FLOOD = 1_000_000
BATCH = 8_192
DEVICE = "0x" + "cd" * 20


def disk_bytes(directory: Path) -> int:
    """Bytes the directory's files occupy on disk (allocated blocks)."""
    return sum(p.stat().st_blocks * 512 for p in directory.rglob("*") if p.is_file())


def envelope(seq: int, device: str = DEVICE) -> bytes:
    return json.dumps(
        {
            "device_id": device,
            "seq": seq,
            "timestamp_ms": time.time_ns() // 1_000_000,
            "payload": "0x0102",
            "signature": "0x" + "22" * 65,
        }
    ).encode()


def test_RevertWhen_JunkFloodFillsTheDisk(tmp_path: Path) -> None:
    config = HttpSourceConfig(max_body_bytes=1024, limits={"junk_bodies_per_epoch": 1000})
    junk_bodies = config.limits.junk_bodies_per_epoch
    assert junk_bodies is not None
    log = IngestLog(tmp_path / "log", 3_600_000, 3_600_000)
    committer = GroupCommitter(log)
    create_app(committer, config)  # the source registers its junk bound with the log
    committer.close()
    source, now = "http:203.0.113.9", time.time_ns() // 1_000_000
    log.advance_clock(now)  # a running source's wall clock: the flood lands in the open epoch
    before = disk_bytes(tmp_path / "log")
    started = time.monotonic()
    good = 0
    for start in range(0, FLOOD, BATCH):
        batch = [
            (b"junk-%09d-%s" % (i, b"x" * (i % 40)), source, now)
            for i in range(start, min(start + BATCH, FLOOD))
        ]
        batch.append((envelope(good), source, now))  # real readings keep flowing
        good += 1
        log.append_batch(batch)
    elapsed = time.monotonic() - started
    grown = disk_bytes(tmp_path / "log") - before

    # A kept junk body is one dead-letter record: frame header, hex of at most
    # max_body_bytes, detail (error text + source name) and JSON keys; each epoch
    # and source kind adds one small tally file. The flood stays in one epoch.
    per_kept_body = 8 + 2 * config.max_body_bytes + 2 + 512
    epochs = len(log.closed_epochs()) + len(log.open_epochs()) or 1
    bound = epochs * (junk_bodies * per_kept_body + 8 * 4096) + good * 4096
    print(
        f"\njunk flood: {FLOOD} messages in {elapsed:.1f} s, disk grew {grown} bytes "
        f"(bound from the configuration {bound}; {grown / FLOOD:.2f} bytes a message)"
    )
    assert grown < bound

    counts = log.counts()
    assert counts["arrived"] == FLOOD + good
    assert counts["appended"] == good
    assert counts["rejected"] == FLOOD == counts["rejected_by_reason"]["malformed"]
    assert counts["junk_tallied"] == FLOOD - junk_bodies
    assert counts["arrived"] == counts["appended"] + counts["rejected"]
    assert len(log.dead_letters) == junk_bodies

    # The tally is durable and checkable: reopen, and recompute the chained hash.
    epoch = log.first_open_epoch()
    tally = log.junk_tallies(epoch)["http"]
    log.close()
    reopened = IngestLog(tmp_path / "log", 3_600_000, 3_600_000)
    try:
        assert reopened.junk_tallies(epoch)["http"] == tally
        assert reopened.counts() == counts
        digest = bytes(32)
        size = 0
        for i in range(junk_bodies, FLOOD):
            body = b"junk-%09d-%s" % (i, b"x" * (i % 40))
            size += len(body)
            digest = hashlib.sha256(digest + hashlib.sha256(body).digest()).digest()
        assert tally == {
            "kept": junk_bodies,
            "tallied": FLOOD - junk_bodies,
            "tallied_bytes": size,
            "by_reason": {"malformed": FLOOD - junk_bodies},
            "digest": digest.hex(),
        }
    finally:
        reopened.close()


def test_junk_bound_covers_unknown_devices_and_leaves_other_sources_alone(tmp_path: Path) -> None:
    known = "0x" + "aa" * 20
    log = IngestLog(
        tmp_path / "log", 3_600_000, 3_600_000, known_device=lambda device: device == known
    )
    try:
        log.bound_junk("http", 2)
        now = time.time_ns() // 1_000_000
        items = [(envelope(i, "0x" + "ee" * 20), "http:198.51.100.1", now) for i in range(5)]
        items += [(b"{not json", "mqtt:fleet/x", now) for _ in range(3)]
        items += [(envelope(0, known), "http:198.51.100.1", now)]
        results = log.append_batch(items)
        assert [r.reason for r in results[:5]] == ["unknown_device"] * 5
        assert results[-1].accepted
        counts = log.counts()
        assert counts["arrived"] == 9 and counts["appended"] == 1
        assert counts["rejected_by_reason"] == {"unknown_device": 5, "malformed": 3}
        assert counts["junk_tallied"] == 3  # http kept 2 of 5; mqtt has no bound, kept all 3
        assert len(log.dead_letters) == 5
    finally:
        log.close()


def test_without_a_bound_every_junk_body_is_kept(tmp_path: Path) -> None:
    log = IngestLog(tmp_path / "log", 60_000, 60_000)
    try:
        now = time.time_ns() // 1_000_000
        log.append_batch([(b"junk %d" % i, "http:192.0.2.1", now) for i in range(50)])
        assert len(log.dead_letters) == 50
        assert "junk_tallied" not in log.counts()
        assert not (tmp_path / "log" / "junk").exists()
    finally:
        log.close()

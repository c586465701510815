"""The ingest log: epochs by event time, lateness, dead letters, durability and crash recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REPO
from veristream.connectors.deadletters import DeadLetterStore
from veristream.connectors.framing import frame
from veristream.connectors.ingest_log import GroupCommitter, IngestLog, encode_record
from veristream.provers.reasons import Reason

DEVICE = "0x" + "ab" * 20


def envelope(ts: int, seq: int = 1, device: str = DEVICE) -> bytes:
    return json.dumps(
        {
            "device_id": device,
            "seq": seq,
            "timestamp_ms": ts,
            "payload": "0x01",
            "signature": "0x" + "11" * 65,
        },
        sort_keys=True,
    ).encode()


def test_epochs_lateness_and_late_dead_letters(tmp_path: Path) -> None:
    log = IngestLog(tmp_path, epoch_length_ms=1000, allowed_lateness_ms=200, genesis_ms=10_000)
    assert log.append(envelope(10_500), "t", 10_500).epoch == 0
    assert log.append(envelope(11_100), "t", 11_100).epoch == 1
    # Epoch 0 ends at 11_000 and closes once the watermark reaches 11_200.
    assert log.closed_epochs() == []
    assert log.append(envelope(10_900, 2), "t", 11_150).accepted  # late but within lateness
    assert log.append(envelope(11_200, 3), "t", 11_200).accepted
    assert log.closed_epochs() == [0]
    late = log.append(envelope(10_999, 4), "t", 11_200)
    assert (late.accepted, late.reason, late.field) == (False, "late", "timestamp_ms")
    before_genesis = log.append(envelope(9_999, 5), "t", 11_200)
    assert before_genesis.reason == "late"
    assert [json.loads(r)["seq"] for r in log.read_epoch(0)] == [1, 2]
    with pytest.raises(ValueError, match="still open"):
        log.read_epoch(1)
    counts = log.counts()
    assert counts["arrived"] == 6
    assert counts["appended"] == 4
    assert counts["rejected_by_reason"] == {"late": 2}
    # Dead letters are filed under the first epoch still open, so a later epoch's set holds them.
    letters = log.dead_letters.read()
    assert [d.reason for d in letters] == ["late", "late"]
    assert {d.epoch for d in letters} == {1}
    assert {d.raw for d in letters} == {envelope(10_999, 4), envelope(9_999, 5)}


def test_parse_failures_become_dead_letters_with_reasons(tmp_path: Path) -> None:
    log = IngestLog(tmp_path, 1000, 0, max_payload_bytes=16)
    results = log.append_many(
        [
            b"{oops",
            b"[]",
            envelope(5),
            json.dumps({"seq": 1}).encode(),
            envelope(6).replace(b"0x01", b"0x" + b"00" * 17),
        ],
        "http",
        10,
    )
    assert [r.accepted for r in results] == [False, False, True, False, False]
    assert [r.reason for r in results] == ["malformed", "malformed", None, "malformed", "oversized"]
    assert [r.field for r in results] == ["envelope", "envelope", None, "device_id", "payload"]
    assert [r.code for r in results] == ["not_json", "wrong_type", None, "missing", "too_large"]
    assert log.counts()["rejected_by_reason"] == {"malformed": 3, "oversized": 1}
    assert set(log.dead_letters.counts()) <= set(Reason)
    oversized = envelope(6).replace(b"0x01", b"0x" + b"00" * 17)
    assert [d.raw for d in log.dead_letters.read()] == [b"{oops", b"[]", b'{"seq": 1}', oversized]


def test_watermark_ignores_device_clocks_ahead_of_arrival(tmp_path: Path) -> None:
    log = IngestLog(tmp_path, 1000, 0)
    log.append(envelope(500), "t", 500)
    # A device clock an hour ahead must not close everyone's epoch.
    assert log.append(envelope(3_600_000), "t", 600).accepted
    assert log.watermark_ms == 600
    assert log.append(envelope(700, 2), "t", 700).accepted
    assert log.closed_epochs() == []


def test_advance_clock_closes_idle_epochs_and_mark_processed_persists(tmp_path: Path) -> None:
    log = IngestLog(tmp_path, 1000, 100)
    log.append(envelope(500), "t", 500)
    assert log.closed_epochs() == []
    log.advance_clock(1100)
    assert log.closed_epochs() == [0]
    with pytest.raises(ValueError):
        log.mark_processed(1)
    log.mark_processed(0)
    assert log.closed_epochs() == []
    log.close()
    reopened = IngestLog(tmp_path, 1000, 100)
    assert reopened.watermark_ms == 1100
    assert reopened.processed_epochs() == [0]
    assert reopened.closed_epochs() == []
    assert reopened.read_epoch(0) == [envelope(500)]
    assert not reopened.append(envelope(900, 2), "t", 1200).accepted


def test_reopen_resumes_counts_watermark_and_appends(tmp_path: Path) -> None:
    log = IngestLog(tmp_path, 1000, 0)
    log.append_many([envelope(100 * i, i) for i in range(1, 25)], "t", 10_000)
    log.append(b"junk", "t", 10_000)
    before = log.counts()
    log.close()
    log = IngestLog(tmp_path, 1000, 0)
    assert log.counts() == before
    assert log.watermark_ms == 2400
    assert log.closed_epochs() == [0, 1]
    log.append(envelope(2500, 99), "t", 10_000)
    assert log.counts()["appended"] == before["appended"] + 1


def test_torn_last_record_is_dropped_not_half_read(tmp_path: Path) -> None:
    log = IngestLog(tmp_path, 1000, 0)
    log.append_many([envelope(10, 1), envelope(20, 2)], "t", 20)
    log.close()
    segment = tmp_path / "segments" / "epoch-000000000000.log"
    whole = frame(encode_record(envelope(30, 3), "t", 30, 30))
    for cut in (1, 7, len(whole) - 1):
        data = segment.read_bytes()
        segment.write_bytes(data + whole[:cut])  # a crash in the middle of the write
        log = IngestLog(tmp_path, 1000, 0)
        assert log.torn_bytes_dropped == cut
        assert log.counts()["appended"] == 2
        log.advance_clock(5000)
        assert log.read_epoch(0) == [envelope(10, 1), envelope(20, 2)]
        log.close()
        assert segment.read_bytes() == data  # cut back, so later appends follow good records
    # A flipped bit in the last record is a torn record too (its CRC fails).
    data = segment.read_bytes()
    segment.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    log = IngestLog(tmp_path, 1000, 0)
    assert log.counts()["appended"] == 1


def test_dead_letter_store_survives_reopen_and_torn_tail(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path)
    store.add(b"a", "bad_signature", stage="pipeline", epoch=3, detail="x")
    store.add(b"b", "late", stage="ingest")
    store.close()
    path = tmp_path / "deadletters.log"
    path.write_bytes(path.read_bytes() + b"\x00\x00\x01")
    store = DeadLetterStore(tmp_path)
    assert store.counts() == {"bad_signature": 1, "late": 1}
    assert [d.raw for d in store.read(epoch=3)] == [b"a"]
    assert store.counts(stage="ingest") == {"late": 1}
    with pytest.raises(ValueError, match="reason"):
        store.add(b"c", "Not A Reason", stage="ingest")
    with pytest.raises(ValueError, match="epoch"):
        store.add(b"c", "late", stage="ingest", epoch=-1)


def test_bad_arguments_raise_value_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        IngestLog(tmp_path, 0, 0)
    with pytest.raises(ValueError):
        IngestLog(tmp_path, 1000, -1)
    log = IngestLog(tmp_path, 1000, 0)
    with pytest.raises(ValueError):
        log.append("text", "t", 0)
    with pytest.raises(ValueError):
        log.append(b"{}", "t", -5)


def test_group_committer_from_many_threads_loses_nothing(tmp_path: Path) -> None:
    log = IngestLog(tmp_path, 10_000, 0)
    committer = GroupCommitter(log, max_pending=100_000)
    per_thread = 300

    def worker(t: int) -> None:
        for i in range(per_thread):
            committer.append([(envelope(1000 + i, t * 10_000 + i), f"w{t}", 1000)])

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    committer.close()
    assert log.counts() == {
        "arrived": 6 * per_thread,
        "appended": 6 * per_thread,
        "rejected": 0,
        "rejected_by_reason": {},
        "torn_bytes_dropped": 0,
    }
    log.advance_clock(20_000)
    seqs = sorted(json.loads(r)["seq"] for r in log.read_epoch(0))
    assert seqs == sorted(t * 10_000 + i for t in range(6) for i in range(per_thread))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.booleans(), st.integers(0, 3)),
        min_size=1,
        max_size=60,
    )
)
def test_property_every_arrival_is_accounted_and_closed_epochs_are_frozen(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[int, bool, int]]
) -> None:
    directory = tmp_path_factory.mktemp("prop")
    log = IngestLog(directory, 1000, 250)
    frozen: dict[int, list[bytes]] = {}
    for i, (ts, good, batch) in enumerate(steps):
        raws = [envelope(ts, i * 10 + j) if good else b"{" * (j + 1) for j in range(batch + 1)]
        log.append_many(raws, "p", ts)
        for epoch in log.closed_epochs():
            current = log.read_epoch(epoch)
            assert frozen.setdefault(epoch, current) == current  # closed: never grows
            for raw in current:
                assert log.epoch_of(json.loads(raw)["timestamp_ms"]) == epoch
    counts = log.counts()
    arrived = sum(b + 1 for _, _, b in steps)
    assert counts["arrived"] == arrived == counts["appended"] + counts["rejected"]
    assert counts["rejected"] == len(log.dead_letters.read())


WRITER = r"""
import json, sys
from veristream.connectors.ingest_log import IngestLog, GroupCommitter
log = IngestLog(sys.argv[1], 1000, 0)
committer = GroupCommitter(log)
i = 0
while True:
    batch = [(json.dumps({"device_id": "0x" + "ab" * 20, "seq": i + k, "timestamp_ms": 1000 + i + k,
              "payload": "0x01", "signature": "0x11"}).encode(), "crash", 1000) for k in range(7)]
    committer.append(batch)
    print(i + 6, flush=True)  # the acknowledgement: these seqs are durable
    i += 7
"""


@pytest.mark.slow
def test_nothing_acknowledged_is_lost_when_the_writer_is_killed(tmp_path: Path) -> None:
    for round_ in range(3):
        directory = tmp_path / f"r{round_}"
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(directory)],
            stdout=subprocess.PIPE,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert child.stdout is not None
        acked = -1
        deadline = time.monotonic() + 0.3 + 0.2 * round_
        first = child.stdout.readline()
        assert first, "writer did not start"
        acked = int(first)
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            acked = int(line)
        child.send_signal(signal.SIGKILL)
        child.wait()
        # Lines already written to the pipe are acknowledgements too.
        for line in child.stdout.read().split():
            acked = int(line)
        log = IngestLog(directory, 1000, 0)
        log.advance_clock(10**9)
        seqs = sorted(json.loads(r)["seq"] for e in log.closed_epochs() for r in log.read_epoch(e))
        assert acked > 0
        assert seqs[: acked + 1] == list(range(acked + 1)), "an acknowledged record is missing"
        assert len(seqs) == len(set(seqs)) == log.counts()["arrived"]
        assert all(r.source == "crash" for r in log.read_records(log.closed_epochs()[0]))


def test_one_writer_and_read_only_readers_in_other_processes(tmp_path: Path) -> None:
    writer = IngestLog(tmp_path, 1000, 0)
    with pytest.raises(ValueError, match="already open for writing"):
        IngestLog(tmp_path, 1000, 0)
    writer.append(envelope(100, 1), "w", 100)
    writer.append(b"nope", "w", 100)
    reader = IngestLog(tmp_path, 1000, 0, read_only=True)
    assert reader.counts()["arrived"] == 2
    with pytest.raises(ValueError, match="read-only"):
        reader.append(envelope(200, 2), "r", 200)
    with pytest.raises(ValueError, match="read-only"):
        reader.advance_clock(5000)
    writer.append_many([envelope(1500, 3), envelope(2100, 4)], "w", 2100)
    assert reader.closed_epochs() == []  # not yet refreshed
    reader.refresh()
    assert reader.closed_epochs() == [0, 1]
    assert reader.read_epoch(1) == [envelope(1500, 3)]
    # A half-written record (a write in progress) is not read, and not cut away by a reader.
    segment = tmp_path / "segments" / "epoch-000000000002.log"
    partial = frame(encode_record(envelope(2200, 5), "w", 2200, 2200))[:9]
    with open(segment, "ab") as handle:
        handle.write(partial)
    reader.refresh()
    assert segment.read_bytes().endswith(partial)
    assert reader.counts()["appended"] == 3
    reader.mark_processed(0)
    writer.close()
    with open(segment, "r+b") as handle:
        handle.truncate(segment.stat().st_size - len(partial))
    reopened = IngestLog(tmp_path, 1000, 0)
    assert reopened.processed_epochs() == [0]
    assert reopened.closed_epochs() == [1]
    with pytest.raises(ValueError, match="no ingest log"):
        IngestLog(tmp_path / "absent", 1000, 0, read_only=True)


def test_a_log_written_with_the_single_state_file_still_opens(tmp_path: Path) -> None:
    log = IngestLog(tmp_path, 1000, 0)
    log.append(envelope(100), "t", 100)
    log.close()
    (tmp_path / "state.json").write_text(json.dumps({"clock_ms": 5000, "processed": [0]}))
    reopened = IngestLog(tmp_path, 1000, 0)
    assert reopened.watermark_ms == 5000
    assert reopened.processed_epochs() == [0]


def test_clock_skewed_reading_is_filed_under_the_epoch_open_at_arrival(tmp_path: Path) -> None:
    log = IngestLog(tmp_path, 1000, 200, 10_000, max_clock_skew_ms=5000)
    assert log.append(envelope(10_100), "t", 10_100).accepted
    # ten minutes ahead of its arrival: refused here, never an epoch 600 of its own
    skewed = log.append(envelope(610_300, 2), "t", 10_300)
    assert (skewed.accepted, skewed.reason, skewed.epoch) == (False, "clock_skew", 0)
    assert log.append(envelope(15_000, 3), "t", 10_400).accepted  # within the allowed skew
    assert log.open_epochs() == [0, 5]
    log.advance_clock(20_000)
    assert log.closed_epochs() == [0, 5]
    assert [(d.reason, d.epoch, d.stage) for d in log.dead_letters.read()] == [("clock_skew", 0, "ingest")]
    assert log.counts()["rejected_by_reason"] == {"clock_skew": 1}
    log.close()

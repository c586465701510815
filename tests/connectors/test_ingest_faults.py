"""The ingest log under real faults: a full disk (a 2 MiB tmpfs), a segment damaged in the middle.

Every acknowledged message must stay durable and be counted once; nothing
unacknowledged may stay behind; ingest resumes by itself when space is back.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from typer.testing import CliRunner

from tests.conftest import free_port
from veristream.cli import app
from veristream.connectors.framing import HEADER, RecordWriteError
from veristream.connectors.ingest_log import GroupCommitter, IngestLog, repair_log
from veristream.connectors.sources.config import HttpSourceConfig
from veristream.connectors.sources.http import UvicornThread, create_app
from veristream.provers.errors import StoreError

DEVICE = "0x" + "ab" * 20
HOUR_MS = 3_600_000


def envelope(seq: int) -> bytes:
    return json.dumps(
        {
            "device_id": DEVICE,
            "seq": seq,
            "timestamp_ms": time.time_ns() // 1_000_000,
            "payload": "0x" + "01" * 32,
            "signature": "0x" + "22" * 65,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- a small disk -------------------------------------------------------------


class SmallDisk:
    """A 2 MiB tmpfs mounted for one test; ``fill`` takes every free byte, ``free`` gives it back."""

    def __init__(self, mount_point: Path) -> None:
        self.path = mount_point
        self.filler = mount_point / "filler"

    def fill(self) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (1 << 16, 4096, 256, 1):
                while True:
                    try:
                        os.write(fd, b"\0" * size)
                    except OSError as error:
                        assert error.errno == errno.ENOSPC
                        break
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk needs a tmpfs: mounting needs root and mount(8)")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield SmallDisk(mount_point)
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def logged_seqs(directory: Path) -> list[int]:
    log = IngestLog(directory, HOUR_MS, 0)
    try:
        log.advance_clock(now_ms() + 10 * HOUR_MS)
        return sorted(json.loads(raw)["seq"] for e in log.closed_epochs() for raw in log.read_epoch(e))
    finally:
        log.close()


# --- disk full ----------------------------------------------------------------


def test_RevertWhen_TheDiskFillsDuringAnAppend(small_disk: SmallDisk) -> None:
    directory = small_disk.path / "log"
    log = IngestLog(directory, HOUR_MS, 0)
    acked = [seq for seq in range(20) if log.append(envelope(seq), "t", now_ms()).accepted]
    small_disk.fill()
    segment = next((directory / "segments").iterdir())
    size = segment.stat().st_size
    # A batch larger than a page: its write is cut short by ENOSPC part way.
    with pytest.raises(StoreError) as raised:
        log.append_many([envelope(seq) for seq in range(100, 200)], "t", now_ms())
    assert isinstance(raised.value, RecordWriteError) and raised.value.disk_full
    assert "No space left" in str(raised.value)
    assert segment.stat().st_size == size, "half a batch was left in the segment"
    assert log.counts()["appended"] == len(acked)
    # Junk that would go to the dead letters fails the same way and leaves no trace.
    with pytest.raises(StoreError):
        log.append_many([b"{not json" * 500] * 20, "t", now_ms())
    assert log.counts()["rejected"] == 0

    small_disk.free()
    more = log.append_many([envelope(seq) for seq in range(20, 40)], "t", now_ms())
    assert all(r.accepted for r in more)
    log.close()
    assert logged_seqs(directory) == list(range(40))


def test_http_answers_503_while_the_disk_is_full_and_resumes(small_disk: SmallDisk) -> None:
    directory = small_disk.path / "log"
    log = IngestLog(directory, HOUR_MS, 0)
    committer = GroupCommitter(log)
    server = UvicornThread(create_app(committer, HttpSourceConfig()), port=free_port()).start()
    acked: list[int] = []

    def post(seq: int) -> httpx.Response:
        reply = httpx.post(
            f"{server.url}/v1/readings",
            content=envelope(seq),
            headers={"content-type": "application/json"},
        )
        if reply.status_code == 202:
            acked.append(seq)
        return reply

    try:
        assert all(post(seq).status_code == 202 for seq in range(10))
        small_disk.fill()
        # What still fits in the segment's last page is taken; then every request is refused.
        seq = 10
        while post(seq).status_code == 202:
            seq += 1
            assert seq < 100, "the full disk was never noticed"
        refused = [post(s) for s in range(seq, seq + 10)]
        assert {r.status_code for r in refused} == {503}
        assert refused[0].json()["error"]["reason"] == "log_unavailable"
        assert refused[0].headers["retry-after"]
        junk = httpx.post(f"{server.url}/v1/readings", content=b"not json at all")
        assert junk.status_code == 503
        small_disk.free()
        # Resumes by itself: the senders' retries now land.
        assert all(post(s).status_code == 202 for s in range(seq, seq + 10))
        counts = log.counts()
        assert counts["appended"] == len(acked) == seq + 10 and counts["rejected"] == 0
    finally:
        server.stop()
        committer.close()
        log.close()
    assert logged_seqs(directory) == sorted(acked)


# --- damage in the middle of a segment ----------------------------------------


def damaged_log(directory: Path, count: int = 20) -> tuple[Path, list[int]]:
    """A closed log of ``count`` one-record appends; returns the segment and each record's offset."""
    log = IngestLog(directory, HOUR_MS, 0)
    for seq in range(count):
        log.append(envelope(seq), "t", now_ms())
    log.close()
    segment = next((directory / "segments").iterdir())
    data = segment.read_bytes()
    offsets, offset = [], 0
    while offset < len(data):
        offsets.append(offset)
        offset += HEADER.size + HEADER.unpack_from(data, offset)[0]
    return segment, offsets


def flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_RevertWhen_ASegmentIsDamagedInTheMiddle(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    segment, offsets = damaged_log(directory)
    flip(segment, offsets[10] + HEADER.size + 30)  # a byte in record 10's body
    # Opening must refuse it (the old code cut the file at record 10, losing 9 acknowledged records).
    with pytest.raises(StoreError) as raised:
        IngestLog(directory, HOUR_MS, 0)
    message = str(raised.value)
    assert segment.name in message and f"byte {offsets[10]}" in message
    assert segment.stat().st_size == offsets[-1] + (offsets[-1] - offsets[-2]), "the file was changed"


def test_repair_quarantines_the_damage_and_reports_the_loss_exactly(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    segment, offsets = damaged_log(directory)
    original_size = segment.stat().st_size
    flip(segment, offsets[10] + HEADER.size + 30)
    damaged = segment.read_bytes()

    report = repair_log(directory, now="t1")
    assert report.records_lost == 1 and report.exact
    assert report.bytes_lost == offsets[11] - offsets[10]
    (item,) = report.repaired
    assert (item.damaged[0].start, item.damaged[0].end) == (offsets[10], offsets[11])
    assert item.records_kept == 19
    # Moved aside, not deleted: the damaged original is kept byte for byte, with the report.
    aside = directory / item.quarantined_as
    assert aside.read_bytes() == damaged
    assert json.loads((directory / "quarantine" / "t1" / "report.json").read_text())[
        "records_lost"
    ] == 1
    assert segment.stat().st_size == original_size - report.bytes_lost
    assert logged_seqs(directory) == [s for s in range(20) if s != 10]
    # A second repair finds nothing to do.
    assert repair_log(directory, now="t2").repaired == []


def test_repair_of_a_damaged_length_header_reports_a_lower_bound(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    segment, offsets = damaged_log(directory)
    flip(segment, offsets[5])  # the high byte of record 5's length
    report = repair_log(directory, now="t1")
    assert report.bytes_lost == offsets[6] - offsets[5]
    assert report.records_lost == 1 and not report.exact
    assert logged_seqs(directory) == [s for s in range(20) if s != 5]


def test_cli_ingest_repair(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    segment, offsets = damaged_log(directory, 8)
    flip(segment, offsets[3] + HEADER.size + 5)
    flip(segment, offsets[6] + HEADER.size + 5)
    result = CliRunner().invoke(app, ["ingest-repair", str(directory), "--json"])
    assert result.exit_code == 1, result.output
    out = json.loads(result.output)
    assert out["records_lost"] == 2 and out["records_lost_exact"]
    assert out["bytes_lost"] == (offsets[4] - offsets[3]) + (offsets[7] - offsets[6])
    clean = CliRunner().invoke(app, ["ingest-repair", str(directory)])
    assert clean.exit_code == 0 and "no damage" in clean.output


def test_a_torn_tail_is_still_dropped_without_repair(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    segment, _ = damaged_log(directory, 5)
    with open(segment, "ab") as out:
        out.write(HEADER.pack(500, 0) + b"x" * 40)  # a write cut short by a crash
    log = IngestLog(directory, HOUR_MS, 0)
    assert log.torn_bytes_dropped == HEADER.size + 40
    log.close()
    assert logged_seqs(directory) == list(range(5))


def test_websocket_stops_acknowledging_while_the_disk_is_full_and_resumes(small_disk: SmallDisk) -> None:
    directory = small_disk.path / "log"
    log = IngestLog(directory, HOUR_MS, 0)
    committer = GroupCommitter(log)
    server = UvicornThread(create_app(committer, HttpSourceConfig()), port=free_port()).start()
    url = server.url.replace("http://", "ws://") + "/v1/stream"
    acked: list[int] = []

    async def stream(seqs: list[int]) -> list[dict[str, object]]:
        replies: list[dict[str, object]] = []
        async with websockets.connect(url) as ws:
            for seq in seqs:
                await ws.send(envelope(seq))
                reply = json.loads(await ws.recv())
                replies.append(reply)
                if reply.get("accepted"):
                    acked.append(seq)
                else:
                    break
            if replies and not replies[-1].get("accepted"):
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        return replies

    try:
        assert all(r["accepted"] for r in asyncio.run(stream(list(range(5)))))
        small_disk.fill()
        replies = asyncio.run(stream(list(range(5, 100))))
        assert replies[-1]["error"] == "log_unavailable" and replies[-1]["accepted"] is False
        small_disk.free()
        refused = [int(str(r["n"])) for r in replies if not r["accepted"]]
        assert len(refused) == 1
        retry = list(range(5 + len(replies) - 1, 5 + len(replies) + 4))
        assert all(r["accepted"] for r in asyncio.run(stream(retry)))
    finally:
        server.stop()
        committer.close()
        log.close()
    assert logged_seqs(directory) == sorted(acked)

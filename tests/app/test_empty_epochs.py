"""Empty epochs move no money: what a job emits does not depend on where junk landed.

The same honest readings are run through the ingest log and the pipeline three
times: alone; with an epoch holding only readings that fail their checks; and with
readings stamped ten minutes ahead of their arrival (refused at ingest, filed under
the epoch open then, never an epoch of their own). Every run ends with the same
reward root and the same carried remainder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.pipeline_fleet import EPOCH_MS, fleet, honest_epoch, make_job, record
from veristream.connectors.ipfs import EmbeddedStore
from veristream.pipeline.compute import job_context
from veristream.pipeline.state import load_checkpoint
from veristream.render import why_unverified
from veristream.run import (
    RunSummary,
    committed_epochs,
    open_ingest_log,
    process_closed_epochs,
    verify_epoch,
)

DEVICES = fleet(4)
HONEST = honest_epoch(DEVICES, 0, per_device=5) + honest_epoch(DEVICES, 2, per_device=3, seq_start=5)


def _run(tmp: Path, messages: list[tuple[int, bytes]]) -> tuple[Any, list[Any]]:
    tmp.mkdir()
    job = make_job(tmp, DEVICES, rewards={"tokens_per_epoch": 1_000_003, "max_per_device": 200_000})
    log = open_ingest_log(job)
    try:
        # in order of arrival, as a live source delivers them
        log.append_batch([(raw, "file:0", received) for received, raw in sorted(messages, key=lambda m: m[0])])
        log.advance_clock(10 * EPOCH_MS)
        process_closed_epochs(job, log, EmbeddedStore(Path(job.work_dir) / "ipfs"), job_context(job))
    finally:
        log.close()
    return load_checkpoint(Path(job.work_dir)).state, committed_epochs(Path(job.work_dir))


def test_emission_does_not_depend_on_where_junk_landed(tmp_path: Path) -> None:
    # epoch 1: only readings whose payload is implausible (out of range) -> an empty epoch
    implausible = [record(d, 20 + i, EPOCH_MS + 100 * i, {"temp": 9999}) for i, d in enumerate(DEVICES)]
    # ten minutes ahead of their arrival during epoch 0
    skewed = [record(d, 30 + i, 600_000 + 50 * i, {"temp": 20}, received=200 + i) for i, d in enumerate(DEVICES)]

    alone, alone_epochs = _run(tmp_path / "alone", HONEST)
    with_empty, empty_epochs = _run(tmp_path / "empty", HONEST + implausible)
    with_skew, skew_epochs = _run(tmp_path / "skew", HONEST + skewed)

    assert [c.manifest.epoch for c in alone_epochs] == [0, 2]
    assert [c.manifest.epoch for c in empty_epochs] == [0, 1, 2]
    assert [c.manifest.epoch for c in skew_epochs] == [0, 2]  # no epoch 10 of its own
    for state in (with_empty, with_skew):
        assert state.cumulative == alone.cumulative
        assert state.carry == alone.carry
    roots = {
        tuple(c.manifest.reward_root for c in epochs if c.manifest.accepted)
        for epochs in (alone_epochs, empty_epochs, skew_epochs)
    }
    assert len(roots) == 1

    # the empty epoch drew no budget, paid nobody, and is reported as empty with its rejections
    empty = empty_epochs[1].manifest
    assert (empty.accepted, empty.rewards.budget, empty.rewards.paid, empty.rewards.sink_paid) == (0, 0, 0, 0)
    summary = RunSummary("test-job")
    row = verify_epoch(make_job(tmp_path / "empty", DEVICES), None, None, empty_epochs[1], summary)  # type: ignore[arg-type]
    assert row["status"] == "empty" and row["rejected"] == {"implausible": 4}
    assert why_unverified(row) == "empty: 4 rejected (implausible)"

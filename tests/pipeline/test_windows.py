"""Epoch windows and lateness with Beam's TestStream (BundleBased runner): Beam's event-time
windows agree with VeriStream's EpochClock on which readings belong to which epoch and which
arrive too late, the rule the ingest log applies before the bounded per-epoch pipeline."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing import test_stream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import window
from apache_beam.utils.timestamp import Timestamp

from veristream.pipeline.stages import EpochWindows
from veristream.provers.epoch_clock import EpochClock

LENGTH, LATENESS, GENESIS = 10_000, 2_000, 1_000
CLOCK = EpochClock(LENGTH, LATENESS, GENESIS)


def _ts(ms: int) -> Timestamp:
    return Timestamp(micros=ms * 1000)


def test_teststream_windows_and_lateness_match_the_epoch_clock() -> None:
    # (device, event time): on time in epoch 0 and 1, late-but-allowed for epoch 0,
    # then too late for epoch 0 once the watermark passed its end + lateness
    on_time = [("a", 1_500), ("b", 9_000), ("a", 10_999)]
    allowed_late = ("b", 3_000)  # arrives at watermark 11_500 < 11_000 + 2_000
    epoch1 = [("a", 12_000), ("b", 20_500)]
    too_late = ("a", 4_000)  # arrives at watermark 13_500 >= 13_000: epoch 0 has closed
    stream = (
        test_stream.TestStream()
        .add_elements([window.TimestampedValue(e, _ts(e[1])) for e in on_time])
        .advance_watermark_to(_ts(11_500))
        .add_elements([window.TimestampedValue(allowed_late, _ts(allowed_late[1]))])
        .add_elements([window.TimestampedValue(e, _ts(e[1])) for e in epoch1])
        .advance_watermark_to(_ts(13_500))
        .add_elements([window.TimestampedValue(too_late, _ts(too_late[1]))])
        .advance_watermark_to_infinity()
    )
    # the EpochClock says the same before Beam does
    assert not CLOCK.is_closed(0, 11_500) and CLOCK.is_closed(0, 13_500)
    assert CLOCK.epoch_of(too_late[1]) == 0

    options = PipelineOptions(flags=[])
    options.view_as(StandardOptions).streaming = True
    with beam.Pipeline(runner="BundleBasedDirectRunner", options=options) as p:
        counted = (
            p
            | stream
            | EpochWindows(LENGTH, LATENESS, GENESIS)
            | beam.Map(lambda e: ("all", e[1]))
            | beam.GroupByKey()
            | beam.ParDo(_EpochOfPane())
        )
        # epoch 0: three on time, then one late pane with the allowed-late reading; the
        # too-late one is dropped. Epoch 1: two readings.
        assert_that(counted, equal_to([(0, (1_500, 9_000, 10_999)), (0, (3_000,)), (1, (12_000, 20_500))]))


class _EpochOfPane(beam.DoFn):
    def process(self, element, win=beam.DoFn.WindowParam):  # type: ignore[no-untyped-def]
        _, stamps = element
        start_ms = win.start.micros // 1000
        yield CLOCK.epoch_of(start_ms), tuple(sorted(stamps))

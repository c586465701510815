"""The epoch's checks on Beam's embedded runner: ``FnApiRunner`` in this process.

The runner is named explicitly so nothing tries to download the Prism runner;
inputs enter and results leave through in-process registries, so the readings
are never serialised into the pipeline itself.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from veristream.pipeline import workers
from veristream.pipeline.jobspec import JobSpec
from veristream.pipeline.records import Rejected
from veristream.pipeline.rewards import RewardOutcome
from veristream.pipeline.stages import (
    DeviceEpoch,
    EpochChecks,
    EpochChecksConfig,
    Rewards,
    batched,
    started_checks,
)

# The embedded runner executes in this process, so inputs enter and results
# leave through process-local registries keyed by a run id: ``beam.Create`` over
# the records themselves would pickle and bz2-compress every reading into the
# pipeline proto, and a ``ToList`` over the results would pickle them again.
_SOURCE: dict[str, list[Any]] = {}
_SINK: dict[str, dict[str, list[Any]]] = {}
_LOCK = threading.Lock()


def _fetch(index: int, run: str) -> Any:
    with _LOCK:
        return _SOURCE[run][index]


def _deposit(value: Any, run: str, name: str) -> None:
    with _LOCK:
        _SINK[run][name].append(value)


def _make_pipeline(job: JobSpec) -> beam.Pipeline:
    # another runner's options (job endpoint, SDK environment) mean nothing here: this is
    # re-execution of a batch, which is always embedded
    given = job.beam.options if job.beam.runner == "fnapi" else {}
    # Beam type-checks the graph against the DoFns' annotations while building it, a
    # noticeable part of a small epoch; the graph is the same every epoch, so it is off
    # unless asked for
    options = PipelineOptions(flags=[], **{"pipeline_type_check": False, **given})
    return beam.Pipeline(runner=FnApiRunner(), options=options)


def run_checks(
    job: JobSpec, config: EpochChecksConfig, inputs: Sequence[Any], carry_in: int
) -> tuple[list[DeviceEpoch], list[Rejected], RewardOutcome]:
    """The epoch's per-device results (by device), dead letters (canonical order) and reward split."""
    if config.verify_workers > 1 and config.verify_on == "ray":
        workers.ensure_ray(job.ray.address, job.ray.num_cpus)
    run = uuid.uuid4().hex
    elements = batched(inputs, job.beam.readings_per_element)
    with _LOCK:
        _SOURCE[run] = elements
        _SINK[run] = {"devices": [], "dead": [], "rewards": []}
    try:
        # the worker pool starts on the batches while Beam builds the pipeline
        with started_checks(config, elements) as config, _make_pipeline(job) as pipeline:
            records = (
                pipeline
                | "Epoch" >> beam.Create(range(len(elements)), reshuffle=False)
                | "Records" >> beam.Map(_fetch, run)
            )
            devices, dead = records | "EpochChecks" >> EpochChecks(config)
            rewards = devices | "Rewards" >> Rewards(job.rewards, carry_in)
            _ = devices | "SinkDevices" >> beam.Map(_deposit, run, "devices")
            _ = dead | "SinkDead" >> beam.Map(_deposit, run, "dead")
            _ = rewards | "SinkRewards" >> beam.Map(_deposit, run, "rewards")
        with _LOCK:
            out = _SINK[run]
    finally:
        with _LOCK:
            _SOURCE.pop(run, None)
            _SINK.pop(run, None)
    devices_out = sorted(out["devices"], key=lambda d: d.device_id)
    dead_out = sorted(out["dead"], key=Rejected.order_key)
    if len(out["rewards"]) != 1:
        raise AssertionError(f"the rewards stage produced {len(out['rewards'])} results, not one")
    return devices_out, dead_out, out["rewards"][0]

"""Runs an epoch's checks on a Beam runner outside this process: a portable job service,
Flink, Spark or Dataflow.

The embedded runner hands records in and results out through registries in this
process (``veristream.pipeline.compute``). A distributed runner's workers are other
processes, usually on other machines, so here both directions go through files
under the job's staging location, which the client and every worker must reach
(an absolute path on a shared filesystem, or a filesystem URL Beam knows, such as
``gs://``)::

    <staging>/<run>/in/NNNNN.pickle             one (offset, batch) input element each
    <staging>/<run>/out/<name>-SSSSS-of-NNNNN   one result a line (base64 pickle)
    <staging>/<run>/count/<name>                how many results that output had

The pipeline is the embedded one's: the same ``EpochChecks`` and ``Rewards``
composites, so the results do not depend on the runner. After the run every
output is read back and checked against the count the pipeline itself took, so a
shard written where the client cannot see it (a worker's local disk) is an error,
never a silently smaller epoch. The run's folder is removed after a good read-back
and left for inspection otherwise.

Pickles are read back from the staging location: whoever can write there can run
code in this process, exactly as they could in Beam's own workers (which unpickle
every transform). Keep it as private as the work directory.
"""

from __future__ import annotations

import base64
import dataclasses
import pickle
import shutil
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from veristream.pipeline.jobspec import BeamSpec, JobSpec
from veristream.pipeline.records import Rejected
from veristream.pipeline.rewards import RewardOutcome
from veristream.pipeline.stages import DeviceEpoch, EpochChecks, EpochChecksConfig, Rewards, batched
from veristream.provers.errors import InputRejected, VeriStreamError

RUNNER_CLASSES = {
    "portable": "PortableRunner",
    "flink": "FlinkRunner",
    "spark": "SparkRunner",
    "dataflow": "DataflowRunner",
}
OUTPUTS = ("devices", "dead", "rewards")


class StagingError(VeriStreamError, RuntimeError):
    """An epoch's outputs could not all be read back from the staging location."""


def staging_root(job: JobSpec) -> str:
    """Where runs of ``job`` on a non-embedded runner keep their files (see module doc)."""
    spec = job.beam
    if spec.staging:
        return spec.staging.rstrip("/")
    if spec.runner == "dataflow":
        return spec.options["temp_location"].rstrip("/") + "/veristream"
    return str(job.work_dir / "beam-staging")


def make_pipeline(spec: BeamSpec) -> beam.Pipeline:
    """A Beam pipeline on ``spec``'s (non-embedded) runner with its options."""
    from apache_beam.options.pipeline_options import PipelineOptions

    if spec.runner not in RUNNER_CLASSES:
        raise InputRejected(f"beam.runner {spec.runner!r} is not a non-embedded runner")
    options = PipelineOptions(flags=[], **spec.options)
    return beam.Pipeline(runner=RUNNER_CLASSES[spec.runner], options=options)


# ENCODING OF ELEMENTS IN FILES


def encode_line(value: Any) -> str:
    """One result as a line of text (base64 of its pickle: no newline inside)."""
    return base64.b64encode(pickle.dumps(value, protocol=5)).decode("ascii")


def decode_line(line: bytes) -> Any:
    """The result ``encode_line`` wrote."""
    return pickle.loads(base64.b64decode(line, validate=True))


def _write_file(path: str, data: bytes) -> None:
    with FileSystems.create(path) as handle:
        handle.write(data)


def _read_file(path: str) -> bytes:
    with FileSystems.open(path) as handle:
        data: bytes = handle.read()
    return data


def _load_element(path: str) -> Any:
    return pickle.loads(_read_file(path))


def _matches(pattern: str) -> list[str]:
    found = FileSystems.match([pattern])[0].metadata_list
    return sorted(m.path for m in found)


def _remove(run_dir: str) -> None:
    if "://" not in run_dir:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    files = _matches(FileSystems.join(run_dir, "**"))
    if files:
        FileSystems.delete(files)


# THE RUN


def _write_inputs(run_dir: str, elements: Sequence[Any]) -> list[str]:
    paths = []
    for index, element in enumerate(elements):
        path = FileSystems.join(run_dir, "in", f"{index:05d}.pickle")
        _write_file(path, pickle.dumps(element, protocol=5))
        paths.append(path)
    return paths


class _ToFiles(beam.PTransform):
    """One output as lines under ``out/`` and its element count under ``count/``."""

    def __init__(self, run_dir: str, name: str) -> None:
        super().__init__()
        self._run_dir = run_dir
        self._name = name

    def expand(self, results: Any) -> Any:
        out = FileSystems.join(self._run_dir, "out", self._name)
        count = FileSystems.join(self._run_dir, "count", self._name)
        _ = (
            results
            | "Count" >> beam.combiners.Count.Globally()
            | "CountLine" >> beam.Map(str)
            | "WriteCount" >> beam.io.WriteToText(count, shard_name_template="")
        )
        return results | "Encode" >> beam.Map(encode_line) | "Write" >> beam.io.WriteToText(out)


def _read_output(run_dir: str, name: str) -> list[Any]:
    """Every result of output ``name``; ``StagingError`` unless all that were counted are there."""
    count_files = _matches(FileSystems.join(run_dir, "count", name))
    if not count_files:
        raise StagingError(
            f"no count for output {name!r} under {run_dir}: is the staging location shared "
            "with the runner's workers (beam.staging)?"
        )
    expected = int(_read_file(count_files[0]).decode("ascii").strip() or "0")
    results = [
        decode_line(line)
        for path in _matches(FileSystems.join(run_dir, "out", f"{name}-*"))
        for line in _lines(_read_file(path))
    ]
    if len(results) != expected:
        raise StagingError(
            f"output {name!r}: the pipeline produced {expected} results but {len(results)} were "
            f"read back from {run_dir}: is the staging location shared with every worker?"
        )
    return results


def _lines(data: bytes) -> Iterator[bytes]:
    return (line for line in data.split(b"\n") if line)


def run_checks(
    job: JobSpec, config: EpochChecksConfig, inputs: Sequence[Any], carry_in: int, label: str
) -> tuple[list[DeviceEpoch], list[Rejected], RewardOutcome]:
    """The epoch's per-device results, dead letters and reward split, computed on
    ``job.beam.runner`` through files under ``staging_root(job)``.

    ``label`` names the run's folder (with a random suffix, so runs never collide).
    The results come back in canonical order, as the embedded runner gives them.
    """
    # the signature stage's process pool lives in the submitting process; a
    # distributed runner spreads the batches over its own workers instead
    config = dataclasses.replace(config, verify_workers=1, memo=None)
    run_dir = FileSystems.join(staging_root(job), f"{label}-{uuid.uuid4().hex}")
    paths = _write_inputs(run_dir, batched(inputs, job.beam.readings_per_element))
    try:
        with make_pipeline(job.beam) as pipeline:
            records = (
                pipeline
                | "Epoch" >> beam.Create(paths)
                | "Records" >> beam.Map(_load_element)
            )
            devices, dead = records | "EpochChecks" >> EpochChecks(config)
            rewards = devices | "Rewards" >> Rewards(job.rewards, carry_in)
            _ = devices | "SinkDevices" >> _ToFiles(run_dir, "devices")
            _ = dead | "SinkDead" >> _ToFiles(run_dir, "dead")
            _ = rewards | "SinkRewards" >> _ToFiles(run_dir, "rewards")
        out = {name: _read_output(run_dir, name) for name in OUTPUTS}
    except StagingError:
        raise
    except Exception as error:
        raise RuntimeError(
            f"epoch run on Beam runner {job.beam.runner!r} failed: {error} "
            f"(its files are left in {run_dir})"
        ) from error
    devices_out = sorted(out["devices"], key=lambda d: d.device_id)
    ids = [d.device_id for d in devices_out]
    if len(set(ids)) != len(ids):
        raise StagingError(f"a device appears twice in the results read back from {run_dir}")
    if len(out["rewards"]) != 1:
        raise StagingError(f"the rewards stage produced {len(out['rewards'])} results, not one")
    _remove(run_dir)
    return devices_out, sorted(out["dead"], key=Rejected.order_key), out["rewards"][0]

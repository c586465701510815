"""The per-epoch pipeline's stages as composite Beam transforms.

Each stage takes batches (lists of ~1,000 candidates per element, so Beam's
per-element overhead is paid once per batch) and returns ``(main, dead)``: the
readings that passed, and a tagged dead-letter output of ``Rejected`` records
carrying the reason. ``EpochChecks.expand`` reads like DESIGN.md's data flow:

    decode -> verify signatures -> replay / duplicate guard -> plausibility
    -> per-device aggregates

After the replay guard the main output is keyed by device: ``(device_id,
[candidates])`` with each device's readings in canonical order, so every later
stage is a pure function of its device's group and the result does not depend
on how the runner bundled the input.
"""

from __future__ import annotations

import json
import pickle
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from veristream.pipeline.aggregates import FieldStats, device_stats
from veristream.pipeline.checks import check_signatures, credentials_problem, split_by_problems
from veristream.pipeline.jobspec import ValidationSpec
from veristream.pipeline.records import (
    CANDIDATE_ORDER,
    REASON_DUPLICATE,
    REASON_IMPLAUSIBLE,
    REASON_MALFORMED,
    REASON_REPLAY,
    REASON_WRONG_EPOCH,
    STAGE_DECODE,
    STAGE_PLAUSIBILITY,
    STAGE_REPLAY,
    Candidate,
    CandidateBatch,
    Rejected,
    rejected_from,
)
from veristream.pipeline.registry import DeviceInfo
from veristream.pipeline.rewards import Contribution

DEAD = "dead"
REASON_OVERSIZED = "oversized"
REASON_BAD_SIGNATURE = "bad_signature"
REASON_UNKNOWN_DEVICE = "unknown_device"


def batched(items: Sequence[Any], size: int) -> list[tuple[int, list[Any]]]:
    """``items`` cut into ``(offset, list of at most size)`` elements (the pipeline's input)."""
    if size <= 0:
        raise ValueError(f"batch size must be positive, got {size}")
    return [(i, list(items[i : i + size])) for i in range(0, len(items), size)]


# DECODE


class _DecodeFn(beam.DoFn):
    """Raw ingest records ``(received_ms, envelope bytes)`` to candidates."""

    def __init__(self, max_payload_bytes: int) -> None:
        self._max_payload_bytes = max_payload_bytes

    def process(self, element: tuple[int, list[tuple[int, bytes]]]) -> Iterator[Any]:
        from veristream.connectors.envelope import TOO_LARGE, envelope_fields, parse_reading

        offset, batch = element
        limit = self._max_payload_bytes
        good = CandidateBatch()
        for index, (received_ms, raw) in enumerate(batch):
            fields = envelope_fields(raw, limit)
            if fields is not None:
                good.append(Candidate(received_ms, offset + index, *fields, raw))
                continue
            # the careful parser: accepts the odd-but-valid envelope, names the problem otherwise
            try:
                reading = parse_reading(raw, max_payload_bytes=self._max_payload_bytes)
            except ValueError as error:
                reason = REASON_OVERSIZED if getattr(error, "reason", "") == TOO_LARGE else REASON_MALFORMED
                yield pvalue.TaggedOutput(
                    DEAD, Rejected(reason, STAGE_DECODE, raw, received_ms, detail=str(error))
                )
                continue
            good.append(Candidate.of(received_ms, offset + index, reading, raw))
        if good:
            yield good


class Decode(beam.PTransform):
    """Parse each wire envelope into a reading; dead letters ``malformed`` or ``oversized``."""

    def __init__(self, max_payload_bytes: int) -> None:
        super().__init__()
        self._max_payload_bytes = max_payload_bytes

    def expand(self, records: Any) -> tuple[Any, Any]:
        out = records | "Parse" >> beam.ParDo(_DecodeFn(self._max_payload_bytes)).with_outputs(
            DEAD, main="ok"
        )
        return out.ok, out[DEAD]


# VERIFY SIGNATURES

# Verdict memos (``signing.VerdictMemo``) lent to the signature stage by the process
# running the pipeline: the embedded runner pickles DoFns, so a token travels and
# the memo itself stays in this process (and keeps what the stage learns).
_MEMOS: dict[str, Any] = {}


@contextmanager
def lent_memo(memo: Any) -> Iterator[str | None]:
    """A token naming ``memo`` to ``VerifySignatures`` while the block runs (None without a memo)."""
    if memo is None:
        yield None
        return
    token = uuid.uuid4().hex
    _MEMOS[token] = memo
    try:
        yield token
    finally:
        _MEMOS.pop(token, None)


class _VerifyFn(beam.DoFn):
    """Verifies each batch in-process, or with ``workers > 1`` on a process pool: batches are
    submitted as they come and their results emitted when the bundle finishes. A lent
    verdict memo (``memo``, a ``lent_memo`` token) is used in-process."""

    def __init__(
        self,
        domain: Any,
        keys: Mapping[str, bytes],
        devices: Mapping[str, DeviceInfo],
        max_clock_skew_ms: int,
        workers: int = 1,
        memo: str | None = None,
    ) -> None:
        self._domain = domain
        self._keys = dict(keys)
        self._devices = dict(devices)
        self._max_clock_skew_ms = max_clock_skew_ms
        self._workers = workers
        self._memo = memo
        self._pending: list[Any] = []

    def start_bundle(self) -> None:
        self._pending = []

    def process(self, batch: list[Candidate]) -> Iterator[Any]:
        memo = _MEMOS.get(self._memo) if self._memo is not None else None
        if memo is not None:
            good, bad = check_signatures(
                batch, self._domain, self._keys, self._devices, self._max_clock_skew_ms, memo=memo
            )
            yield from _verified(good, bad)
            return
        if self._workers > 1:
            from veristream.pipeline import verify_pool

            # the runner started this pool before the pipeline; same key, so it is reused
            pool = verify_pool.pool_for(
                self._workers, self._domain, self._keys, self._devices, self._max_clock_skew_ms
            )
            self._pending.append((batch, verify_pool.submit(pool, batch)))
            return
        good, bad = check_signatures(
            batch, self._domain, self._keys, self._devices, self._max_clock_skew_ms
        )
        yield from _verified(good, bad)

    def finish_bundle(self) -> Iterator[Any]:
        from apache_beam.transforms.window import GlobalWindow
        from apache_beam.utils.windowed_value import WindowedValue

        pending, self._pending = self._pending, []
        # collected in submission order: the output never depends on which worker finished first
        for batch, future in pending:
            good, bad = split_by_problems(batch, future.result())
            for out in _verified(good, bad):
                if isinstance(out, pvalue.TaggedOutput):
                    yield pvalue.TaggedOutput(out.tag, WindowedValue(out.value, 0, (GlobalWindow(),)))
                else:
                    yield WindowedValue(out, 0, (GlobalWindow(),))


def _verified(good: list[Candidate], bad: list[Rejected]) -> Iterator[Any]:
    for rejected in bad:
        yield pvalue.TaggedOutput(DEAD, rejected)
    if good:
        yield good


class VerifySignatures(beam.PTransform):
    """Check every device signature against the registry's key (``verify_many``, one call per
    batch), then that the key was not revoked and the timestamp is credible."""

    def __init__(
        self,
        domain: Any,
        keys: Mapping[str, bytes],
        devices: Mapping[str, DeviceInfo],
        max_clock_skew_ms: int,
        workers: int = 1,
        memo: str | None = None,
    ) -> None:
        super().__init__()
        self._fn = _VerifyFn(domain, keys, devices, max_clock_skew_ms, workers, memo)

    def expand(self, batches: Any) -> tuple[Any, Any]:
        out = batches | "Verify" >> beam.ParDo(self._fn).with_outputs(DEAD, main="ok")
        return out.ok, out[DEAD]


# REPLAY / DUPLICATE GUARD


def split_by_device(batch: Iterable[Candidate]) -> list[tuple[str, list[Candidate]]]:
    """One ``(device_id, readings)`` element per device present in ``batch``."""
    groups: dict[str, list[Candidate]] = {}
    for candidate in batch:
        groups.setdefault(candidate.device_id, []).append(candidate)
    return list(groups.items())


def _packed_by_device(batch: Iterable[Candidate]) -> list[tuple[str, bytes]]:
    # One pickle per device group instead of one per reading: Beam's coder would
    # otherwise pickle every candidate on its own at the shuffle.
    return [
        (device, pickle.dumps(CandidateBatch(group), protocol=5))
        for device, group in split_by_device(batch)
    ]


def guard_device(
    candidates: Iterable[Candidate], high_water: int | None
) -> tuple[list[Candidate], list[Rejected]]:
    """One device's readings past the replay guard, in canonical order.

    ``high_water`` is the highest sequence number accepted in earlier epochs.
    Readings at or below it are ``replay``; of readings sharing a sequence number
    in this epoch the first in canonical order (lowest received time, then
    bytes) passes and the others are ``duplicate`` when byte-identical to it,
    ``replay`` otherwise. Arrival and bundle order never matter.
    """
    ordered = sorted(candidates, key=CANDIDATE_ORDER)
    passed = CandidateBatch()
    rejected: list[Rejected] = []
    for candidate in ordered:
        reading = candidate
        if high_water is not None and reading.seq <= high_water:
            rejected.append(
                rejected_from(candidate, REASON_REPLAY, STAGE_REPLAY, f"high-water mark {high_water}")
            )
        elif passed and passed[-1].seq == reading.seq:
            first = passed[-1]
            same = (first.payload, first.timestamp_ms, first.signature) == (
                reading.payload,
                reading.timestamp_ms,
                reading.signature,
            )
            reason = REASON_DUPLICATE if same else REASON_REPLAY
            rejected.append(rejected_from(candidate, reason, STAGE_REPLAY, f"seq {reading.seq} seen"))
        else:
            passed.append(candidate)
    return passed, rejected


class _GuardFn(beam.DoFn):
    def __init__(self, high_water: Mapping[str, int]) -> None:
        self._high_water = dict(high_water)

    def process(self, element: tuple[str, Iterable[bytes]]) -> Iterator[Any]:
        device_id, packed = element
        passed, rejected = guard_device(
            (c for blob in packed for c in pickle.loads(blob)), self._high_water.get(device_id)
        )
        for item in rejected:
            yield pvalue.TaggedOutput(DEAD, item)
        if passed:
            yield device_id, passed


class ReplayGuard(beam.PTransform):
    """Per device: drop sequence numbers at or below the cross-epoch high-water mark, and repeats."""

    def __init__(self, high_water: Mapping[str, int]) -> None:
        super().__init__()
        self._high_water = high_water

    def expand(self, batches: Any) -> tuple[Any, Any]:
        out = (
            batches
            | "SplitByDevice" >> beam.FlatMap(_packed_by_device)
            | "GroupByDevice" >> beam.GroupByKey()
            | "Guard" >> beam.ParDo(_GuardFn(self._high_water)).with_outputs(DEAD, main="ok")
        )
        return out.ok, out[DEAD]


# PLAUSIBILITY


@dataclass(frozen=True, slots=True)
class PlausibilityRules:
    """Everything the plausibility stage needs, passed in (never read from config inside)."""

    validation: ValidationSpec
    epoch_start_ms: int
    epoch_end_ms: int
    devices: Mapping[str, DeviceInfo]


def decode_payload(payload: bytes, validation: ValidationSpec) -> dict[str, int] | tuple[str, str]:
    """The declared integer fields of a JSON-object payload, or ``(reason, detail)`` why not."""
    try:
        document = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return REASON_MALFORMED, "payload is not JSON"
    if not isinstance(document, dict):
        return REASON_MALFORMED, "payload is not a JSON object"
    values: dict[str, int] = {}
    for name, rule in validation.fields.items():
        value = document.get(name)
        if value is None:
            if rule.required:
                return REASON_IMPLAUSIBLE, f"{name}: required field missing"
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            return REASON_IMPLAUSIBLE, f"{name}: not an integer"
        if rule.min is not None and value < rule.min:
            return REASON_IMPLAUSIBLE, f"{name}: {value} below {rule.min}"
        if rule.max is not None and value > rule.max:
            return REASON_IMPLAUSIBLE, f"{name}: {value} above {rule.max}"
        values[name] = value
    return values


def plausible_values(candidate: Candidate, rules: PlausibilityRules) -> dict[str, int] | tuple[str, str]:
    """The declared payload values of a signed, fresh reading, or ``(reason, detail)`` why it is
    not plausible."""
    reading = candidate
    validation = rules.validation
    if not rules.epoch_start_ms <= reading.timestamp_ms < rules.epoch_end_ms:
        return REASON_WRONG_EPOCH, f"timestamp {reading.timestamp_ms} outside the epoch"
    if len(reading.payload) > validation.max_payload_bytes:
        return REASON_OVERSIZED, f"payload {len(reading.payload)} > {validation.max_payload_bytes} bytes"
    # revocation and clock skew were checked with the signature; re-checked here so that a
    # batch re-executed by an operator cannot slip such a reading through either
    credentials = credentials_problem(candidate, rules.devices, validation.max_clock_skew_ms)
    if credentials is not None:
        return credentials
    return decode_payload(reading.payload, validation)


def plausibility_problem(candidate: Candidate, rules: PlausibilityRules) -> tuple[str, str] | None:
    """Why a signed, fresh reading is not plausible, as ``(reason, detail)``; None when it is."""
    values = plausible_values(candidate, rules)
    return values if isinstance(values, tuple) else None


def check_device(
    candidates: Iterable[Candidate], rules: PlausibilityRules
) -> tuple[list[Candidate], list[Rejected], list[dict[str, int]]]:
    """Split one device's readings into plausible ones (with their payload values) and dead letters."""
    passed = CandidateBatch()
    values: list[dict[str, int]] = []
    rejected: list[Rejected] = []
    for candidate in candidates:
        checked = plausible_values(candidate, rules)
        if isinstance(checked, tuple):
            rejected.append(rejected_from(candidate, checked[0], STAGE_PLAUSIBILITY, checked[1]))
        else:
            passed.append(candidate)
            values.append(checked)
    return passed, rejected, values


class _PlausibilityFn(beam.DoFn):
    def __init__(self, rules: PlausibilityRules) -> None:
        self._rules = rules

    def process(self, element: tuple[str, list[Candidate]]) -> Iterator[Any]:
        device_id, candidates = element
        passed, rejected, values = check_device(candidates, self._rules)
        for item in rejected:
            yield pvalue.TaggedOutput(DEAD, item)
        if passed:
            yield device_id, passed, values


class Plausibility(beam.PTransform):
    """Epoch bounds, payload size and per-field ranges (integers, required fields present)."""

    def __init__(self, rules: PlausibilityRules) -> None:
        super().__init__()
        self._rules = rules

    def expand(self, groups: Any) -> tuple[Any, Any]:
        out = groups | "Check" >> beam.ParDo(_PlausibilityFn(self._rules)).with_outputs(
            DEAD, main="ok"
        )
        return out.ok, out[DEAD]


# PER-DEVICE AGGREGATES


@dataclass(frozen=True, slots=True)
class DeviceEpoch:
    """One device's accepted readings of the epoch, its statistics and its reward contribution."""

    device_id: str
    accepted: tuple[Candidate, ...]
    stats: dict[str, FieldStats]
    contribution: Contribution


def summarise_device(
    device_id: str,
    accepted: Sequence[Candidate],
    validation: ValidationSpec,
    fields: Sequence[str],
    quantiles: Sequence[int],
    beneficiary: bytes,
    payloads: Sequence[Mapping[str, int]] | None = None,
) -> DeviceEpoch:
    """Statistics and contribution of one device's accepted readings (canonical order);
    ``payloads`` are their decoded values when the caller already has them."""
    if payloads is None:
        decoded_all: list[Mapping[str, int]] = []
        for candidate in accepted:
            decoded = decode_payload(candidate.payload, validation)
            if isinstance(decoded, tuple):
                raise ValueError(f"accepted reading of {device_id} does not decode: {decoded[1]}")
            decoded_all.append(decoded)
        payloads = decoded_all
    seqs = [c.seq for c in accepted]
    contribution = Contribution(
        beneficiary=beneficiary, valid=len(accepted), min_seq=min(seqs), max_seq=max(seqs)
    )
    return DeviceEpoch(
        device_id, tuple(accepted), device_stats(payloads, fields, quantiles), contribution
    )


class _SummariseFn(beam.DoFn):
    def __init__(
        self,
        validation: ValidationSpec,
        fields: Sequence[str],
        quantiles: Sequence[int],
        beneficiaries: Mapping[str, bytes],
    ) -> None:
        self._validation = validation
        self._fields = list(fields)
        self._quantiles = list(quantiles)
        self._beneficiaries = dict(beneficiaries)

    def process(
        self, element: tuple[str, list[Candidate], list[dict[str, int]]]
    ) -> Iterator[DeviceEpoch]:
        from veristream.pipeline.registry import device_address

        device_id, accepted, values = element
        beneficiary = self._beneficiaries.get(device_id) or device_address(device_id)
        yield summarise_device(
            device_id, accepted, self._validation, self._fields, self._quantiles, beneficiary, values
        )


class AggregatePerDevice(beam.PTransform):
    """Count, min/max/sum/mean and nearest-rank quantiles per device, plus its reward contribution."""

    def __init__(
        self,
        validation: ValidationSpec,
        fields: Sequence[str],
        quantiles: Sequence[int],
        beneficiaries: Mapping[str, bytes],
    ) -> None:
        super().__init__()
        self._fn = _SummariseFn(validation, fields, quantiles, beneficiaries)

    def expand(self, groups: Any) -> Any:
        return groups | "Summarise" >> beam.ParDo(self._fn)


# THE WHOLE EPOCH


@dataclass(frozen=True, slots=True)
class EpochChecksConfig:
    """Inputs of the checks that come from the job and the previous state (all plain values)."""

    domain: Any
    keys: Mapping[str, bytes]
    high_water: Mapping[str, int]
    rules: PlausibilityRules
    fields: Sequence[str]
    quantiles: Sequence[int]
    beneficiaries: Mapping[str, bytes]
    decoded: bool = False
    verify_workers: int = 1
    # a ``lent_memo`` token: the signature stage's verdict memo (pre-verification)
    memo: str | None = None


class EpochChecks(beam.PTransform):
    """The whole per-epoch flow up to per-device results; returns ``(devices, dead_letters)``.

    Input elements are ``(offset, batch)``: batches of raw ingest records
    ``(received_ms, envelope)`` at ``offset`` in the epoch's log, or with
    ``decoded=True`` batches of candidates (an operator re-executing a batch
    from IPFS).
    """

    def __init__(self, config: EpochChecksConfig) -> None:
        super().__init__()
        self._c = config

    def expand(self, records: Any) -> tuple[Any, Any]:
        c = self._c
        dead = []
        if c.decoded:
            candidates = records | "Candidates" >> beam.Map(lambda element: element[1])
        else:
            limit = c.rules.validation.max_payload_bytes
            candidates, undecodable = records | "Decode" >> Decode(limit)
            dead.append(undecodable)
        signed, forged = candidates | "VerifySignatures" >> VerifySignatures(
            c.domain,
            c.keys,
            c.rules.devices,
            c.rules.validation.max_clock_skew_ms,
            c.verify_workers,
            c.memo,
        )
        fresh, replayed = signed | "ReplayGuard" >> ReplayGuard(c.high_water)
        plausible, implausible = fresh | "Plausibility" >> Plausibility(c.rules)
        devices = plausible | "AggregatePerDevice" >> AggregatePerDevice(
            c.rules.validation, c.fields, c.quantiles, c.beneficiaries
        )
        dead_letters = (*dead, forged, replayed, implausible) | "DeadLetters" >> beam.Flatten()
        return devices, dead_letters


# STREAMING VIEW OF THE SAME EPOCHS


class EpochWindows(beam.PTransform):
    """Readings (as ``(device_id, timestamp_ms)``-keyed elements) into the job's epochs as Beam
    fixed event-time windows with its allowed lateness: what a streaming runner would do.

    VeriStream closes epochs in the ingest log instead (Beam's embedded runners
    cannot run an unbounded source here); this transform states the same rule in
    Beam's terms, and a TestStream test checks both agree on what is late.
    """

    def __init__(self, length_ms: int, allowed_lateness_ms: int, genesis_ms: int = 0) -> None:
        super().__init__()
        self._length_ms = length_ms
        self._lateness_ms = allowed_lateness_ms
        self._genesis_ms = genesis_ms

    def expand(self, readings: Any) -> Any:
        from apache_beam.transforms import trigger, window
        from apache_beam.utils.timestamp import Duration, Timestamp

        size = Duration(micros=self._length_ms * 1000)
        offset = Timestamp(micros=(self._genesis_ms % self._length_ms) * 1000)
        return readings | "IntoEpochs" >> beam.WindowInto(
            window.FixedWindows(size, offset),
            trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
            accumulation_mode=trigger.AccumulationMode.DISCARDING,
            allowed_lateness=Duration(micros=self._lateness_ms * 1000),
        )

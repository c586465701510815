"""The per-reading checks of an epoch as pure functions over batches.

Decoding, the signature stage (signature, revocation, clock skew) and the
plausibility verdict of each reading only depend on that reading and the
epoch's rules, so one call checks a whole batch: in the pipeline's process,
or in a worker process (``workers``) that is handed the batch's raw bytes
and sends back compact results. What depends on other readings (the replay
guard) and what sums over them (aggregates, rewards, roots) stays with the
Beam stages. Kept apart from the Beam transforms so worker processes can
import this without importing Beam.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from veristream.connectors.envelope import TOO_LARGE, parse_reading, parse_reading_fast
from veristream.pipeline.commitments import data_leaf_hashes
from veristream.pipeline.jobspec import ValidationSpec
from veristream.pipeline.records import (
    Candidate,
    CandidateBatch,
    Rejected,
    rejected_from,
)
from veristream.pipeline.registry import DeviceInfo, verify_in_force
from veristream.provers.readings import Domain
from veristream.provers.reasons import Reason, Stage
from veristream.provers.signing import VerdictMemo

_fast_loads: Callable[[bytes], Any]
try:
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is in the beam extra
    _fast_loads = json.loads

def signature_reason(fault: str | None) -> tuple[str, str]:
    """The dead-letter reason and detail for a failed signature verdict: the finer fault
    (``high_s``, ``bad_v``, ...) goes in the detail, except for an unknown device."""
    reason = Reason.of_signature_fault(fault)
    return reason, "" if reason == Reason.UNKNOWN_DEVICE else str(fault)


def credentials_problem(
    candidate: Candidate, devices: Mapping[str, DeviceInfo], max_clock_skew_ms: int
) -> tuple[str, str] | None:
    """Why a correctly signed reading still cannot count: its key was revoked by its timestamp,
    its credential was revoked (or is not valid) then, or its timestamp is further ahead of its
    arrival than the allowed skew.

    Both are checked before the replay guard, so a reading that cannot count
    never consumes its device's sequence number.
    """
    device = devices.get(candidate.device_id)
    if device is not None and device.revoked_at(candidate.timestamp_ms):
        return Reason.REVOKED, f"revoked at {device.revoked_at_ms}"
    credential_revoked = None if device is None else device.credential_revoked_at(candidate.timestamp_ms)
    if credential_revoked is not None:
        return Reason.CREDENTIAL_REVOKED, f"credential revoked from {credential_revoked}"
    ahead = candidate.timestamp_ms - candidate.received_ms
    if ahead > max_clock_skew_ms:
        return Reason.CLOCK_SKEW, f"{ahead} ms ahead of arrival"
    return None


def signature_problems(
    batch: Sequence[Candidate],
    domain: Domain,
    keys: Mapping[str, bytes],
    devices: Mapping[str, DeviceInfo] | None = None,
    max_clock_skew_ms: int | None = None,
    memo: VerdictMemo | None = None,
) -> list[tuple[int, str, str]]:
    """``(index in batch, reason, detail)`` of every reading of the batch that fails the
    signature stage, in batch order: what a verify worker sends back (a few tuples, not the batch).
    ``memo``: a ``signing.VerdictMemo`` (same result, fewer signature checks)."""

    # a Candidate has every attribute verify_many reads: no Reading copy per reading; each
    # reading is checked against its device's key in force at its timestamp
    verdicts = verify_in_force(batch, domain, keys, memo=memo)
    problems: list[tuple[int, str, str]] = []
    credentials = devices is not None and max_clock_skew_ms is not None
    for index, (candidate, verdict) in enumerate(zip(batch, verdicts, strict=True)):
        if not verdict.ok:
            problems.append((index, *signature_reason(verdict.reason)))
        elif credentials:
            problem = credentials_problem(candidate, devices or {}, max_clock_skew_ms or 0)
            if problem is not None:
                problems.append((index, *problem))
    return problems


def split_by_problems(
    batch: Sequence[Candidate], problems: Sequence[tuple[int, str, str]]
) -> tuple[list[Candidate], list[Rejected]]:
    """The batch's readings without a problem, and the dead letters of those with one."""
    if not problems:
        return CandidateBatch(batch), []
    failed = {index for index, _, _ in problems}
    good = CandidateBatch(c for i, c in enumerate(batch) if i not in failed)
    bad = [
        rejected_from(batch[index], reason, Stage.SIGNATURE, detail)
        for index, reason, detail in problems
    ]
    return good, bad


# PLAUSIBILITY


@dataclass(frozen=True, slots=True)
class PlausibilityRules:
    """Everything the plausibility stage needs, passed in (never read from config inside)."""

    validation: ValidationSpec
    epoch_start_ms: int
    epoch_end_ms: int
    devices: Mapping[str, DeviceInfo]


def _payload_document(payload: bytes) -> Any:
    """``json.loads(payload)``, through orjson where the two agree."""
    try:
        document = _fast_loads(payload)
    except ValueError:
        # orjson refuses what json takes (NaN, lone surrogates, a BOM, UTF-16): ask json
        return json.loads(payload)
    if type(document) is dict and any(type(v) is float for v in document.values()):
        # orjson reads an integer past 64 bits as a float, json as an int: ask json
        return json.loads(payload)
    return document


def decode_payload(payload: bytes, validation: ValidationSpec) -> dict[str, int] | tuple[str, str]:
    """The declared integer fields of a JSON-object payload, or ``(reason, detail)`` why not."""
    try:
        document = _payload_document(payload)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return Reason.MALFORMED, "payload is not JSON"
    if not isinstance(document, dict):
        return Reason.MALFORMED, "payload is not a JSON object"
    values: dict[str, int] = {}
    for name, rule in validation.fields.items():
        value = document.get(name)
        if value is None:
            if rule.required:
                return Reason.IMPLAUSIBLE, f"{name}: required field missing"
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            return Reason.IMPLAUSIBLE, f"{name}: not an integer"
        if rule.min is not None and value < rule.min:
            return Reason.IMPLAUSIBLE, f"{name}: {value} below {rule.min}"
        if rule.max is not None and value > rule.max:
            return Reason.IMPLAUSIBLE, f"{name}: {value} above {rule.max}"
        values[name] = value
    return values


def plausible_values(candidate: Candidate, rules: PlausibilityRules) -> dict[str, int] | tuple[str, str]:
    """The declared payload values of a signed, fresh reading, or ``(reason, detail)`` why it is
    not plausible."""
    validation = rules.validation
    if not rules.epoch_start_ms <= candidate.timestamp_ms < rules.epoch_end_ms:
        return Reason.WRONG_EPOCH, f"timestamp {candidate.timestamp_ms} outside the epoch"
    if len(candidate.payload) > validation.max_payload_bytes:
        return Reason.OVERSIZED, f"payload {len(candidate.payload)} > {validation.max_payload_bytes} bytes"
    # revocation and clock skew were checked with the signature; re-checked here so that a
    # batch re-executed by an operator cannot slip such a reading through either
    credentials = credentials_problem(candidate, rules.devices, validation.max_clock_skew_ms)
    if credentials is not None:
        return credentials
    return decode_payload(candidate.payload, validation)


def plausibility_problem(candidate: Candidate, rules: PlausibilityRules) -> tuple[str, str] | None:
    """Why a signed, fresh reading is not plausible, as ``(reason, detail)``; None when it is."""
    values = plausible_values(candidate, rules)
    return values if isinstance(values, tuple) else None


# A BATCH, ALL PER-READING CHECKS AT ONCE


class Checked(NamedTuple):
    """Readings with what the checks noted for each, index for index: the plausibility verdict
    (``plausible_values``, applied only after the replay guard, whose reasons come first) and
    the data-leaf hash."""

    readings: CandidateBatch
    verdicts: list[dict[str, int] | tuple[str, str]]
    leaves: list[bytes]


class CheckedBatch(NamedTuple):
    """A batch after every per-reading check: the readings that passed decoding and the
    signature stage as ``(device_id, packed)`` pairs, one per device (``packed`` is its
    ``Checked`` group, ``pack_group``), and the dead letters of decoding and the signature stage.

    Grouped and packed where the checks ran: a worker process does this per-reading
    work, and the pipeline's process passes each device's bytes on to the replay guard.
    """

    by_device: list[tuple[str, bytes]]
    dead: list[Rejected]


def pack_group(group: Checked) -> bytes:
    """One device's ``Checked`` readings as bytes (one pickle for the group: Beam's coder
    would otherwise pickle every reading on its own at the shuffle)."""
    return pickle.dumps(tuple(group), protocol=5)


def unpack_groups(packed: Iterable[bytes]) -> Checked:
    """The ``Checked`` readings of several ``pack_group``s of one device, concatenated."""
    out = Checked(CandidateBatch(), [], [])
    for blob in packed:
        readings, verdicts, leaves = pickle.loads(blob)
        out.readings.extend(readings)
        out.verdicts.extend(verdicts)
        out.leaves.extend(leaves)
    return out


def by_device(checked: Checked) -> list[tuple[str, bytes]]:
    """``(device_id, pack_group of its readings)`` for each device in ``checked``."""
    groups: dict[str, Checked] = {}
    for reading, verdict, leaf in zip(*checked, strict=True):
        group = groups.get(reading.device_id)
        if group is None:
            group = groups[reading.device_id] = Checked(CandidateBatch(), [], [])
        group.readings.append(reading)
        group.verdicts.append(verdict)
        group.leaves.append(leaf)
    return [(device, pack_group(group)) for device, group in groups.items()]


def decode_records(
    offset: int, records: Sequence[tuple[int, bytes]], max_payload_bytes: int
) -> tuple[CandidateBatch, list[Rejected]]:
    """Raw ingest records ``(received_ms, envelope bytes)`` at ``offset`` in the epoch's log as
    candidates, and the dead letters (``malformed``, ``oversized``) of those that do not decode."""
    good = CandidateBatch()
    dead: list[Rejected] = []
    for index, (received_ms, raw) in enumerate(records):
        fast = parse_reading_fast(raw, max_payload_bytes)
        if fast is not None:
            good.append(Candidate(received_ms, offset + index, *fast, raw))
            continue
        # the careful parser: accepts the odd-but-valid envelope, names the problem otherwise
        try:
            reading = parse_reading(raw, max_payload_bytes=max_payload_bytes)
        except ValueError as error:
            reason = Reason.OVERSIZED if getattr(error, "reason", "") == TOO_LARGE else Reason.MALFORMED
            dead.append(Rejected(reason, Stage.DECODE, raw, received_ms, detail=str(error)))
            continue
        good.append(Candidate.of(received_ms, offset + index, reading, raw))
    return good, dead


def check_candidates(
    batch: Sequence[Candidate],
    domain: Domain,
    keys: Mapping[str, bytes],
    rules: PlausibilityRules,
    memo: VerdictMemo | None = None,
) -> CheckedBatch:
    """The signature stage over a batch, then each signed reading's plausibility verdict and
    data-leaf hash, grouped by device (``memo``: see ``signature_problems``)."""
    validation = rules.validation
    problems = signature_problems(
        batch, domain, keys, rules.devices, validation.max_clock_skew_ms, memo
    )
    signed, dead = split_by_problems(batch, problems)
    verdicts = [plausible_values(candidate, rules) for candidate in signed]
    return CheckedBatch(by_device(Checked(signed, verdicts, data_leaf_hashes(signed))), dead)


def check_records(
    offset: int,
    records: Sequence[tuple[int, bytes]],
    domain: Domain,
    keys: Mapping[str, bytes],
    rules: PlausibilityRules,
    memo: VerdictMemo | None = None,
) -> CheckedBatch:
    """``decode_records`` then ``check_candidates``: what one worker task does with raw bytes."""
    candidates, undecodable = decode_records(offset, records, rules.validation.max_payload_bytes)
    checked = check_candidates(candidates, domain, keys, rules, memo)
    return checked._replace(dead=undecodable + checked.dead)

"""The signature stage's checks as pure functions over batches of candidates.

Kept apart from the Beam transforms so worker processes (``verify_pool``) can
import them without importing Beam.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from veristream.pipeline.records import (
    REASON_CLOCK_SKEW,
    REASON_MALFORMED,
    REASON_REVOKED,
    STAGE_SIGNATURE,
    Candidate,
    CandidateBatch,
    Rejected,
    rejected_from,
)
from veristream.pipeline.registry import DeviceInfo

REASON_BAD_SIGNATURE = "bad_signature"
REASON_UNKNOWN_DEVICE = "unknown_device"


def signature_reason(reason: str | None) -> tuple[str, str]:
    """The dead-letter reason and detail for a failed signature verdict.

    The store's vocabulary has ``bad_signature`` and ``unknown_device``; the
    signature module's finer reasons (``high_s``, ``bad_v``, ...) go in the detail.
    """
    if reason == REASON_UNKNOWN_DEVICE:
        return REASON_UNKNOWN_DEVICE, ""
    if reason == "malformed_reading":
        return REASON_MALFORMED, str(reason)
    return REASON_BAD_SIGNATURE, str(reason)


def credentials_problem(
    candidate: Candidate, devices: Mapping[str, DeviceInfo], max_clock_skew_ms: int
) -> tuple[str, str] | None:
    """Why a correctly signed reading still cannot count: its key was revoked by its timestamp,
    or its timestamp is further ahead of its arrival than the allowed skew.

    Both are checked before the replay guard, so a reading that cannot count
    never consumes its device's sequence number.
    """
    device = devices.get(candidate.device_id)
    if device is not None and device.revoked_at(candidate.timestamp_ms):
        return REASON_REVOKED, f"revoked at {device.revoked_at_ms}"
    ahead = candidate.timestamp_ms - candidate.received_ms
    if ahead > max_clock_skew_ms:
        return REASON_CLOCK_SKEW, f"{ahead} ms ahead of arrival"
    return None


def signature_problems(
    batch: Sequence[Candidate],
    domain: Any,
    keys: Mapping[str, bytes],
    devices: Mapping[str, DeviceInfo] | None = None,
    max_clock_skew_ms: int | None = None,
    memo: Any = None,
) -> list[tuple[int, str, str]]:
    """``(index in batch, reason, detail)`` of every reading of the batch that fails the
    signature stage, in batch order: what a verify worker sends back (a few tuples, not the batch).
    ``memo``: a ``signing.VerdictMemo`` (same result, fewer signature checks)."""
    from veristream.provers.signing import verify_many

    # a Candidate has every attribute verify_many reads: no DeviceReading copy per reading
    verdicts = verify_many(batch, domain, keys, memo=memo)
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
        rejected_from(batch[index], reason, STAGE_SIGNATURE, detail)
        for index, reason, detail in problems
    ]
    return good, bad


def check_signatures(
    batch: Sequence[Candidate],
    domain: Any,
    keys: Mapping[str, bytes],
    devices: Mapping[str, DeviceInfo] | None = None,
    max_clock_skew_ms: int | None = None,
    memo: Any = None,
) -> tuple[list[Candidate], list[Rejected]]:
    """Split a batch into readings signed by their registered, unrevoked key at a credible time,
    and the rest (``memo``: see ``signature_problems``)."""
    problems = signature_problems(batch, domain, keys, devices, max_clock_skew_ms, memo)
    return split_by_problems(batch, problems)

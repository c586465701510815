"""Pre-verification: device signatures checked while their epoch is still open.

At epoch end the signature stage is most of the work: the pipeline and every
operator each check every reading's signature (~50-90 us of libsecp256k1 each).
None of that depends on the epoch being closed, so it can be done as readings
arrive. A check's outcome is a pure function of the scheme, the expected key,
the reading's EIP-712 digest and its signature (``signing.VerdictMemo``), so
an outcome computed earlier answers the same check at epoch end without
trusting anyone: the pipeline and each operator keep their own memos, fill
them from the raw readings they observe, and hand the epoch's memo to
``compute_epoch`` (``run_epoch`` / ``reexecute``). Everything else (decoding,
registry lookups, revocation, clock skew, replay guard, plausibility) runs at
epoch end exactly as without pre-verification, and readings nobody observed are
checked then as today: the result is the same with or without it.

Memory is bounded: one memo per epoch (``EpochMemos``), at most ``max_epochs``
epochs at once (the lowest epoch numbers are kept: they close first), each at
most ``max_entries`` outcomes (~100 bytes each), and an epoch's memo is dropped
once it has been used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from veristream.connectors.envelope import parse_reading, parse_reading_fast
from veristream.pipeline import workers
from veristream.pipeline.compute import EpochContext
from veristream.pipeline.records import Candidate, CandidateBatch
from veristream.pipeline.registry import verify_in_force
from veristream.pipeline.workers import auto_workers
from veristream.provers.errors import InputRejected
from veristream.provers.readings import Domain
from veristream.provers.signing import MEMO_ENTRIES, VerdictMemo

# epochs whose memos are kept at once: the open one, the next, and a little slack
MAX_EPOCHS = 4
# readings per task when an observed chunk is verified on the worker pool
POOL_CHUNK = 5_000


class EpochMemos:
    """Verdict memos by epoch, bounded in count and size; epochs already done are refused."""

    def __init__(self, max_epochs: int = MAX_EPOCHS, max_entries: int = MEMO_ENTRIES) -> None:
        if max_epochs < 1 or max_entries < 0:
            raise InputRejected("max_epochs must be positive and max_entries non-negative")
        self._max_epochs = max_epochs
        self._max_entries = max_entries
        self._memos: dict[int, VerdictMemo] = {}
        self._done = -1  # epochs at or below this are finished: nothing is remembered for them

    def __len__(self) -> int:
        """Outcomes held across every epoch."""
        return sum(len(memo) for memo in self._memos.values())

    def epochs(self) -> list[int]:
        """The epochs that have a memo, in order."""
        return sorted(self._memos)

    def memo(self, epoch: int) -> VerdictMemo | None:
        """The memo to fill for ``epoch`` (created on demand), or None when it is not kept."""
        found = self._memos.get(epoch)
        if found is not None:
            return found
        if epoch <= self._done:
            return None
        if len(self._memos) >= self._max_epochs:
            highest = max(self._memos)
            if epoch > highest:
                return None
            del self._memos[highest]  # the lower epoch closes first: it is worth more
        created = self._memos[epoch] = VerdictMemo(self._max_entries)
        return created

    def take(self, epoch: int) -> VerdictMemo | None:
        """The memo of ``epoch`` for its epoch-end checks, removed from here (None if there is none)."""
        return self._memos.pop(epoch, None)

    def forget_through(self, epoch: int) -> None:
        """Drop the memos of every epoch up to ``epoch`` and remember nothing for them again."""
        self._done = max(self._done, epoch)
        for old in [e for e in self._memos if e <= epoch]:
            del self._memos[old]


def decode_by_epoch(
    raws: Iterable[bytes], clock: Any, max_payload_bytes: int
) -> dict[int, CandidateBatch]:
    """The decodable readings among ``raws``, grouped by the epoch their timestamp falls in.

    Messages that do not decode (or are stamped before genesis) are skipped: the
    epoch's pipeline rejects them with their reason when it runs.
    """
    groups: dict[int, CandidateBatch] = {}
    for raw in raws:
        fast = parse_reading_fast(raw, max_payload_bytes)
        if fast is not None:
            candidate = Candidate(0, 0, *fast, raw)
        else:
            try:
                candidate = Candidate.of(0, 0, parse_reading(raw, max_payload_bytes=max_payload_bytes), raw)
            except ValueError:
                continue
        try:
            epoch = clock.epoch_of(candidate.timestamp_ms)
        except ValueError:
            continue
        batch = groups.get(epoch)
        if batch is None:
            batch = groups[epoch] = CandidateBatch()
        batch.append(candidate)
    return groups


def preverify(
    memos: EpochMemos, groups: Mapping[int, Sequence[Candidate]], domain: Domain, keys: Mapping[str, bytes]
) -> int:
    """Check the grouped readings' signatures in this process into their epochs' memos;
    returns how many were checked (readings of epochs not kept are skipped)."""
    checked = 0
    for epoch, batch in sorted(groups.items()):
        memo = memos.memo(epoch)
        if memo is not None:
            verify_in_force(batch, domain, keys, memo=memo)
            checked += len(batch)
    return checked


def _verify_chunk(domain: Domain, keys: Mapping[str, bytes], batch: Sequence[Candidate]) -> VerdictMemo:
    """What a pool worker returns for a chunk: the outcomes it learnt, as a memo to merge."""
    memo = VerdictMemo()
    verify_in_force(batch, domain, keys, memo=memo)
    return memo


class Preverifier:
    """The submitter's pre-verification for one job: its own memos, and whoever else observes.

    ``observe`` is called with the raw messages newly appended to epochs that are
    still open; the epoch's pipeline later gets the epoch's memo through
    ``take(epoch)`` (``run_epoch(..., memo=...)``). ``also`` is handed the same raw
    messages first, without waiting (the committee's operators, each of which keeps
    its own memos: nobody trusts anyone else's verdicts).
    """

    def __init__(
        self,
        ctx: EpochContext,
        also: Callable[[Sequence[bytes]], object] | None = None,
        *,
        max_epochs: int = MAX_EPOCHS,
    ) -> None:
        self._ctx = ctx
        self._also = also
        self._memos = EpochMemos(max_epochs)
        self._keys = ctx.registry.keys()
        self._devices = dict(ctx.registry.devices)

    @property
    def memos(self) -> EpochMemos:
        """The coordinator's memos by epoch."""
        return self._memos

    def observe(self, raws: Sequence[bytes]) -> None:
        """Pre-verify readings of still-open epochs here, after handing them to ``also``
        (which returns at once: the operators work while this process does)."""
        if not raws:
            return
        raws = list(raws)
        if self._also is not None:
            self._also(raws)
        job = self._ctx.job
        groups = decode_by_epoch(raws, self._ctx.clock, job.validation.max_payload_bytes)
        total = sum(len(batch) for batch in groups.values())
        workers = self._pool_workers(total)
        if workers <= 1:
            preverify(self._memos, groups, self._ctx.domain, self._keys)
            return
        self._on_pool(workers, groups)

    def _pool_workers(self, readings: int) -> int:
        return auto_workers(readings, self._ctx.job.beam.verify_workers)

    def _on_pool(self, n_workers: int, groups: Mapping[int, Sequence[Candidate]]) -> None:
        # the same pool (same registry key) the epoch's signature stage uses
        job = self._ctx.job
        pool = workers.pool_for(
            n_workers, self._ctx.domain, self._keys, self._devices, job.validation.max_clock_skew_ms
        )
        pending = []
        for epoch, batch in sorted(groups.items()):
            memo = self._memos.memo(epoch)
            if memo is None:
                continue
            for start in range(0, len(batch), POOL_CHUNK):
                chunk = CandidateBatch(batch[start : start + POOL_CHUNK])
                pending.append((memo, pool.submit(_verify_chunk, self._ctx.domain, self._keys, chunk)))
        for memo, future in pending:
            memo.merge(future.result())

    def take(self, epoch: int) -> VerdictMemo | None:
        """The coordinator's memo of ``epoch`` for its pipeline run; dropped from here."""
        memo = self._memos.take(epoch)
        self._memos.forget_through(epoch)
        return memo
